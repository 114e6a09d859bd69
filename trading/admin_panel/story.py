"""An order's timeline as a story: a few plain sentences an operator reads before the event table.

"alice opened a 5× BTC-USD long with 100 USD at 22:34:31 UTC; the risk engine passed it at
reference 59,931.11 (paper); filled at 59,938.60, fee 0.25; stop-loss at 58,000 placed; closed
by take-profit at 61,200, PnL +10.15."

Built from the rows themselves (orders, their protective orders, the trade, its fills), so a
sentence says only what is recorded: a missing value leaves its clause out, never "None".
"""

from __future__ import annotations

from decimal import Decimal

from trading.admin_panel.formatting import money, number, price
from trading.models import Fill, Order, Trade

PROTECTIVE_NAMES = {
    Order.Type.STOP_LOSS: "stop-loss",
    Order.Type.TAKE_PROFIT: "take-profit",
    Order.Type.TRAILING_STOP: "trailing stop",
    Order.Type.OCO: "OCO (stop-loss + take-profit)",
}
CLOSE_REASONS = {
    Trade.CloseReason.USER: "closed by the user",
    Trade.CloseReason.STOP_LOSS: "closed by stop-loss",
    Trade.CloseReason.TAKE_PROFIT: "closed by take-profit",
    Trade.CloseReason.TRAILING_STOP: "closed by trailing stop",
    Trade.CloseReason.VENUE: "closed by the venue",
    Trade.CloseReason.LIQUIDATION: "liquidated",
}
STATUS_WORDS = {
    Order.Status.PENDING_TRIGGER: "placed",
    Order.Status.TRIGGERED: "triggered",
    Order.Status.CANCELLED: "placed, later cancelled",
    Order.Status.EXPIRED: "placed, later expired",
    Order.Status.FILLED: "placed, and it fired",
    Order.Status.REJECTED: "refused",
}


def signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + money(value)


def person(user) -> str:
    return user.get_full_name() or user.get_username()


def _time(when) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else ""


def _leverage(order) -> str:
    return f"{number(order.leverage)}×"


def _protective(order: Order) -> str:
    name = PROTECTIVE_NAMES.get(order.order_type, order.order_type)
    if order.order_type == Order.Type.OCO:
        stop, take = price(order.oco_stop_price, order.asset), price(order.oco_take_profit_price, order.asset)
        level = f"stop {stop}, take-profit {take}"
    elif order.order_type == Order.Type.TAKE_PROFIT:
        level = price(order.take_profit_price or order.price or order.stop_price, order.asset)
    elif order.order_type == Order.Type.TRAILING_STOP:
        level = (
            f"{number(order.trailing_stop_percentage)} %"
            if order.trailing_stop_percentage
            else f"{price(order.trailing_stop_distance, order.asset)} behind"
        )
    else:
        level = price(order.stop_price, order.asset)
    words = STATUS_WORDS.get(order.status, order.status.lower())
    return f"{name} at {level} {words}".replace("  ", " ")


def _opening(order: Order) -> list[str]:
    who = person(order.user)
    if order.reduce_only:
        share = f"{number(order.close_fraction * 100)} % of" if order.close_fraction else "all of"
        what = f"{who} asked to close {share} the {order.asset} {order.side}"
        if order.trade_id:
            what += f" (trade {order.trade_id})"
    elif order.order_type in Order.PROTECTIVE_TYPES:
        what = f"{who} placed a {_protective(order)} on the {order.asset} {order.side}"
        if order.trade_id:
            what += f" (trade {order.trade_id})"
    else:
        kind = "" if order.order_type == Order.Type.MARKET else f" LIMIT at {price(order.price, order.asset)}"
        what = f"{who} opened a {_leverage(order)} {order.asset} {order.side}{kind} with {money(order.collateral)} USD"
    if order.origin and order.origin not in (Order.Origin.USER, ""):
        what += f" ({order.get_origin_display().lower()})"
    return [f"{what} at {_time(order.created_at)}"]


def _decision(order: Order) -> list[str]:
    out = []
    if order.reference_price:
        reference = price(order.reference_price, order.asset)
        out.append(f"the risk engine passed it at reference {reference} ({order.provider})")
    if order.status == Order.Status.REJECTED:
        reason = f"{order.error_code}: {order.error_message}" if order.error_message else order.error_code
        out.append(f"it was refused ({reason})" if reason else "it was refused")
    elif order.status == Order.Status.UNKNOWN:
        out.append("its outcome at the venue is UNKNOWN (waiting for reconciliation)")
    elif order.status == Order.Status.CANCELLED and order.order_type not in Order.PROTECTIVE_TYPES:
        out.append("it was cancelled")
    return out


def _fill(order: Order) -> list[str]:
    if order.filled_price is None:
        return []
    fees = sum((f.fee for f in order.fills.all()), Decimal(0)) or order.fee
    text = f"filled at {price(order.filled_price, order.asset)}"
    if fees:
        text += f", fee {money(fees)}"
    return [text]


def _trade(trade: Trade | None, subject: Order) -> list[str]:
    if trade is None:
        return []
    out = []
    for attached in trade.orders.filter(order_type__in=Order.PROTECTIVE_TYPES).exclude(pk=subject.pk).order_by("id"):
        out.append(_protective(attached))
    if trade.status == Trade.Status.CLOSED:
        close = (
            Fill.objects.filter(trade=trade, kind__in=(Fill.Kind.CLOSE, Fill.Kind.LIQUIDATION))
            .order_by("-occurred_at", "-id")
            .first()
        )
        text = CLOSE_REASONS.get(trade.close_reason, "closed")
        if close is not None:
            text += f" at {price(close.price, trade.asset)}"
        if trade.closed_at:
            text += f" at {trade.closed_at:%H:%M:%S} UTC" if close is None else f" ({trade.closed_at:%H:%M:%S} UTC)"
        net = trade.realized_pnl - trade.fees_paid - trade.funding_paid
        text += f", PnL {signed(trade.realized_pnl)} (net of fees and funding {signed(net)})"
        out.append(text)
    elif trade.status == Trade.Status.OPEN and subject.status == Order.Status.FILLED and not subject.reduce_only:
        out.append(f"the trade is open (size {number(trade.size)})")
    return out


def order_story(order: Order) -> str:
    """The story of `order` (and of the trade it opened, closed or protects), in one paragraph."""
    trade = order.trade if order.trade_id else None
    clauses = [*_opening(order), *_decision(order), *_fill(order), *_trade(trade, order)]
    text = "; ".join(c for c in clauses if c)
    return text[:1].upper() + text[1:] + "." if text else ""
