"""Live position marks: on a price tick, the current price and unrealised PnL of every open
position on the ticked asset *at the tick's venue* (a position is marked at the price of the
venue holding it), pushed to its owner's `/ws` `positions` channel.

`position_marks_on_tick(tick)` is a price tick listener (registered in `TradingConfig.ready`).
It reads the asset's open positions in one query, marks each with `unrealized_pnl` (the
formula fills recompute positions with) and publishes one message per owner, all sent at
once. Marks are not written to the database: a position row keeps the mark of its last fill.

Throttle: at most one push per venue and asset per `REALTIME_MARKS_INTERVAL_MS`, across every process
that publishes ticks (a Redis key set with NX and a millisecond expiry claims the window).
A tick inside the window is skipped; the next tick after it carries the newer price.

`marks_latest(pairs)` is the one read of "the mark" for everything shown to a person: the API's
positions and trades, the PATCH SL/TP answer and the control panel's exposure and PnL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from config.cache import cache_redis
from trading.models import Position
from trading.realtime.publish import publish_position_marks_many
from trading.services.positions import unrealized_pnl

_FIELDS = (
    "id",
    "user_id",
    "provider",
    "asset",
    "side",
    "quantity",
    "avg_entry_price",
    "margin",
    "leverage",
    "liquidation_price",
)


def marks_latest(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
    """{(venue, asset): price} for each pair: the latest price of the asset at that venue (cached
    tick, else the venue's feed). A venue with no price, or no Redis, is left out: its rows
    stay at the mark of their last fill."""
    from config.cache import REDIS_ERRORS
    from providers.interface import VenueException
    from providers.prices import price_get_many

    held: dict[str, set[str]] = {}
    for venue, asset in pairs:
        held.setdefault(venue, set()).add(asset)
    marks: dict[tuple[str, str], Decimal] = {}
    for venue, assets in held.items():
        try:
            marks |= {(venue, s): tick.price for s, tick in price_get_many(sorted(assets), venue=venue).items()}
        except (VenueException, *REDIS_ERRORS):
            continue
    return marks


def position_marks(*, venue: str, asset: str, price: Decimal, at: datetime) -> dict[int, list[dict]]:
    """{user_id: marks} of the open positions on `asset` at `venue` marked at `price` (one query)."""
    rows = (
        Position.objects.filter(status=Position.Status.OPEN, provider=venue, asset=asset)
        .order_by("id")
        .values(*_FIELDS)
    )
    marks: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        marks[row["user_id"]].append(
            {
                "position_id": row["id"],
                "pair": row["asset"],
                "provider": row["provider"],
                "side": row["side"],
                "size": row["quantity"],
                "entry_price": row["avg_entry_price"],
                "current_price": price,
                "unrealized_pnl": unrealized_pnl(
                    side=row["side"], entry_price=row["avg_entry_price"], price=price, size=row["quantity"]
                ),
                "collateral": row["margin"],
                "leverage": row["leverage"],
                "liquidation_price": row["liquidation_price"],
                "updated_at": at,
            }
        )
    return dict(marks)


def marks_window_claim(*, venue: str, asset: str, interval_ms: int) -> bool:
    """True when this tick may push the marks of `asset` at `venue`: no push of them in the last
    `interval_ms` milliseconds, by any process (always True for 0)."""
    if interval_ms <= 0:
        return True
    return bool(cache_redis().set(cache.make_key(f"trading:marks:{venue}:{asset}"), 1, nx=True, px=interval_ms))


def position_marks_on_tick(tick) -> None:
    """Tick listener (providers.prices): push the ticked asset's position marks to their owners."""
    if not settings.REALTIME_MARKS_TICK_LISTENER:
        return
    if not marks_window_claim(venue=tick.venue, asset=tick.symbol, interval_ms=settings.REALTIME_MARKS_INTERVAL_MS):
        return
    marks = position_marks(venue=tick.venue, asset=tick.symbol, price=tick.price, at=tick.timestamp)
    if marks:
        publish_position_marks_many(marks)
