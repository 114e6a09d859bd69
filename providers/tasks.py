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


@shared_task(ignore_result=True, expires=5)
def reference_coingecko_poll_task() -> dict:
    """Poll CoinGecko when due (never while paused or backing off), then store the samples that
    changed. A failure is recorded in the source's state, never raised."""
    from providers.coingecko.poll import coingecko_poll
    from providers.reference.service import samples_update

    result = coingecko_poll()
    if "skipped" not in result or result["skipped"] not in ("not due", "in progress"):
        samples_update()
    return result


@shared_task(ignore_result=True, expires=600)
def reference_samples_purge_task() -> int:
    """Delete price samples older than REFERENCE_SAMPLE_RETENTION_DAYS that nothing pinned."""
    from providers.reference.service import samples_purge

    return samples_purge()
