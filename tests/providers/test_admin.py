"""The providers admin pages render and the paper balance edit goes through the service."""

from decimal import Decimal

import pytest

from providers.models import PaperAccount, PaperFill, PaperMarket
from providers.prices import price_set
from providers.registry import get_venue
from tests.providers.helpers import open_request

pytestmark = pytest.mark.usefixtures("paper_markets")


MODELS = (
    "providerroute",
    "papermarket",
    "paperpricestate",
    "paperaccount",
    "paperposition",
    "paperorder",
    "paperfill",
    "paperfundingcharge",
)


def test_changelists_and_change_pages_render(staff_client):
    price_set("BTC-USD", Decimal("50000"))
    get_venue("paper").open_trade(open_request())
    for model in MODELS:
        assert staff_client.get(f"/admin/providers/{model}/").status_code == 200, model
    fill = PaperFill.objects.get()
    assert staff_client.get(f"/admin/providers/paperfill/{fill.pk}/change/").status_code == 200


def test_fills_are_read_only(staff_client):
    price_set("BTC-USD", Decimal("50000"))
    get_venue("paper").open_trade(open_request())
    fill = PaperFill.objects.get()
    assert staff_client.get("/admin/providers/paperfill/add/").status_code == 403
    assert staff_client.post(f"/admin/providers/paperfill/{fill.pk}/delete/", {"post": "yes"}).status_code == 403


def test_market_edit_in_the_admin(staff_client):
    market = PaperMarket.objects.get(symbol="XAU-USD")
    response = staff_client.get(f"/admin/providers/papermarket/{market.pk}/change/")
    assert response.status_code == 200
    assert b"impact_coefficient" in response.content


def test_balance_edit_in_the_admin(staff_client):
    get_venue("paper")  # account created on first use below
    from providers.paper.engine import paper_account_get

    account = paper_account_get(name="user:9")
    response = staff_client.post(
        f"/admin/providers/paperaccount/{account.pk}/change/", {"name": "renamed", "balance": "2500.5"}
    )
    assert response.status_code == 302
    assert PaperAccount.objects.get(name="user:9").balance == Decimal("2500.5")
    assert not PaperAccount.objects.filter(name="renamed").exists()


def test_new_account_in_the_admin(staff_client):
    response = staff_client.post("/admin/providers/paperaccount/add/", {"name": "desk:1", "balance": "10"})
    assert response.status_code == 302
    assert PaperAccount.objects.get(name="desk:1").balance == Decimal("10")


def test_cancel_action_releases_resting_orders(staff_client):
    from providers.interface import VenueOrderKind
    from providers.models import PaperOrder

    price_set("BTC-USD", Decimal("50000"))
    placed = get_venue("paper").open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("40000")))
    response = staff_client.post(
        "/admin/providers/paperorder/",
        {"action": "cancel_orders", "_selected_action": [placed.venue_order_id]},
    )
    assert response.status_code == 302
    assert PaperOrder.objects.get(pk=placed.venue_order_id).status == PaperOrder.Status.CANCELLED
    assert PaperAccount.objects.get(name="user:1").balance == Decimal("100000")
