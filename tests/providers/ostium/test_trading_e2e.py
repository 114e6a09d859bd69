"""Tradedesk trading on the Ostium localnet end to end: our API, the real Celery executor,
the real SDK, the localnet keeper, and the sync job settling two-phase orders."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.conftest import wait_for
from tests.providers.ostium.helpers import approve_usdc
from tests.providers.ostium.helpers import chain_trade as _chain_trade
from tests.providers.ostium.helpers import order_status as _status
from tests.providers.ostium.helpers import sync_until as _sync_until
from trading.models import Event, ExecutionCommand, Order, Position, Trade

BTC = 0
E18 = D(10) ** 18
E6 = D(10) ** 6


def _history(net, trader):
    import asyncio

    sdk = net.sdk(net.traders[0].private_key)
    return asyncio.run(sdk.subgraph.get_recent_history(trader.lower(), 20))


def _order_topics(order):
    return list(
        Event.objects.filter(correlation_id=order.correlation_id).order_by("id").values_list("topic", flat=True)
    )


def _flow(net, api, trader_address, *, user):
    start_usdc = net.usdc_balance(trader_address)
    body = {
        "asset": "BTC-USD",
        "direction": "long",
        "order_type": "MARKET",
        "collateral": "100",
        "leverage": "10",
        "stop_price": "60000",
        "take_profit_price": "70000",
    }
    opened = api.post("/api/v1/trading/trades", body, format="json")
    assert opened.status_code == 202, opened.content
    order_id = opened.json()["order_id"]

    # phase one: the executor sends the order; Ostium holds it pending for the keeper
    assert _status(order_id, "SUBMITTED", "REJECTED", "UNKNOWN") == "SUBMITTED", Order.objects.get(
        pk=order_id
    ).error_message
    order = Order.objects.get(pk=order_id)
    assert order.venue_order_id and order.transaction_hash
    assert net.usdc_balance(trader_address) == start_usdc - 100

    # phase two: the keeper fills; the sync job applies the fill
    assert [a.ok for a in net.run_keeper()] == [True]
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    order = Order.objects.get(pk=order_id)
    trade = Trade.objects.get(orders=order)
    chain = _chain_trade(net, trader_address, trade.trade_index)
    assert chain is not None and trade.pair_id == str(BTC)
    assert trade.entry_price == D(chain["openPrice"]) / E18 == D("65000")
    assert trade.size == D(chain["tradeNotional"]) / E18
    assert trade.collateral == D(chain["collateral"]) / E6 == D("100")
    assert D(chain["stopLossPrice"]) / E18 == D("60000") and D(chain["takeProfitPrice"]) / E18 == D("70000")
    assert trade.stop_loss_price == D("60000") and trade.take_profit_price == D("70000")

    # move SL and TP through the API: the venue's native levels follow
    moved = api.patch(
        f"/api/v1/trading/trades/{trade.pair_id}/{trade.trade_index}",
        {"stop_loss_price": "62000", "take_profit_price": "68000"},
        format="json",
    )
    assert moved.status_code == 200, moved.content
    wait_for(
        lambda: ExecutionCommand.objects.filter(action__in=["update_sl", "update_tp"], status="succeeded").count() == 2,
        timeout=30,
    )
    chain = _chain_trade(net, trader_address, trade.trade_index)
    # the SDK scales SL/TP updates through float (to_base_units): equal to ~1e-12
    assert abs(D(chain["stopLossPrice"]) / E18 - D("62000")) < D("1e-9")
    assert abs(D(chain["takeProfitPrice"]) / E18 - D("68000")) < D("1e-9")

    # partial close: half at 66,000 (+1.538% x 10 on 50 USDC)
    net.set_price("BTC-USD", "66000")
    from providers.prices import price_set

    price_set("BTC-USD", D("66000"))
    half = api.delete(f"/api/v1/trading/trades/{trade.pair_id}/{trade.trade_index}?percentage=50")
    assert half.status_code == 202, half.content
    half_id = half.json()["order_id"]
    assert _status(half_id, "SUBMITTED", "REJECTED") == "SUBMITTED", Order.objects.get(pk=half_id).error_message
    net.run_keeper()
    _sync_until(lambda: Order.objects.get(pk=half_id).status == "FILLED")
    half_order = Order.objects.get(pk=half_id)
    closes = [o for o in _history(net, trader_address) if o["orderAction"] == "Close"]
    assert len(closes) == 1
    sent_half = D(closes[0]["amountSentToTrader"]) / E6
    assert half_order.realized_pnl == sent_half - D("50")
    assert half_order.filled_price == D("66000")
    trade.refresh_from_db()
    chain = _chain_trade(net, trader_address, trade.trade_index)
    assert trade.status == "open" and trade.collateral == D(chain["collateral"]) / E6 == D("50")

    # take-profit hit: the keeper closes the rest on chain; the sync job sees it
    net.set_price("BTC-USD", "68500")
    assert [a.kind for a in net.run_keeper()] == ["trigger", "fulfill"]
    _sync_until(lambda: Trade.objects.get(pk=trade.pk).status == "closed")
    trade.refresh_from_db()
    assert trade.close_reason == "take_profit"
    assert _chain_trade(net, trader_address, trade.trade_index) is None
    closes = [o for o in _history(net, trader_address) if o["orderAction"] == "Close"]
    assert {o["orderType"] for o in closes} == {"Market", "TakeProfit"}
    # PnL matches the chain: what came back minus what went in
    end_usdc = net.usdc_balance(trader_address)
    assert trade.realized_pnl == end_usdc - start_usdc
    assert trade.realized_pnl > 0
    position = Position.objects.get(user=user, provider="ostium")
    assert position.status == "closed" and position.realized_pnl == trade.realized_pnl
    assert not Order.objects.filter(trade=trade, status="PENDING_TRIGGER").exists()
    # the TP order (68,000, placed by the PATCH) is the close: it filled at Ostium's price; the stop is cancelled
    tp = Order.objects.get(trade=trade, order_type="TAKE_PROFIT", status="FILLED")
    tp_close = next(o for o in closes if o["orderType"] == "TakeProfit")
    assert tp.take_profit_price == D("68000") and tp.filled_price == D(tp_close["price"]) / E18
    assert tp.venue_order_id == str(tp_close["id"]) and tp.realized_pnl == trade.realized_pnl - half_order.realized_pnl
    assert [t for t in _order_topics(tp) if t in ("order.triggered", "order.filled")] == [
        "order.triggered",
        "order.filled",
    ]
    sl = Order.objects.get(trade=trade, order_type="STOP_LOSS", stop_price=D("62000"))
    assert (sl.status, sl.error_code) == ("CANCELLED", "TRADE_CLOSED")
    assert not Order.objects.filter(trade=trade, origin__in=["venue", "liquidation"]).exists()

    topics = list(
        Event.objects.filter(aggregate_type="trade", aggregate_id=str(trade.pk)).values_list("topic", flat=True)
    )
    assert topics[0] == "trade.opened" and "trade.reduced" in topics and topics[-1] == "trade.closed"
    order_topics = list(
        Event.objects.filter(aggregate_type="order", aggregate_id=str(order_id)).values_list("topic", flat=True)
    )
    assert order_topics[:4] == ["order.accepted", "order.submitting", "order.submitted", "order.filled"]


@pytest.mark.celery
def test_direct_mode_open_fill_move_levels_partial_close_and_take_profit(desk, ostium, celery_worker):
    user, api = desk
    _flow(ostium, api, ostium.traders[0].address, user=user)


@pytest.mark.celery
def test_delegated_mode_for_a_safe(desk, ostium, celery_worker):
    """The user's account is a Safe that approved Ostium and delegated to our signer."""
    user, api = desk
    owner = ostium.traders[6]
    safe = ostium.create_safe([owner.address], threshold=1)
    ostium.fund(safe, usdc=1000)
    usdc, trading = ostium.contract("usdc"), ostium.contract("trading")
    ostium.exec_safe_tx(
        safe,
        usdc.address,
        usdc.encode_abi("approve", [ostium.addresses.tradingStorage, 2**256 - 1]),
        [owner.private_key],
    )
    ostium.exec_safe_tx(
        safe, trading.address, trading.encode_abi("setDelegate", [ostium.traders[0].address]), [owner.private_key]
    )
    user.wallet_address = safe
    user.save(update_fields=["wallet_address"])
    signer_usdc = ostium.usdc_balance(ostium.traders[0].address)

    _flow(ostium, api, safe, user=user)

    assert ostium.usdc_balance(ostium.traders[0].address) == signer_usdc  # the signer's own funds untouched


@pytest.mark.celery
def test_a_timed_out_open_is_unknown_then_reconciled_and_filled_without_a_second_submission(
    desk, ostium, celery_worker, settings
):
    from trading.services.execution import execution_reconcile

    user, api = desk
    me = ostium.traders[0].address
    approve_usdc(ostium, me)
    settings.OSTIUM_WRITE_TIMEOUT = 1.0
    nonce = ostium.w3.eth.get_transaction_count(me)
    ostium.w3.provider.make_request("evm_setAutomine", [False])
    try:
        body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
        order_id = api.post("/api/v1/trading/trades", body, format="json").json()["order_id"]
        assert _status(order_id, "UNKNOWN", "SUBMITTED", "REJECTED") == "UNKNOWN"
        # the chain has not mined it: reconciliation cannot tell yet, and sends nothing
        assert set(execution_reconcile(grace_seconds=0).values()) == {"still-unknown"}
    finally:
        ostium.w3.provider.make_request("evm_setAutomine", [True])
    ostium.w3.provider.make_request("evm_mine", [])
    wait_for(lambda: ostium.w3.eth.get_transaction_count(me) == nonce + 1)
    execution_reconcile(grace_seconds=0)
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"
    ostium.run_keeper()
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    assert ExecutionCommand.objects.filter(order_id=order_id).count() == 1
    assert ostium.w3.eth.get_transaction_count(me) == nonce + 1  # one transaction, ever
    assert Trade.objects.get(orders__pk=order_id).entry_price == D("65000")


@pytest.mark.celery
def test_reconciliation_breaks_are_detected_and_resolved_with_events(desk, ostium, celery_worker):
    from config.errors import ApplicationError
    from trading.models import ReconciliationBreak
    from trading.services.reconciliation import reconciliation_break_resolve, venue_reconcile

    user, api = desk
    me = ostium.traders[0].address
    body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
    first = api.post("/api/v1/trading/trades", body, format="json").json()["order_id"]
    second = api.post("/api/v1/trading/trades", body | {"collateral": "50"}, format="json").json()["order_id"]
    for order_id in (first, second):
        assert _status(order_id, "SUBMITTED", "REJECTED") == "SUBMITTED"
    ostium.run_keeper()
    _sync_until(lambda: Order.objects.filter(pk__in=[first, second], status="FILLED").count() == 2)
    assert venue_reconcile(grace_seconds=0) == []  # all in agreement

    # outside Tradedesk: one of our trades is closed on chain, a new one opened, one size drifts
    sdk = ostium.sdk(ostium.traders[0].private_key)
    gone = Trade.objects.get(orders__pk=first)
    drift = Trade.objects.get(orders__pk=second)
    sdk.ostium.close_trade(int(gone.pair_id), int(gone.trade_index), market_price=65000)
    sdk.ostium.perform_trade(
        {"collateral": 20, "leverage": 2, "asset_type": 1, "direction": True, "order_type": "MARKET"}, at_price=3200
    )
    ostium.run_keeper()
    Trade.objects.filter(pk=drift.pk).update(size=drift.size + D("0.001"))
    breaks = {b.kind: b for b in venue_reconcile(grace_seconds=0)}
    assert set(breaks) == {"missing_at_venue", "unknown_at_venue", "size_mismatch"}
    assert breaks["missing_at_venue"].trade_id == gone.pk and breaks["size_mismatch"].trade_id == drift.pk
    assert breaks["unknown_at_venue"].details["symbol"] == "ETH-USD"
    assert venue_reconcile(grace_seconds=0) == []  # one open row per difference
    detected = Event.objects.filter(topic="reconciliation.break_detected")
    assert detected.count() == 3
    # the events name the venue's trade as the API does: integers
    assert {(e.payload["pair_id"], e.payload["trade_index"]) for e in detected} == {
        (int(b.pair_id), int(b.trade_index)) for b in breaks.values()
    }

    with pytest.raises(ApplicationError):
        reconciliation_break_resolve(break_id=breaks["missing_at_venue"].pk, action="adopt", actor="op", note="x")
    reconciliation_break_resolve(
        break_id=breaks["missing_at_venue"].pk, action="close", actor="user:op", note="closed on chain by hand"
    )
    reconciliation_break_resolve(
        break_id=breaks["size_mismatch"].pk, action="adopt", actor="user:op", note="venue is right"
    )
    reconciliation_break_resolve(
        break_id=breaks["unknown_at_venue"].pk, action="ignore", actor="user:op", note="desk test trade"
    )
    gone.refresh_from_db()
    drift.refresh_from_db()
    assert gone.status == "closed" and gone.close_reason == "venue"
    close = Order.objects.get(trade=gone, origin="reconciliation")
    assert (close.status, close.reduce_only, close.filled_quantity) == ("FILLED", True, gone.initial_size)
    assert _order_topics(close)[:3] == ["order.accepted", "order.filled", "trade.closed"]
    from providers.registry import get_venue

    venue_sizes = {(p.pair_id, p.trade_index): p.size for p in get_venue("ostium").get_positions(account=me)}
    assert drift.size == venue_sizes[(drift.pair_id, drift.trade_index)]
    assert set(ReconciliationBreak.objects.values_list("status", flat=True)) == {"closed", "adopted", "ignored"}
    resolved = Event.objects.filter(topic="reconciliation.break_resolved")
    assert resolved.count() == 3 and {e.actor for e in resolved} == {"user:op"}
