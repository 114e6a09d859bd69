from celery import shared_task

from webhooks.services import RUN_KICKS, deliveries_run, deliveries_sweep


@shared_task(ignore_result=True, acks_late=True)
def webhook_deliver_task(delivery_id: int | None = None) -> dict:
    """A delivery run: every due delivery, in batches (see `deliveries_run`). The argument is
    ignored; tasks queued by an earlier version carried one delivery's id. It answers the kicks
    made so far and those that come while it runs (see `deliveries_kick`)."""
    return deliveries_run(kicks=RUN_KICKS)


@shared_task(ignore_result=True, acks_late=True, expires=60)
def webhook_retry_sweep() -> dict:
    """Beat: recover deliveries whose worker was lost and kick a run for any overdue."""
    return deliveries_sweep()
