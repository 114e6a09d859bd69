"""Fair rates, samples and the reference state.

- `evaluate_pairs()`: the policy's outcome for each pair now (Redis quotes, pauses and bases from
  PostgreSQL). Read-only: what the control panel and the API show.
- `reference_rate_use(pair, purpose=...)`: the fair rate the desk acts on. It points to a stored
  sample (the pair's last one when the live evaluation still matches it, else a new one), and an
  unusable pair is refused with its outcome and reason (`ReferenceUnavailable`), never answered
  with an older price. Purposes "decision" and "risk_check" pin the sample (retention keeps it).
- `samples_update()`: store a sample for each pair whose rate moved REFERENCE_SAMPLE_BPS, whose
  outcome or source changed, or whose last sample is REFERENCE_SAMPLE_SECONDS old.
- `sample_at(pair, at)`: the sample in force at a time (what price existed at decision time).
- `reference_state()`: sources (health, counters, prices and ages) and pairs, for the staff API
  and the control panel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from providers.models import ReferenceBasis, ReferenceSample, ReferenceSource
from providers.reference import policy as p
from providers.reference.config import (
    COINGECKO,
    KRAKEN,
    SOURCES,
    coingecko_id,
    configured_pairs,
    pair_normalise,
    pair_reversed,
    pair_split,
    policy_from_settings,
)
from providers.reference.store import Quote, int_field, now_ms, quotes_get, states_get

logger = logging.getLogger("tradedesk.reference")

PIN_PURPOSES = ("decision", "risk_check")
UP, STALE_HEALTH, DOWN, RATE_LIMITED, PAUSED_HEALTH = "ok", "stale", "down", "rate_limited", "paused"


class ReferenceUnavailable(ApplicationError):
    """The pair's fair rate may not be used now (conflicted, unhealthy)."""

    status_code = 503
    code = "REFERENCE_UNAVAILABLE"


class ReferenceUnknownPair(ApplicationError):
    status_code = 404
    code = "REFERENCE_UNKNOWN_PAIR"


def ms_to_dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


# --- pairs and bases ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PairSpec:
    pair: str
    underlying: str  # the pair the sources price (itself unless a cross)
    bases: tuple[ReferenceBasis, ...] = ()
    error: str = ""

    @property
    def factor(self) -> Decimal:
        factor = Decimal(1)
        base, quote = pair_split(self.pair)
        for row in self.bases:
            factor = factor * row.rate if row.asset == base else factor / row.rate
        return factor


def bases_by_asset() -> dict[str, ReferenceBasis]:
    return {row.asset: row for row in ReferenceBasis.objects.all()}


def pair_spec(pair: str, bases: dict[str, ReferenceBasis], configured: list[str]) -> PairSpec:
    base, quote = pair_split(pair)
    used = tuple(bases[a] for a in (base, quote) if a in bases)
    if not used:
        return PairSpec(pair, pair)
    underlying = f"{bases[base].equals if base in bases else base}/{bases[quote].equals if quote in bases else quote}"
    if any(a in bases for a in pair_split(underlying)):
        return PairSpec(pair, underlying, used, f"{underlying} goes through a basis again (chained bases)")
    if underlying not in configured:
        return PairSpec(pair, underlying, used, f"cross {pair} needs {underlying} in REFERENCE_PAIRS")
    return PairSpec(pair, underlying, used)


def direct_pairs(bases: dict[str, ReferenceBasis] | None = None) -> list[str]:
    """The configured pairs the sources price themselves (no basis asset in them)."""
    bases = bases_by_asset() if bases is None else bases
    return [pair for pair in configured_pairs() if not any(a in bases for a in pair_split(pair))]


def sanity_pairs(bases: dict[str, ReferenceBasis]) -> dict[str, str]:
    """CoinGecko sanity prices of bases: "EURE/EUR" -> coin id."""
    return {f"{row.asset}/{row.equals}": row.sanity_coingecko_id for row in bases.values() if row.sanity_coingecko_id}


def paused_sources() -> set[str]:
    return set(ReferenceSource.objects.filter(paused=True).values_list("name", flat=True))


# --- evaluation ---------------------------------------------------------------------------------
def _basis(spec: PairSpec, quotes: dict, policy, now: int) -> p.Basis | None:
    if not spec.bases:
        return None
    checks = []
    for row in spec.bases:
        if row.sanity_coingecko_id:
            observed = quotes.get((COINGECKO, f"{row.asset}/{row.equals}"))
            checks.append(
                {"asset": row.asset, **p.basis_check(rate=row.rate, observed=observed, policy=policy, now_ms=now)}
            )
    check = None
    if checks:  # the worst of the checks decides
        rank = {p.CONFLICT: 0, p.UNAVAILABLE: 1, p.AGREES: 2}
        check = min(checks, key=lambda c: rank[c["status"]])
    return p.Basis(factor=spec.factor, rows=tuple(row.snapshot() for row in spec.bases), check=check)


def evaluate_pairs(pairs: list[str] | None = None, *, now: int | None = None) -> dict[str, p.Evaluation]:
    """The policy's outcome for each of `pairs` (default: every configured pair), now."""
    configured = configured_pairs()
    pairs = configured if pairs is None else pairs
    bases = bases_by_asset()
    specs = [pair_spec(pair, bases, configured) for pair in pairs]
    keys = [(source, spec.underlying) for spec in specs for source in SOURCES]
    keys += [(COINGECKO, sanity) for sanity in sanity_pairs(bases)]
    quotes = quotes_get(keys)
    paused = paused_sources()
    policy = policy_from_settings()
    now = now_ms() if now is None else now
    out = {}
    for spec in specs:
        if spec.error:
            out[spec.pair] = p.unhealthy(spec.pair, spec.error, now_ms=now, underlying=spec.underlying)
            continue
        kraken = p.leg(
            KRAKEN,
            quotes.get((KRAKEN, spec.underlying)),
            paused=KRAKEN in paused,
            configured=True,
            max_age_ms=policy.max_age_ms,
            now_ms=now,
        )
        coingecko = p.leg(
            COINGECKO,
            quotes.get((COINGECKO, spec.underlying)),
            paused=COINGECKO in paused,
            configured=bool(coingecko_id(pair_split(spec.underlying)[0])),
            max_age_ms=policy.fallback_max_age_ms,
            now_ms=now,
        )
        out[spec.pair] = p.evaluate(
            pair=spec.pair,
            kraken=kraken,
            coingecko=coingecko,
            policy=policy,
            now_ms=now,
            underlying=spec.underlying,
            basis=_basis(spec, quotes, policy, now),
        )
    return out


# --- samples ------------------------------------------------------------------------------------
def _leg_columns(leg: p.Leg) -> dict:
    q: Quote | None = leg.quote
    prefix = leg.source
    columns = {
        f"{prefix}_price": q.price if q else None,
        f"{prefix}_observed_at": ms_to_dt(q.observed_ms) if q else None,
        f"{prefix}_age_ms": leg.age_ms,
        f"{prefix}_status": leg.status,
    }
    if prefix == KRAKEN:
        columns.update(kraken_bid=q.bid if q else None, kraken_ask=q.ask if q else None)
    return columns


def sample_build(ev: p.Evaluation, *, taken_at: datetime) -> ReferenceSample:
    return ReferenceSample(
        pair=ev.pair,
        taken_at=taken_at,
        outcome=ev.outcome,
        rate=ev.rate,
        inverse=ev.inverse,
        source=ev.source,
        cross_check=ev.cross_check,
        divergence_bps=ev.divergence_bps,
        reason=ev.reason[:500],
        underlying=ev.underlying,
        basis=ev.basis.record() if ev.basis else None,
        **_leg_columns(ev.kraken),
        **_leg_columns(ev.coingecko),
    )


def _basis_key(basis: dict | None) -> tuple:
    if not basis:
        return ()
    check = (basis.get("check") or {}).get("status")
    return (tuple((r["id"], r["rate"], r["set_at"]) for r in basis["rows"]), check)


def sample_due(ev: p.Evaluation, last: ReferenceSample | None, *, now: datetime) -> bool:
    """Does `ev` need a sample of its own, or does the pair's `last` sample still stand for it?"""
    if last is None or last.outcome != ev.outcome or last.source != ev.source:
        return True
    if (now - last.taken_at).total_seconds() >= settings.REFERENCE_SAMPLE_SECONDS:
        return True
    if _basis_key(last.basis) != _basis_key(ev.basis.record() if ev.basis else None):
        return True
    if ev.rate is None or last.rate is None:
        return ev.rate != last.rate
    return p.bps_apart(last.rate, ev.rate) >= Decimal(str(settings.REFERENCE_SAMPLE_BPS))


_LAST_SQL = f"""
SELECT s.* FROM unnest(%s::text[]) AS wanted(pair)
CROSS JOIN LATERAL (
    SELECT * FROM {ReferenceSample._meta.db_table} WHERE pair = wanted.pair ORDER BY taken_at DESC, id DESC LIMIT 1
) AS s
"""


def samples_last(pairs: list[str]) -> dict[str, ReferenceSample]:
    """The newest sample of each pair (one index seek per pair, one round trip)."""
    return {row.pair: row for row in ReferenceSample.objects.raw(_LAST_SQL, [list(pairs)])}


def samples_update(*, now: datetime | None = None) -> list[ReferenceSample]:
    """Store a sample for every pair that needs one (see `sample_due`); returns the new rows."""
    now = now or timezone.now()
    evaluations = evaluate_pairs(now=int(now.timestamp() * 1000))
    last = samples_last(list(evaluations))
    due = [ev for pair, ev in evaluations.items() if sample_due(ev, last.get(pair), now=now)]
    if not due:
        return []
    for ev in due:
        before = last.get(ev.pair)
        if before is None or before.outcome != ev.outcome or before.source != ev.source:
            logger.info(
                "reference pair outcome",
                extra={
                    "pair": ev.pair,
                    "outcome": ev.outcome,
                    "source": ev.source,
                    "previous": before.outcome if before else None,
                    "reason": ev.reason,
                },
            )
    return ReferenceSample.objects.bulk_create([sample_build(ev, taken_at=now) for ev in due])


def sample_at(pair: str, at: datetime) -> ReferenceSample | None:
    """The sample of `pair` in force at `at`: the last one taken at or before it."""
    return ReferenceSample.objects.filter(pair=pair, taken_at__lte=at).order_by("-taken_at", "-id").first()


def samples_purge(*, now: datetime | None = None) -> int:
    """Delete samples older than REFERENCE_SAMPLE_RETENTION_DAYS that nothing pinned."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.REFERENCE_SAMPLE_RETENTION_DAYS)
    deleted, _ = ReferenceSample.objects.filter(taken_at__lt=cutoff, pinned_at__isnull=True).delete()
    return deleted


# --- use ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FairRate:
    """A fair rate the desk acts on, in the direction asked for, and the sample it points to."""

    pair: str  # as asked: BTC/EUR or EUR/BTC
    rate: Decimal  # quote per base of `pair`
    inverse: Decimal
    outcome: str  # ok | fallback
    source: str  # kraken | coingecko
    sample_id: int
    taken_at: datetime  # the sample's time
    age_ms: int | None  # age of the source price when it was used
    reason: str = ""
    basis: dict | None = None

    @property
    def fallback(self) -> str:
        """ "coingecko" when the rate is CoinGecko's fallback, else ""."""
        return self.source if self.outcome == p.FALLBACK else ""

    def record(self) -> dict:
        """What a decision or a check stores about the rate it used."""
        return {
            "pair": self.pair,
            "rate": format(self.rate.normalize(), "f"),
            "outcome": self.outcome,
            "source": self.source,
            "fallback": self.fallback,
            "sample_id": self.sample_id,
            "age_ms": self.age_ms,
        }


def _resolve(pair: str) -> tuple[str, bool]:
    """(the configured pair, whether `pair` is its reverse)."""
    try:
        asked = pair_normalise(pair)
    except ValueError as exc:
        raise ReferenceUnknownPair(str(exc), details={"pair": pair}) from exc
    configured = configured_pairs()
    if asked in configured:
        return asked, False
    if pair_reversed(asked) in configured:
        return pair_reversed(asked), True
    raise ReferenceUnknownPair(
        f"No reference price for {asked}.", details={"pair": asked, "configured": ", ".join(configured)}
    )


def reference_pair_for(symbol: str) -> str | None:
    """The reference pair of a venue symbol ("BTC-USD" -> "BTC/USD"), when one is configured in
    either direction; None otherwise."""
    try:
        _resolve(symbol)
    except ReferenceUnknownPair:
        return None
    return pair_normalise(symbol)


def reference_fair_rate(pair: str) -> p.Evaluation:
    """The live evaluation of `pair` (either direction is accepted; the evaluation is of the
    configured direction). For display: nothing is stored."""
    configured, _ = _resolve(pair)
    return evaluate_pairs([configured])[configured]


def reference_rate_use(pair: str, *, purpose: str) -> FairRate:
    """The fair rate of `pair` to act on now, pointing to a stored sample; raises
    `ReferenceUnavailable` (REFERENCE_CONFLICTED / REFERENCE_UNHEALTHY, with the reason and the
    sample) when the pair may not be used, `ReferenceUnknownPair` when it is not configured."""
    configured, flipped = _resolve(pair)
    ev = evaluate_pairs([configured])[configured]
    now = timezone.now()
    last = samples_last([configured]).get(configured)
    sample = last if not sample_due(ev, last, now=now) else sample_build(ev, taken_at=now)
    pin = purpose in PIN_PURPOSES and sample.pinned_at is None
    if sample.pk is None or pin:  # nothing to write (the common case): no transaction either
        with transaction.atomic():  # the refusal below points to its sample too
            if sample.pk is None:
                sample.save()
            if pin:
                ReferenceSample.objects.filter(pk=sample.pk, pinned_at__isnull=True).update(
                    pinned_at=now, pinned_for=purpose
                )
    asked = pair_reversed(configured) if flipped else configured
    if not ev.usable:
        raise ReferenceUnavailable(
            f"No usable reference price for {asked}: {ev.outcome} ({ev.reason}).",
            code=f"REFERENCE_{ev.outcome.upper()}",
            details={"pair": asked, "outcome": ev.outcome, "reason": ev.reason, "sample_id": sample.pk},
        )
    rate, inverse = (sample.inverse, sample.rate) if flipped else (sample.rate, sample.inverse)
    return FairRate(
        pair=asked,
        rate=rate,
        inverse=inverse,
        outcome=sample.outcome,
        source=sample.source,
        sample_id=sample.pk,
        taken_at=sample.taken_at,
        age_ms=ev.age_ms,
        reason=sample.reason,
        basis=sample.basis,
    )


# --- state (API, control panel) -----------------------------------------------------------------
def _symbol_health(leg_status: str, source_health: str) -> str:
    if source_health in (PAUSED_HEALTH, DOWN) and leg_status != p.FRESH:
        return source_health
    return {p.FRESH: UP, p.STALE: STALE_HEALTH, p.MISSING: DOWN}.get(leg_status, DOWN)


def source_health(name: str, state: dict, *, paused: bool, symbols_fresh: bool, now: int) -> tuple[str, str]:
    """(health, why) of a source from its Redis state."""
    if paused:
        return PAUSED_HEALTH, "paused by an operator"
    if name == KRAKEN:
        if state.get("connected") != "1":
            waiting = state.get("waiting")
            return DOWN, f"not connected: waiting for its address ({waiting})" if waiting else "not connected"
        last_frame = int_field(state, "last_frame_ms")
        idle = settings.KRAKEN_IDLE_TIMEOUT_SECONDS * 1000 + 2000
        if last_frame is None or now - last_frame > idle:
            return DOWN, "no frame from the stream (is the feeds process running?)"
    else:
        backoff = int_field(state, "backoff_until_ms") or 0
        if state.get("last_failure") == RATE_LIMITED and backoff > now:
            return RATE_LIMITED, f"backing off for {(backoff - now) / 1000:.0f} s after 429"
        if state.get("consecutive_failures") not in (None, "", "0"):
            return DOWN, f"last poll failed ({state.get('consecutive_failures')} in a row)"
        if not state.get("last_success_ms"):
            return DOWN, "never polled"
    if not symbols_fresh:
        return STALE_HEALTH, "some prices are stale"
    return UP, ""


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _quote_view(pair: str, quote: Quote | None, *, max_age_ms: int, now: int) -> dict:
    age = quote.age_ms(now) if quote else None
    status = p.MISSING if quote is None else p.FRESH if age <= max_age_ms else p.STALE
    return {
        "pair": pair,
        "price": _dec(quote.price) if quote else None,
        "bid": _dec(quote.bid) if quote else None,
        "ask": _dec(quote.ask) if quote else None,
        "observed_at": ms_to_dt(quote.observed_ms) if quote else None,
        "received_at": ms_to_dt(quote.received_ms) if quote else None,
        "age_ms": age,
        "via": quote.via if quote else "",
        "status": status,
    }


def evaluation_view(ev: p.Evaluation, last: ReferenceSample | None = None) -> dict:
    def leg_view(leg: p.Leg) -> dict:
        q = leg.quote
        return {"status": leg.status, "price": _dec(q.price) if q else None, "age_ms": leg.age_ms}

    return {
        "pair": ev.pair,
        "outcome": ev.outcome,
        "usable": ev.usable,
        "rate": _dec(ev.rate),
        "inverse": _dec(ev.inverse),
        "source": ev.source,
        "fallback": ev.source if ev.fallback else "",
        "cross_check": ev.cross_check,
        "divergence_bps": _dec(ev.divergence_bps),
        "age_ms": ev.age_ms,
        "reason": ev.reason,
        "underlying": ev.underlying,
        "basis": ev.basis.record() if ev.basis else None,
        "kraken": leg_view(ev.kraken),
        "coingecko": leg_view(ev.coingecko),
        "last_sample": {"id": last.pk, "taken_at": last.taken_at, "outcome": last.outcome} if last else None,
    }


def reference_state(*, now: int | None = None) -> dict:
    """Sources and pairs as the staff API and the control panel show them."""
    now = now_ms() if now is None else now
    policy = policy_from_settings()
    bases = bases_by_asset()
    direct = direct_pairs(bases)
    evaluations = evaluate_pairs(now=now)
    last = samples_last(list(evaluations))
    states = states_get(SOURCES)
    rows = {row.name: row for row in ReferenceSource.objects.all()}
    source_pairs = {KRAKEN: direct, COINGECKO: [x for x in direct if coingecko_id(pair_split(x)[0])]}
    source_pairs[COINGECKO] += list(sanity_pairs(bases))
    quotes = quotes_get([(s, x) for s, pairs in source_pairs.items() for x in pairs])
    sources = []
    for name in SOURCES:
        state, row = states[name], rows.get(name)
        max_age = policy.max_age_ms if name == KRAKEN else policy.fallback_max_age_ms
        symbols = [_quote_view(x, quotes.get((name, x)), max_age_ms=max_age, now=now) for x in source_pairs[name]]
        paused = bool(row and row.paused)
        health, why = source_health(
            name, state, paused=paused, symbols_fresh=all(s["status"] == p.FRESH for s in symbols), now=now
        )
        for s in symbols:
            s["health"] = _symbol_health(s.pop("status"), health)
        sources.append(
            {
                "name": name,
                "health": health,
                "health_reason": why,
                "paused": paused,
                "pause_reason": row.reason if row else "",
                "changed_by": row.changed_by if row else "",
                "changed_at": row.changed_at if row else None,
                "connected": state.get("connected") == "1" if name == KRAKEN else None,
                "last_frame_at": ms_to_dt(int_field(state, "last_frame_ms")),
                "last_success_at": ms_to_dt(int_field(state, "last_success_ms")),
                "backoff_until": ms_to_dt(int_field(state, "backoff_until_ms")),
                "last_error": state.get("last_error", ""),
                "last_error_at": ms_to_dt(int_field(state, "last_error_ms")),
                "errors": state["errors"],
                "reconnects": state["reconnects"],
                "invalid_messages": state["invalid_messages"],
                "rate_limited": state["rate_limited"],
                "symbols": symbols,
            }
        )
    return {
        "now": ms_to_dt(now),
        "policy": {
            "max_age_ms": policy.max_age_ms,
            "fallback_max_age_ms": policy.fallback_max_age_ms,
            "fallback_enabled": policy.fallback_enabled,
            "conflict_bps": _dec(policy.conflict_bps),
            "basis_tolerance_bps": _dec(policy.basis_tolerance_bps),
            "sample_bps": str(settings.REFERENCE_SAMPLE_BPS),
            "sample_seconds": settings.REFERENCE_SAMPLE_SECONDS,
        },
        "sources": sources,
        "pairs": [evaluation_view(ev, last.get(pair)) for pair, ev in evaluations.items()],
    }
