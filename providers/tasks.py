"""Celery doors of `providers` (scheduled in config/schedule.py)."""

from celery import shared_task

from providers.paper.engine import paper_funding_accrue
from providers.prices import prices_tick


@shared_task(ignore_result=True, expires=2)
def price_tick_task() -> int:
    """Advance the price feed one step and publish every tick (cache, listeners, paper book)."""
    return len(prices_tick())


@shared_task(ignore_result=True, acks_late=True, expires=240)
def paper_funding_task() -> int:
    """Charge paper funding for every whole hour elapsed on open positions."""
    return len(paper_funding_accrue())


@shared_task(ignore_result=True, expires=5)
def ostium_sync_task() -> dict:
    """Settle pending Ostium market orders and resting limits, time out market orders the keeper
    never answered, and notice venue-side closes (TP/SL/liquidation) — in-process, or in the
    signer service when OSTIUM_SERVICE_BASE_URL is set (it holds the keys)."""
    from providers.ostium.sync import ostium_sync_run

    return ostium_sync_run()
