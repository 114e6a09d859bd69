"""Prices, per venue: every venue's own feed, one cache in front of them, and the tick fan-out.

A symbol is priced at the venue it trades on: the venue it routes to (`providers.router.route`),
or, for a trade that is already open, the venue holding it. The paper venue's price is its
simulated walk; Ostium's is Ostium's price API (the localnet's on the localnet). The feed of
each venue is declared with the venue (`providers.registry.VenueSpec.price_feed`). Every tick
says which venue's price it is (`PriceTick.venue`) and where it came from (`source`).

- `price_get(symbol, venue=None, use_cache=True)`: the cached tick of (venue, symbol) (Redis,
  `PRICE_CACHE_TTL` seconds) or, on a miss or with `use_cache=False`, the venue feed's answer
  (then cached). `venue` defaults to the symbol's route. No price → `VenueException(PRICE_UNAVAILABLE)`.
- `price_publish(tick)`: cache the tick, call every tick listener (listeners look at
  `tick.venue`: marks and the protective engine act on that venue's positions and orders
  only), then let the paper venue process its book when it is a paper tick. Listeners
  registered with `routed_only=True` (market data for clients) get only the ticks of the venue
  each symbol routes to, so a symbol listed by two venues shows one price.
- `prices_tick()` (Beat, every second): the paper walk takes a step; every other venue in use
  (a route points at it, or it holds open trades or live orders) is polled for its symbols.
- `price_set(symbol, price)` sets the *paper* price exactly (tests, demos) and publishes it.

Reference prices (fair rates from Kraken, CoinGecko; used to judge venue prices and by the
NEAR Intents strategy) are a separate input with its own module and records: they are never
venue prices, never cached under a venue here, and never drive marks or protective orders.
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
from configuration.runtime import config_value
from providers.interface import ErrorCode, PriceFeed, PriceTick, VenueError, VenueException

logger = logging.getLogger("tradedesk.providers.prices")

PAPER = "paper"

TickListener = Callable[[PriceTick], None]
_tick_listeners: list[tuple[TickListener, bool]] = []  # (listener, routed_only)


def venue_feed(venue: str) -> PriceFeed:
    """The price feed of `venue` (declared with the venue in `providers.registry`)."""
    from providers.registry import venue_price_feed

    try:
        return venue_price_feed(venue)
    except VenueException as exc:
        raise VenueException(
            VenueError(code=ErrorCode.PRICE_UNAVAILABLE, message=f"no price feed for venue {venue!r}")
        ) from exc


def price_venue(symbol: str) -> str:
    """The venue whose price `symbol` is quoted at: the venue it routes to."""
    from providers.router import route

    return route(symbol)


# --- cache --------------------------------------------------------------------------------------
def _cache_key(venue: str, symbol: str) -> str:
    return f"providers:price:{venue}:{symbol}"


def price_cache_key(symbol: str, *, venue: str) -> str:
    """The cache key of `symbol`'s tick at `venue`: for a caller that reads it together with
    other keys (`price_get(..., prefetched=)`)."""
    return _cache_key(venue, _norm(symbol))


def _to_cache(tick: PriceTick) -> dict:
    return {
        "symbol": tick.symbol,
        "price": str(tick.price),
        "timestamp": tick.timestamp.isoformat(),
        "source": tick.source,
        "venue": tick.venue,
        "bid": None if tick.bid is None else str(tick.bid),
        "ask": None if tick.ask is None else str(tick.ask),
    }


def _from_cache(data: dict) -> PriceTick:
    return PriceTick(
        symbol=data["symbol"],
        price=Decimal(data["price"]),
        timestamp=datetime.fromisoformat(data["timestamp"]),
        source=data["source"],
        venue=data["venue"],
        bid=None if data.get("bid") is None else Decimal(data["bid"]),
        ask=None if data.get("ask") is None else Decimal(data["ask"]),
    )


def _venue_of(tick: PriceTick) -> str:
    if not tick.venue:
        raise ValueError(f"a venue price tick names its venue: {tick!r}")
    return tick.venue


def price_cache_put(tick: PriceTick) -> None:
    cache.set(_cache_key(_venue_of(tick), tick.symbol), _to_cache(tick), timeout=config_value("PRICE_CACHE_TTL"))


def price_cached(symbol: str, *, venue: str | None = None) -> PriceTick | None:
    """The cached tick of `symbol` at `venue` (default: the venue it routes to), or None."""
    symbol = _norm(symbol)
    data = cache.get(_cache_key(venue or price_venue(symbol), symbol))
    return _from_cache(data) if data else None


def price_cache_clear(symbols: Iterable[str] | None = None) -> None:
    """Forget cached ticks of `symbols` at every venue (default: every cached tick)."""
    client = cache_redis()
    if symbols is None:
        patterns = [cache.make_key(_cache_key("*", "*"))]
    else:
        patterns = [cache.make_key(_cache_key("*", _norm(s))) for s in symbols]
    for pattern in patterns:
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)


def prices_cached_all() -> list[PriceTick]:
    """Every cached tick, at every venue (for the price-age gauges of /metrics)."""
    client = cache_redis()
    prefix = cache.make_key(_cache_key("", ""))[:-1]  # "<prefix>:<version>:providers:price:"
    keys = [
        k.decode() if isinstance(k, bytes) else k
        for k in client.scan_iter(match=cache.make_key(_cache_key("*", "*")), count=500)
    ]
    plain = [
        _cache_key(*k[len(prefix) :].split(":", 1)) for k in keys if k.startswith(prefix) and ":" in k[len(prefix) :]
    ]
    found = cache.get_many(plain) if plain else {}
    return [_from_cache(data) for data in found.values() if data]


def _norm(symbol: str) -> str:
    return symbol.strip().upper()


# --- reads --------------------------------------------------------------------------------------
def price_get(
    symbol: str, *, venue: str | None = None, use_cache: bool = True, prefetched: dict | None = None
) -> PriceTick:
    """The price of `symbol` at `venue` (default: the venue it routes to): the cached tick, or
    (miss / use_cache=False) the venue feed's, then cached. Raises
    VenueException(PRICE_UNAVAILABLE) when the feed has none. `prefetched`: cache values the
    caller already read ({cache key: value or None}, `price_cache_key`); the cache is read only
    when the tick's key is not among them."""
    symbol = _norm(symbol)
    venue = venue or price_venue(symbol)
    if use_cache:
        key = _cache_key(venue, symbol)
        data = prefetched[key] if prefetched and key in prefetched else cache.get(key)
        if data:
            return _from_cache(data)
    tick = venue_feed(venue).get_price(symbol)
    price_cache_put(tick)
    return tick


def price_get_many(symbols: Iterable[str], *, venue: str | None = None, use_cache: bool = True) -> dict[str, PriceTick]:
    """Ticks for several symbols, each at `venue` or at the venue it routes to (symbols with no
    price are left out)."""
    wanted = list(dict.fromkeys(_norm(s) for s in symbols))
    by_venue: dict[str, list[str]] = {}
    for symbol in wanted:
        by_venue.setdefault(venue or price_venue(symbol), []).append(symbol)
    found: dict[str, PriceTick] = {}
    for name, group in by_venue.items():
        if use_cache:
            cached = cache.get_many([_cache_key(name, s) for s in group])
            for s in group:
                data = cached.get(_cache_key(name, s))
                if data:
                    found[s] = _from_cache(data)
        missing = [s for s in group if s not in found]
        if missing:
            for s, tick in venue_feed(name).get_prices(missing).items():
                price_cache_put(tick)
                found[s] = tick
    return found


def price_age(tick: PriceTick, *, now: datetime | None = None) -> timedelta:
    return (now or timezone.now()) - tick.timestamp


def price_is_stale(tick: PriceTick, *, max_age: float | None = None, now: datetime | None = None) -> bool:
    """True when the tick is older than `max_age` seconds (default settings.PRICE_MAX_AGE)."""
    limit = settings.PRICE_MAX_AGE if max_age is None else max_age
    return price_age(tick, now=now) > timedelta(seconds=limit)


def price_get_fresh(symbol: str, *, venue: str | None = None) -> PriceTick:
    """A tick no older than PRICE_MAX_AGE: the cached one if fresh, else the feed's."""
    venue = venue or price_venue(symbol)
    tick = price_get(symbol, venue=venue)
    if price_is_stale(tick):
        tick = price_get(symbol, venue=venue, use_cache=False)
    if price_is_stale(tick):
        raise VenueException(
            VenueError(
                code=ErrorCode.PRICE_STALE,
                message=f"latest {symbol} price at {venue} is {price_age(tick).total_seconds():.1f}s old",
                retryable=True,
                details={
                    "symbol": symbol,
                    "venue": venue,
                    "timestamp": tick.timestamp.isoformat(),
                    "source": tick.source,
                },
            )
        )
    return tick


# --- ticks --------------------------------------------------------------------------------------
def register_tick_listener(fn: TickListener, *, routed_only: bool = False) -> None:
    """Call `fn(tick)` for every tick published, after it is cached (with `routed_only`: only
    ticks of the venue the symbol routes to). Errors are logged only."""
    if all(registered is not fn for registered, _ in _tick_listeners):
        _tick_listeners.append((fn, routed_only))


def unregister_tick_listener(fn: TickListener) -> None:
    _tick_listeners[:] = [(registered, only) for registered, only in _tick_listeners if registered is not fn]


def price_publish(tick: PriceTick, *, routed: bool | None = None) -> None:
    """Cache → tick listeners → the paper venue's book (paper ticks). `routed`: whether the
    tick's venue is the one its symbol routes to (looked up when not given and needed)."""
    price_cache_put(tick)
    for fn, routed_only in list(_tick_listeners):
        if routed_only:
            if routed is None:
                routed = price_venue(tick.symbol) == tick.venue
            if not routed:
                continue
        try:
            fn(tick)
        except Exception:
            logger.exception(
                "tick listener failed",
                extra={"listener": getattr(fn, "__qualname__", repr(fn)), "symbol": tick.symbol, "venue": tick.venue},
            )
    if tick.venue != PAPER:
        return
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
    """Set `symbol`'s *paper* price exactly (the paper walk continues from it) and publish the
    tick like the feed does: cache, listeners, paper book. Returns the tick."""
    from providers.feeds.paper import PaperFeed

    tick = PaperFeed.price_store(_norm(symbol), Decimal(price), source=source)
    price_publish(tick)
    return tick


def _venues_in_use() -> dict[str, set[str]]:
    """{venue: symbols it holds open trades or live orders on} for every venue other than paper
    that a route points at or that holds something (the paper walk always runs)."""
    from providers.models import ProviderRoute

    in_use: dict[str, set[str]] = {
        venue: set() for venue in ProviderRoute.objects.filter(enabled=True).values_list("venue", flat=True)
    }
    for venue, symbol in _held_here():
        in_use.setdefault(venue, set()).add(symbol)
    in_use.pop(PAPER, None)
    return in_use


_held_sources: list[Callable[[], Iterable[tuple[str, str]]]] = []


def register_held_symbols(fn: Callable[[], Iterable[tuple[str, str]]]) -> None:
    """`fn()` → (venue, symbol) pairs a venue must keep being priced for (open trades, live
    orders), whatever the symbols route to now. Registered by the trading core."""
    if fn not in _held_sources:
        _held_sources.append(fn)


def _held_here() -> set[tuple[str, str]]:
    held: set[tuple[str, str]] = set()
    for fn in _held_sources:
        held.update(fn())
    return held


def prices_tick() -> list[PriceTick]:
    """One round of the price job: the paper walk steps (its book trades at every paper
    market); every other venue in use is polled for the symbols routed to it and those it holds
    something on. Each tick is published; returns them."""
    from providers.markets import venue_markets
    from providers.router import routes_resolve

    published = []
    paper_ticks = venue_feed(PAPER).advance()
    routes = routes_resolve({t.symbol: None for t in paper_ticks})
    for tick in paper_ticks:
        price_publish(tick, routed=routes[tick.symbol] == PAPER)
        published.append(tick)
    for venue, held in _venues_in_use().items():
        try:
            listed = {m.symbol: m.category for m in venue_markets(venue)}
            routes = routes_resolve(listed)
            wanted = {s for s, to in routes.items() if to == venue} | held
            ticks = venue_feed(venue).get_prices(sorted(wanted)) if wanted else {}
        except VenueException as exc:
            logger.warning("no prices from venue", extra={"venue": venue, "code": str(exc.error.code)})
            continue
        for symbol, tick in ticks.items():
            price_publish(tick, routed=routes.get(symbol) == venue)
            published.append(tick)
    return published
