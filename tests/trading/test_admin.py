"""Operators see orders (filter UNKNOWN), their timeline and commands, and arm/disarm from the admin."""

from decimal import Decimal as D

import pytest
from django.db import transaction

from tests.trading.conftest import make_order
from trading.models import ControlState, Event, ExecutionCommand
from trading.services.orders import order_transition

pytestmark = pytest.mark.django_db


def test_unknown_orders_are_listed_and_an_order_page_shows_its_timeline(staff_client, trader):
    order = make_order(trader)
    with transaction.atomic():  # handed to the venue, no answer: as the executor leaves it
        order_transition(order=order, to="SUBMITTING")
        order_transition(order=order, to="UNKNOWN")
    ExecutionCommand.objects.create(order=order, provider="paper", action="open", idempotency_key="order-x-open-1")

    listing = staff_client.get("/admin/trading/order/?status__exact=UNKNOWN")
    page = staff_client.get(f"/admin/trading/order/{order.pk}/change/")

    assert listing.status_code == 200 and f"/admin/trading/order/{order.pk}/change/" in listing.content.decode()
    assert page.status_code == 200
    assert "order.accepted" in page.content.decode() and "order-x-open-1" in page.content.decode()


def test_trades_whose_levels_are_still_due_at_the_venue_can_be_listed(staff_client, trader, other_trader):
    from django.utils import timezone

    from tests.trading.test_api import _trade_for

    due = _trade_for(trader, protection_sync_due_at=timezone.now())
    synced = _trade_for(other_trader, trade_index="42")

    listing = staff_client.get("/admin/trading/trade/?protection_sync_due_at__isempty=0").content.decode()

    assert f"/admin/trading/trade/{due.pk}/change/" in listing
    assert f"/admin/trading/trade/{synced.pk}/change/" not in listing


def test_admin_arm_action_goes_through_the_service(staff_client):
    state = ControlState.objects.get(component="executor:paper")

    asked = staff_client.post("/admin/trading/controlstate/", {"action": "arm", "_selected_action": [state.pk]})
    assert asked.status_code == 200 and not ControlState.objects.get(pk=state.pk).armed  # confirmation first

    response = staff_client.post(
        "/admin/trading/controlstate/",
        {"action": "arm", "_selected_action": [state.pk], "confirm": "yes", "reason": "desk open", "expires_at": ""},
        follow=True,
    )

    assert response.status_code == 200
    state.refresh_from_db()
    assert state.armed and state.reason == "desk open" and state.changed_by.startswith("user:")
    assert Event.objects.filter(topic="control.armed", aggregate_id="executor:paper").exists()


def test_risk_limits_are_editable_in_the_admin_and_changes_are_recorded(staff_client):
    response = staff_client.post(
        "/admin/trading/risklimit/add/",
        {"instrument": "BTC-USD", "max_notional": "2500", "max_open_positions": "", "max_orders_per_minute": ""},
    )
    assert response.status_code == 302
    event = Event.objects.get(topic="risk.limit_changed")
    assert event.aggregate_id == "BTC-USD" and D(event.payload["after"]["max_notional"]) == 2500


def test_every_list_prints_its_decimal_columns_without_their_storage_zeros(staff_client, markets):
    """A DecimalField stored with 18-27 places printed as `10000.000000000000000000000000`; every
    model admin the site registers shows them as the control panel does (10,000; 0.0005)."""
    import re

    from django.contrib import admin

    from providers.models import PaperMarket
    from trading.admin_panel.columns import TrimmedDecimals
    from treasury.models import LiquidityAction

    assert all(isinstance(model_admin, TrimmedDecimals) for model_admin in admin.site._registry.values())
    LiquidityAction.objects.create(kind="funding", venue="near_intents", account="desk.near", asset="nep141:usdc",
                                   symbol="USDC", amount=D("10000"), requested_by="test")  # fmt: skip
    market = PaperMarket.objects.get(symbol="BTC-USD")
    for page in ("/admin/treasury/liquidityaction/", "/admin/providers/papermarket/", "/admin/trading/risklimit/"):
        html = staff_client.get(page).content.decode()
        assert not re.search(r"\d\.\d*0{6,}\b", html), page  # no run of storage zeros
    assert (
        f">{market.taker_fee_rate.normalize():f}<" in staff_client.get("/admin/providers/papermarket/").content.decode()
    )
    # the column still sorts by its field
    LiquidityAction.objects.create(kind="funding", venue="near_intents", account="desk.near", asset="nep141:usdc",
                                   symbol="USDC", amount=D("5"), requested_by="test")  # fmt: skip
    html = staff_client.get("/admin/treasury/liquidityaction/").content.decode()
    assert 'class="sortable column-amount"' in html
    ascending = staff_client.get("/admin/treasury/liquidityaction/?o=7").content.decode()
    assert ascending.index('field-amount">5<') < ascending.index('field-amount">10,000<')
