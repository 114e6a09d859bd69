"""The fair-rate policy, pure: no I/O, the quotes, pauses, basis and clock are passed in.

Per pair (its underlying sourced pair for a cross):
1. Kraken is primary. It is usable when not paused and its price is at most
   REFERENCE_MAX_AGE_MS old.
2. CoinGecko is usable when not paused and its price (by its own `last_updated_at`) is at most
   REFERENCE_FALLBACK_MAX_AGE_MS old.
3. Both usable: their distance in basis points of Kraken's price is the divergence; above
   REFERENCE_CONFLICT_BPS the pair is `conflicted` (unusable), else `ok` at Kraken's price
   (cross-check `agrees`).
4. Only Kraken usable: `ok` at Kraken's price (cross-check `unavailable`).
5. Only CoinGecko usable: `fallback` at CoinGecko's price, unless REFERENCE_FALLBACK_ENABLED is
   false (then `unhealthy`).
6. Neither: `unhealthy` (unusable).
7. A cross (BTC/EURE) multiplies the underlying rate (BTC/EUR) by its basis (EURE = 1 EUR). A basis
   whose sanity price is fresh and further than REFERENCE_BASIS_TOLERANCE_BPS from it makes the
   cross `conflicted`.
An unusable pair has no rate: a consumer is refused with the outcome and the reason, never given
an older price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from providers.reference.config import COINGECKO, KRAKEN, Policy
from providers.reference.store import Quote

OK, FALLBACK, CONFLICTED, UNHEALTHY = "ok", "fallback", "conflicted", "unhealthy"
USABLE = (OK, FALLBACK)
FRESH, STALE, MISSING, PAUSED, NOT_CONFIGURED = "fresh", "stale", "missing", "paused", "not_configured"
AGREES, CONFLICT, UNAVAILABLE = "agrees", "conflict", "unavailable"
BPS = Decimal(10_000)
QUANTUM = Decimal("1e-18")


def quantize(value: Decimal) -> Decimal:
    """Rates are kept to 18 decimals (the sample columns)."""
    return value.quantize(QUANTUM)


def bps_apart(a: Decimal, b: Decimal) -> Decimal:
    """|a - b| in basis points of a."""
    return (abs(a - b) / a * BPS).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class Leg:
    """One source's view of the (underlying) pair at evaluation time."""

    source: str
    status: str  # fresh | stale | missing | paused | not_configured
    quote: Quote | None = None
    age_ms: int | None = None

    @property
    def usable(self) -> bool:
        return self.status == FRESH

    def describe(self, max_age_ms: int) -> str:
        if self.status == STALE:
            return f"{self.source} stale ({self.age_ms / 1000:.1f} s > {max_age_ms / 1000:g} s)"
        return f"{self.source} {self.status.replace('_', ' ')}"


def leg(source: str, quote: Quote | None, *, paused: bool, configured: bool, max_age_ms: int, now_ms: int) -> Leg:
    if not configured:
        return Leg(source, NOT_CONFIGURED)
    if paused:
        return Leg(source, PAUSED, quote, None if quote is None else quote.age_ms(now_ms))
    if quote is None:
        return Leg(source, MISSING)
    age = quote.age_ms(now_ms)
    return Leg(source, FRESH if age <= max_age_ms else STALE, quote, age)


@dataclass(frozen=True)
class Basis:
    """How a cross is derived: rate(pair) = rate(underlying) × factor."""

    factor: Decimal
    rows: tuple[dict, ...]  # ReferenceBasis.snapshot() of each basis used
    check: dict | None = None  # {"status": agrees|conflict|unavailable, ...} of a sanity source

    def record(self) -> dict:
        return {"factor": format(self.factor.normalize(), "f"), "rows": list(self.rows), "check": self.check}


@dataclass(frozen=True)
class Evaluation:
    pair: str
    outcome: str
    rate: Decimal | None  # quote per base, None when unusable
    source: str  # kraken | coingecko | ""
    cross_check: str  # agrees | conflict | unavailable
    divergence_bps: Decimal | None
    reason: str
    kraken: Leg
    coingecko: Leg
    now_ms: int
    underlying: str = ""
    basis: Basis | None = None

    @property
    def usable(self) -> bool:
        return self.outcome in USABLE and self.rate is not None

    @property
    def fallback(self) -> bool:
        return self.outcome == FALLBACK

    @property
    def inverse(self) -> Decimal | None:
        return None if self.rate is None else quantize(1 / self.rate)

    @property
    def age_ms(self) -> int | None:
        """Age of the price the rate came from (None when unusable)."""
        used = {KRAKEN: self.kraken, COINGECKO: self.coingecko}.get(self.source)
        return used.age_ms if used else None


def unhealthy(pair: str, reason: str, *, now_ms: int, underlying: str = "") -> Evaluation:
    """A pair the policy cannot price at all (not configured, no basis...)."""
    return Evaluation(
        pair=pair,
        outcome=UNHEALTHY,
        rate=None,
        source="",
        cross_check=UNAVAILABLE,
        divergence_bps=None,
        reason=reason,
        kraken=Leg(KRAKEN, NOT_CONFIGURED),
        coingecko=Leg(COINGECKO, NOT_CONFIGURED),
        now_ms=now_ms,
        underlying=underlying,
    )


def evaluate(
    *,
    pair: str,
    kraken: Leg,
    coingecko: Leg,
    policy: Policy,
    now_ms: int,
    underlying: str = "",
    basis: Basis | None = None,
) -> Evaluation:
    """The policy's outcome for `pair` (see the module docstring)."""
    divergence = None
    cross_check = UNAVAILABLE
    if kraken.usable and coingecko.usable:
        divergence = bps_apart(kraken.quote.price, coingecko.quote.price)
        cross_check = CONFLICT if divergence > policy.conflict_bps else AGREES

    def result(outcome: str, source: str, reason: str) -> Evaluation:
        rate = None
        if outcome in USABLE:
            used = kraken if source == KRAKEN else coingecko
            rate = quantize(used.quote.price * (basis.factor if basis else 1))
        return Evaluation(
            pair=pair,
            outcome=outcome,
            rate=rate,
            source=source,
            cross_check=cross_check,
            divergence_bps=divergence,
            reason=reason,
            kraken=kraken,
            coingecko=coingecko,
            now_ms=now_ms,
            underlying=underlying or pair,
            basis=basis,
        )

    if cross_check == CONFLICT:
        return result(
            CONFLICTED,
            "",
            f"kraken {kraken.quote.price} and coingecko {coingecko.quote.price} are {divergence} bps apart"
            f" (> {policy.conflict_bps})",
        )
    if basis is not None and basis.check and basis.check.get("status") == CONFLICT:
        return result(CONFLICTED, "", f"basis check failed: {basis.check.get('reason', '')}")
    if kraken.usable:
        note = "" if coingecko.usable else f"not cross-checked: {coingecko.describe(policy.fallback_max_age_ms)}"
        return result(OK, KRAKEN, note)
    why = kraken.describe(policy.max_age_ms)
    if coingecko.usable:
        if not policy.fallback_enabled:
            return result(UNHEALTHY, "", f"{why}; fallback to coingecko is disabled")
        return result(FALLBACK, COINGECKO, f"fallback: coingecko ({why})")
    return result(UNHEALTHY, "", f"{why}; {coingecko.describe(policy.fallback_max_age_ms)}")


def basis_check(*, rate: Decimal, observed: Quote | None, policy: Policy, now_ms: int) -> dict:
    """Compare a basis rate with its sanity source's price (fresh by the fallback age)."""
    if observed is None:
        return {"status": UNAVAILABLE, "reason": "no sanity price yet"}
    age = observed.age_ms(now_ms)
    if age > policy.fallback_max_age_ms:
        return {"status": UNAVAILABLE, "reason": f"sanity price stale ({age / 1000:.1f} s)", "age_ms": age}
    deviation = bps_apart(rate, observed.price)
    status = CONFLICT if deviation > policy.basis_tolerance_bps else AGREES
    return {
        "status": status,
        "observed": str(observed.price),
        "deviation_bps": str(deviation),
        "age_ms": age,
        "reason": f"basis {rate.normalize():f} vs observed {observed.price} is {deviation} bps apart"
        f" ({'>' if status == CONFLICT else '<='} {policy.basis_tolerance_bps})",
    }
