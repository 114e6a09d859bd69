"""Per-type order validation: pure functions, no queries (the service passes the market and
the current price). Errors are `ApplicationError(code="INVALID_ORDER", details={field: msg})`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from config.errors import ApplicationError

LONG, SHORT = "long", "short"
MARKET, LIMIT = "MARKET", "LIMIT"
STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, OCO = "STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "OCO"
PROTECTIVE = frozenset({STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, OCO})
ORDER_TYPES = frozenset({MARKET, LIMIT}) | PROTECTIVE


@dataclass(frozen=True)
class OrderInput:
    order_type: str
    side: str
    collateral: Decimal | None = None
    leverage: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    trailing_stop_distance: Decimal | None = None
    trailing_stop_percentage: Decimal | None = None
    oco_stop_price: Decimal | None = None
    oco_take_profit_price: Decimal | None = None
    reduce_only: bool = False
    has_trade: bool = False  # the order refers to an open trade (protective / reduce-only)


def invalid(message: str, **details) -> ApplicationError:
    """INVALID_ORDER, with `details` as every field error is shaped: {field: [messages]}."""
    shaped = {k: v if isinstance(v, list) else [v] for k, v in details.items()}
    return ApplicationError(message, code="INVALID_ORDER", details=shaped, status_code=400)


def _n(value: Decimal) -> str:
    """A number in a message as a person writes it: 50.0000 → 50, 60000.12000000 → 60000.12."""
    value = value.normalize()
    return f"{value:f}"


def stop_side_ok(side: str, stop: Decimal, ref: Decimal) -> bool:
    """A stop-loss sits below the market for a long, above it for a short."""
    return stop < ref if side == LONG else stop > ref


def take_profit_side_ok(side: str, tp: Decimal, ref: Decimal) -> bool:
    return tp > ref if side == LONG else tp < ref


def _positive(errors: dict, name: str, value) -> None:
    if value is not None and value <= 0:
        errors[name] = "must be positive"


def order_validate(o: OrderInput, *, market, current_price: Decimal) -> None:
    """Raise `INVALID_ORDER` with every problem found, by field."""
    errors: dict[str, str] = {}
    if o.order_type not in ORDER_TYPES:
        raise invalid(f"Unknown order type {o.order_type!r}.", order_type="unknown order type")
    if o.side not in (LONG, SHORT):
        raise invalid("Side must be long or short.", side="must be long or short")
    for name in (
        "price",
        "stop_price",
        "take_profit_price",
        "trailing_stop_distance",
        "trailing_stop_percentage",
        "oco_stop_price",
        "oco_take_profit_price",
    ):
        _positive(errors, name, getattr(o, name))
    if errors:
        raise invalid("Prices must be positive.", **errors)

    protective = o.order_type in PROTECTIVE
    if not market.is_open and not (protective or o.reduce_only):
        raise ApplicationError(f"{market.symbol} is closed.", code="MARKET_CLOSED", status_code=422)

    if protective or o.reduce_only:
        if not o.has_trade:
            errors["trade"] = "an open trade (pair_id and trade_index) is required"
        if o.reduce_only and o.order_type != MARKET:
            errors["reduce_only"] = "only MARKET orders can be reduce-only"
    else:
        if o.collateral is None or o.collateral <= 0:
            errors["collateral"] = "must be positive"
        elif o.collateral < market.min_collateral:
            errors["collateral"] = f"below the market minimum {_n(market.min_collateral)}"
        if o.leverage is None:
            errors["leverage"] = "required"
        elif not (market.min_leverage <= o.leverage <= market.max_leverage):
            errors["leverage"] = f"must be between {_n(market.min_leverage)} and {_n(market.max_leverage)}"

    ref = current_price
    if o.order_type == LIMIT:
        if o.price is None:
            errors["price"] = "required for a LIMIT order"
        else:
            ref = o.price  # attached SL/TP are judged against the entry
    elif o.order_type == STOP_LOSS:
        if o.stop_price is None:
            errors["stop_price"] = "required for a STOP_LOSS order"
        elif not stop_side_ok(o.side, o.stop_price, current_price):
            where = "below" if o.side == LONG else "above"
            errors["stop_price"] = f"must be {where} the current price {_n(current_price)}"
    elif o.order_type == TAKE_PROFIT:
        if o.take_profit_price is None:
            errors["take_profit_price"] = "required for a TAKE_PROFIT order"
        elif not take_profit_side_ok(o.side, o.take_profit_price, current_price):
            errors["take_profit_price"] = (
                f"must be {'above' if o.side == LONG else 'below'} the current price {_n(current_price)}"
            )
    elif o.order_type == TRAILING_STOP:
        given = [n for n in ("trailing_stop_distance", "trailing_stop_percentage") if getattr(o, n) is not None]
        if len(given) != 1:
            errors["trailing_stop"] = "give exactly one of trailing_stop_distance and trailing_stop_percentage"
        elif o.trailing_stop_percentage is not None and o.trailing_stop_percentage >= 100:
            errors["trailing_stop_percentage"] = "must be below 100"
        elif o.trailing_stop_distance is not None and o.trailing_stop_distance >= current_price and o.side == LONG:
            errors["trailing_stop_distance"] = f"must be smaller than the current price {_n(current_price)}"
    elif o.order_type == OCO:
        if o.oco_stop_price is None:
            errors["oco_stop_price"] = "required for an OCO order"
        elif not stop_side_ok(o.side, o.oco_stop_price, current_price):
            errors["oco_stop_price"] = (
                f"must be {'below' if o.side == LONG else 'above'} the current price {_n(current_price)}"
            )
        if o.oco_take_profit_price is None:
            errors["oco_take_profit_price"] = "required for an OCO order"
        elif not take_profit_side_ok(o.side, o.oco_take_profit_price, current_price):
            errors["oco_take_profit_price"] = (
                f"must be {'above' if o.side == LONG else 'below'} the current price {_n(current_price)}"
            )

    if o.order_type in (MARKET, LIMIT) and not o.reduce_only:
        # SL/TP/trailing given with an open: attached protective orders, once filled
        if o.stop_price is not None and not stop_side_ok(o.side, o.stop_price, ref):
            errors["stop_price"] = f"must be {'below' if o.side == LONG else 'above'} the entry price {_n(ref)}"
        if o.take_profit_price is not None and not take_profit_side_ok(o.side, o.take_profit_price, ref):
            errors["take_profit_price"] = f"must be {'above' if o.side == LONG else 'below'} the entry price {_n(ref)}"
        if o.trailing_stop_distance is not None and o.trailing_stop_percentage is not None:
            errors["trailing_stop"] = "give at most one of trailing_stop_distance and trailing_stop_percentage"
    if errors:
        raise invalid("The order is not valid.", **errors)
