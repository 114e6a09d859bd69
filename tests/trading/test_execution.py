"""The executor against the real paper venue: exactly-once submission, the arm/trading-state
gate at side-effect time, unknown outcomes, crash recovery by reconciliation, resting limits
and venue events."""

from decimal import Decimal as D
from threading import Barrier, Thread

import pytest
from django.db import connection

from providers.interface import ExecStatus
from providers.models import PaperFill, PaperMarket, PaperOrder
from tests.trading.conftest import make_order
from trading.models import Event, ExecutionCommand, Fill, Order, Position, Trade
from trading.services import execution
from trading.services.control import control_disarm, trading_state_set
from trading.tasks import execute_order_task

pytestmark = pytest.mark.django_db(transaction=True)


def _topics(order):
    return list(Event.objects.filter(correlation_id=f"order-{order.pk}").order_by("id").values_list("topic", flat=True))


def test_a_market_order_fills_once_and_its_whole_life_is_in_the_ledger(markets, trader, armed, counting_venue):
    order = make_order(trader, stop_price=D("55000"), take_profit_price=D("65000"))

    assert execution.order_execute(order_id=order.pk) == "FILLED"

    order.refresh_from_db()
    command = ExecutionCommand.objects.get(order=order)
    trade = Trade.objects.get(user=trader)
    position = Position.objects.get(user=trader)
    assert command.idempotency_key == f"order-{order.pk}-open-1" and command.status == "succeeded"
    assert command.result["status"] == "filled" and D(command.request["collateral"]) == 100
    assert order.status == "FILLED" and order.trade == trade
    assert (order.pair_id, order.trade_index) == (trade.pair_id, trade.trade_index)
    assert trade.pair_id == str(PaperMarket.objects.get(symbol="BTC-USD").pair_id)
    assert trade.entry_price == order.filled_price and trade.size == order.filled_quantity == order.quantity
    assert trade.fees_paid == order.fee == D("0.5")  # 1,000 notional × 0.05 % taker
    assert (trade.stop_loss_price, trade.take_profit_price) == (D("55000"), D("65000"))
    assert position.quantity == trade.size and position.avg_entry_price == trade.entry_price
    assert position.margin == D("100") and position.status == "open"
    assert _topics(order) == [
        "order.accepted",
        "order.submitting",
        "order.filled",
        "trade.opened",
        "position.opened",
    ]
    protective = Order.objects.filter(parent=order).order_by("id")
    assert [(o.order_type, o.status) for o in protective] == [
        ("STOP_LOSS", "PENDING_TRIGGER"),
        ("TAKE_PROFIT", "PENDING_TRIGGER"),
    ]
    assert all(o.trade == trade for o in protective)
    accepted = Event.objects.get(correlation_id=f"order-{protective[0].pk}", topic="order.accepted")
    assert Event.objects.get(pk=accepted.causation_id).topic == "order.filled"
    assert counting_venue.calls == [("open_trade", f"order-{order.pk}-open-1")]


def test_a_redelivered_task_never_submits_twice(markets, trader, armed, counting_venue):
    order = make_order(trader)

    execute_order_task.apply(args=[order.pk])
    execute_order_task.apply(args=[order.pk])  # redelivery (acks_late)

    assert len(counting_venue.calls) == 1
    assert PaperOrder.objects.filter(idempotency_key=f"order-{order.pk}-open-1").count() == 1
    assert PaperFill.objects.count() == 1
    assert Fill.objects.count() == 1 and Trade.objects.count() == 1
    assert ExecutionCommand.objects.count() == 1
    assert Order.objects.get(pk=order.pk).status == "FILLED"


def test_concurrent_executors_submit_once(markets, trader, armed, counting_venue):
    order = make_order(trader)
    barrier, outcomes = Barrier(4), []

    def run():
        try:
            barrier.wait()
            outcomes.append(execution.order_execute(order_id=order.pk))
        finally:
            connection.close()

    threads = [Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(counting_venue.calls) == 1
    assert outcomes.count("FILLED") == 1
    assert Trade.objects.count() == 1 and ExecutionCommand.objects.count() == 1


def test_a_disarmed_venue_refuses_execution_and_says_so(markets, trader, armed, counting_venue):
    order = make_order(trader)
    control_disarm(component="executor:paper", actor="op", reason="incident")

    execution.order_execute(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == "REJECTED" and order.error_code == "VENUE_DISARMED"
    assert counting_venue.calls == [] and not ExecutionCommand.objects.exists()
    assert _topics(order) == ["order.accepted", "order.rejected"]
    assert Event.objects.get(topic="order.rejected").payload["error_code"] == "VENUE_DISARMED"


def test_the_kill_switch_beats_an_armed_row_at_execution(markets, trader, armed, counting_venue, settings):
    order = make_order(trader)
    settings.VENUE_ENABLED = settings.VENUE_ENABLED | {"paper": False}

    execution.order_execute(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == "REJECTED" and order.error_code == "VENUE_DISABLED"
    assert counting_venue.calls == []


def test_trading_state_is_checked_at_execution_time(markets, trader, armed, counting_venue):
    opening = make_order(trader)
    trading_state_set(scope_type="venue", scope_key="paper", state="REDUCE_ONLY", actor="op", reason="wind down")

    execution.order_execute(order_id=opening.pk)

    opening.refresh_from_db()
    assert opening.status == "REJECTED" and opening.error_code == "TRADING_REDUCE_ONLY"
    assert counting_venue.calls == []


def test_a_venue_rejection_is_recorded_with_the_venue_code(markets, trader, armed):
    from providers.paper.engine import paper_account_set_balance

    paper_account_set_balance(name=f"user:{trader.pk}", balance=D("10"))
    order = make_order(trader)

    execution.order_execute(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == "REJECTED" and order.error_code == "INSUFFICIENT_BALANCE"
    assert ExecutionCommand.objects.get(order=order).status == "failed"
    assert not Trade.objects.exists()


def test_a_timeout_is_unknown_and_reconciliation_finds_the_fill(markets, trader, armed, counting_venue):
    order = make_order(trader)
    counting_venue.fail_after_open = True  # the venue filled, the answer was lost

    execution.order_execute(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == "UNKNOWN" and not Trade.objects.exists()
    assert ExecutionCommand.objects.get(order=order).status == "unknown"

    outcome = execution.execution_reconcile(grace_seconds=0)

    order.refresh_from_db()
    assert list(outcome.values()) == ["FILLED"]
    assert order.status == "FILLED" and Trade.objects.count() == 1
    assert ExecutionCommand.objects.get(order=order).status == "succeeded"
    assert _topics(order)[:4] == ["order.accepted", "order.submitting", "order.unknown", "order.filled"]
    assert Event.objects.get(correlation_id=f"order-{order.pk}", topic="order.filled").payload["source"] == (
        "reconciliation"
    )
    assert len(counting_venue.calls) == 1


def test_a_redelivered_task_for_an_unknown_order_reconciles_instead_of_resubmitting(
    markets, trader, armed, counting_venue
):
    order = make_order(trader)
    counting_venue.fail_after_open = True
    execution.order_execute(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == "UNKNOWN"

    execute_order_task.apply(args=[order.pk])  # redelivered

    assert len(counting_venue.calls) == 1
    assert Order.objects.get(pk=order.pk).status == "FILLED" and Trade.objects.count() == 1


def test_a_crash_between_command_and_result_is_resolved_by_reconciliation(markets, trader, armed, counting_venue):
    order = make_order(trader)
    # the executor commits its command, calls the venue, then the process dies
    command_id, provider, action, request = execution._claim(order.pk)
    counting_venue.open_trade(request)

    order.refresh_from_db()
    assert order.status == "SUBMITTING"
    assert ExecutionCommand.objects.get(pk=command_id).status == "pending"
    assert execution.execution_reconcile() == {}  # still within the grace period: not second-guessed

    assert execution.execution_reconcile(grace_seconds=0) == {str(command_id): "FILLED"}

    order.refresh_from_db()
    assert order.status == "FILLED" and Trade.objects.count() == 1 and PaperFill.objects.count() == 1
    assert counting_venue.calls == [("open_trade", f"order-{order.pk}-open-1")]


def test_a_crash_before_the_venue_call_is_rejected_as_never_sent(markets, trader, armed, counting_venue):
    order = make_order(trader)
    command_id, *_ = execution._claim(order.pk)  # command committed, then the process dies

    execution.execution_reconcile(grace_seconds=0)

    order.refresh_from_db()
    assert order.status == "REJECTED" and order.error_code == "EXECUTION_NOT_SENT"
    assert ExecutionCommand.objects.get(pk=command_id).status == "failed"
    assert counting_venue.calls == [] and not Trade.objects.exists()


def test_partial_then_full_close_realises_pnl_and_closes_the_position(markets, trader, armed):
    from providers.prices import price_set

    order = make_order(trader, stop_price=D("50000"))
    execution.order_execute(order_id=order.pk)
    order.refresh_from_db()
    trade = Trade.objects.get()
    price_set("BTC-USD", D("61000"))

    half = make_order(trader, reduce_only=True, trade=trade, close_fraction=D("0.5"), collateral=D("0"))
    execution.order_execute(order_id=half.pk)
    half.refresh_from_db()
    trade.refresh_from_db()
    fill = Fill.objects.get(order=half)
    assert half.status == "FILLED" and trade.status == "open"
    assert fill.size == half.filled_quantity
    # the venue's own PnL (it prices with more digits than the stored fill price)
    assert half.realized_pnl == fill.realized_pnl
    assert abs(half.realized_pnl - (fill.price - trade.entry_price) * fill.size) < D("0.0001")
    assert trade.size == trade.initial_size - fill.size and trade.collateral == D("50")

    rest = make_order(trader, reduce_only=True, trade=trade, close_fraction=D("1"), collateral=D("0"))
    execution.order_execute(order_id=rest.pk)
    rest.refresh_from_db()
    trade.refresh_from_db()
    position = Position.objects.get()
    assert trade.status == "closed" and trade.size == 0 and trade.close_reason == "user"
    assert trade.realized_pnl == half.realized_pnl + rest.realized_pnl
    assert position.status == "closed" and position.realized_pnl == trade.realized_pnl
    assert position.fees_paid == trade.fees_paid == order.fee + half.fee + rest.fee
    stop = Order.objects.get(order_type="STOP_LOSS")
    assert stop.status == "CANCELLED" and stop.error_code == "TRADE_CLOSED"


def test_closes_waiting_on_a_trade_that_closed_are_cancelled_without_a_venue_call(
    markets, trader, armed, counting_venue
):
    order = make_order(trader)
    execution.order_execute(order_id=order.pk)
    trade = Trade.objects.get()
    closes = [make_order(trader, reduce_only=True, trade=trade, close_fraction=D("1"), collateral=D("0")) for _ in "ab"]

    execution.order_execute(order_id=closes[0].pk)
    execution.order_execute(order_id=closes[1].pk)

    second = Order.objects.get(pk=closes[1].pk)
    assert second.status == "CANCELLED" and second.error_code == "TRADE_CLOSED"
    assert [c[0] for c in counting_venue.calls] == ["open_trade", "close_trade"]


def test_a_resting_limit_fills_on_the_tick_through_the_venue_event_once(markets, trader, armed):
    from providers.events import venue_event_emit
    from providers.interface import VenueEventKind
    from providers.prices import price_set

    seen = []
    from providers.events import register_venue_listener, unregister_venue_listener

    register_venue_listener(seen.append)
    try:
        order = make_order(trader, order_type="LIMIT", price=D("59000"))
        execution.order_execute(order_id=order.pk)
        order.refresh_from_db()
        assert order.status == "SUBMITTED" and order.venue_order_id

        price_set("BTC-USD", D("58900"))  # crosses: the paper book fills and emits ORDER_FILLED
    finally:
        unregister_venue_listener(seen.append)

    order.refresh_from_db()
    assert order.status == "FILLED" and order.filled_price == D("59000")
    assert Trade.objects.get().entry_price == D("59000")
    filled = [e for e in seen if e.kind == VenueEventKind.ORDER_FILLED]
    assert len(filled) == 1
    venue_event_emit(filled[0])  # delivered again
    assert Trade.objects.count() == 1 and Fill.objects.count() == 1
    assert Event.objects.filter(correlation_id=f"order-{order.pk}", topic="order.filled").count() == 1


def test_cancelling_a_resting_limit_cancels_it_at_the_venue(markets, trader, armed, counting_venue):
    from providers.models import PaperAccount

    order = make_order(trader, order_type="LIMIT", price=D("59000"))
    execution.order_execute(order_id=order.pk)
    balance_resting = PaperAccount.objects.get(name=f"user:{trader.pk}").balance

    assert execution.order_cancel_execute(order_id=Order.objects.get(pk=order.pk).pk) == "CANCELLED"

    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert ExecutionCommand.objects.get(order=order, action="cancel").status == "succeeded"
    assert PaperAccount.objects.get(name=f"user:{trader.pk}").balance > balance_resting


def test_a_second_cancel_task_sends_nothing_while_the_first_cancel_is_in_flight(markets, trader, armed, counting_venue):
    order = make_order(trader, order_type="LIMIT", price=D("59000"))
    execution.order_execute(order_id=order.pk)
    # the first task committed its command and is waiting for the venue's answer
    ExecutionCommand.objects.create(
        order=order, provider="paper", action="cancel", idempotency_key=f"order-{order.pk}-cancel-1", request={}
    )
    assert execution.order_cancel_execute(order_id=order.pk) == "nothing-to-send"
    assert ExecutionCommand.objects.filter(order=order, action="cancel").count() == 1
    assert "cancel_order" not in [c[0] for c in counting_venue.calls]
    assert Order.objects.get(pk=order.pk).status == "SUBMITTED"


def test_liquidation_and_funding_from_the_venue_are_applied_once(markets, trader, armed, settings):
    settings.PROTECTIVE_TICK_LISTENER = False  # the gap also crosses the stop; here only the venue acts
    from providers.events import venue_event_emit
    from providers.interface import Fill as VenueFill
    from providers.interface import VenueEvent, VenueEventKind
    from providers.prices import price_set

    order = make_order(trader, leverage=D("50"), stop_price=D("59500"))
    execution.order_execute(order_id=order.pk)
    trade = Trade.objects.get()
    funding = VenueEvent(
        venue="paper",
        kind=VenueEventKind.FUNDING_CHARGED,
        account=f"user:{trader.pk}",
        symbol="BTC-USD",
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        details={"amount": D("1.25"), "charge_id": 77},
    )
    venue_event_emit(funding)
    venue_event_emit(funding)
    trade.refresh_from_db()
    assert trade.funding_paid == D("1.25")

    price_set("BTC-USD", D("58000"))  # far below the 50x long's liquidation price

    trade.refresh_from_db()
    assert trade.status == "closed" and trade.close_reason == "liquidation"
    assert Fill.objects.filter(kind="liquidation").count() == 1
    assert Position.objects.get().status == "closed"
    assert Order.objects.get(order_type="STOP_LOSS").status == "CANCELLED"
    again = VenueEvent(
        venue="paper",
        kind=VenueEventKind.POSITION_LIQUIDATED,
        account=f"user:{trader.pk}",
        symbol="BTC-USD",
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        fill=VenueFill(
            price=D("58000"), size=trade.initial_size, notional=D("1"), fee=D("0"), slippage=D("0"),
            price_source="paper", timestamp=trade.closed_at, realized_pnl=D("-99"),
        ),
    )  # fmt: skip
    venue_event_emit(again)
    assert Fill.objects.filter(kind="liquidation").count() == 1


@pytest.mark.celery
def test_an_order_handed_to_the_executor_twice_executes_once(
    markets, trader, armed, api, counting_venue, celery_worker
):
    """The placing request publishes nothing; the dispatcher's hand-off does. A late duplicate
    (the outbox redelivering the event, a requeue) finds the order claimed: a no-op."""
    import threading

    from tests.conftest import tasks_published, wait_for
    from trading.services.orders import order_hand_off

    with tasks_published("trading.tasks.execute_order_task") as published:
        body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
        response = api.post("/api/v1/trading/trades", body, format="json")
        assert response.status_code == 202, response.content
        order_id = response.json()["order_id"]
        wait_for(lambda: Order.objects.get(pk=order_id).status == "FILLED", timeout=30)
        # one publish, the dispatcher's (a worker thread), not the request's (this thread)
        assert len(published) == 1 and published[0] is not threading.current_thread()
        event = Event.objects.get(topic="order.accepted", aggregate_id=str(order_id))
        order_hand_off(event)  # too late: the order is no longer waiting, nothing is published
        assert len(published) == 1
        execute_order_task.delay(order_id)  # a duplicate task anyway (a requeue racing the first)
        wait_for(lambda: not _worker_busy(), timeout=30)
    assert ExecutionCommand.objects.filter(order_id=order_id).count() == 1
    assert [c for c, _ in counting_venue.calls] == ["open_trade"]
    assert Trade.objects.filter(user=trader).count() == 1


def _worker_busy() -> bool:
    from celery.worker import state

    return bool(state.active_requests or state.reserved_requests)


def test_reconciliation_ignores_commands_with_a_result(markets, trader, armed, counting_venue):
    order = make_order(trader)
    execution.order_execute(order_id=order.pk)
    assert execution.execution_reconcile(grace_seconds=0) == {}
    assert ExecStatus.FILLED == "filled"


@pytest.mark.celery
def test_an_order_the_broker_refused_to_enqueue_is_placed_once_and_executed_by_reconciliation(
    markets, trader, armed, api, celery_worker
):
    """The broker is down when the order commits and when the dispatcher hands it to the
    executor: the request still answers 202 (not a 5xx a client retries into a second order),
    the hand-off is given up (not retried by the outbox), the order waits ACCEPTED, and the
    reconciliation job enqueues it again once the grace period has passed; it then executes
    exactly once."""
    from unittest import mock

    import redis
    from kombu.transport.redis import Channel

    from tests.conftest import wait_for
    from trading import outbox
    from trading.models import OutboxMessage

    body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
    with mock.patch.object(Channel, "_put", side_effect=redis.ConnectionError("broker unavailable")):
        first = api.post("/api/v1/trading/trades", body, format="json", HTTP_IDEMPOTENCY_KEY="broker-down")
        again = api.post("/api/v1/trading/trades", body, format="json", HTTP_IDEMPOTENCY_KEY="broker-down")
        assert first.status_code == 202, first.content
        order_id = first.json()["order_id"]
        handed = OutboxMessage.objects.filter(handler="executor", event__aggregate_id=str(order_id))
        # Beat's run (or a session worker's): the hand-off's publish is refused too, and given
        # up, not retried by the outbox: reconciliation is what picks the order up
        wait_for(lambda: outbox.outbox_dispatch() >= 0 and handed.filter(status="delivered").exists())
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == order_id
    assert Order.objects.get(pk=order_id).status == "ACCEPTED"

    assert f"order:{order_id}" not in execution.execution_reconcile(grace_seconds=60)  # still in its grace
    assert execution.execution_reconcile(grace_seconds=0)[f"order:{order_id}"] == "requeued"
    wait_for(lambda: Order.objects.get(pk=order_id).status == "FILLED", timeout=30)
    execution.execution_reconcile(grace_seconds=0)  # nothing waits any more: nothing is sent again
    assert Order.objects.filter(user=trader).exclude(origin="protective").count() == 1
    assert ExecutionCommand.objects.filter(order_id=order_id).count() == 1
    assert Trade.objects.filter(user=trader).count() == 1


def test_a_cancel_the_broker_refused_to_enqueue_is_sent_once_by_reconciliation(
    markets, trader, armed, api, celery_worker
):
    """The broker is down when a resting order's cancel commits: the request still answers 202
    (cancel requested), and the reconciliation job sends the cancel once the grace period has
    passed; the venue gets exactly one cancel."""
    from unittest import mock

    import redis
    from kombu.transport.redis import Channel

    from tests.conftest import wait_for

    order = make_order(trader, order_type="LIMIT", price=D("59000"))
    execution.order_execute(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == "SUBMITTED"

    with mock.patch.object(Channel, "_put", side_effect=redis.ConnectionError("broker unavailable")):
        response = api.post(f"/api/v1/trading/orders/{order.pk}/cancel", {}, format="json")
    assert response.status_code == 202, response.content
    assert Order.objects.get(pk=order.pk).status == "SUBMITTED"
    assert "order.cancel_requested" in _topics(order)

    assert f"cancel:{order.pk}" not in execution.execution_reconcile(grace_seconds=60)  # still in its grace
    assert execution.execution_reconcile(grace_seconds=0)[f"cancel:{order.pk}"] == "requeued"
    wait_for(lambda: Order.objects.get(pk=order.pk).status == "CANCELLED", timeout=30)
    assert f"cancel:{order.pk}" not in execution.execution_reconcile(grace_seconds=0)  # sent: not again
    assert ExecutionCommand.objects.filter(order=order, action="cancel").count() == 1


def test_a_cancel_the_disarmed_executor_refused_is_not_sent_again_by_every_sweep(
    markets, trader, armed, api, celery_worker
):
    """The refusal answers the request (`order.cancel_refused`): reconciliation does not send
    that cancel again on each run (the user may ask again once the executor is armed)."""
    from unittest import mock

    import redis
    from kombu.transport.redis import Channel

    from tests.conftest import wait_for

    order = make_order(trader, order_type="LIMIT", price=D("59000"))
    execution.order_execute(order_id=order.pk)
    with mock.patch.object(Channel, "_put", side_effect=redis.ConnectionError("broker unavailable")):
        assert api.post(f"/api/v1/trading/orders/{order.pk}/cancel", {}, format="json").status_code == 202
    control_disarm(component="executor:paper", actor="op", reason="incident")

    assert execution.execution_reconcile(grace_seconds=0)[f"cancel:{order.pk}"] == "requeued"
    wait_for(lambda: "order.cancel_refused" in _topics(order), timeout=30)
    assert f"cancel:{order.pk}" not in execution.execution_reconcile(grace_seconds=0)
    assert _topics(order).count("order.cancel_refused") == 1
    assert Order.objects.get(pk=order.pk).status == "SUBMITTED"
    assert not ExecutionCommand.objects.filter(order=order, action="cancel").exists()
