"""An Ostium trade is priced, marked, risk-checked and protected at Ostium's own price (the
localnet's price API), never at the paper venue's; its stop-loss and take-profit are Ostium's to
fire (native), and a trailing stop's level is pushed on chain as it ratchets. Through our API,
the real Celery worker, the real SDK and the localnet keeper."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from providers.prices import price_set, prices_tick
from tests.conftest import wait_for
from tests.providers.ostium.helpers import chain_trade, order_status, sync_until
from trading.models import Event, ExecutionCommand, Order, Trade

E18 = D(10) ** 18


def _open(api, net, body) -> Trade:
    """Place an order through the API and let the keeper and the sync job fill it."""
    response = api.post("/api/v1/trading/trades", body, format="json")
    assert response.status_code == 202, response.content
    order_id = response.json()["order_id"]
    assert order_status(order_id, "SUBMITTED", "REJECTED", "UNKNOWN") == "SUBMITTED", Order.objects.get(
        pk=order_id
    ).error_message
    net.run_keeper()
    sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    return Trade.objects.get(orders__pk=order_id)


def _ostium_price(net, symbol, price):
    """Ostium's price moves; the price job publishes it to the desk (as Beat does every second)."""
    net.set_price(symbol, price)
    prices_tick()


def _near(value, level) -> bool:
    """Equal to within 1e-9: the SDK scales SL updates through a float."""
    return abs(D(value) - D(level)) < D("1e-9")


def _chain_sl(net, trade) -> D:
    return D(chain_trade(net, net.traders[0].address, trade.trade_index)["stopLossPrice"]) / E18


BTC_LONG = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


@pytest.mark.celery
def test_an_ostium_stop_loss_is_fired_by_ostium_at_its_price_and_never_by_a_paper_tick(desk, ostium, celery_worker):
    user, api = desk
    trade = _open(
        api,
        ostium,
        BTC_LONG | {"stop_price": "63000"},
    )
    stop = Order.objects.get(trade=trade, order_type="STOP_LOSS")
    assert stop.status == "PENDING_TRIGGER" and _near(_chain_sl(ostium, trade), "63000")

    # the paper venue's price of BTC-USD falls through the stop; Ostium's stays at 65,000
    price_set("BTC-USD", D("62990"))
    from trading.services.protective import protective_monitor_run

    protective_monitor_run()  # the Beat door too, on the latest cached prices
    assert set(Order.objects.filter(trade=trade).values_list("order_type", "status")) == {
        ("MARKET", "FILLED"),
        ("STOP_LOSS", "PENDING_TRIGGER"),
    }
    assert ExecutionCommand.objects.filter(action="close").count() == 0
    assert Trade.objects.get(pk=trade.pk).status == "open"

    # Ostium's price reaches the stop: Ostium's keeper closes the trade on chain at its price
    _ostium_price(ostium, "BTC-USD", "62950")
    stop.refresh_from_db()
    assert stop.status == "PENDING_TRIGGER"  # the desk leaves it to Ostium even at Ostium's price
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    sync_until(lambda: Trade.objects.get(pk=trade.pk).status == "closed")
    trade.refresh_from_db()
    stop.refresh_from_db()
    assert trade.close_reason == "stop_loss"
    assert (stop.status, stop.filled_price) == ("FILLED", D("63000"))  # Ostium executes an SL at its level
    assert ExecutionCommand.objects.filter(action="close").count() == 0  # the desk sent no close


@pytest.mark.celery
def test_a_trailing_stop_ratchets_at_ostiums_price_and_is_pushed_on_chain_by_min_step(
    desk, ostium, celery_worker, settings
):
    settings.TRAILING_MIN_STEP_PCT = "0.001"
    user, api = desk
    trade = _open(
        api,
        ostium,
        BTC_LONG | {"trailing_stop_distance": "1000"},
    )
    trailing = Order.objects.get(trade=trade, order_type="TRAILING_STOP")

    def pushed(level):
        # the chain moves before the command that moved it is marked succeeded: wait for both
        def landed():
            trailing.refresh_from_db()
            return _near(_chain_sl(ostium, trade), level) and trailing.venue_stop_price == D(level)

        wait_for(landed, timeout=30)
        return trailing.venue_stop_price

    # its first level (Ostium's 65,000 - 1,000) goes on chain as the trade's SL
    _ostium_price(ostium, "BTC-USD", "65000")
    assert pushed("64000") == D("64000")
    # Ostium's price rises: the stop follows and the new level is pushed
    _ostium_price(ostium, "BTC-USD", "66000")
    assert pushed("65000") == D("65000")
    # a move smaller than TRAILING_MIN_STEP_PCT of the pushed level ratchets here only
    _ostium_price(ostium, "BTC-USD", "66050")
    trailing.refresh_from_db()
    assert (trailing.stop_price, trailing.venue_stop_price) == (D("65050"), D("65000"))
    assert _near(_chain_sl(ostium, trade), "65000")
    # the paper venue's price of BTC-USD moves nothing
    price_set("BTC-USD", D("90000"))
    trailing.refresh_from_db()
    assert trailing.stop_price == D("65050") and _near(_chain_sl(ostium, trade), "65000")
    _ostium_price(ostium, "BTC-USD", "67000")
    assert pushed("66000") == D("66000")
    succeeded = ExecutionCommand.objects.filter(order=trailing, action="update_sl", status="succeeded")
    wait_for(lambda: succeeded.count() == 3, timeout=30)
    assert succeeded.count() == 3

    # Ostium's price falls to the pushed level: Ostium's keeper closes the trade there
    _ostium_price(ostium, "BTC-USD", "65990")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    sync_until(lambda: Trade.objects.get(pk=trade.pk).status == "closed")
    trailing.refresh_from_db()
    assert trailing.status == "FILLED" and Trade.objects.get(pk=trade.pk).close_reason == "trailing_stop"


@pytest.mark.celery
def test_ostium_symbols_are_quoted_validated_and_marked_at_ostiums_price(desk, ostium, celery_worker, paper_markets):
    from providers.models import ProviderRoute

    user, api = desk
    ProviderRoute.objects.create(match_type="symbol", value="ETH-USD", venue="ostium")
    ostium.set_price("ETH-USD", "3200")
    price_set("ETH-USD", D("3000"))  # the paper venue's ETH is 6 % lower

    quote = api.get("/api/v1/prices/ETH-USD?use_cache=false").json()
    assert (D(quote["price"]), quote["venue"], quote["source"]) == (D("3200"), "ostium", "ostium")
    assert api.get("/api/v1/prices/EUR-USD").json()["venue"] == "paper"

    # a take-profit 3 % above the paper price is below Ostium's: refused here, not reverted on chain
    refused = api.post(
        "/api/v1/trading/trades",
        {"asset": "ETH-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"}
        | {"take_profit_price": "3090"},
        format="json",
    )
    assert refused.status_code == 400, refused.content
    assert "3200" in str(refused.json()["error"]["details"]["take_profit_price"])

    trade = _open(
        api,
        ostium,
        {"asset": "ETH-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"}
        | {"take_profit_price": "3400"},
    )
    order = trade.orders.get(order_type="MARKET")
    accepted = Event.objects.get(topic="order.accepted", aggregate_id=str(order.pk))
    assert order.reference_price == D("3200") and accepted.payload["price_source"] == "ostium"
    assert trade.entry_price == D("3200")

    # marked at Ostium's price, whatever the paper venue's price does
    _ostium_price(ostium, "ETH-USD", "3264")
    price_set("ETH-USD", D("2900"))
    [position] = api.get("/api/v1/trading/positions").json()["positions"]
    assert D(position["current_price"]) == D("3264")
    assert D(position["unrealized_pnl"]) == (D("3264") - D("3200")) * trade.size


@pytest.mark.celery
def test_a_market_only_ostium_lists_is_tradeable_through_the_desk(desk, ostium, celery_worker):
    from providers.models import ProviderRoute

    user, api = desk
    ProviderRoute.objects.create(match_type="category", value="forex", venue="ostium")
    ostium.set_price("USD-JPY", "150.5")
    trade = _open(
        api,
        ostium,
        {"asset": "USD-JPY", "direction": "short", "order_type": "MARKET", "collateral": "100", "leverage": "20"},
    )
    assert (trade.provider, trade.pair_id, trade.entry_price) == ("ostium", "4", D("150.5"))
    assert api.get("/api/v1/prices/USD-JPY").json()["venue"] == "ostium"
