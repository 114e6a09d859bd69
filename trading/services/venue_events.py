"""Applying what a venue did on its own (resting limit filled, native SL/TP close,
liquidation, funding) to Order/Trade/Position, with events. Registered as a venue listener
in `TradingConfig.ready`. Idempotent: the same VenueEvent delivered twice changes nothing
the second time (order status guards, the trade's status and `Fill.dedupe_key`). A close the
venue made is recorded as a FILLED close order (`trading.services.closes`): the protective
order whose native SL/TP fired, or a new one with origin `liquidation` / `venue`. A close that
arrives before the fill of the open it closes was booked books that fill first (asked from the
venue, as reconciliation does), so the order of arrival does not matter."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from providers.interface import ExecStatus, ExecutionResult, VenueEvent, VenueEventKind
from trading.lock_objects import order_lock
from trading.models import ExecutionCommand, Order, Trade
from trading.services.closes import trade_close_record
from trading.services.execution import fill_apply
from trading.services.orders import order_transition
from trading.services.positions import trade_funding_apply

logger = logging.getLogger("tradedesk.venue_events")


def _user_id_for(event: VenueEvent) -> int | None:
    if event.account.startswith("user:"):
        try:
            return int(event.account.split(":", 1)[1])
        except ValueError:
            return None
    return None


def _order_for(event: VenueEvent) -> Order | None:
    if event.idempotency_key:
        command = ExecutionCommand.objects.filter(idempotency_key=event.idempotency_key).only("order_id").first()
        if command:
            return Order(pk=command.order_id)
        if event.idempotency_key.startswith("order-"):
            try:
                return Order(pk=int(event.idempotency_key.split("-")[1]))
            except (IndexError, ValueError):
                pass
    if event.venue_order_id:
        return Order.objects.filter(provider=event.venue, venue_order_id=event.venue_order_id).only("pk").first()
    return None


def _trade_for(event: VenueEvent) -> Trade | None:
    filters = Q(provider=event.venue, pair_id=event.pair_id, trade_index=event.trade_index, status=Trade.Status.OPEN)
    user_id = _user_id_for(event)
    if user_id is not None:
        filters &= Q(user_id=user_id)
    return Trade.objects.filter(filters).order_by("-id").first()


def _trade_booked_late(event: VenueEvent) -> Trade | None:
    """A venue close that arrived before the desk booked the fill of the open it closes (the
    fill's event was lost, or the venue closed the trade before its fill was read): book that
    fill first, asked from the venue as reconciliation does, then the trade is there to close."""
    if not event.idempotency_key:
        return None
    command = (
        ExecutionCommand.objects.filter(idempotency_key=event.idempotency_key, action=ExecutionCommand.Action.OPEN)
        .exclude(order__status=Order.Status.FILLED)
        .only("pk")
        .first()
    )
    if command is None:
        return None
    from trading.services.execution import command_reconcile

    outcome = command_reconcile(command_id=command.pk, grace_seconds=0)
    logger.info("open booked before its venue close", extra={"command_id": command.pk, "outcome": outcome})
    return _trade_for(event)


def venue_event_apply(event: VenueEvent) -> str:
    kind = VenueEventKind(event.kind)
    if kind in (VenueEventKind.ORDER_FILLED, VenueEventKind.ORDER_CANCELLED):
        ref = _order_for(event)
        if ref is None:
            return "order-not-found"
        with transaction.atomic():
            order = order_lock(ref.pk)
            if order is None:
                return "order-not-found"
            if kind == VenueEventKind.ORDER_FILLED:
                if event.fill is None or order.status == Order.Status.FILLED:
                    return "ignored"
                result = ExecutionResult(
                    status=ExecStatus.FILLED,
                    venue_order_id=event.venue_order_id,
                    pair_id=event.pair_id,
                    trade_index=event.trade_index,
                    fill=event.fill,
                )
                fill_apply(order=order, result=result, source=f"venue:{event.venue}")
                return "filled"
            if order.is_terminal:
                return "ignored"
            order.error_code = str(event.details.get("code") or "VENUE_CANCELLED")[:40]
            order.error_message = str(event.details.get("reason", "cancelled by the venue"))[:500]
            order_transition(
                order=order,
                to=Order.Status.CANCELLED,
                fields=("error_code", "error_message"),
                payload={"source": f"venue:{event.venue}"},
            )
            return "cancelled"

    trade = _trade_for(event)
    if trade is None and kind in (VenueEventKind.POSITION_CLOSED, VenueEventKind.POSITION_LIQUIDATED):
        trade = _trade_booked_late(event)
    if trade is None:
        return "trade-not-found"
    if kind in (VenueEventKind.POSITION_CLOSED, VenueEventKind.POSITION_LIQUIDATED):
        if event.fill is None:
            return "ignored"
        liquidated = kind == VenueEventKind.POSITION_LIQUIDATED
        reason = event.details.get("reason") or ("liquidation" if liquidated else Trade.CloseReason.VENUE)
        if reason not in Trade.CloseReason.values:
            reason = Trade.CloseReason.VENUE
        order = trade_close_record(
            trade=trade,
            fill=event.fill,
            origin=Order.Origin.LIQUIDATION if liquidated else Order.Origin.VENUE,
            reason=reason,
            dedupe_key=f"{event.venue}:{kind}:{trade.pk}",
            kind="liquidation" if liquidated else "close",
            actor=f"venue:{event.venue}",
            source=f"venue:{event.venue}",
            venue_order_id=event.venue_order_id,
            details=event.details,
        )
        return "closed" if order is not None else "ignored"
    if kind == VenueEventKind.FUNDING_CHARGED:
        amount = Decimal(str(event.details.get("amount", "0")))
        ref = event.details.get("charge_id") or event.details.get("id")
        if not ref and event.occurred_at:
            ref = event.occurred_at.isoformat()
        applied = trade_funding_apply(
            trade=trade,
            amount=amount,
            dedupe_key=f"{event.venue}:funding:{trade.pk}:{ref}",
            occurred_at=event.occurred_at,
        )
        return "funding" if applied else "ignored"
    return "ignored"


def venue_event_listener(event: VenueEvent) -> None:
    """The registered listener: never lets an error escape into the venue's tick loop (the
    reconciliation job catches up what was missed)."""
    try:
        outcome = venue_event_apply(event)
        logger.info("venue event applied", extra={"venue": event.venue, "kind": str(event.kind), "outcome": outcome})
    except Exception:
        logger.exception("venue event could not be applied", extra={"venue": event.venue, "kind": str(event.kind)})
