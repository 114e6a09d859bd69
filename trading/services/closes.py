"""Closes Tradedesk did not send, recorded as orders: a liquidation, a native stop-loss or
take-profit the venue executed, a trade closed at the venue outside Tradedesk, an operator's
reconciliation "close". Each becomes a FILLED reduce-only close order linked to the trade, in
the transaction that closes the trade, so the order list and the order timeline show what
closed every trade:

- a native SL/TP (or a trailing stop pushed to the venue as its SL) that fired: the protective
  order itself, PENDING_TRIGGER → TRIGGERED → FILLED, and its other legs cancelled;
- anything else: a new MARKET close order with `origin` liquidation / venue / reconciliation,
  ACCEPTED → FILLED.

Exactly once: the trade row lock and its status (a closed trade is never closed again), and the
fill's dedupe key, make a second delivery of the same venue event change nothing.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from providers.interface import Fill as VenueFill
from trading.lock_objects import trade_lock, trade_waiting_orders_lock
from trading.models import Fill, Order, Trade
from trading.services.orders import fill_payload, order_event, order_snapshot, order_transition
from trading.services.positions import DUST, trade_reduce_from_fill

OS = Order.Status
CR = Trade.CloseReason

# which protective orders a venue-executed close of this reason may be, and the level each holds
_LEGS = {
    CR.STOP_LOSS: (Order.Type.STOP_LOSS, Order.Type.TRAILING_STOP),
    CR.TRAILING_STOP: (Order.Type.TRAILING_STOP, Order.Type.STOP_LOSS),
    CR.TAKE_PROFIT: (Order.Type.TAKE_PROFIT,),
}


def _level(order: Order) -> Decimal | None:
    if order.order_type == Order.Type.TAKE_PROFIT:
        return order.take_profit_price
    if order.order_type == Order.Type.TRAILING_STOP:
        return order.venue_stop_price or order.stop_price  # the level last pushed to the venue
    return order.stop_price


def _executed_leg(candidates: list[Order], *, reason: str, side: str, price: Decimal) -> Order | None:
    """The protective order whose level the venue executed: among those the exit price crossed,
    the nearest to it (the venue holds one SL and one TP; with a fixed stop and a trailing stop
    both at the venue's SL, the one last pushed is the one crossed at that price)."""
    stop = reason != CR.TAKE_PROFIT
    long = side == "long"

    def crossed(level: Decimal) -> bool:
        return (price <= level) if (stop == long) else (price >= level)

    levelled = [(o, _level(o)) for o in candidates]
    levelled = [(o, level) for o, level in levelled if level is not None]
    if not levelled:
        return None
    levelled.sort(key=lambda pair: (not crossed(pair[1]), abs(pair[1] - price), pair[0].pk))
    return levelled[0][0]


def trade_close_record(
    *,
    trade: Trade,
    fill: VenueFill,
    origin: str,
    reason: str,
    dedupe_key: str,
    actor: str,
    source: str,
    kind: str = Fill.Kind.CLOSE,
    venue_order_id: str = "",
    details: dict | None = None,
) -> Order | None:
    """Close the whole open `trade` at `fill`, which Tradedesk did not send, and record the close
    as a FILLED order (see the module doc). Returns that order, or None when the trade is no
    longer open or this fill was applied before (a redelivered event: nothing is written)."""
    with transaction.atomic():
        # orders first, then the trade (trading.lock_objects): the trade's waiting orders, which
        # the close fills (the executed leg) or cancels
        waiting = trade_waiting_orders_lock(trade.pk)
        legs = [
            o
            for o in waiting
            if origin == Order.Origin.VENUE
            and o.order_type in _LEGS.get(reason, ())
            and o.status in (OS.PENDING_TRIGGER, OS.TRIGGERED)
        ]
        trade = trade_lock(trade.pk)
        if trade.status != Trade.Status.OPEN or Fill.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        if not fill.size or fill.size <= 0:  # the venue reported no size: the whole open size closed
            notional = fill.notional or (fill.price * trade.size).quantize(DUST)
            fill = dataclasses.replace(fill, size=trade.size, notional=notional)
        leg = _executed_leg(legs, reason=reason, side=trade.side, price=fill.price)
        if leg is not None and leg.order_type == Order.Type.TRAILING_STOP:
            reason = CR.TRAILING_STOP  # the venue's SL was our trailing stop's level
        order = _leg_triggered(leg, fill=fill, actor=actor, source=source, venue_order_id=venue_order_id)
        if order is None:
            order = _close_order_accepted(
                trade=trade,
                fill=fill,
                origin=origin,
                reason=reason,
                actor=actor,
                source=source,
                venue_order_id=venue_order_id,
                details=details,
            )
        order.filled_quantity = fill.size
        order.filled_price = fill.price
        order.fee = fill.fee
        order.filled_at = fill.timestamp or timezone.now()
        filled = order_transition(
            order=order,
            to=OS.FILLED,
            actor=actor,
            fields=("filled_quantity", "filled_price", "fee", "filled_at"),
            payload={**fill_payload(fill, source), "origin": order.origin, "reason": reason},
        )
        pnl = trade_reduce_from_fill(
            trade=trade,
            fill=fill,
            fraction=Decimal(1),
            dedupe_key=dedupe_key,
            reason=reason,
            order=order,
            kind=kind,
            correlation_id=order.correlation_id,
            causation_id=filled.id,
            actor=actor,
        )
        if pnl is None:  # cannot happen under the trade lock; never leave a close order without its close
            transaction.set_rollback(True)
            return None
        order.realized_pnl = pnl
        order.save(update_fields=["realized_pnl", "updated_at"])
        return order


def _leg_triggered(leg: Order | None, *, fill: VenueFill, actor: str, source: str, venue_order_id: str):
    """The venue fired this protective order: TRIGGERED (as the engine would have), ready to fill."""
    if leg is None:
        return None
    fields = ["venue_order_id"] if venue_order_id else []
    leg.venue_order_id = venue_order_id or leg.venue_order_id
    if leg.status != OS.PENDING_TRIGGER:  # the engine triggered it too, but the venue was first
        if fields:
            leg.save(update_fields=[*fields, "updated_at"])
        return leg
    leg.trigger_price = fill.price
    leg.triggered_leg = "take_profit" if leg.order_type == Order.Type.TAKE_PROFIT else "stop"
    fields += ["trigger_price", "triggered_leg"]
    payload = {
        "order_id": leg.pk,
        "order_type": leg.order_type,
        "side": leg.side,
        "trade_id": leg.trade_id,
        "leg": leg.triggered_leg,
        "level": _level(leg),
        "price": fill.price,
        "price_at": fill.timestamp,
        "source": source,
        "door": "venue",
    }
    order_transition(order=leg, to=OS.TRIGGERED, actor=actor, fields=tuple(fields), payload=payload)
    return leg


def _close_order_accepted(*, trade: Trade, fill: VenueFill, origin, reason, actor, source, venue_order_id, details):
    opener = trade.orders.order_by("id").first()
    order = Order.objects.create(
        user_id=trade.user_id,
        wallet_id=opener.wallet_id if opener else None,
        wallet_address=opener.wallet_address if opener else None,
        origin=origin,
        provider=trade.provider,
        asset=trade.asset,
        asset_type=opener.asset_type if opener else "",
        order_type=Order.Type.MARKET,
        side=trade.side,
        collateral=Decimal(0),
        leverage=trade.leverage,
        quantity=fill.size,
        close_fraction=Decimal(1),
        reduce_only=True,
        trade=trade,
        pair_id=trade.pair_id,
        trade_index=trade.trade_index,
        venue_order_id=venue_order_id,
    )
    order_event(
        order=order,
        topic="order.accepted",
        actor=actor,
        causation_id="",
        payload={
            **order_snapshot(order),
            "origin": origin,
            "reason": reason,
            "source": source,
            "venue_order_id": venue_order_id,
            "details": details or {},
        },
    )
    return order
