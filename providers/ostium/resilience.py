"""Retries for reads and a circuit breaker per Ostium network (state in Redis).

Reads: bounded retries with full jitter on retryable failures. Writes are never retried
here: a write that times out is an unknown outcome, resolved by reconciliation.

Breaker: CLOSED → (OSTIUM_BREAKER_THRESHOLD consecutive infrastructure failures) → OPEN for
OSTIUM_BREAKER_COOLDOWN seconds → HALF_OPEN (one probe allowed) → CLOSED on success / OPEN
on failure. `breaker_state(network)` is what the control panel shows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _key(network: str, part: str) -> str:
    return f"ostium:breaker:{network}:{part}"


def breaker_state(network: str) -> dict:
    """{"state", "failures", "opened_at", "retry_at"} for `network`."""
    failures = int(cache.get(_key(network, "failures")) or 0)
    opened_at = cache.get(_key(network, "opened_at"))
    state = CLOSED
    retry_at = None
    if opened_at is not None:
        retry_at = float(opened_at) + settings.OSTIUM_BREAKER_COOLDOWN
        state = OPEN if time.time() < retry_at else HALF_OPEN
    return {"network": network, "state": state, "failures": failures, "opened_at": opened_at, "retry_at": retry_at}


def breaker_allow(network: str) -> bool:
    """May a call go out now? OPEN: no. HALF_OPEN: one caller at a time (the probe)."""
    state = breaker_state(network)["state"]
    if state == CLOSED:
        return True
    if state == OPEN:
        return False
    return bool(cache.add(_key(network, "probe"), 1, timeout=max(1, int(settings.OSTIUM_BREAKER_COOLDOWN))))


def breaker_record(network: str, *, ok: bool) -> None:
    if ok:
        cache.delete_many([_key(network, "failures"), _key(network, "opened_at"), _key(network, "probe")])
        return
    key = _key(network, "failures")
    cache.add(key, 0, timeout=None)
    try:
        failures = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)
        failures = 1
    if failures >= settings.OSTIUM_BREAKER_THRESHOLD or cache.get(_key(network, "opened_at")) is not None:
        cache.set(_key(network, "opened_at"), time.time(), timeout=None)
        cache.delete(_key(network, "probe"))


def breaker_reset(network: str) -> None:
    breaker_record(network, ok=True)


def retry_read(fn: Callable, *, is_retryable: Callable[[BaseException], bool], attempts: int | None = None):
    """Call `fn()`; on a retryable failure try again (at most `attempts` more times) after
    a full-jitter backoff (base 0.2 s, cap 2 s)."""
    attempts = settings.OSTIUM_READ_RETRIES if attempts is None else attempts
    for attempt in range(attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0, min(2.0, 0.2 * 2**attempt)))
    raise AssertionError("unreachable")
