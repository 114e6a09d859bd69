from celery import shared_task

from configuration.services import config_versions_apply_due


@shared_task(acks_late=True, ignore_result=True)
def config_apply_due_task() -> int:
    """Apply scheduled configuration versions whose effective_at has come."""
    return config_versions_apply_due()
