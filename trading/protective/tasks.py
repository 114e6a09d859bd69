"""Celery doors of the protective engine (thin: ids in, one service call)."""

from celery import shared_task
from django.db import OperationalError


@shared_task(ignore_result=True, expires=2)
def protective_monitor_task() -> dict:
    """Beat, every second: every asset with pending protective orders against its latest price,
    the liquidation watch, stop coverage and the heartbeat."""
    from trading.services.protective import protective_monitor_run

    beat = protective_monitor_run()
    return {"triggered": beat.triggered, "stale": beat.stale_assets}


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def protective_execute_task(order_ids: list[int]) -> dict:
    """Fan triggered orders out to the executor (one message per tick on the hot path)."""
    from trading.services.protective import protective_execute

    return protective_execute(order_ids=order_ids)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def trailing_stop_push_task(order_id: int) -> str:
    from trading.services.protective import trailing_stop_push

    return trailing_stop_push(order_id=order_id)
