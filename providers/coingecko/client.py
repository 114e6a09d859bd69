"""The only module speaking to CoinGecko: `GET /simple/price` with `include_last_updated_at`.

The key, when configured, goes in the plan's header (`x-cg-demo-api-key` on the demo/public root,
`x-cg-pro-api-key` on the pro root); it is never logged (httpx logs at WARNING only). Prices are
JSON numbers, read as Decimal. A 429 raises `CoinGeckoError(rate_limited=True)` with the
Retry-After it gave (seconds or an HTTP date)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime

import httpx

from config.inputs import wire_json
from configuration.runtime import config_value
from providers.reference.config import COINGECKO_KEY_HEADER, coingecko_plan, coingecko_url


class CoinGeckoError(Exception):
    def __init__(self, message: str, *, rate_limited: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.rate_limited = rate_limited
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _headers() -> dict:
    headers = {"Accept": "application/json", "User-Agent": "tradedesk"}
    key = config_value("COINGECKO_API_KEY")
    if key:
        headers[COINGECKO_KEY_HEADER[coingecko_plan()]] = key
    return headers


def simple_price(ids: list[str], vs_currencies: list[str]) -> tuple[dict[tuple[str, str], Decimal], dict[str, int]]:
    """({(coin id, vs currency): price}, {coin id: last_updated_at in epoch seconds})."""
    params = {
        "ids": ",".join(ids),
        "vs_currencies": ",".join(vs_currencies),
        "include_last_updated_at": "true",
        "precision": "full",
    }
    try:
        response = httpx.get(
            f"{coingecko_url()}/simple/price",
            params=params,
            headers=_headers(),
            timeout=config_value("COINGECKO_TIMEOUT"),
        )
    except httpx.TimeoutException as exc:
        raise CoinGeckoError(f"timeout after {config_value('COINGECKO_TIMEOUT'):g} s") from exc
    except httpx.HTTPError as exc:
        raise CoinGeckoError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code == 429:
        raise CoinGeckoError(
            "HTTP 429 rate limited",
            rate_limited=True,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if response.status_code != 200:
        raise CoinGeckoError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        body = wire_json(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise CoinGeckoError(f"answer is not JSON: {response.text[:80]!r}") from exc
    if not isinstance(body, dict):
        raise CoinGeckoError("answer is not a JSON object")
    if isinstance(body.get("status"), dict):  # {"status": {"error_code": 10002, "error_message": ...}}
        raise CoinGeckoError(f"error {body['status'].get('error_code')}: {body['status'].get('error_message')}")
    prices: dict[tuple[str, str], Decimal] = {}
    updated: dict[str, int] = {}
    for coin, values in body.items():
        if not isinstance(values, dict):
            continue
        for vs in vs_currencies:
            value = values.get(vs)
            if isinstance(value, int | Decimal) and not isinstance(value, bool) and value > 0:
                prices[(coin, vs)] = Decimal(value)
        stamp = values.get("last_updated_at")
        if isinstance(stamp, int) and not isinstance(stamp, bool):
            updated[coin] = stamp
    return prices, updated
