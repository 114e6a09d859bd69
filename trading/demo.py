"""The demo's first trades (`make run`, once the desk reports ready): the demo user opens a BTC long
with its stop-loss and take-profit and an ETH short on the paper venue, and closes the ETH short,
so the orders and trades lists, the positions, a realised PnL point and an order's timeline have
something to show. They go the way every trade goes (the order service, the worker's executor, the
protective engine): placed only while `executor:paper` is armed, and only for a demo user with no
order yet, so a second `make run` places none."""

from __future__ import annotations

import time
from decimal import Decimal

from django.contrib.auth import get_user_model

from config.errors import ApplicationError
from providers.interface import VenueException
from providers.prices import price_get
from trading.api.outcome import settled
from trading.models import Order
from trading.services.control import component_gate
from trading.services.orders import order_place, trade_close

DEMO_USER = "demo"


def _settled(order: Order, timeout: float) -> Order:
    """The order once its outcome is known (the synchronous API's test, `outcome.settled`), or as
    it stands after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not settled(order) and time.monotonic() < deadline:
        time.sleep(0.25)
        order.refresh_from_db()
    return order


def demo_trades_place(*, timeout: float = 30.0) -> str:
    """Place the demo's trades if the demo user has none; what was done, in one line ("" when
    there is no demo user or it has orders already)."""
    user = get_user_model().objects.filter(username=DEMO_USER).first()
    if user is None or Order.objects.filter(user=user).exists():
        return ""
    if not component_gate("executor:paper").ok:
        return "demo trades: none placed (executor:paper is not armed)"
    try:
        btc = price_get("BTC-USD").price
        long = order_place(
            user=user,
            asset="BTC-USD",
            side="long",
            collateral=Decimal(100),
            leverage=Decimal(5),
            stop_price=(btc * Decimal("0.95")).quantize(Decimal(1)),
            take_profit_price=(btc * Decimal("1.05")).quantize(Decimal(1)),
            actor="demo",
        )
        short = _settled(
            order_place(
                user=user, asset="ETH-USD", side="short", collateral=Decimal(50), leverage=Decimal(3), actor="demo"
            ),
            timeout,
        )
        long = _settled(long, timeout)
        if short.status != Order.Status.FILLED or long.status != Order.Status.FILLED:
            return f"demo trades: BTC long {long.status}, ETH short {short.status} (see the orders list)"
        close = _settled(
            trade_close(user=user, pair_id=short.trade.pair_id, trade_index=short.trade.trade_index), timeout
        )
    except (ApplicationError, VenueException) as exc:
        return f"demo trades: stopped ({exc})"
    closed = "closed" if close.status == Order.Status.FILLED else f"its close {close.status}"
    return f"demo trades: a BTC long open with its stop-loss and take-profit, an ETH short opened and {closed}"
