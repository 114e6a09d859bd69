"""The CoinGecko poll: what the Beat job `reference-coingecko-poll` (every 5 s) and a forced refresh
run.

A poll is due every COINGECKO_POLL_SECONDS. A failure backs off: the next poll waits the poll
interval doubled per consecutive failure (with up to 10 % jitter), at most
COINGECKO_BACKOFF_MAX_SECONDS; a 429 waits at least its Retry-After (within the same maximum) and
shows the source as `rate_limited`. Nothing raises: a failure is recorded in the source's state
and the fair rates go on from Kraken. One poll at a time across processes (a Redis lock).
"""

from __future__ import annotations

import logging
import random

from django.conf import settings

from config.cache import cache_redis
from configuration.runtime import config_value
from providers.coingecko import client
from providers.reference import store
from providers.reference.config import COINGECKO, coingecko_id, pair_split
from providers.reference.store import Quote, int_field, now_ms

logger = logging.getLogger("tradedesk.reference.coingecko")
RATE_LIMITED, FAILED = "rate_limited", "error"


def _wanted() -> dict[tuple[str, str], str]:
    """(coin id, vs currency) -> the pair it prices: the direct pairs with a coin id, and the
    sanity sources of bases."""
    from providers.reference.service import bases_by_asset, direct_pairs, sanity_pairs

    bases = bases_by_asset()
    wanted = {}
    for pair in direct_pairs(bases):
        base, quote = pair_split(pair)
        if coingecko_id(base):
            wanted[(coingecko_id(base), quote.lower())] = pair
    for pair, coin in sanity_pairs(bases).items():
        wanted[(coin, pair_split(pair)[1].lower())] = pair
    return wanted


def _paused() -> bool:
    from providers.models import ReferenceSource

    return ReferenceSource.objects.filter(name=COINGECKO, paused=True).exists()


def backoff_seconds(failures: int, *, retry_after: float | None = None, rng=random) -> float:
    delay = settings.COINGECKO_POLL_SECONDS * 2 ** max(0, failures - 1) * (1 + rng.uniform(0, 0.1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.COINGECKO_BACKOFF_MAX_SECONDS)


def coingecko_poll(*, force: bool = False) -> dict:
    """Poll when due (or now, with `force`, unless paused or backing off). Returns what happened:
    {"source", "ok", "refreshed": [pairs], "skipped"?: why, "error"?: {...}}."""
    result = {"source": COINGECKO, "ok": False, "refreshed": []}
    if _paused():
        return {**result, "skipped": "paused"}
    state = store.states_get([COINGECKO])[COINGECKO]
    now = now_ms()
    backoff = int_field(state, "backoff_until_ms") or 0
    if backoff > now:
        return {**result, "skipped": state.get("last_failure") or "backing off", "retry_after": (backoff - now) / 1000}
    last = int_field(state, "last_poll_ms") or 0
    if not force and now - last < settings.COINGECKO_POLL_SECONDS * 1000 - 500:
        return {**result, "skipped": "not due"}
    lock = store.state_key(COINGECKO) + ":lock"
    redis = cache_redis()
    if not redis.set(lock, now, nx=True, px=int(config_value("COINGECKO_TIMEOUT") * 1000) + 5000):
        return {**result, "skipped": "in progress"}
    try:
        return _poll(result, state, now)
    finally:
        redis.delete(lock)


def _poll(result: dict, state: dict, now: int) -> dict:
    store.state_update(COINGECKO, fields={"last_poll_ms": now}, incr={"polls": 1})
    wanted = _wanted()
    if not wanted:
        return {**result, "ok": True, "skipped": "nothing to poll"}
    coins = sorted({coin for coin, _ in wanted})
    currencies = sorted({vs for _, vs in wanted})
    try:
        prices, updated = client.simple_price(coins, currencies)
    except client.CoinGeckoError as exc:
        failures = int(state.get("consecutive_failures") or 0) + 1
        delay = backoff_seconds(failures, retry_after=exc.retry_after if exc.rate_limited else None)
        kind = RATE_LIMITED if exc.rate_limited else FAILED
        store.state_update(
            COINGECKO,
            fields={
                "consecutive_failures": failures,
                "backoff_until_ms": now + int(delay * 1000),
                "last_failure": kind,
                **store.error_fields(exc.message),
            },
            incr={"rate_limited" if exc.rate_limited else "errors": 1},
        )
        logger.warning("coingecko poll failed", extra={"why": exc.message, "failures": failures, "backoff_s": delay})
        return {**result, "error": {"code": kind, "message": exc.message, "retry_after": round(delay, 1)}}
    received = now_ms()
    quotes, missing = [], []
    for (coin, vs), pair in wanted.items():
        price = prices.get((coin, vs))
        if price is None:
            missing.append(pair)
            continue
        observed = updated.get(coin, received // 1000) * 1000
        quotes.append(
            Quote(
                source=COINGECKO,
                pair=pair,
                price=price,
                observed_ms=min(observed, received),
                received_ms=received,
                via="poll",
            )
        )
    store.quotes_put(quotes)
    fields = {"last_success_ms": received, "consecutive_failures": 0, "backoff_until_ms": "", "last_failure": ""}
    if missing:
        fields.update(store.error_fields(f"no price for {', '.join(sorted(missing))}"))
    store.state_update(COINGECKO, fields=fields)
    return {**result, "ok": not missing, "refreshed": sorted(q.pair for q in quotes), "missing": sorted(missing)}
