"""Resting limit opens and market-order timeouts on the Ostium localnet, end to end: our API,
the real Celery executor and sync job, the real SDK, the localnet keeper (run by hand, so it
can be held back)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from providers.ostium.localnet.deploy import MARKET_ORDERS_TIMEOUT_BLOCKS
from tests.conftest import wait_for
from tests.providers.ostium.helpers import chain_trade as _chain_trade
from tests.providers.ostium.helpers import order_status as _status
from tests.providers.ostium.helpers import sync_until as _sync_until
from trading.models import Event, ExecutionCommand, Order, Trade

E18 = D(10) ** 18
LIMIT = {
    "asset": "BTC-USD",
    "direction": "long",
    "order_type": "LIMIT",
    "price": "64000",
    "collateral": "100",
    "leverage": "10",
    "take_profit_price": "70000",
}
PLAIN = {k: v for k, v in LIMIT.items() if k != "take_profit_price"}
MARKET = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


def _topics(aggregate_type, aggregate_id):
    return list(
        Event.objects.filter(aggregate_type=aggregate_type, aggregate_id=str(aggregate_id))
        .order_by("id")
        .values_list("topic", flat=True)
    )


def _sync():
    """One poller round as the Beat task runs it (here, to read its counts)."""
    from providers.ostium.sync import ostium_sync_run

    return ostium_sync_run()


def _rest(api, body=LIMIT):
    response = api.post("/api/v1/trading/trades", body, format="json")
    assert response.status_code == 202, response.content
    order_id = response.json()["order_id"]
    assert _status(order_id, "SUBMITTED", "REJECTED", "UNKNOWN") == "SUBMITTED", Order.objects.get(
        pk=order_id
    ).error_message
    return order_id


def _trigger(net, price):
    """Move the venue's price through the limit and let the keeper act."""
    net.set_price("BTC-USD", price)
    actions = net.run_keeper()
    assert [(a.kind, a.ok) for a in actions] == [("trigger", True), ("fulfill", True)]


@pytest.mark.celery
def test_a_resting_limit_fills_once_when_the_keeper_triggers_it(desk, ostium, celery_worker):
    from providers.registry import venues_reset
    from trading import outbox
    from trading.services.execution import execution_reconcile
    from webhooks import services as webhooks
    from webhooks.models import WebhookAllowlist, WebhookDelivery

    user, api = desk
    me = ostium.traders[0].address
    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test")
    webhooks.endpoint_create(user=user, url="http://127.0.0.1:9/hook", event_types=["trade.executed"])
    start_usdc = ostium.usdc_balance(me)

    order_id = _rest(api)
    order = Order.objects.get(pk=order_id)
    assert order.venue_order_id.startswith("limit:")
    assert ostium.usdc_balance(me) == start_usdc - 100  # the collateral rests with Ostium

    # the price has not reached the limit: the keeper does nothing, polling changes nothing
    assert ostium.run_keeper() == []
    assert _sync()["filled"] == 0
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"

    _trigger(ostium, "63900")
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    order = Order.objects.get(pk=order_id)
    trade = Trade.objects.get(orders=order)
    chain = _chain_trade(ostium, me, trade.trade_index)
    assert chain is not None and D(chain["openPrice"]) / E18 == D("63900")
    assert trade.entry_price == order.filled_price == D(chain["openPrice"]) / E18
    assert trade.size == order.filled_quantity == D(chain["tradeNotional"]) / E18
    assert trade.collateral == D("100") and trade.take_profit_price == D("70000")
    assert D(chain["takeProfitPrice"]) / E18 == D("70000")

    # polled again, reconciled, and after a restart (fresh adapter and SDK clients): nothing new
    for _ in range(2):
        assert _sync()["filled"] == 0
    execution_reconcile(grace_seconds=0)
    venues_reset()
    assert _sync()["filled"] == 0
    assert Trade.objects.filter(user=user).count() == 1
    assert ExecutionCommand.objects.filter(order_id=order_id).count() == 1
    assert _topics("order", order_id) == ["order.accepted", "order.submitting", "order.submitted", "order.filled"]
    assert _topics("trade", trade.pk) == ["trade.opened"]
    filled = Event.objects.get(topic="order.filled", aggregate_id=str(order_id))
    # published here, or by the worker's dispatch the fill kicked (it holds the handler's lock)
    wait_for(lambda: outbox.outbox_dispatch() >= 0 and WebhookDelivery.objects.filter(event_type="trade.executed"))
    [delivery] = WebhookDelivery.objects.filter(event_type="trade.executed")
    assert delivery.event_id == filled.id and delivery.payload["data"]["order_id"] == order_id

    # the trade it opened is watched like any other: its native TP closes it
    ostium.set_price("BTC-USD", "70500")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    _sync_until(lambda: Trade.objects.get(pk=trade.pk).status == "closed")
    assert Trade.objects.get(pk=trade.pk).close_reason == "take_profit"


@pytest.mark.celery
def test_a_limit_fill_lost_in_a_crash_is_booked_by_reconciliation(desk, ostium, celery_worker):
    from providers.events import register_venue_listener, unregister_venue_listener
    from providers.ostium.sync import ostium_sync
    from trading.services.execution import execution_reconcile
    from trading.services.venue_events import venue_event_listener

    user, api = desk
    order_id = _rest(api, PLAIN)
    _trigger(ostium, "63000")
    # the poller records the fill on its own row, then the process dies before the event lands
    unregister_venue_listener(venue_event_listener)
    try:
        assert ostium_sync()["filled"] == 1
    finally:
        register_venue_listener(venue_event_listener)
    assert _sync()["filled"] == 0  # the row is settled: polling does not emit it again
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"

    execution_reconcile(grace_seconds=0)
    order = Order.objects.get(pk=order_id)
    assert order.status == "FILLED"
    trade = Trade.objects.get(orders=order)
    assert trade.entry_price == D("63000")  # the keeper filled at the oracle price, below the limit
    execution_reconcile(grace_seconds=0)
    _sync()
    assert Trade.objects.filter(user=user).count() == 1
    assert _topics("order", order_id).count("order.filled") == 1


@pytest.mark.celery
def test_a_limit_cancelled_at_the_venue_is_reflected_and_its_slot_reused(desk, ostium, celery_worker):
    user, api = desk
    me = ostium.traders[0].address
    start_usdc = ostium.usdc_balance(me)
    first = _rest(api)

    # cancelled outside Tradedesk (the trader, through the SDK)
    sdk = ostium.sdk(ostium.traders[0].private_key)
    [limit] = _limits(sdk, me)
    _, pair, index = limit["id"].split("_")
    receipt = sdk.ostium.cancel_limit_order(int(pair), int(index))
    assert receipt["status"] == 1
    _sync_until(lambda: Order.objects.get(pk=first).status == "CANCELLED")
    cancelled = Order.objects.get(pk=first)
    assert cancelled.error_code == "VENUE_CANCELLED" and "cancelled at the venue" in cancelled.error_message
    assert ostium.usdc_balance(me) == start_usdc  # the collateral came back
    assert _topics("order", first).count("order.cancelled") == 1

    # a new limit takes the same slot at the venue; it is not confused with the cancelled one
    second = _rest(api, PLAIN | {"price": "64500"})
    [limit] = _limits(sdk, me)
    assert limit["id"].split("_")[2] == index
    assert _sync()["filled"] == 0 and Order.objects.get(pk=second).status == "SUBMITTED"
    _trigger(ostium, "64400")
    _sync_until(lambda: Order.objects.get(pk=second).status == "FILLED")
    assert Order.objects.get(pk=first).status == "CANCELLED"
    assert Trade.objects.filter(user=user).count() == 1

    # and one cancelled through our API: the executor cancels it at the venue
    third = _rest(api, PLAIN | {"price": "60000"})
    response = api.post(f"/api/v1/trading/orders/{third}/cancel", {}, format="json")
    assert response.status_code in (200, 202), response.content
    assert _status(third, "CANCELLED") == "CANCELLED"
    assert Order.objects.get(pk=third).error_code == "CANCELLED_BY_USER"
    assert _limits(sdk, me) == []
    assert _sync()["cancelled"] == 0  # nothing left for the poller to report


def _limits(sdk, trader):
    import asyncio

    return asyncio.run(sdk.subgraph.get_orders(trader.lower()))


@pytest.mark.celery
def test_a_market_open_the_keeper_never_executes_is_timed_out_and_its_collateral_returned(
    desk, ostium, celery_worker, settings
):
    settings.OSTIUM_ORDER_TIMEOUT_SECONDS = 0
    user, api = desk
    me = ostium.traders[0].address
    start_usdc = ostium.usdc_balance(me)
    response = api.post("/api/v1/trading/trades", MARKET, format="json")
    order_id = response.json()["order_id"]
    assert _status(order_id, "SUBMITTED", "REJECTED") == "SUBMITTED"
    assert ostium.usdc_balance(me) == start_usdc - 100

    # the keeper is held back; Ostium's own timeout (in blocks) has not passed: nothing is sent
    nonce = ostium.w3.eth.get_transaction_count(me)
    assert _sync()["timed_out"] == 0
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"
    # nor can the user cancel it yet: refused, still pending
    assert api.post(f"/api/v1/trading/orders/{order_id}/cancel", {}, format="json").status_code in (200, 202)
    wait_for(lambda: "order.cancel_failed" in _topics("order", order_id), timeout=30)
    failed = Event.objects.get(topic="order.cancel_failed", aggregate_id=str(order_id))
    assert failed.payload["error_code"] == "ORDER_TIMEOUT"
    assert ostium.w3.eth.get_transaction_count(me) == nonce
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"

    ostium.mine(MARKET_ORDERS_TIMEOUT_BLOCKS)
    assert _sync()["timed_out"] == 1
    order = Order.objects.get(pk=order_id)
    assert order.status == "CANCELLED" and order.error_code == "ORDER_TIMEOUT"
    assert "collateral returned" in order.error_message
    assert ostium.usdc_balance(me) == start_usdc
    assert ostium.w3.eth.get_transaction_count(me) == nonce + 1  # one timeout transaction
    assert ostium.run_keeper() == []  # the price request is gone: a late keeper cannot fill it
    assert _sync() == {"filled": 0, "cancelled": 0, "closed": 0, "timed_out": 0, "errors": 0}
    assert not Trade.objects.filter(user=user).exists()
    assert _topics("order", order_id)[-1] == "order.cancelled"
    assert _topics("order", order_id).count("order.cancelled") == 1
    history = _history(ostium, me)
    assert [(o["isCancelled"], o["cancelReason"]) for o in history] == [(True, "Timeout")]


@pytest.mark.celery
def test_a_market_close_the_keeper_never_executes_is_timed_out_and_the_trade_stays_open(
    desk, ostium, celery_worker, settings
):
    user, api = desk
    me = ostium.traders[0].address
    order_id = api.post("/api/v1/trading/trades", MARKET, format="json").json()["order_id"]
    assert _status(order_id, "SUBMITTED") == "SUBMITTED"
    ostium.run_keeper()
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    trade = Trade.objects.get(orders__pk=order_id)

    settings.OSTIUM_ORDER_TIMEOUT_SECONDS = 0
    close = api.delete(f"/api/v1/trading/trades/{trade.pair_id}/{trade.trade_index}")
    close_id = close.json()["order_id"]
    assert _status(close_id, "SUBMITTED", "REJECTED") == "SUBMITTED"
    ostium.mine(MARKET_ORDERS_TIMEOUT_BLOCKS)
    _sync_until(lambda: Order.objects.get(pk=close_id).status == "CANCELLED")
    closing = Order.objects.get(pk=close_id)
    assert closing.error_code == "ORDER_TIMEOUT" and "the trade stays open" in closing.error_message
    trade.refresh_from_db()
    assert trade.status == "open"
    assert _chain_trade(ostium, me, trade.trade_index) is not None

    # the trade can be closed again once the keeper is back
    settings.OSTIUM_ORDER_TIMEOUT_SECONDS = 180
    again = api.delete(f"/api/v1/trading/trades/{trade.pair_id}/{trade.trade_index}").json()["order_id"]
    assert _status(again, "SUBMITTED") == "SUBMITTED"
    ostium.run_keeper()
    _sync_until(lambda: Trade.objects.get(pk=trade.pk).status == "closed")
    assert _chain_trade(ostium, me, trade.trade_index) is None


def _history(net, trader):
    import asyncio

    sdk = net.sdk(net.traders[0].private_key)
    return asyncio.run(sdk.subgraph.get_recent_history(trader.lower(), 20))


@pytest.mark.celery
def test_with_a_separate_signer_service_beat_polls_through_it(desk, ostium, celery_worker, settings, asgi_server):
    """OSTIUM_SERVICE_BASE_URL set: the backend holds no key; its Beat task asks the service
    (its own uvicorn process, with the keys) to run the poller, which books the fill."""
    secret = "sync-secret"
    base = asgi_server(
        {
            "OSTIUM_NETWORK": "localnet",
            "OSTIUM_LOCALNET_CONFIG": settings.OSTIUM_LOCALNET_CONFIG,
            "OSTIUM_TRADER_KEY_FILE": settings.OSTIUM_TRADER_KEY_FILE,
            "OSTIUM_SERVICE_HMAC_SECRETS": secret,
        }
    )
    from providers.registry import venues_reset
    from trading.services.control import control_arm

    control_arm(component="signer:ostium", actor="test", reason="the service sends the desk's orders")
    settings.OSTIUM_SERVICE_BASE_URL = base
    settings.OSTIUM_SERVICE_HMAC_SECRETS = [secret]
    settings.OSTIUM_TRADER_KEY_FILE = ""  # the backend holds no key
    venues_reset()
    user, api = desk
    order_id = _rest(api, PLAIN)
    _trigger(ostium, "63500")
    from providers.ostium.sync import ostium_sync

    assert ostium_sync() == {"skipped": 1}  # never in the backend itself
    wait_for(lambda: _sync().get("filled") == 1 or Order.objects.get(pk=order_id).status == "FILLED", timeout=30)
    order = Order.objects.get(pk=order_id)
    assert order.status == "FILLED" and order.filled_price == D("63500")
    assert Trade.objects.filter(user=user).count() == 1
