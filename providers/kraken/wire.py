"""Kraken's wire formats, parsed into `Quote`s. Pure: no I/O.

Websocket v2 (`wss://ws.kraken.com/v2`): subscribe with
`{"method": "subscribe", "params": {"channel": "ticker", "symbol": [...], "event_trigger": "bbo",
"snapshot": true}, "req_id": n}`; acks `{"method": "subscribe", "success": bool, "result": {...} |
"error": "...", ...}` (one per symbol); data `{"channel": "ticker", "type": "snapshot"|"update",
"data": [{"symbol", "bid", "bid_qty", "ask", "ask_qty", "last", ..., "timestamp"}]}` with JSON
numbers; `{"channel": "heartbeat"}` about every second; `{"channel": "status", ...}` on connect.

REST `GET /0/public/Ticker?pair=XBTEUR` answers `{"error": [], "result": {"<pair key>": {"a": [ask,
..], "b": [bid, ..], "c": [last, volume], ...}}}` with numbers as strings; errors (HTTP 200) in the
`error` array, e.g. "EQuery:Unknown asset pair".
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation

from config.inputs import wire_json
from providers.reference.config import KRAKEN
from providers.reference.store import Quote

# v2 symbols use BTC; the REST API still names it XBT.
REST_ASSETS = {"BTC": "XBT"}


class WireError(ValueError):
    pass


def subscribe_message(symbols: list[str], *, event_trigger: str, req_id: int) -> str:
    return json.dumps(
        {
            "method": "subscribe",
            "params": {"channel": "ticker", "symbol": symbols, "event_trigger": event_trigger, "snapshot": True},
            "req_id": req_id,
        }
    )


def decode(raw: str | bytes) -> dict:
    """A frame as a JSON object (numbers as Decimal); WireError otherwise."""
    try:
        message = wire_json(raw, parse_float=Decimal)
    except ValueError as exc:
        raise WireError(f"not JSON: {str(raw)[:80]!r}") from exc
    if not isinstance(message, dict):
        raise WireError(f"not a JSON object: {str(raw)[:80]!r}")
    return message


def _positive(value, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise WireError(f"{name} is not a number: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise WireError(f"{name} is not a number: {value!r}") from exc
    if not number.is_finite() or number <= 0:
        raise WireError(f"{name} must be positive: {value!r}")
    return number


def _timestamp_ms(value, received_ms: int) -> int:
    """Kraken's RFC 3339 timestamp in epoch ms, never after the time we received it."""
    if not isinstance(value, str):
        return received_ms
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"timestamp is not RFC 3339: {value!r}") from exc
    if stamp.tzinfo is None:
        raise WireError(f"timestamp has no offset: {value!r}")
    return min(int(stamp.timestamp() * 1000), received_ms)


def quote_from(*, pair: str, bid, ask, last, observed_ms: int, received_ms: int, via: str) -> Quote:
    bid, ask = _positive(bid, "bid"), _positive(ask, "ask")
    if bid > ask:
        raise WireError(f"{pair}: bid {bid} above ask {ask}")
    return Quote(
        source=KRAKEN,
        pair=pair,
        price=(bid + ask) / 2,
        observed_ms=observed_ms,
        received_ms=received_ms,
        via=via,
        bid=bid,
        ask=ask,
        last=None if last is None else _positive(last, "last"),
    )


def ticker_quotes(message: dict, *, symbols: frozenset[str], received_ms: int) -> tuple[list[Quote], list[str]]:
    """The quotes of a ticker frame, and what was wrong with the items that were not valid."""
    data = message.get("data")
    if not isinstance(data, list):
        return [], ["ticker frame without a data list"]
    quotes, problems = [], []
    for item in data:
        try:
            if not isinstance(item, dict):
                raise WireError("ticker item is not an object")
            symbol = item.get("symbol")
            if symbol not in symbols:
                raise WireError(f"ticker for a symbol not subscribed: {symbol!r}")
            quotes.append(
                quote_from(
                    pair=symbol,
                    bid=item.get("bid"),
                    ask=item.get("ask"),
                    last=item.get("last"),
                    observed_ms=_timestamp_ms(item.get("timestamp"), received_ms),
                    received_ms=received_ms,
                    via="ws",
                )
            )
        except WireError as exc:
            problems.append(str(exc))
    return quotes, problems


def rest_pair(symbol: str) -> str:
    """ "BTC/EUR" -> "XBTEUR" (the REST API's name of the pair)."""
    base, quote = symbol.split("/")
    return REST_ASSETS.get(base, base) + REST_ASSETS.get(quote, quote)


def rest_ticker_quote(body: dict, *, symbol: str, received_ms: int) -> Quote:
    """The quote of a REST Ticker answer asked for one pair. Its result key is Kraken's internal
    name (XXBTZEUR), so the single entry is taken rather than looked up. The answer has no
    timestamp: the time received stands for it."""
    errors = body.get("error")
    if errors:
        raise WireError("; ".join(str(e) for e in errors))
    result = body.get("result")
    if not isinstance(result, dict) or len(result) != 1:
        raise WireError(f"expected one pair in the result, got {list(result or {})!r}")
    entry = next(iter(result.values()))
    try:
        return quote_from(
            pair=symbol,
            bid=entry["b"][0],
            ask=entry["a"][0],
            last=entry["c"][0],
            observed_ms=received_ms,
            received_ms=received_ms,
            via="rest",
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise WireError(f"ticker entry lacks a/b/c: {entry!r}"[:200]) from exc
