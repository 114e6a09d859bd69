"""The Beat doors, run by a real Celery worker."""

from datetime import timedelta
from decimal import Decimal

import pytest

from config.schedule import BEAT_SCHEDULE
from providers.models import PaperFundingCharge, PaperPosition, PaperPriceState
from providers.prices import price_cached, price_set, register_tick_listener, unregister_tick_listener
from providers.registry import get_venue
from providers.tasks import paper_funding_task, price_tick_task
from tests.conftest import wait_for
from tests.providers.helpers import open_request


def test_the_schedule_runs_the_price_tick_every_second_and_drops_stale_runs():
    entry = BEAT_SCHEDULE["price-tick"]
    assert (entry["task"], entry["every"]) == ("providers.tasks.price_tick_task", 1.0)
    assert entry["expires"] <= 5
    assert BEAT_SCHEDULE["paper-funding"]["task"] == "providers.tasks.paper_funding_task"


@pytest.mark.celery
def test_price_tick_task_advances_caches_and_publishes_in_the_worker(celery_worker, paper_markets):
    seen = []
    register_tick_listener(seen.append)  # the worker runs threads of this process
    try:
        price_tick_task.delay()
        wait_for(lambda: PaperPriceState.objects.filter(symbol="BTC-USD", step__gte=1).exists())
        wait_for(lambda: {"BTC-USD", "EUR-USD"} <= {t.symbol for t in seen})
    finally:
        unregister_tick_listener(seen.append)
    state = PaperPriceState.objects.get(symbol="BTC-USD")
    assert price_cached("BTC-USD").price == state.price
    assert price_cached("BTC-USD").source == "paper"


@pytest.mark.celery
def test_paper_funding_task_charges_open_positions_in_the_worker(celery_worker, paper_markets):
    price_set("BTC-USD", Decimal("50000"))
    opened = get_venue("paper").open_trade(open_request())
    PaperPosition.objects.filter(pk=opened.trade_index).update(
        funding_at=PaperPosition.objects.get(pk=opened.trade_index).funding_at - timedelta(hours=2, minutes=1)
    )
    paper_funding_task.delay()
    charge = wait_for(lambda: PaperFundingCharge.objects.first())
    assert charge.hours == 2
