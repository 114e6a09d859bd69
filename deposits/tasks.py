"""Celery doors of deposits (the poll is scheduled in config/schedule.py)."""

from celery import shared_task


@shared_task(ignore_result=True, expires=10)
def deposits_poll_task() -> dict:
    """Follow submitted deposits through LI.FI's `/v1/status` until they end; flag late ones."""
    from deposits.services import deposits_poll

    return deposits_poll()


@shared_task(ignore_result=True, expires=30)
def deposit_poll_task(deposit_id: int) -> str:
    """Poll one deposit now (kicked when its transaction is reported)."""
    from deposits.models import Deposit
    from deposits.services import deposit_poll, rate_limited_until

    deposit = Deposit.objects.filter(pk=deposit_id).first()
    if deposit is None or rate_limited_until() is not None:
        return "skipped"
    return deposit_poll(deposit).status
