"""Closes Tradedesk did not send are recorded as FILLED close orders, in the transaction that
closes the trade, exactly once: a paper liquidation, a native SL/TP executed by the venue (the
protective order itself fills, its sibling is cancelled), a trade closed at the venue outside
Tradedesk, and an operator's reconciliation close."""

from decimal import Decimal as D
from threading import Barrier, Thread

import pytest
from django.db import connection
from django.utils import timezone

from providers.events import register_venue_listener, unregister_venue_listener, venue_event_emit
from providers.interface import Fill as VenueFill
from providers.interface import VenueEvent, VenueEventKind
from tests.conftest import wait_for
from tests.trading.conftest import make_order
from trading.models import Event, Fill, Order, Position, ReconciliationBreak, Trade, Wallet
from trading.services import execution
from trading.services.venue_events import venue_event_apply

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"


def _topics(order):
    return list(Event.objects.filter(correlation_id=f"order-{order.pk}").order_by("id").values_list("topic", flat=True))


def _open(trader, **kw) -> Trade:
    order = make_order(trader, **kw)
    assert execution.order_execute(order_id=order.pk) == "FILLED"
    return Trade.objects.get(orders=order)


def _protective(trade, order_type):
    return Order.objects.get(trade=trade, order_type=order_type)


def _venue_close(trade, *, reason, price, kind=VenueEventKind.POSITION_CLOSED, venue_order_id="77", pnl=None):
    """A close as a venue reports it (the Ostium sync's shape: no size, the realised PnL, the reason)."""
    return VenueEvent(
        venue="paper",
        kind=kind,
        account=f"user:{trade.user_id}",
        symbol=trade.asset,
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        venue_order_id=venue_order_id,
        fill=VenueFill(
            price=D(price),
            size=D(0),
            notional=D(0),
            fee=D("0.25"),
            slippage=D(0),
            price_source="venue",
            timestamp=timezone.now(),
            realized_pnl=pnl,
        ),
        details={"reason": reason},
    )


def test_a_paper_liquidation_is_recorded_as_a_filled_liquidation_order_once(markets, trader, armed, settings):
    settings.PROTECTIVE_TICK_LISTENER = False  # only the venue acts on the gap
    from providers.prices import price_set

    wallet = Wallet.objects.create(user=trader, wallet_address=ADDRESS)
    trade = _open(trader, leverage=D("50"), stop_price=D("59500"), wallet=wallet, wallet_address=ADDRESS)
    seen = []
    register_venue_listener(seen.append)
    try:
        price_set("BTC-USD", D("58000"))  # far below the 50x long's liquidation price: the paper engine liquidates
    finally:
        unregister_venue_listener(seen.append)

    trade.refresh_from_db()
    close = Order.objects.get(trade=trade, origin="liquidation")
    fill = Fill.objects.get(trade=trade, kind="liquidation")
    assert trade.status == "closed" and trade.close_reason == "liquidation"
    assert (close.status, close.order_type, close.reduce_only, close.side) == ("FILLED", "MARKET", True, "long")
    assert (close.filled_price, close.filled_quantity) == (fill.price, trade.initial_size)
    assert close.realized_pnl == fill.realized_pnl == trade.realized_pnl
    assert fill.order == close
    assert (close.wallet, close.wallet_address) == (wallet, ADDRESS)  # from the order that opened the trade
    assert _topics(close) == [
        "order.accepted",
        "order.filled",
        "trade.closed",
        "position.closed",
        "position.liquidated",
    ]
    accepted = Event.objects.get(correlation_id=close.correlation_id, topic="order.accepted")
    assert accepted.actor == "venue:paper" and accepted.payload["origin"] == "liquidation"
    stop = _protective(trade, "STOP_LOSS")
    assert stop.status == "CANCELLED" and stop.error_code == "TRADE_CLOSED"

    # delivered again: nothing changes
    (liquidated,) = [e for e in seen if e.kind == VenueEventKind.POSITION_LIQUIDATED]
    venue_event_emit(liquidated)
    assert venue_event_apply(liquidated) == "trade-not-found"
    assert Order.objects.filter(trade=trade, origin="liquidation").count() == 1
    assert Fill.objects.filter(trade=trade).exclude(kind="open").count() == 1


@pytest.mark.celery
def test_a_liquidation_on_the_workers_price_tick_records_one_liquidation_order(markets, trader, armed, celery_worker):
    # given a 50x long, and the paper walk standing far below its liquidation price
    from providers.feeds.paper import PaperFeed
    from providers.tasks import price_tick_task

    trade = _open(trader, leverage=D("50"))
    PaperFeed.price_store("BTC-USD", D("58000"))

    # when the Beat's price job runs on the worker (one walk step from there, published)
    price_tick_task.delay()

    # then the paper engine liquidates there and the close is recorded as one order
    close = wait_for(lambda: Order.objects.filter(trade=trade, origin="liquidation", status="FILLED").first())
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.close_reason == "liquidation"
    assert close.realized_pnl == trade.realized_pnl and close.filled_quantity == trade.initial_size
    # and the next tick (the position is gone at the venue) records nothing more
    from providers.models import PaperPriceState

    step = PaperPriceState.objects.get(symbol="BTC-USD").step
    price_tick_task.delay()
    wait_for(lambda: PaperPriceState.objects.get(symbol="BTC-USD").step > step)
    assert Order.objects.filter(trade=trade, reduce_only=True).count() == 1
    assert Event.objects.filter(topic="trade.closed", aggregate_id=str(trade.pk)).count() == 1


def test_a_native_take_profit_executed_by_the_venue_fills_the_tp_order_and_cancels_the_stop(
    markets, trader, armed, settings
):
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]  # SL/TP are the venue's to fire
    trade = _open(trader, stop_price=D("55000"), take_profit_price=D("65000"))
    orders_before = Order.objects.count()
    event = _venue_close(trade, reason="take_profit", price="65000", pnl=D("8.1"))

    assert venue_event_apply(event) == "closed"

    trade.refresh_from_db()
    tp, sl = _protective(trade, "TAKE_PROFIT"), _protective(trade, "STOP_LOSS")
    assert Order.objects.count() == orders_before  # the TP order is the close; nothing else is made up
    assert trade.status == "closed" and trade.close_reason == "take_profit"
    assert (tp.status, tp.filled_price, tp.filled_quantity, tp.fee) == (
        "FILLED",
        D("65000"),
        trade.initial_size,
        D("0.25"),
    )
    assert (tp.realized_pnl, tp.venue_order_id, tp.triggered_leg, tp.trigger_price) == (
        D("8.1"),
        "77",
        "take_profit",
        D("65000"),
    )
    assert tp.triggered_at is not None and tp.origin == "protective"
    assert _topics(tp) == [
        "order.accepted",
        "order.pending_trigger",
        "order.triggered",
        "order.filled",
        "trade.closed",
        "position.closed",
    ]
    triggered = Event.objects.get(correlation_id=tp.correlation_id, topic="order.triggered")
    assert triggered.payload["door"] == "venue" and D(triggered.payload["level"]) == D("65000")
    assert (sl.status, sl.error_code) == ("CANCELLED", "TRADE_CLOSED")
    cancelled = Event.objects.get(correlation_id=sl.correlation_id, topic="order.cancelled")
    assert Event.objects.get(pk=cancelled.causation_id).topic == "trade.closed"
    assert Fill.objects.get(trade=trade, kind="close").order == tp

    # delivered again: nothing changes
    assert venue_event_apply(event) == "trade-not-found"
    assert Event.objects.filter(correlation_id=tp.correlation_id, topic="order.filled").count() == 1


def test_a_native_stop_loss_executed_by_the_venue_fills_the_stop_order(markets, trader, armed, settings):
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    trade = _open(trader, stop_price=D("55000"), take_profit_price=D("65000"))

    assert venue_event_apply(_venue_close(trade, reason="stop_loss", price="54990")) == "closed"

    trade.refresh_from_db()
    assert trade.close_reason == "stop_loss"
    assert _protective(trade, "STOP_LOSS").status == "FILLED"
    assert _protective(trade, "TAKE_PROFIT").status == "CANCELLED"
    # no PnL from the venue: computed from the entry, as for our own closes
    sl = _protective(trade, "STOP_LOSS")
    assert sl.realized_pnl == ((D("54990") - trade.entry_price) * trade.initial_size).quantize(D("0.00000001"))


def test_the_venues_stop_that_was_our_trailing_stop_fills_the_trailing_order(markets, trader, armed, settings):
    # given a fixed stop at 55,000 and a trailing stop whose level (58,000) was pushed as the venue's SL
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    trade = _open(trader, stop_price=D("55000"), trailing_stop_distance=D("2000"))
    Order.objects.filter(trade=trade, order_type="TRAILING_STOP").update(
        stop_price=D("58000"), venue_stop_price=D("58000")
    )

    # when the venue's SL executes at 57,990
    assert venue_event_apply(_venue_close(trade, reason="stop_loss", price="57990")) == "closed"

    # then the trailing stop is the leg that filled
    trade.refresh_from_db()
    assert trade.close_reason == "trailing_stop"
    assert _protective(trade, "TRAILING_STOP").status == "FILLED"
    assert _protective(trade, "STOP_LOSS").status == "CANCELLED"


def test_a_close_made_outside_tradedesk_is_a_venue_close_order(markets, trader, armed, settings):
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    trade = _open(trader, stop_price=D("55000"), take_profit_price=D("65000"))

    assert venue_event_apply(_venue_close(trade, reason="venue", price="60100", venue_order_id="991")) == "closed"

    close = Order.objects.get(trade=trade, origin="venue")
    trade.refresh_from_db()
    assert (close.status, close.reduce_only, close.venue_order_id, close.filled_price) == (
        "FILLED",
        True,
        "991",
        D("60100"),
    )
    assert trade.close_reason == "venue" and close.realized_pnl == trade.realized_pnl
    protective = Order.objects.filter(trade=trade, order_type__in=["STOP_LOSS", "TAKE_PROFIT"])
    assert set(protective.values_list("status", flat=True)) == {"CANCELLED"}


def test_a_native_take_profit_without_an_order_of_ours_is_recorded_as_a_venue_close(markets, trader, armed):
    trade = _open(trader)  # no protective order: the TP was set at the venue directly

    assert venue_event_apply(_venue_close(trade, reason="take_profit", price="61000")) == "closed"

    close = Order.objects.get(trade=trade, reduce_only=True)
    assert (close.origin, close.order_type, close.status) == ("venue", "MARKET", "FILLED")
    assert Trade.objects.get(pk=trade.pk).close_reason == "take_profit"


def test_the_same_close_delivered_twice_at_once_is_recorded_once(markets, trader, armed, settings):
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    trade = _open(trader, stop_price=D("55000"), take_profit_price=D("65000"))
    events = [
        _venue_close(trade, reason="take_profit", price="65000"),
        _venue_close(trade, reason="venue", price="65000"),
    ]
    barrier = Barrier(4)
    outcomes, errors = [], []

    def deliver(event):
        try:
            barrier.wait()
            outcomes.append(venue_event_apply(event))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [Thread(target=deliver, args=(events[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(outcomes).count("closed") == 1
    trade.refresh_from_db()
    assert trade.status == "closed"
    assert Fill.objects.filter(trade=trade, kind="close").count() == 1
    opener = trade.orders.order_by("id").first()
    assert Order.objects.filter(trade=trade, status="FILLED").exclude(pk=opener.pk).count() == 1
    assert Event.objects.filter(topic="trade.closed", aggregate_id=str(trade.pk)).count() == 1
    assert Position.objects.get().realized_pnl == trade.realized_pnl


def test_a_reconciliation_close_is_recorded_as_a_reconciliation_order(markets, trader, armed):
    from trading.services.reconciliation import reconciliation_break_resolve

    trade = _open(trader, stop_price=D("55000"))
    brk = ReconciliationBreak.objects.create(
        venue="paper",
        kind="missing_at_venue",
        account=f"user:{trader.pk}",
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        trade=trade,
    )

    reconciliation_break_resolve(break_id=brk.pk, action="close", actor="user:op", note="gone at the venue")

    trade.refresh_from_db()
    close = Order.objects.get(trade=trade, origin="reconciliation")
    assert (close.status, close.reduce_only, close.filled_price) == ("FILLED", True, trade.current_price)
    assert trade.status == "closed" and trade.close_reason == "venue"
    accepted = Event.objects.get(correlation_id=close.correlation_id, topic="order.accepted")
    assert accepted.actor == "user:op" and accepted.payload["details"]["break_id"] == brk.pk
    resolved = Event.objects.get(topic="reconciliation.break_resolved")
    assert resolved.payload["order_id"] == close.pk
    assert _protective(trade, "STOP_LOSS").status == "CANCELLED"


def test_the_owners_webhooks_hear_of_the_liquidation_and_nobody_elses_do(
    markets, trader, armed, settings, django_user_model
):
    """Trade and position events name their owner, so the dispatcher makes deliveries for them."""
    settings.PROTECTIVE_TICK_LISTENER = False
    from providers.prices import price_set
    from trading.outbox import outbox_dispatch
    from webhooks import services as webhooks
    from webhooks.models import WebhookAllowlist, WebhookDelivery

    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test receiver")
    mine, _ = webhooks.endpoint_create(user=trader, url="http://127.0.0.1:9/hook", event_types=["*"])
    other = django_user_model.objects.create_user(username="bob", email="bob@example.com")
    theirs, _ = webhooks.endpoint_create(user=other, url="http://127.0.0.1:9/hook", event_types=["*"])
    trade = _open(trader, leverage=D("50"))

    price_set("BTC-USD", D("58000"))  # the 50x long is liquidated

    # a worker may be dispatching the same outbox concurrently: wait for the committed result
    def closing_deliveries():
        outbox_dispatch()
        kinds = set(WebhookDelivery.objects.filter(endpoint=mine).values_list("event_type", flat=True))
        return {"trade.closed", "position.liquidated"} <= kinds

    wait_for(closing_deliveries)
    trade.refresh_from_db()
    assert trade.close_reason == "liquidation"
    kinds = sorted(WebhookDelivery.objects.filter(endpoint=mine).values_list("event_type", flat=True))
    assert kinds.count("trade.executed") >= 1
    assert kinds.count("trade.closed") == 1 and kinds.count("position.liquidated") == 1
    closed = WebhookDelivery.objects.get(endpoint=mine, event_type="trade.closed")
    assert closed.payload["data"]["trade_id"] == trade.pk and closed.payload["data"]["user_id"] == trader.pk
    assert not WebhookDelivery.objects.filter(endpoint=theirs).exists()
