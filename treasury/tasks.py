"""Celery doors of the treasury (scheduled in config/schedule.py)."""

from celery import shared_task


@shared_task(ignore_result=True, expires=10)
def treasury_sync_task(venue: str, force: bool = False) -> dict:
    """Sync one venue's inventory when INVENTORY_SYNC_SECONDS have passed since its last run
    (Beat asks every few seconds; `force` syncs now)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from treasury.models import InventorySync
    from treasury.services.sync import treasury_sync

    if not force:
        last = InventorySync.objects.filter(venue=venue).values_list("last_run_at", flat=True).first()
        if last and timezone.now() - last < timedelta(seconds=settings.INVENTORY_SYNC_SECONDS - 0.5):
            return {"venue": venue, "skipped": "not due"}
    return treasury_sync(venue=venue)


@shared_task(ignore_result=True, acks_late=True)
def withdrawal_submit_task(action_id: int) -> str:
    """Sign and publish one approved withdrawal (checks `treasury:withdrawals` at the side effect)."""
    from treasury.services.liquidity import withdrawal_submit

    action = withdrawal_submit(action_id=action_id)
    return action.status if action else "busy"


@shared_task(ignore_result=True, expires=10)
def liquidity_track_task() -> dict:
    """Follow open liquidity actions: intent and bridge statuses, delays, expired reservations."""
    from treasury.services.liquidity import liquidity_track

    return liquidity_track()
