"""Markets, by symbol, from the venue each symbol routes to (cached in Redis)."""

from __future__ import annotations

from django.core.cache import cache

from configuration.runtime import config_value
from providers.interface import ErrorCode, Market, VenueError, VenueException

_CACHE_VERSION_KEY = "providers:markets:version"


def _cache_key(venue: str) -> str:
    version = cache.get(_CACHE_VERSION_KEY) or 0
    return f"providers:markets:{venue}:{version}"


def markets_cache_clear() -> None:
    """Drop every cached market list (called when a market row changes)."""
    try:
        cache.incr(_CACHE_VERSION_KEY)
    except ValueError:
        cache.set(_CACHE_VERSION_KEY, 1, timeout=None)


def venue_markets(venue: str) -> list[Market]:
    """`get_pairs()` of venue `venue`, cached for MARKETS_CACHE_TTL seconds."""
    from providers.registry import get_venue

    key = _cache_key(venue)
    markets = cache.get(key)
    if markets is None:
        markets = get_venue(venue).get_pairs()
        cache.set(key, markets, timeout=config_value("MARKETS_CACHE_TTL"))
    return markets


def market_get(symbol: str) -> Market:
    """The Market for `symbol` on the venue it routes to; unknown → VenueException(INVALID_MARKET)."""
    from providers.router import route

    symbol = symbol.strip().upper()
    venue = route(symbol)
    for market in venue_markets(venue):
        if market.symbol == symbol:
            return market
    raise VenueException(
        VenueError(
            code=ErrorCode.INVALID_MARKET,
            message=f"no market {symbol} on venue {venue}",
            details={"symbol": symbol, "venue": venue},
        )
    )


def markets_list(venue: str | None = None) -> list[Market]:
    """Markets of `venue`, or of the default venue plus every venue a route points at."""
    if venue:
        return list(venue_markets(venue))
    from providers.models import ProviderRoute
    from providers.router import default_venue

    venues = [default_venue()]
    for name in ProviderRoute.objects.filter(enabled=True).values_list("venue", flat=True).distinct():
        if name not in venues:
            venues.append(name)
    seen: dict[str, Market] = {}
    for name in venues:
        try:
            for market in venue_markets(name):
                seen.setdefault(market.symbol, market)
        except VenueException:
            continue
    return sorted(seen.values(), key=lambda m: m.symbol)
