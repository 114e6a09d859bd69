"""The live state of the reference sources, in Redis.

- One quote per source and pair (`Quote`, JSON under `ref:q:<source>:<pair>`): the price the source
  gives now, when the source observed it and when we received it. Only the newest is kept; its
  age tells whether it may still be used. Samples (PostgreSQL) keep the history.
- One hash per source (`ref:s:<source>`): health fields (connected, last frame, back-off, last
  error) and counters (errors, reconnects, invalid messages, rate limits).

The feeds process writes through the async functions (`aquotes_put`, `astate_update`) on its event
loop; the CoinGecko poll, the REST refresh and every reader use the sync ones. Keys carry the
Django cache's prefix, so test runs and deployments sharing a Redis stay apart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from config.cache import cache_redis

QUOTE_TTL_SECONDS = 24 * 3600  # a quote nobody refreshed for a day is dropped (its age said stale long before)
COUNTERS = ("errors", "reconnects", "invalid_messages", "rate_limited", "polls")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Quote:
    source: str
    pair: str  # as the source names it, normalised: BTC/EUR
    price: Decimal  # mid when bid and ask are known, else the source's single price
    observed_ms: int  # when the source observed it (epoch ms; Kraken's timestamp, CoinGecko's last_updated_at)
    received_ms: int  # when we received it
    via: str  # ws | rest | poll
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None

    def age_ms(self, now: int) -> int:
        return max(0, now - self.observed_ms)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def quote_encode(q: Quote) -> str:
    return json.dumps(
        {
            "price": str(q.price),
            "bid": _text(q.bid),
            "ask": _text(q.ask),
            "last": _text(q.last),
            "observed_ms": q.observed_ms,
            "received_ms": q.received_ms,
            "via": q.via,
        }
    )


def quote_decode(source: str, pair: str, raw: bytes | str) -> Quote:
    d = json.loads(raw)
    dec = lambda v: None if v is None else Decimal(v)  # noqa: E731
    return Quote(
        source=source,
        pair=pair,
        price=Decimal(d["price"]),
        observed_ms=int(d["observed_ms"]),
        received_ms=int(d["received_ms"]),
        via=d.get("via", ""),
        bid=dec(d.get("bid")),
        ask=dec(d.get("ask")),
        last=dec(d.get("last")),
    )


_keys: dict[str, str] = {}


def _key(name: str) -> str:
    key = _keys.get(name)
    if key is None:
        key = _keys[name] = cache.make_key(name)
    return key


def quote_key(source: str, pair: str) -> str:
    return _key(f"ref:q:{source}:{pair}")


def state_key(source: str) -> str:
    return _key(f"ref:s:{source}")


# --- in-process listeners (the feeds process's sampler wakes on new quotes) -----------------------
_quote_listeners: list[Callable[[list[Quote]], None]] = []


def quote_listener_register(fn: Callable[[list[Quote]], None]) -> None:
    if fn not in _quote_listeners:
        _quote_listeners.append(fn)


def quote_listener_unregister(fn: Callable[[list[Quote]], None]) -> None:
    if fn in _quote_listeners:
        _quote_listeners.remove(fn)


def _notify(quotes: list[Quote]) -> None:
    for fn in list(_quote_listeners):
        fn(quotes)


# --- writes -------------------------------------------------------------------------------------
def quotes_put(quotes: Iterable[Quote]) -> None:
    quotes = list(quotes)
    if not quotes:
        return
    pipe = cache_redis().pipeline(transaction=False)
    for q in quotes:
        pipe.set(quote_key(q.source, q.pair), quote_encode(q), ex=QUOTE_TTL_SECONDS)
    pipe.execute()
    _notify(quotes)


async def aquotes_put(client, quotes: list[Quote]) -> None:
    """`quotes_put` on the feeds process's event loop (`client`: a redis.asyncio.Redis)."""
    if len(quotes) == 1:
        q = quotes[0]
        await client.set(quote_key(q.source, q.pair), quote_encode(q), ex=QUOTE_TTL_SECONDS)
    else:
        pipe = client.pipeline(transaction=False)
        for q in quotes:
            pipe.set(quote_key(q.source, q.pair), quote_encode(q), ex=QUOTE_TTL_SECONDS)
        await pipe.execute()
    _notify(quotes)


def _state_commands(pipe, source: str, fields: dict | None, incr: dict | None) -> None:
    key = state_key(source)
    if fields:
        pipe.hset(key, mapping={k: "" if v is None else str(v) for k, v in fields.items()})
    for name, by in (incr or {}).items():
        pipe.hincrby(key, name, by)


def state_update(source: str, *, fields: dict | None = None, incr: dict | None = None) -> None:
    """Set health fields and add to counters of `source` (one round trip)."""
    pipe = cache_redis().pipeline(transaction=False)
    _state_commands(pipe, source, fields, incr)
    pipe.execute()


async def astate_update(client, source: str, *, fields: dict | None = None, incr: dict | None = None) -> None:
    pipe = client.pipeline(transaction=False)
    _state_commands(pipe, source, fields, incr)
    await pipe.execute()


def error_fields(message: str, *, at_ms: int | None = None) -> dict:
    return {"last_error": message[:500], "last_error_ms": at_ms or now_ms()}


# --- reads --------------------------------------------------------------------------------------
def quotes_get(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
    """The latest quote of each (source, pair) that has one (one round trip)."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    raw = cache_redis().mget([quote_key(s, p) for s, p in keys])
    return {(s, p): quote_decode(s, p, r) for (s, p), r in zip(keys, raw, strict=True) if r is not None}


def states_get(sources: Iterable[str]) -> dict[str, dict]:
    """Each source's hash as {field: str}; counters as ints (0 when never counted)."""
    sources = list(sources)
    pipe = cache_redis().pipeline(transaction=False)
    for source in sources:
        pipe.hgetall(state_key(source))
    out = {}
    for source, raw in zip(sources, pipe.execute(), strict=True):
        state = {k.decode(): v.decode() for k, v in raw.items()}
        for name in COUNTERS:
            state[name] = int(state.get(name) or 0)
        out[source] = state
    return out


def int_field(state: dict, name: str) -> int | None:
    value = state.get(name)
    return int(float(value)) if value not in (None, "") else None


def async_client():
    """A redis.asyncio client for the feeds process (one per event loop)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(settings.CACHES["default"]["LOCATION"])


def store_clear() -> None:
    """Forget every quote and source state (tests, `manage.py reference_sandbox --reset`)."""
    client = cache_redis()
    keys = list(client.scan_iter(match=_key("ref:*"), count=500))
    if keys:
        client.delete(*keys)
