"""Retries for reads and circuit breakers (state in Redis), shared by the providers.

Reads: bounded retries with full jitter on retryable failures. Writes are never retried
here: a write that times out is an unknown outcome, resolved by asking the venue.

Breaker (one per `prefix:name`): CLOSED → (`threshold` consecutive infrastructure failures) →
OPEN for `cooldown` seconds → HALF_OPEN (one probe allowed) → CLOSED on success / OPEN on
failure. Each provider wraps these with its own key prefix and settings
(`providers.ostium.resilience`, `providers.near_intents.client`)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from django.core.cache import cache

from config.logging import log_event

logger = logging.getLogger("tradedesk.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _key(prefix: str, name: str, part: str) -> str:
    return f"{prefix}:breaker:{name}:{part}"


def breaker_state(prefix: str, name: str, *, cooldown: float) -> dict:
    """{"state", "failures", "opened_at", "retry_at"} of breaker `prefix:name`."""
    failures = int(cache.get(_key(prefix, name, "failures")) or 0)
    opened_at = cache.get(_key(prefix, name, "opened_at"))
    state = CLOSED
    retry_at = None
    if opened_at is not None:
        retry_at = float(opened_at) + cooldown
        state = OPEN if time.time() < retry_at else HALF_OPEN
    return {"network": name, "state": state, "failures": failures, "opened_at": opened_at, "retry_at": retry_at}


def breaker_allow(prefix: str, name: str, *, cooldown: float) -> bool:
    """May a call go out now? OPEN: no. HALF_OPEN: one caller at a time (the probe)."""
    state = breaker_state(prefix, name, cooldown=cooldown)["state"]
    if state == CLOSED:
        return True
    if state == OPEN:
        return False
    return bool(cache.add(_key(prefix, name, "probe"), 1, timeout=max(1, int(cooldown))))


def breaker_record(prefix: str, name: str, *, ok: bool, threshold: int) -> None:
    if ok:
        cache.delete_many([_key(prefix, name, "failures"), _key(prefix, name, "probe")])
        if cache.delete(_key(prefix, name, "opened_at")):  # it was open (or half-open): now closed
            log_event(logger, "breaker.closed", venue=prefix, breaker=name)
        return
    key = _key(prefix, name, "failures")
    cache.add(key, 0, timeout=None)
    try:
        failures = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)
        failures = 1
    was_open = cache.get(_key(prefix, name, "opened_at")) is not None
    if failures >= threshold or was_open:
        cache.set(_key(prefix, name, "opened_at"), time.time(), timeout=None)
        cache.delete(_key(prefix, name, "probe"))
        if not was_open:
            log_event(logger, "breaker.opened", level=logging.WARNING, venue=prefix, breaker=name, failures=failures)


def retry_read(fn: Callable, *, is_retryable: Callable[[BaseException], bool], attempts: int):
    """Call `fn()`; on a retryable failure try again (at most `attempts` more times) after
    a full-jitter backoff (base 0.2 s, cap 2 s)."""
    for attempt in range(attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0, min(2.0, 0.2 * 2**attempt)))
    raise AssertionError("unreachable")
