"""Ages the desk shows are never negative: a timestamp another process wrote a moment after the
reader took its `now` is 0 s old (the panel showed such a price as "-0.0 s")."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.clock import seconds_since
from providers.prices import price_set
from trading.admin_panel.panel import price_rows
from treasury.models import InventoryBalance


def test_seconds_since():
    now = timezone.now()
    assert seconds_since(None, now) is None
    assert seconds_since(now - timedelta(seconds=2.5), now) == 2.5
    assert seconds_since(now + timedelta(milliseconds=40), now) == 0.0
    assert 0 <= seconds_since(timezone.now()) < 5  # `now` defaults to this moment


@pytest.mark.django_db
def test_a_price_ticked_after_the_panel_read_its_clock_is_0_s_old(markets):
    tick = price_set("BTC-USD", Decimal("60000"))
    rows = price_rows(now=tick.timestamp - timedelta(milliseconds=30))
    row = next(r for r in rows if (r["venue"], r["symbol"]) == ("paper", "BTC-USD"))
    assert row["age"] == 0.0 and math.copysign(1, row["age"]) == 1  # not -0.0
    assert row["badge"] == "ok"


def test_an_inventory_balance_synced_just_after_now_is_0_s_old():
    now = timezone.now()
    balance = InventoryBalance(synced_at=now + timedelta(milliseconds=5))
    assert balance.age_seconds(now) == 0.0
    assert InventoryBalance(synced_at=None).age_seconds(now) is None
