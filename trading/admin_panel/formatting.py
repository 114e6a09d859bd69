"""How the admin prints numbers: prices to their market's precision, money with two decimals,
quantities without trailing zeros; thousands separated; never `0E-8` or 18 zero decimals."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

DEFAULT_PRICE_PLACES = 2


def plural(n: int, word: str) -> str:
    """'1 asset', '2 assets'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def number(value, *, places: int | None = None) -> str:
    """59931.11 → "59,931.11"; 58000.000 → "58,000"; 0E-8 → "0" (trailing zeros dropped unless
    `places` fixes them; at most 8 decimals)."""
    if value is None or value == "":
        return ""
    value = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if places is not None:
        return f"{value:,.{places}f}"
    if isinstance(value.as_tuple().exponent, int) and value.as_tuple().exponent < -8:
        value = value.quantize(Decimal("1e-8"))
    if value == 0:
        return "0"
    exponent = value.normalize().as_tuple().exponent
    return f"{value:,.{max(0, -exponent)}f}"


def money(value) -> str:
    """USD amounts: two decimals, thousands separated (1,450.32)."""
    return number(value, places=2) if value not in (None, "") else ""


def price_places(assets: Iterable[str]) -> dict[str, int]:
    """{asset: decimals of its price} from the paper book's markets (one query); others: 2."""
    from providers.models import PaperMarket

    wanted = set(assets)
    found = dict(PaperMarket.objects.filter(symbol__in=wanted).values_list("symbol", "price_decimals"))
    return {a: found.get(a, DEFAULT_PRICE_PLACES) for a in wanted}


_places: dict[str, int] = {}
_places_read_at = 0.0


def market_places(asset: str) -> int:
    """Decimals of `asset`'s price, from every paper market read at most once a minute per
    process (a list page asks once per row)."""
    import time

    global _places_read_at
    if time.monotonic() - _places_read_at > 60:
        from providers.models import PaperMarket

        _places.clear()
        _places.update(PaperMarket.objects.values_list("symbol", "price_decimals"))
        _places_read_at = time.monotonic()
    return _places.get(asset, DEFAULT_PRICE_PLACES)


def price(value, asset: str = "", places: dict[str, int] | None = None) -> str:
    """A price to its market's precision (`places` from price_places; else the asset's)."""
    if value in (None, ""):
        return ""
    decimals = places.get(asset, DEFAULT_PRICE_PLACES) if places is not None else market_places(asset)
    return number(value, places=decimals)


def when(value) -> str:
    """A timestamp as the admin prints it: `2026-12-06 22:34:31 UTC`."""
    from datetime import UTC

    if not value:
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def event_lines(correlation_id: str, note=None):
    """An object's ledger events, one line each, as its change page lists them: the event id,
    when (as the admin prints times), the topic, who, and `note(event)` if given."""
    from django.utils.html import format_html_join

    from trading.models import Event

    events = Event.objects.filter(correlation_id=correlation_id).order_by("id")
    return format_html_join(
        "\n",
        "<div><code>{}</code> {} — <b>{}</b> by {} {}</div>",
        ((e.id, when(e.occurred_at), e.topic, e.actor, note(e) if note else "") for e in events),
    )


def ago(value) -> str:
    """How long ago, to the second under a minute: `12 s ago`, `3 min ago`, `2 h 5 min ago`."""
    from config.clock import seconds_since

    if not value:
        return "—"
    seconds = int(seconds_since(value))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} d ago"
