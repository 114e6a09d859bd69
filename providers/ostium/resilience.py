"""Retries for reads and a circuit breaker per Ostium network (`providers.resilience` with
Ostium's settings; state in Redis).

Reads: bounded retries with full jitter on retryable failures. Writes are never retried
here: a write that times out is an unknown outcome, resolved by reconciliation.

Breaker: CLOSED → (OSTIUM_BREAKER_THRESHOLD consecutive infrastructure failures) → OPEN for
OSTIUM_BREAKER_COOLDOWN seconds → HALF_OPEN (one probe allowed) → CLOSED on success / OPEN
on failure. `breaker_state(network)` is what the control panel shows.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from providers import resilience
from providers.resilience import CLOSED, HALF_OPEN, OPEN  # noqa: F401 (re-exported)

PREFIX = "ostium"


def breaker_state(network: str) -> dict:
    """{"state", "failures", "opened_at", "retry_at"} for `network`."""
    return resilience.breaker_state(PREFIX, network, cooldown=settings.OSTIUM_BREAKER_COOLDOWN)


def breaker_allow(network: str) -> bool:
    """May a call go out now? OPEN: no. HALF_OPEN: one caller at a time (the probe)."""
    return resilience.breaker_allow(PREFIX, network, cooldown=settings.OSTIUM_BREAKER_COOLDOWN)


def breaker_record(network: str, *, ok: bool) -> None:
    resilience.breaker_record(PREFIX, network, ok=ok, threshold=settings.OSTIUM_BREAKER_THRESHOLD)


def breaker_reset(network: str) -> None:
    breaker_record(network, ok=True)


def guarded_read(network: str, fn: Callable, *, during: str):
    """A read through the network's breaker with bounded retries; failures as VenueException
    (normalised by `providers.ostium.errors`), infrastructure failures counted by the breaker."""
    from providers.interface import ErrorCode, VenueException
    from providers.ostium import errors as E

    if not breaker_allow(network):
        raise VenueException(E.error(ErrorCode.CIRCUIT_OPEN, f"Ostium {network} circuit open", retryable=True))
    try:
        value = retry_read(fn, is_retryable=lambda exc: E.error_from_exception(exc).retryable)
    except VenueException:
        raise
    except Exception as exc:
        error = E.error_from_exception(exc, during=during)
        if error.code in E.INFRA_CODES:
            breaker_record(network, ok=False)
        raise VenueException(error) from None
    breaker_record(network, ok=True)
    return value


def retry_read(fn: Callable, *, is_retryable: Callable[[BaseException], bool], attempts: int | None = None):
    """Call `fn()`; on a retryable failure try again (at most `attempts` more times, default
    OSTIUM_READ_RETRIES) after a full-jitter backoff (base 0.2 s, cap 2 s)."""
    attempts = settings.OSTIUM_READ_RETRIES if attempts is None else attempts
    return resilience.retry_read(fn, is_retryable=is_retryable, attempts=attempts)
