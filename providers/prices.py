"""Prices: one cache in front of the configured feed, and the tick fan-out.

- `price_get(symbol, use_cache=True)`: a cached tick (Redis, `PRICE_CACHE_TTL` seconds) or,
  on a miss or with `use_cache=False`, the feed's answer (then cached). No price →
  `VenueException(PRICE_UNAVAILABLE)`.
- `price_publish(tick)`: cache the tick, call every tick listener, then let the paper venue
  process its book (resting orders, liquidations) for that symbol. The Beat job
  `providers.tasks.price_tick_task` advances the feed and publishes every second;
  `price_set(symbol, price)` sets a price exactly (tests, demos) and publishes it the same way.
- `price_is_stale(tick)`: older than `PRICE_MAX_AGE` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from config.cache import cache_redis
from providers.interface import ErrorCode, PriceFeed, PriceTick, VenueError, VenueException

logger = logging.getLogger("tradedesk.providers.prices")

TickListener = Callable[[PriceTick], None]
_tick_listeners: list[TickListener] = []

# --- feeds --------------------------------------------------------------------------------------
# name -> "module:attribute" of a zero-argument factory. Add "ostium", "kraken", "coingecko" here.
_FEED_FACTORIES: dict[str, str] = {
    "paper": "providers.feeds.paper:PaperFeed",
    "ostium": "providers.ostium.adapter:OstiumVenue",  # Ostium's price API
}
_feeds: dict[str, PriceFeed] = {}


def feed_register(name: str, factory: Callable[[], PriceFeed]) -> None:
    """Register (or replace) a feed factory under `name` (extension point)."""
    _FEED_FACTORIES[name] = factory  # type: ignore[assignment]
    _feeds.pop(name, None)


def get_feed(name: str | None = None) -> PriceFeed:
    """The process-wide feed `name` (default: settings.PRICE_FEED, "paper")."""
    import importlib

    name = name or getattr(settings, "PRICE_FEED", "paper")
    feed = _feeds.get(name)
    if feed is None:
        target = _FEED_FACTORIES.get(name)
        if target is None:
            raise VenueException(VenueError(code=ErrorCode.PRICE_UNAVAILABLE, message=f"unknown price feed {name!r}"))
        if isinstance(target, str):
            module_name, attribute = target.split(":")
            factory = getattr(importlib.import_module(module_name), attribute)
        else:
            factory = target
        feed = factory()
        _feeds[name] = feed
    return feed


# --- cache --------------------------------------------------------------------------------------
def _cache_key(symbol: str) -> str:
    return f"providers:price:{symbol}"


def _to_cache(tick: PriceTick) -> dict:
    return {
        "symbol": tick.symbol,
        "price": str(tick.price),
        "timestamp": tick.timestamp.isoformat(),
        "source": tick.source,
        "bid": None if tick.bid is None else str(tick.bid),
        "ask": None if tick.ask is None else str(tick.ask),
    }


def _from_cache(data: dict) -> PriceTick:
    return PriceTick(
        symbol=data["symbol"],
        price=Decimal(data["price"]),
        timestamp=datetime.fromisoformat(data["timestamp"]),
        source=data["source"],
        bid=None if data.get("bid") is None else Decimal(data["bid"]),
        ask=None if data.get("ask") is None else Decimal(data["ask"]),
    )


def price_cache_put(tick: PriceTick) -> None:
    cache.set(_cache_key(tick.symbol), _to_cache(tick), timeout=settings.PRICE_CACHE_TTL)


def price_cached(symbol: str) -> PriceTick | None:
    """The cached tick of `symbol`, or None."""
    data = cache.get(_cache_key(_norm(symbol)))
    return _from_cache(data) if data else None


def price_cache_clear(symbols: Iterable[str] | None = None) -> None:
    """Forget cached ticks of `symbols` (default: every cached tick)."""
    if symbols is not None:
        cache.delete_many([_cache_key(_norm(s)) for s in symbols])
        return
    pattern = cache.make_key(_cache_key("*"))
    client = cache_redis()
    keys = list(client.scan_iter(match=pattern, count=500))
    if keys:
        client.delete(*keys)


def _norm(symbol: str) -> str:
    return symbol.strip().upper()


# --- reads --------------------------------------------------------------------------------------
def price_get(symbol: str, *, use_cache: bool = True) -> PriceTick:
    """The price of `symbol`: the cached tick, or (miss / use_cache=False) the feed's, then cached.
    Raises VenueException(PRICE_UNAVAILABLE) when the feed has none."""
    symbol = _norm(symbol)
    if use_cache:
        tick = price_cached(symbol)
        if tick is not None:
            return tick
    tick = get_feed().get_price(symbol)
    price_cache_put(tick)
    return tick


def price_get_many(symbols: Iterable[str], *, use_cache: bool = True) -> dict[str, PriceTick]:
    """Ticks for several symbols (symbols with no price are left out)."""
    wanted = [_norm(s) for s in symbols]
    found: dict[str, PriceTick] = {}
    if use_cache and wanted:
        cached = cache.get_many([_cache_key(s) for s in wanted])
        for s in wanted:
            data = cached.get(_cache_key(s))
            if data:
                found[s] = _from_cache(data)
    missing = [s for s in wanted if s not in found]
    if missing:
        fresh = get_feed().get_prices(missing)
        for s, tick in fresh.items():
            price_cache_put(tick)
            found[s] = tick
    return found


def price_age(tick: PriceTick, *, now: datetime | None = None) -> timedelta:
    return (now or timezone.now()) - tick.timestamp


def price_is_stale(tick: PriceTick, *, max_age: float | None = None, now: datetime | None = None) -> bool:
    """True when the tick is older than `max_age` seconds (default settings.PRICE_MAX_AGE)."""
    limit = settings.PRICE_MAX_AGE if max_age is None else max_age
    return price_age(tick, now=now) > timedelta(seconds=limit)


def price_get_fresh(symbol: str) -> PriceTick:
    """A tick no older than PRICE_MAX_AGE: the cached one if fresh, else the feed's."""
    tick = price_get(symbol)
    if price_is_stale(tick):
        tick = price_get(symbol, use_cache=False)
    if price_is_stale(tick):
        raise VenueException(
            VenueError(
                code=ErrorCode.PRICE_STALE,
                message=f"latest {symbol} price is {price_age(tick).total_seconds():.1f}s old",
                retryable=True,
                details={"symbol": symbol, "timestamp": tick.timestamp.isoformat(), "source": tick.source},
            )
        )
    return tick


# --- ticks --------------------------------------------------------------------------------------
def register_tick_listener(fn: TickListener) -> None:
    """Call `fn(tick)` for every tick published, after it is cached. Errors are logged only."""
    if fn not in _tick_listeners:
        _tick_listeners.append(fn)


def unregister_tick_listener(fn: TickListener) -> None:
    if fn in _tick_listeners:
        _tick_listeners.remove(fn)


def price_publish(tick: PriceTick) -> None:
    """Cache → tick listeners → the paper venue's book for this symbol."""
    price_cache_put(tick)
    for fn in list(_tick_listeners):
        try:
            fn(tick)
        except Exception:
            logger.exception(
                "tick listener failed", extra={"listener": getattr(fn, "__qualname__", repr(fn)), "symbol": tick.symbol}
            )
    try:
        from providers.paper.engine import paper_book_process_tick

        if connection.in_atomic_block:
            with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
                paper_book_process_tick(tick=tick)
        else:
            paper_book_process_tick(tick=tick)
    except Exception:
        logger.exception("paper venue failed to process a tick", extra={"symbol": tick.symbol})


def price_set(symbol: str, price: Decimal, *, source: str = "manual") -> PriceTick:
    """Set `symbol`'s price exactly (the paper walk continues from it) and publish the tick
    like the feed does: cache, listeners, paper book. Returns the tick."""
    from providers.feeds.paper import PaperFeed

    tick = PaperFeed.price_store(_norm(symbol), Decimal(price), source=source)
    price_publish(tick)
    return tick


def prices_tick() -> list[PriceTick]:
    """One round of the price job: advance (paper walk) or poll the configured feed, publish each."""
    feed = get_feed()
    advance = getattr(feed, "advance", None)
    if advance is not None:
        ticks = advance()
    else:
        from providers.markets import markets_list

        ticks = list(feed.get_prices([m.symbol for m in markets_list()]).values())
    for tick in ticks:
        price_publish(tick)
    return ticks
