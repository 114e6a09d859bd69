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
