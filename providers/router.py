"""Which venue trades a symbol: explicit symbol route → category route → settings.DEFAULT_VENUE.

Routes are `ProviderRoute` rows (admin: Providers › Provider routes). Within a match type the
highest priority enabled route wins (ties: the newest row). A symbol's category comes from
the market lists of the default venue and of the venues category routes point at, so a market
only one venue lists (USD-JPY on Ostium) follows that venue's category route.
"""

from __future__ import annotations

from django.conf import settings

from providers.models import ProviderRoute


def default_venue() -> str:
    return getattr(settings, "DEFAULT_VENUE", "paper")


def _routes() -> list[ProviderRoute]:
    return list(ProviderRoute.objects.filter(enabled=True).order_by("-priority", "-id"))


def _category_of(symbol: str, routes: list[ProviderRoute]) -> str | None:
    """The category of `symbol` from the default venue's market list, else from the markets of
    the venues category routes point at (None when no such venue lists it)."""
    from providers.interface import VenueException
    from providers.markets import venue_markets

    venues = [default_venue()]
    venues += [r.venue for r in routes if r.match_type == ProviderRoute.MatchType.CATEGORY and r.venue not in venues]
    for venue in dict.fromkeys(venues):
        try:
            for market in venue_markets(venue):
                if market.symbol == symbol:
                    return market.category
        except VenueException:
            continue
    return None


def _resolve(symbol: str, category: str | None, routes: list[ProviderRoute]) -> str:
    for r in routes:  # highest priority first
        if r.match_type == ProviderRoute.MatchType.SYMBOL and r.value == symbol:
            return r.venue
    category = category or _category_of(symbol, routes)
    if category:
        for r in routes:
            if r.match_type == ProviderRoute.MatchType.CATEGORY and r.value == category.lower():
                return r.venue
    return default_venue()


def route(symbol: str, *, category: str | None = None) -> str:
    """The venue name for `symbol`. `category` may be given when the caller knows it;
    otherwise it is looked up in the venues' market lists."""
    return _resolve(symbol.strip().upper(), category, _routes())


def routes_resolve(symbols: dict[str, str | None]) -> dict[str, str]:
    """{symbol: venue} for many symbols ({symbol: category or None}) with one read of the routes."""
    routes = _routes()
    return {symbol: _resolve(symbol.strip().upper(), category, routes) for symbol, category in symbols.items()}
