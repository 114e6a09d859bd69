import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tradedesk")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_snapshot(sender, **kwargs):
    """Celery's configuration: the CELERY_* Django settings (namespace CELERY), copied into a
    plain dict when Celery first needs them. Not `config_from_object("django.conf:settings")`:
    then every publish looked up a dozen settings through Django's lazy settings object, most
    of them unset, each miss an AttributeError. A CELERY_* setting changed after that
    (override_settings) does not reach Celery."""
    from django.conf import settings

    snapshot = {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
    sender.config_from_object(snapshot, namespace="CELERY")


def enqueue(task, *args, swept_by: str, **options) -> bool:
    """Publish `task` for work that is already committed and that a Beat sweep finds again in
    the database (`swept_by` names it, for the log). If the broker cannot take the message,
    log and return False rather than raise: an exception after the commit would fail the
    request (a 5xx a client retries, placing the same thing twice) while its work is safe."""
    try:
        task.apply_async(args, **options)
        return True
    except Exception:
        logging.getLogger("tradedesk.celery").warning(
            "could not enqueue %s; %s will", task.name, swept_by, exc_info=True, extra={"task_args": list(args)}
        )
        return False
