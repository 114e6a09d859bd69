"""Per-venue pre-trade checks (`register_pretrade_check`): they run after the risk engine and
before the order is written; a refusal is a 422 with its code and a `risk.rejected` event,
an account they return is the order's venue account."""

from decimal import Decimal as D

import pytest

from config.errors import ApplicationError
from trading.services import orders


@pytest.fixture
def paper_check():
    calls = []

    def install(fn):
        def check(*, user, intent):
            calls.append(intent)
            return fn(user=user, intent=intent)

        orders.register_pretrade_check("paper", check)
        return calls

    yield install
    orders.PRETRADE_CHECKS.pop("paper", None)


@pytest.mark.django_db
def test_a_refusing_check_stops_the_order_before_it_is_written(markets, trader, api, paper_check):
    from trading.models import Event, Order

    def refuse(*, user, intent):
        raise ApplicationError("no delegation", code="DELEGATION_MISSING", status_code=422)

    calls = paper_check(refuse)
    response = api.post(
        "/api/v1/trading/trades",
        {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "2"},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "DELEGATION_MISSING"
    assert not Order.objects.exists()
    assert Event.objects.get(topic="risk.rejected").payload["code"] == "DELEGATION_MISSING"
    assert calls[0].collateral == D("100") and calls[0].venue == "paper"


@pytest.mark.django_db
def test_the_account_a_check_returns_becomes_the_orders_account(markets, trader, paper_check):
    class Account:
        account = "0x000000000000000000000000000000000000bEEF"

    paper_check(lambda *, user, intent: Account())
    order = orders.order_place(user=trader, asset="BTC-USD", side="long", collateral=D("100"), leverage=D("2"))
    assert order.wallet_address == Account.account


@pytest.mark.django_db
def test_a_venue_without_checks_is_unaffected(markets, trader):
    assert "paper" not in orders.PRETRADE_CHECKS
    order = orders.order_place(user=trader, asset="BTC-USD", side="long", collateral=D("100"), leverage=D("2"))
    assert order.wallet_address is None
