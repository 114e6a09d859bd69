from celery import shared_task

from webhooks.services import deliveries_sweep, delivery_attempt


@shared_task(ignore_result=True, acks_late=True)
def webhook_deliver_task(delivery_id: int) -> str:
    """One attempt at one delivery (a no-op unless it is pending and due)."""
    return delivery_attempt(delivery_id=delivery_id).status


@shared_task(ignore_result=True, acks_late=True, expires=60)
def webhook_retry_sweep() -> dict:
    """Beat: re-enqueue due deliveries whose task was lost and recover lost workers."""
    return deliveries_sweep()
