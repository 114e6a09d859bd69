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


# --- pair names as clients write them -----------------------------------------------------------

# The seed API's integer asset types (`asset_type` of a trade) and the market categories they
# name; a category name is accepted too.
ASSET_TYPES = {0: "crypto", 1: "forex", 2: "commodity", 3: "index", 4: "stock"}
# Quotes a client may write for a USD-quoted market: BTCUSDT, BTC-USDC and BTCUSD all are BTC-USD.
USD_QUOTES = ("USD", "USDT", "USDC")
_SEPARATORS = str.maketrans("", "", "-/_: ")


def asset_type_category(asset_type) -> str:
    """The market category an `asset_type` names (0–4, or the category itself); "" for none."""
    if asset_type is None or asset_type == "":
        return ""
    if isinstance(asset_type, int) or (isinstance(asset_type, str) and asset_type.isascii() and asset_type.isdigit()):
        return ASSET_TYPES.get(int(asset_type), "?")
    return str(asset_type).strip().lower()


def _aliases(market: Market) -> set[str]:
    base, _, quote = market.symbol.partition("-")
    quotes = USD_QUOTES if quote == "USD" else (quote,)
    return {market.symbol.translate(_SEPARATORS)} | {base + q for q in quotes}


def market_aliases(market: Market) -> list[str]:
    """The other names a market answers to (BTC-USD: BTCUSD, BTCUSDT, BTCUSDC)."""
    return sorted(_aliases(market) - {market.symbol})


def market_resolve(name: str, asset_type=None) -> str:
    """Our market symbol for a pair name as a client writes it: the symbol itself (BTC-USD), an
    alias (BTCUSD, BTCUSDT, BTC/USD, EURUSD) or a base symbol (BTC), narrowed by `asset_type`
    (0–4 or a category) when given. Unknown → VenueException(INVALID_MARKET)."""
    wanted = name.strip().upper()
    category = asset_type_category(asset_type)
    markets = markets_list()
    for market in markets:
        if market.symbol == wanted and (not category or market.category == category):
            return market.symbol
    compact = wanted.translate(_SEPARATORS)
    found = [m for m in markets if compact in _aliases(m)]
    if not found:  # a base symbol: its USD market first
        found = sorted(
            (m for m in markets if m.symbol.partition("-")[0] == compact),
            key=lambda m: m.symbol.partition("-")[2] != "USD",
        )
    if category:
        found = [m for m in found if m.category == category]
    if found:
        return found[0].symbol
    raise VenueException(
        VenueError(
            code=ErrorCode.INVALID_MARKET,
            message=f"no market {name.strip()!r}" + (f" of asset type {asset_type!r}" if category else ""),
            details={"pair": name.strip(), **({"asset_type": asset_type} if category else {})},
        )
    )
