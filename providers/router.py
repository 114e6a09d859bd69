"""Which venue trades a symbol: explicit symbol route → category route → settings.DEFAULT_VENUE.

Routes are `ProviderRoute` rows (admin: Providers › Provider routes). Within a match type the
highest priority enabled route wins (ties: the newest row).
"""

from __future__ import annotations

from django.conf import settings

from providers.models import ProviderRoute


def default_venue() -> str:
    return getattr(settings, "DEFAULT_VENUE", "paper")


def _category_of(symbol: str) -> str | None:
    """The category of `symbol` from the default venue's market list (None when unknown)."""
    from providers.interface import VenueException
    from providers.markets import venue_markets

    try:
        for market in venue_markets(default_venue()):
            if market.symbol == symbol:
                return market.category
    except VenueException:
        return None
    return None


def route(symbol: str, *, category: str | None = None) -> str:
    """The venue name for `symbol`. `category` may be given when the caller knows it;
    otherwise it is looked up in the default venue's markets."""
    symbol = symbol.strip().upper()
    enabled = ProviderRoute.objects.filter(enabled=True).order_by("-priority", "-id")
    by_symbol = enabled.filter(match_type=ProviderRoute.MatchType.SYMBOL, value=symbol).first()
    if by_symbol:
        return by_symbol.venue
    category = category or _category_of(symbol)
    if category:
        by_category = enabled.filter(match_type=ProviderRoute.MatchType.CATEGORY, value=category.lower()).first()
        if by_category:
            return by_category.venue
    return default_venue()
