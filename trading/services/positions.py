"""Applying fills to trades and positions (opens, partial and full closes, liquidations,
funding). Each application is keyed by a `Fill.dedupe_key`: applying the same fill twice
(a redelivered result, a venue event delivered twice) changes nothing the second time."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from config import metrics
from providers.interface import Fill as VenueFill
from trading.lock_objects import position_lock, trade_lock, trade_waiting_orders_lock
from trading.models import Fill, Order, Position, Trade, venue_ref
from trading.services.ledger import event_record

ZERO = Decimal(0)
DUST = Decimal("0.00000001")


def _trade_event(trade: Trade, topic: str, *, payload: dict, actor="system", causation_id="", correlation_id=None):
    return event_record(
        topic=topic,
        aggregate_type="trade",
        aggregate_id=trade.pk,
        correlation_id=correlation_id or f"trade-{trade.pk}",
        causation_id=causation_id,
        actor=actor,
        payload={
            "user_id": trade.user_id,
            "trade_id": trade.pk,
            "pair_id": venue_ref(trade.pair_id),
            "trade_index": venue_ref(trade.trade_index),
            **payload,
        },
    )


def _position_event(position: Position, topic: str, *, causation_id="", correlation_id=None, actor="system"):
    return event_record(
        topic=topic,
        aggregate_type="position",
        aggregate_id=position.pk,
        correlation_id=correlation_id or f"position-{position.pk}",
        causation_id=causation_id,
        actor=actor,
        payload={
            "user_id": position.user_id,
            "position_id": position.pk,
            "asset": position.asset,
            "side": position.side,
            "status": position.status,
            "quantity": position.quantity,
            "avg_entry_price": position.avg_entry_price,
            "margin": position.margin,
            "realized_pnl": position.realized_pnl,
            "fees_paid": position.fees_paid,
            "funding_paid": position.funding_paid,
        },
    )


def liquidation_price(*, side: str, entry: Decimal, collateral: Decimal, size: Decimal, mmr: Decimal) -> Decimal | None:
    """Price at which equity (collateral + PnL) falls to maintenance margin (mmr × notional)."""
    if size <= 0:
        return None
    sign = 1 if side == "long" else -1
    # collateral + sign*(p - entry)*size = mmr * p * size  →  solve for p
    denom = size * (sign - mmr)
    if denom == 0:
        return None
    price = (sign * entry * size - collateral) / denom
    return max(price, ZERO).quantize(DUST)


def unrealized_pnl(*, side: str, entry_price: Decimal, price: Decimal, size: Decimal) -> Decimal:
    """PnL of `size` (base units) opened at `entry_price` and marked (or closed) at `price`,
    before fees and funding."""
    sign = 1 if side == "long" else -1
    return (sign * (price - entry_price) * size).quantize(DUST)


def _mmr(asset: str) -> Decimal:
    try:
        from providers.markets import market_get

        return market_get(asset).maintenance_margin_rate
    except Exception:
        return Decimal("0.005")


def position_recompute(position: Position, *, mark_price: Decimal | None = None) -> None:
    """Re-derive the aggregate from its open trades (realised PnL, fees, funding accumulate
    elsewhere). Closes the position when no open trade remains."""
    trades = list(position.trades.filter(status=Trade.Status.OPEN))
    qty = sum((t.size for t in trades), ZERO)
    if mark_price is not None:
        position.current_price = mark_price
    if qty > 0:
        cost = sum((t.size * t.entry_price for t in trades), ZERO)
        margin = sum((t.margin for t in trades), ZERO)
        position.quantity = qty
        position.avg_entry_price = (cost / qty).quantize(DUST)
        position.margin = margin
        position.leverage = (cost / margin).quantize(Decimal("0.0001")) if margin > 0 else ZERO
        position.unrealized_pnl = unrealized_pnl(
            side=position.side, entry_price=position.avg_entry_price, price=position.current_price, size=qty
        )
        position.liquidation_price = liquidation_price(
            side=position.side, entry=position.avg_entry_price, collateral=margin, size=qty, mmr=_mmr(position.asset)
        )
        position.status = Position.Status.OPEN
        position.closed_at = None
    else:
        position.quantity = ZERO
        position.margin = ZERO
        position.unrealized_pnl = ZERO
        position.liquidation_price = None
        position.status = Position.Status.CLOSED
        position.closed_at = position.closed_at or timezone.now()
    position.save()


def _fill_row(*, dedupe_key: str, trade: Trade, order: Order | None, kind: str, fill: VenueFill | None, **extra):
    """Insert the Fill row; False when `dedupe_key` was applied before."""
    values = {}
    if fill is not None:
        values = {
            "price": fill.price,
            "size": fill.size,
            "notional": fill.notional,
            "fee": fill.fee,
            "price_source": fill.price_source,
            "occurred_at": fill.timestamp or timezone.now(),
        }
    values.update(extra)
    try:
        with transaction.atomic():
            Fill.objects.create(
                dedupe_key=dedupe_key, user_id=trade.user_id, trade=trade, order=order, kind=kind, **values
            )
    except IntegrityError:
        return False
    venue = trade.provider or "none"
    notional, fee = values.get("notional") or 0, values.get("fee") or 0

    def count():
        metrics.FILLS.labels(venue, kind).inc()
        metrics.FILL_FEES.labels(venue).inc(max(float(fee), 0.0))
        metrics.FILL_NOTIONAL.labels(venue).inc(abs(float(notional)))

    metrics.after_commit(count)
    return True


@transaction.atomic
def trade_open_from_fill(
    *, order: Order, fill: VenueFill, pair_id: str, trade_index: str, dedupe_key: str, causation_id: str = ""
) -> Trade | None:
    """Create the trade an opening order's fill opened and fold it into the position.
    Returns None when this fill was applied before."""
    if order.trade_id is not None:  # the caller holds the order's lock
        return None
    position = (
        Position.objects.select_for_update()
        .filter(user_id=order.user_id, provider=order.provider, asset=order.asset, side=order.side, status="open")
        .first()
    )
    created_position = position is None
    if created_position:
        position = Position.objects.create(
            user_id=order.user_id, provider=order.provider, asset=order.asset, side=order.side, current_price=fill.price
        )
    collateral = order.collateral
    trade = Trade.objects.create(
        user_id=order.user_id,
        position=position,
        provider=order.provider,
        asset=order.asset,
        pair_id=pair_id or order.pair_id,
        trade_index=trade_index or f"order-{order.pk}",
        side=order.side,
        collateral=collateral,
        leverage=order.leverage,
        size=fill.size,
        initial_size=fill.size,
        entry_price=fill.price,
        current_price=fill.price,
        margin=collateral,
        liquidation_price=liquidation_price(
            side=order.side, entry=fill.price, collateral=collateral, size=fill.size, mmr=_mmr(order.asset)
        ),
        fees_paid=fill.fee,
        opened_at=fill.timestamp or timezone.now(),
    )
    if not _fill_row(dedupe_key=dedupe_key, trade=trade, order=order, kind=Fill.Kind.OPEN, fill=fill):
        raise IntegrityError(f"fill {dedupe_key} applied twice")  # rolls the trade back
    position.fees_paid += fill.fee
    position_recompute(position, mark_price=fill.price)
    opened = _trade_event(
        trade,
        "trade.opened",
        correlation_id=order.correlation_id,
        causation_id=causation_id,
        payload={
            "order_id": order.pk,
            "side": trade.side,
            "asset": trade.asset,
            "size": trade.size,
            "transaction_hash": order.transaction_hash,
            "entry_price": trade.entry_price,
            "collateral": trade.collateral,
            "leverage": trade.leverage,
            "fee": fill.fee,
            "liquidation_price": trade.liquidation_price,
        },
    )
    _position_event(
        position,
        "position.opened" if created_position else "position.updated",
        correlation_id=order.correlation_id,
        causation_id=opened.id,
    )
    return trade


@transaction.atomic
def trade_reduce_from_fill(
    *,
    trade: Trade,
    fill: VenueFill,
    fraction: Decimal,
    dedupe_key: str,
    reason: str,
    order: Order | None = None,
    kind: str = Fill.Kind.CLOSE,
    correlation_id: str | None = None,
    causation_id: str = "",
    actor: str = "system",
) -> Decimal | None:
    """Close `fraction` of the trade at the fill (the fill's size when it carries one).
    Realised PnL (before fees) accumulates on the trade and its position. Returns the PnL
    realised, or None when this fill was applied before or the trade is already closed."""
    trade_waiting_orders_lock(trade.pk)  # orders before the trade (a full close cancels them)
    trade = trade_lock(trade.pk)
    if trade.status != Trade.Status.OPEN:
        return None
    size_before = trade.size
    closed = fill.size if fill.size and fill.size > 0 else size_before * fraction
    closed = min(closed, size_before)
    if fraction >= 1 or size_before - closed <= DUST:
        closed = size_before
    share = closed / size_before if size_before > 0 else Decimal(1)
    pnl = fill.realized_pnl
    if pnl is None:
        pnl = unrealized_pnl(side=trade.side, entry_price=trade.entry_price, price=fill.price, size=closed)
    pnl = Decimal(pnl).quantize(DUST)
    if not _fill_row(
        dedupe_key=dedupe_key, trade=trade, order=order, kind=kind, fill=fill, size=closed, realized_pnl=pnl
    ):
        return None
    # the venue releases the requested share of the collateral (sizes are rounded down)
    released = (trade.collateral * (fraction if fraction < 1 else share)).quantize(DUST)
    trade.size = size_before - closed
    trade.collateral -= released
    trade.margin = trade.collateral
    trade.realized_pnl += pnl
    trade.fees_paid += fill.fee
    trade.current_price = fill.price
    fully = trade.size <= DUST
    if fully:
        trade.size = ZERO
        trade.collateral = ZERO
        trade.margin = ZERO
        trade.unrealized_pnl = ZERO
        trade.status = Trade.Status.CLOSED
        trade.closed_at = fill.timestamp or timezone.now()
        trade.close_reason = reason
        trade.liquidation_price = None
    else:
        trade.unrealized_pnl = unrealized_pnl(
            side=trade.side, entry_price=trade.entry_price, price=fill.price, size=trade.size
        )
    trade.save()
    position = position_lock(trade.position_id)
    position.realized_pnl += pnl
    position.fees_paid += fill.fee
    position_recompute(position, mark_price=fill.price)
    event = _trade_event(
        trade,
        "trade.closed" if fully else "trade.reduced",
        correlation_id=correlation_id,
        causation_id=causation_id,
        actor=actor,
        payload={
            "order_id": order.pk if order else None,
            "transaction_hash": order.transaction_hash if order else "",
            "entry_price": trade.entry_price,
            "reason": reason,
            "closed_size": closed,
            "remaining_size": trade.size,
            "exit_price": fill.price,
            "realized_pnl": pnl,
            "fee": fill.fee,
            "trade_realized_pnl": trade.realized_pnl,
        },
    )
    _position_event(
        position,
        "position.closed" if position.status == Position.Status.CLOSED else "position.updated",
        correlation_id=correlation_id,
        causation_id=event.id,
    )
    if reason == Trade.CloseReason.LIQUIDATION:
        _position_event(position, "position.liquidated", correlation_id=correlation_id, causation_id=event.id)
    if fully:
        protective_orders_cancel_for_trade(
            trade=trade, causation_id=event.id, exclude_order_id=order.pk if order else None
        )
    return pnl


def protective_orders_cancel_for_trade(*, trade: Trade, causation_id: str = "", exclude_order_id=None) -> int:
    """A closed trade needs no protection: cancel its waiting protective orders."""
    from trading.services.orders import CANCELLABLE_LOCALLY, order_transition

    n = 0
    qs = Order.objects.select_for_update().filter(trade=trade, status__in=CANCELLABLE_LOCALLY)
    if exclude_order_id:
        qs = qs.exclude(pk=exclude_order_id)
    for order in qs.order_by("pk"):
        order.error_code, order.error_message = "TRADE_CLOSED", "the trade it protected is closed"
        order_transition(
            order=order, to=Order.Status.CANCELLED, causation_id=causation_id, fields=("error_code", "error_message")
        )
        n += 1
    return n


@transaction.atomic
def trade_funding_apply(*, trade: Trade, amount: Decimal, dedupe_key: str, occurred_at=None) -> bool:
    trade = trade_lock(trade.pk)
    if not _fill_row(
        dedupe_key=dedupe_key,
        trade=trade,
        order=None,
        kind=Fill.Kind.FUNDING,
        fill=None,
        funding=amount,
        occurred_at=occurred_at or timezone.now(),
    ):
        return False
    trade.funding_paid += amount
    trade.save(update_fields=["funding_paid", "updated_at"])
    position = position_lock(trade.position_id)
    position.funding_paid += amount
    position.save(update_fields=["funding_paid", "updated_at"])
    _trade_event(trade, "trade.funding_charged", payload={"amount": amount, "funding_paid": trade.funding_paid})
    return True
