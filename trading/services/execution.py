"""The executor: the only code that asks a venue to do something for an order.

    claim (lock, skip if locked) → check arm + trading state NOW → persist the
    ExecutionCommand and commit → call the venue outside any transaction → record the result

The command row (unique deterministic idempotency key) is committed before the call, so a
redelivered task finds it and never submits twice; a crash between the call and the
result leaves a command without a result, which `execution_reconcile` (Beat) resolves by
asking the venue `get_order_status(idempotency_key=...)`. A timeout or exception is
UNKNOWN, never retried blindly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from config import metrics
from config.logging import log_event
from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    ExecutionResult,
    OpenTradeRequest,
    Side,
    VenueError,
    VenueException,
    VenueOrderKind,
)
from trading.lock_objects import command_lock, order_lock
from trading.models import ExecutionCommand, Order, Trade
from trading.services.control import Gate, executor_component, executor_gate, side_effect_gate
from trading.services.orders import fill_payload, order_event, order_transition, seed_fill_fields
from trading.services.positions import trade_open_from_fill, trade_reduce_from_fill

logger = logging.getLogger("tradedesk.execution")

A = ExecutionCommand.Action
CS = ExecutionCommand.Status
OS = Order.Status

CLOSE_REASON_BY_TYPE = {
    Order.Type.STOP_LOSS: Trade.CloseReason.STOP_LOSS,
    Order.Type.TAKE_PROFIT: Trade.CloseReason.TAKE_PROFIT,
    Order.Type.TRAILING_STOP: Trade.CloseReason.TRAILING_STOP,
}


def venue_account(order: Order) -> str:
    """Whose position at the venue: opaque `user:<id>` on paper, the trader's address elsewhere."""
    if order.provider != "paper" and order.wallet_address:
        return order.wallet_address
    return f"user:{order.user_id}"


def command_key(order: Order, action: str, attempt: int = 1) -> str:
    return f"order-{order.pk}-{action}-{attempt}"


def _jsonable(obj) -> dict:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)


def result_to_json(result: ExecutionResult) -> dict:
    return dataclasses.asdict(result)


def _get_venue(name: str):
    from providers.registry import get_venue

    return get_venue(name)


# --- the gate at side-effect time ----------------------------------------------------------------


def execution_gate(order: Order) -> Gate:
    return side_effect_gate(
        component=executor_component(order.provider),
        venue=order.provider,
        asset=order.asset,
        reduces_exposure=order.is_close,
    )


# --- requests ------------------------------------------------------------------------------------


def _open_request(order: Order, key: str) -> OpenTradeRequest:
    # a LIMIT the protective engine held and triggered is sent at market (max_slippage from
    # the price it triggered at); any other LIMIT rests at the venue
    resting = order.order_type == Order.Type.LIMIT and order.triggered_at is None
    return OpenTradeRequest(
        idempotency_key=key,
        account=venue_account(order),
        symbol=order.asset,
        side=Side(order.side),
        collateral=order.collateral,
        leverage=order.leverage,
        kind=VenueOrderKind.LIMIT if resting else VenueOrderKind.MARKET,
        limit_price=order.price if resting else None,
        stop_loss=order.stop_price,
        take_profit=order.take_profit_price,
        max_slippage=order.max_slippage,
        reference_price=order.trigger_price or order.reference_price,
        delegated=order.provider != "paper" and bool(order.wallet_address),
    )


def _close_request(order: Order, key: str) -> CloseTradeRequest:
    trade = order.trade
    return CloseTradeRequest(
        idempotency_key=key,
        account=venue_account(order),
        symbol=order.asset,
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        fraction=order.close_fraction or Decimal(1),
        max_slippage=order.max_slippage,
        delegated=order.provider != "paper" and bool(order.wallet_address),
    )


# --- executor ------------------------------------------------------------------------------------


def order_execute(*, order_id: int) -> str:
    """Execute an ACCEPTED/TRIGGERED order exactly once. Returns what happened (for logs)."""
    claim = _claim(order_id)
    if isinstance(claim, str):
        return claim
    command_id, provider, action, request = claim
    pair = _pair_of(request)
    _log_submitted(order_id, command_id, provider, action, pair)
    result = _venue_call(provider, action, request)
    outcome = execution_result_record(command_id=command_id, result=result, source="executor")
    _log_result(order_id, command_id, provider, action, pair, result, outcome)
    return outcome


def _pair_of(request) -> str | None:
    return getattr(request, "symbol", None)


def _log_submitted(order_id, command_id, provider: str, action: str, pair: str | None) -> None:
    """Seed 004 "log when": a command is submitted (to the venue, now)."""
    log_event(
        logger,
        "command.submitted",
        venue=provider,
        pair=pair,
        order_id=order_id,
        command_id=command_id,
        action=str(action),
        correlation_id=f"{Order.CORRELATION_PREFIX}{order_id}",
    )


def _log_result(order_id, command_id, provider: str, action: str, pair, result: ExecutionResult, outcome) -> None:
    """Seed 004 "log when": the venue's answer; a rejection or an unknown outcome (a timeout) at
    WARNING."""
    status = str(getattr(result.status, "value", result.status))
    level = logging.INFO if status in ("filled", "partially_filled", "pending", "cancelled") else logging.WARNING
    log_event(
        logger,
        f"command.{status}",
        level=level,
        venue=provider,
        pair=pair,
        order_id=order_id,
        command_id=command_id,
        action=str(action),
        status=status,
        error_code=str(result.error.code) if result.error else None,
        recorded=outcome,
        correlation_id=f"{Order.CORRELATION_PREFIX}{order_id}",
    )


def _claim(order_id: int):
    with transaction.atomic():
        order = order_lock(order_id, skip_locked=True)
        if order is None:
            return "locked-or-missing"
        if order.status in (OS.SUBMITTING, OS.UNKNOWN):
            # redelivered after the command was written: never call again; reconcile (after
            # the grace period, so an in-flight call is not second-guessed)
            transaction.on_commit(lambda: _reconcile_order_commands(order_id))
            return "already-submitting"
        if order.status not in (OS.ACCEPTED, OS.TRIGGERED):
            return f"not-executable:{order.status}"
        gate = execution_gate(order)
        if gate.ok and order.is_close and (order.trade is None or order.trade.status != Trade.Status.OPEN):
            gate = Gate(False, "TRADE_NOT_OPEN", "The trade to close is not open.")
        if not gate.ok:
            order.error_code, order.error_message = gate.code, gate.message
            order_transition(
                order=order,
                to=OS.REJECTED,
                fields=("error_code", "error_message"),
                payload={"stage": "executor"},
            )
            return f"rejected:{gate.code}"
        action = A.CLOSE if order.is_close else A.OPEN
        key = command_key(order, action)
        request = _close_request(order, key) if action == A.CLOSE else _open_request(order, key)
        command, created = ExecutionCommand.objects.get_or_create(
            idempotency_key=key,
            defaults={
                "order": order,
                "provider": order.provider,
                "action": action,
                "request": _jsonable(request),
                "sent_at": timezone.now(),
            },
        )
        if not created:  # cannot happen while the status guard holds; never submit twice
            return "command-exists"
        order_transition(
            order=order,
            to=OS.SUBMITTING,
            payload={"command_id": command.pk, "idempotency_key": key, "action": action},
        )
        return command.pk, order.provider, action, request


def _venue_call(provider: str, action: str, request) -> ExecutionResult:
    """Call the venue. Outside any transaction; a raised exception is an unknown outcome.
    Counted and timed per venue, action and outcome (/metrics)."""
    in_flight = metrics.EXECUTOR_IN_FLIGHT.labels(provider)
    in_flight.inc()
    started = time.perf_counter()
    outcome = "error"
    try:
        result = _venue_call_once(provider, action, request)
        outcome = str(getattr(result.status, "value", result.status)).lower()
        return result
    finally:
        in_flight.dec()
        metrics.SUBMIT_LATENCY.labels(provider, str(action), outcome).observe(time.perf_counter() - started)
        metrics.PROVIDER_CALLS.labels(provider, str(action), outcome).inc()


def _venue_call_once(provider: str, action: str, request) -> ExecutionResult:
    try:
        venue = _get_venue(provider)
    except VenueException as exc:  # nothing was sent
        return ExecutionResult(status=ExecStatus.REJECTED, error=exc.error)
    try:
        if action == A.OPEN:
            return venue.open_trade(request)
        if action == A.CLOSE:
            return venue.close_trade(request)
        if action == A.CANCEL:
            return venue.cancel_order(**request)
        if action in (A.UPDATE_SL, A.UPDATE_TP):
            kwargs = dict(request)
            if kwargs.get("price") is not None:
                kwargs["price"] = Decimal(str(kwargs["price"]))
            return (venue.update_sl if action == A.UPDATE_SL else venue.update_tp)(**kwargs)
        raise ValueError(f"unknown action {action}")
    except Exception as exc:
        logger.warning("venue call failed; outcome unknown", extra={"venue": provider, "action": action}, exc_info=True)
        code = exc.error.code if isinstance(exc, VenueException) else ErrorCode.UNKNOWN_OUTCOME
        return ExecutionResult(
            status=ExecStatus.UNKNOWN,
            error=VenueError(code=code, message=f"{type(exc).__name__}: {exc}"[:500], retryable=True),
        )


# --- recording results ---------------------------------------------------------------------------


def _move(order: Order, to: str, **kw):
    """Transition unless the order already got there (a venue event may have beaten us)."""
    if order.status == to or order.is_terminal:
        return None
    return order_transition(order=order, to=to, **kw)


def _set_refs(order: Order, result: ExecutionResult) -> list[str]:
    fields = []
    for name in ("venue_order_id", "pair_id", "trade_index", "transaction_hash"):
        value = getattr(result, name, "")
        if value and getattr(order, name) != value:
            setattr(order, name, value)
            fields.append(name)
    return fields


def execution_result_record(*, command_id: int, result: ExecutionResult, source: str) -> str:
    """Record what the venue answered for a command (executor or reconciliation)."""
    with transaction.atomic():
        command = ExecutionCommand.objects.only("order_id").get(pk=command_id)
        order = order_lock(command.order_id)
        command = command_lock(command_id)
        resolvable = command.status in (CS.PENDING, CS.UNKNOWN) or (
            source != "executor" and command.status == CS.SUCCEEDED and order.status == OS.SUBMITTED
        )
        if not resolvable:
            return f"already-recorded:{command.status}"
        status = ExecStatus(result.status)
        command.result = result_to_json(result)
        command.error_code = str(result.error.code) if result.error else ""
        if status == ExecStatus.UNKNOWN:
            command.status = CS.UNKNOWN
        elif status in (ExecStatus.REJECTED, ExecStatus.NOT_FOUND) or (
            status == ExecStatus.CANCELLED and command.action != A.CANCEL
        ):
            command.status = CS.FAILED
        else:
            command.status = CS.SUCCEEDED
        if command.status != CS.UNKNOWN:
            command.completed_at = timezone.now()
        command.save()
        if command.action in (A.OPEN, A.CLOSE):
            return _record_order_result(order, command, result, source)
        if command.action == A.CANCEL:
            return _record_cancel_result(order, command, result, source)
        order_event(
            order=order,
            topic="order.protection_synced" if command.status == CS.SUCCEEDED else "order.protection_sync_failed",
            payload={"action": command.action, "command_id": command.pk, "status": command.status, "source": source},
        )
        return command.status


def _record_order_result(order: Order, command: ExecutionCommand, result: ExecutionResult, source: str) -> str:
    status = ExecStatus(result.status)
    payload = {"command_id": command.pk, "idempotency_key": command.idempotency_key, "source": source}
    if status in (ExecStatus.FILLED, ExecStatus.PARTIALLY_FILLED) and result.fill is not None:
        fill_apply(order=order, result=result, source=source, partial=status == ExecStatus.PARTIALLY_FILLED)
        return str(order.status)
    fields = _set_refs(order, result)
    if status == ExecStatus.PENDING or (status == ExecStatus.FILLED and result.fill is None):
        _move(order, OS.SUBMITTED, fields=tuple(fields), payload=payload)
    elif status in (ExecStatus.REJECTED, ExecStatus.NOT_FOUND, ExecStatus.CANCELLED):
        if status == ExecStatus.NOT_FOUND:
            order.error_code = "EXECUTION_NOT_SENT"
            order.error_message = "The venue never received the command."
        elif result.error:
            order.error_code, order.error_message = str(result.error.code), result.error.message
        else:
            order.error_code = "VENUE_CANCELLED" if status == ExecStatus.CANCELLED else "VENUE_REJECTED"
        fields += ["error_code", "error_message"]
        _move(
            order,
            OS.CANCELLED if status == ExecStatus.CANCELLED else OS.REJECTED,
            fields=tuple(fields),
            payload=payload,
        )
    elif status == ExecStatus.UNKNOWN:
        if result.error:
            order.error_code, order.error_message = str(result.error.code), result.error.message
            fields += ["error_code", "error_message"]
        if order.status != OS.UNKNOWN:
            _move(order, OS.UNKNOWN, fields=tuple(fields), payload=payload)
    return str(order.status)


def _record_cancel_result(order: Order, command: ExecutionCommand, result: ExecutionResult, source: str) -> str:
    status = ExecStatus(result.status)
    payload = {"command_id": command.pk, "source": source}
    if status in (ExecStatus.CANCELLED, ExecStatus.FILLED):
        order.error_code, order.error_message = "CANCELLED_BY_USER", "cancelled at the venue"
        _move(order, OS.CANCELLED, fields=("error_code", "error_message"), payload=payload)
    elif status != ExecStatus.UNKNOWN:
        order_event(
            order=order,
            topic="order.cancel_failed",
            payload={**payload, "error_code": command.error_code, "status": str(status)},
        )
    return str(order.status)


def fill_apply(*, order: Order, result: ExecutionResult, source: str, partial: bool = False, causation_id=None):
    """Apply a fill of `order` (executor result, reconciliation or venue event): the order
    becomes FILLED, then the trade/position change (caused by `order.filled`). Idempotent
    through the fill's dedupe key and the order status. The caller holds the order lock."""
    if order.status == OS.FILLED:
        return None
    fill = result.fill
    fields = _set_refs(order, result)
    order.filled_quantity = fill.size
    order.filled_price = fill.price
    order.fee = fill.fee
    order.filled_at = fill.timestamp or timezone.now()
    fields += ["filled_quantity", "filled_price", "fee", "filled_at"]
    if not order.is_close:
        order.quantity = fill.size
        fields.append("quantity")
    filled = order_transition(
        order=order,
        to=OS.PARTIALLY_FILLED if partial else OS.FILLED,
        causation_id=causation_id,
        fields=tuple(fields),
        payload=fill_payload(fill, source) | seed_fill_fields(order, fill),
    )
    if order.is_close:
        reason = CLOSE_REASON_BY_TYPE.get(order.order_type, Trade.CloseReason.USER)
        if order.order_type == Order.Type.OCO and order.trade.stop_loss_price:
            reason = Trade.CloseReason.STOP_LOSS
        pnl = trade_reduce_from_fill(
            trade=order.trade,
            fill=fill,
            fraction=order.close_fraction or Decimal(1),
            dedupe_key=f"{order.provider}:close:{order.correlation_id}",
            reason=reason,
            order=order,
            correlation_id=order.correlation_id,
            causation_id=filled.id,
        )
        if pnl is not None:
            order.realized_pnl = pnl
            order.save(update_fields=["realized_pnl", "updated_at"])
    else:
        trade = trade_open_from_fill(
            order=order,
            fill=fill,
            pair_id=result.pair_id,
            trade_index=result.trade_index,
            dedupe_key=f"{order.provider}:open:{order.correlation_id}",
            causation_id=filled.id,
        )
        if trade is not None:
            order.trade = trade
            order.pair_id, order.trade_index = trade.pair_id, trade.trade_index
            order.save(update_fields=["trade", "pair_id", "trade_index", "updated_at"])
            protective_orders_attach(parent=order, trade=trade, causation_id=filled.id)
    return filled


def protective_orders_attach(*, parent: Order, trade: Trade, causation_id: str) -> list[Order]:
    """SL/TP/trailing given with an open become protective orders on the new trade."""
    specs = []
    if parent.stop_price is not None:
        specs.append((Order.Type.STOP_LOSS, {"stop_price": parent.stop_price}))
    if parent.take_profit_price is not None:
        specs.append((Order.Type.TAKE_PROFIT, {"take_profit_price": parent.take_profit_price}))
    if parent.trailing_stop_distance is not None or parent.trailing_stop_percentage is not None:
        specs.append(
            (
                Order.Type.TRAILING_STOP,
                {
                    "trailing_stop_distance": parent.trailing_stop_distance,
                    "trailing_stop_percentage": parent.trailing_stop_percentage,
                },
            )
        )
    children = []
    for order_type, levels in specs:
        child = Order.objects.create(
            user_id=parent.user_id,
            wallet_id=parent.wallet_id,
            wallet_address=parent.wallet_address,
            origin=Order.Origin.PROTECTIVE,
            provider=parent.provider,
            asset=parent.asset,
            asset_type=parent.asset_type,
            order_type=order_type,
            side=parent.side,
            collateral=Decimal(0),
            leverage=parent.leverage,
            quantity=trade.size,
            close_fraction=Decimal(1),
            max_slippage=parent.max_slippage,
            reference_price=trade.entry_price,
            trade=trade,
            parent=parent,
            pair_id=trade.pair_id,
            trade_index=trade.trade_index,
            **levels,
        )
        order_event(
            order=child,
            topic="order.accepted",
            causation_id=causation_id,
            payload={"order_id": child.pk, "order_type": order_type, "parent_id": parent.pk, "trade_id": trade.pk}
            | {k: v for k, v in levels.items() if v is not None},
        )
        order_transition(order=child, to=OS.PENDING_TRIGGER)
        children.append(child)
    changed = []
    if parent.stop_price is not None:
        trade.stop_loss_price = parent.stop_price
        changed.append("stop_loss_price")
    if parent.take_profit_price is not None:
        trade.take_profit_price = parent.take_profit_price
        changed.append("take_profit_price")
    if changed:
        trade.save(update_fields=[*changed, "updated_at"])
    return children


# --- cancels and SL/TP at the venue --------------------------------------------------------------


def _send_command(*, order_id: int, action: str, build) -> str:
    """Write a command for a side action (cancel, update_sl/tp) and send it once."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order is None:
            return "missing"
        gate = executor_gate(order.provider)
        if not gate.ok:
            order_event(
                order=order, topic=f"order.{action}_refused", payload={"code": gate.code, "message": gate.message}
            )
            return f"refused:{gate.code}"
        attempt = order.commands.filter(action=action).count() + 1
        key = command_key(order, action, attempt)
        request = build(order)
        if request is None:
            return "nothing-to-send"
        command = ExecutionCommand.objects.create(
            order=order,
            provider=order.provider,
            action=action,
            idempotency_key=key,
            request=request,
            sent_at=timezone.now(),
        )
    _log_submitted(order_id, command.pk, order.provider, action, order.asset)
    result = _venue_call(order.provider, action, request)
    outcome = execution_result_record(command_id=command.pk, result=result, source="executor")
    _log_result(order_id, command.pk, order.provider, action, order.asset, result, outcome)
    return outcome


def order_cancel_execute(*, order_id: int) -> str:
    """Cancel a resting order at the venue, unless a cancel is already in flight (pending, or
    unknown and left to reconciliation): a second task for the same cancel sends nothing."""

    def build(order):
        if order.status != OS.SUBMITTED:
            return None
        if order.commands.filter(action=A.CANCEL, status__in=[CS.PENDING, CS.UNKNOWN]).exists():
            return None
        return {"account": venue_account(order), "venue_order_id": order.venue_order_id or command_key(order, A.OPEN)}

    return _send_command(order_id=order_id, action=A.CANCEL, build=build)


def trade_protection_sync(*, trade_id: int, actions: list[str]) -> list[str]:
    """Send the trade's current SL/TP levels to the venue (its native SL/TP, when it has one),
    then clear the trade's `protection_sync_due_at` unless the executor refused (it stays due
    and reconciliation sends it once the executor is armed) or a newer change made it due again
    (that change's own task sends it)."""
    trade = Trade.objects.get(pk=trade_id)
    due = trade.protection_sync_due_at
    anchor = trade.orders.order_by("id").first()  # the command hangs off the order that opened the trade
    if anchor is None:
        return []
    out = []
    for action in actions:
        level = trade.stop_loss_price if action == A.UPDATE_SL else trade.take_profit_price

        def build(order, level=level):
            return {
                "account": venue_account(order),
                "pair_id": trade.pair_id,
                "trade_index": trade.trade_index,
                "price": level,
                "delegated": order.provider != "paper" and bool(order.wallet_address),
            }

        out.append(_send_command(order_id=anchor.pk, action=action, build=build))
    if due is not None and not any(r.startswith("refused:") for r in out):
        Trade.objects.filter(pk=trade_id, protection_sync_due_at=due).update(protection_sync_due_at=None)
    return out


# --- reconciliation ------------------------------------------------------------------------------


def _reconcile_order_commands(order_id: int) -> None:
    for pk in ExecutionCommand.objects.filter(order_id=order_id, status__in=[CS.PENDING, CS.UNKNOWN]).values_list(
        "pk", flat=True
    ):
        command_reconcile(command_id=pk)


def command_reconcile(*, command_id: int, grace_seconds: float | None = None) -> str:
    """Ask the venue what became of a command whose outcome we never recorded."""
    grace = settings.RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    command = ExecutionCommand.objects.select_related("order").get(pk=command_id)
    if command.status == CS.PENDING and command.created_at > timezone.now() - timedelta(seconds=grace):
        return "in-grace"
    ExecutionCommand.objects.filter(pk=command_id).update(attempts=command.attempts + 1)
    if command.action in (A.UPDATE_SL, A.UPDATE_TP):
        # setting a level is idempotent: send it again
        result = _venue_call(command.provider, command.action, command.request)
        return execution_result_record(command_id=command_id, result=result, source="reconciliation")
    key = command.idempotency_key
    if command.action == A.CANCEL:
        key = command_key(command.order, A.OPEN)
    try:
        result = _get_venue(command.provider).get_order_status(idempotency_key=key)
    except Exception as exc:
        logger.warning("reconciliation look-up failed", extra={"command": key}, exc_info=True)
        return f"lookup-failed:{type(exc).__name__}"
    if ExecStatus(result.status) == ExecStatus.UNKNOWN:
        return "still-unknown"
    if command.action == A.CANCEL and ExecStatus(result.status) not in (ExecStatus.CANCELLED, ExecStatus.UNKNOWN):
        result = dataclasses.replace(result, status=ExecStatus.REJECTED)  # the order was not cancelled
    if command.status == CS.SUCCEEDED and ExecStatus(result.status) == ExecStatus.PENDING:
        return "still-pending"
    return execution_result_record(command_id=command_id, result=result, source="reconciliation")


def execution_reconcile(*, grace_seconds: float | None = None, limit: int = 200) -> dict[str, str]:
    """Beat job: resolve commands without a result (crash), UNKNOWN outcomes, and resting
    orders whose venue fill we may have missed; enqueue again what a lost or refused publish
    left undone: the execution of orders that never reached the executor, cancels, SL/TP
    levels and trailing-stop levels that never reached the venue."""
    grace = settings.RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    ids = list(
        ExecutionCommand.objects.filter(
            Q(status=CS.PENDING, created_at__lte=cutoff)
            | Q(status=CS.UNKNOWN)
            | Q(status=CS.SUCCEEDED, action__in=[A.OPEN, A.CLOSE], order__status=OS.SUBMITTED, created_at__lte=cutoff)
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    out = {}
    for pk in ids:
        try:
            out[str(pk)] = command_reconcile(command_id=pk, grace_seconds=grace)
        except Exception:
            logger.exception("reconciliation of command failed", extra={"command_id": pk})
            out[str(pk)] = "error"
    out.update(_requeue_unsent(cutoff, limit))
    out.update(_requeue_cancels(cutoff, limit))
    out.update(_requeue_protection_syncs(cutoff, limit))
    out.update(_requeue_trailing_pushes(cutoff, limit))
    return out


def _requeue_unsent(cutoff, limit: int) -> dict[str, str]:
    """Orders waiting for the executor past the grace period: ACCEPTED or TRIGGERED, so no
    command was ever written. Their execute task was not published (the broker refused it at
    commit) or was lost with the broker's data. Publish it again: the executor's claim makes a
    task that was only slow, and now runs twice, a no-op."""
    from trading.tasks import execute_order_task

    ids = (
        Order.objects.filter(
            Q(status=OS.ACCEPTED, created_at__lte=cutoff) | Q(status=OS.TRIGGERED, triggered_at__lte=cutoff)
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    return _requeue(
        execute_order_task,
        [(pk, (pk,)) for pk in ids],
        label="order",
        warning="order was waiting for the executor; execution enqueued again",
        log_key="order_id",
    )


def _requeue(task, items, *, label: str, warning: str, log_key: str) -> dict[str, str]:
    """Publish `task(*args)` again for each `(pk, args)` of `items`: `{"<label>:<pk>":
    "requeued" | "requeue-failed"}` (a broker still refusing leaves it to the next run)."""
    from config.celery import enqueue

    out = {}
    for pk, args in items:
        sent = enqueue(task, *args, swept_by="the next reconciliation")
        out[f"{label}:{pk}"] = "requeued" if sent else "requeue-failed"
        if sent:
            logger.warning(warning, extra={log_key: pk})
    return out


def _requeue_cancels(cutoff, limit: int) -> dict[str, str]:
    """Resting orders whose cancel was requested before `cutoff` and never answered: the
    order's last event is still `order.cancel_requested` (a cancel sent writes its outcome,
    a disarmed executor its refusal) and no cancel is in flight. The cancel task was not
    published or was lost: publish it again. If the first task was only slow, whichever runs
    second finds the order cancelled or its cancel in flight and sends nothing."""
    from trading.models import Event
    from trading.tasks import cancel_order_task

    last_event = Event.objects.filter(
        correlation_id=Concat(Value(Order.CORRELATION_PREFIX), Cast(OuterRef("pk"), output_field=CharField()))
    ).order_by("-id")
    in_flight = ExecutionCommand.objects.filter(
        order=OuterRef("pk"), action=A.CANCEL, status__in=[CS.PENDING, CS.UNKNOWN]
    )
    ids = (
        Order.objects.filter(status=OS.SUBMITTED)
        .annotate(
            last_topic=Subquery(last_event.values("topic")[:1]), last_at=Subquery(last_event.values("occurred_at")[:1])
        )
        .filter(last_topic="order.cancel_requested", last_at__lte=cutoff)
        .exclude(Exists(in_flight))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    return _requeue(
        cancel_order_task,
        [(pk, (pk,)) for pk in ids],
        label="cancel",
        warning="order's cancel was never sent to the venue; enqueued again",
        log_key="order_id",
    )


def _requeue_protection_syncs(cutoff, limit: int) -> dict[str, str]:
    """Open trades whose SL/TP change is still due at the venue after the grace period: the
    sync task was not published or was lost. Both levels are sent again (setting a level is
    idempotent). A venue whose executor refuses now is left for a later run, without writing
    a refusal on each one."""
    from trading.tasks import protection_sync_task

    trades = Trade.objects.filter(status=Trade.Status.OPEN, protection_sync_due_at__lte=cutoff).order_by("id")
    return _requeue_where_armed(
        protection_sync_task,
        [
            (pk, provider, (pk, [A.UPDATE_SL, A.UPDATE_TP]))
            for pk, provider in trades.values_list("id", "provider")[:limit]
        ],
        label="protection",
        warning="trade's SL/TP levels were never sent to the venue; enqueued again",
        log_key="trade_id",
    )


def _requeue_where_armed(task, items, *, label: str, warning: str, log_key: str) -> dict[str, str]:
    """`_requeue` for `(pk, venue, args)` items, only where the venue's executor would act now:
    the others are left for a later run (`executor-refuses`) rather than sent to write a
    refusal on every run. Each venue's gate is read once."""
    gates: dict[str, bool] = {}
    out, ready = {}, []
    for pk, venue, args in items:
        if venue not in gates:
            gates[venue] = executor_gate(venue).ok
        if gates[venue]:
            ready.append((pk, args))
        else:
            out[f"{label}:{pk}"] = "executor-refuses"
    out.update(_requeue(task, ready, label=label, warning=warning, log_key=log_key))
    return out


def _requeue_trailing_pushes(cutoff, limit: int) -> dict[str, str]:
    """Trailing stops on a native-SL/TP venue whose level to push (`venue_stop_price`) no
    update_sl command carries, with the trail at rest since `cutoff`: the push task was not
    published or was lost. A push already sent with that level (whatever its outcome) is not
    sent again; a venue whose executor refuses now is left for a later run."""
    from trading.protective.tasks import trailing_stop_push_task
    from trading.services.protective import native_sl_tp_venues

    pushed = ExecutionCommand.objects.filter(order=OuterRef("pk"), action=A.UPDATE_SL).order_by("-id")
    rows = (
        Order.objects.filter(
            status=OS.PENDING_TRIGGER,
            order_type=Order.Type.TRAILING_STOP,
            venue_stop_price__isnull=False,
            provider__in=native_sl_tp_venues(),
            updated_at__lte=cutoff,
        )
        .annotate(pushed=Subquery(pushed.values("request__price")[:1]))
        .order_by("id")
        .values_list("id", "provider", "venue_stop_price", "pushed")[:limit]
    )
    return _requeue_where_armed(
        trailing_stop_push_task,
        [(pk, provider, (pk,)) for pk, provider, level, last in rows if last is None or Decimal(str(last)) != level],
        label="push",
        warning="trailing stop's level was never pushed to the venue; enqueued again",
        log_key="order_id",
    )
