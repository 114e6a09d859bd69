from celery import shared_task

from webhooks.services import deliveries_run, deliveries_sweep, run_mark_clear


@shared_task(ignore_result=True, acks_late=True)
def webhook_deliver_task(delivery_id: int | None = None) -> dict:
    """A delivery run: every due delivery, in batches (see `deliveries_run`). The argument is
    ignored; tasks queued by an earlier version carried one delivery's id."""
    run_mark_clear()  # before claiming: deliveries committed from now on kick a run of their own
    return deliveries_run()


@shared_task(ignore_result=True, acks_late=True, expires=60)
def webhook_retry_sweep() -> dict:
    """Beat: recover deliveries whose worker was lost and kick a run for any overdue."""
    return deliveries_sweep()
