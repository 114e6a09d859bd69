"""The loop's runtime settings (one `SolverConfig` row): the pair filter, the edge threshold, the
spread, the notional caps and the price age limit. Every change records who, when and why and
writes `near_intents.settings_changed` with the values before and after."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from solver.models import SolverConfig
from trading.services.ledger import event_record

EDITABLE = ("pairs", "threshold_pct", "spread_pct", "max_notional_quote", "max_notional_hour", "price_max_age_ms")


def defaults() -> dict:
    return {
        "pairs": [pair_normalise(p) for p in settings.NEAR_SOLVER_PAIRS],
        "threshold_pct": settings.NEAR_SOLVER_THRESHOLD_PCT,
        "spread_pct": settings.NEAR_SOLVER_SPREAD_PCT,
        "max_notional_quote": settings.NEAR_SOLVER_MAX_NOTIONAL_QUOTE,
        "max_notional_hour": settings.NEAR_SOLVER_MAX_NOTIONAL_HOUR,
        "price_max_age_ms": settings.NEAR_SOLVER_PRICE_MAX_AGE_MS,
    }


def config_get() -> SolverConfig:
    row = SolverConfig.objects.filter(pk=1).first()
    if row is None:
        row, _ = SolverConfig.objects.get_or_create(pk=1, defaults=defaults())
    return row


_cached: tuple = (None, 0.0)
CACHE_SECONDS = 1.0


def config_cached(max_age: float = CACHE_SECONDS) -> SolverConfig:
    """The settings as read at most `max_age` seconds ago (a change made in this process is seen at once)."""
    global _cached
    row, at = _cached
    if row is None or time.monotonic() - at > max_age:
        row = config_get()
        _cached = (row, time.monotonic())
    return row


def config_forget() -> None:
    global _cached
    _cached = (None, 0.0)


def pair_normalise(pair: str) -> str:
    text = str(pair or "").strip().upper().replace("-", "/")
    base, sep, quote = text.partition("/")
    if not sep or not base or not quote or "/" in quote or len(text) > 40:
        raise ApplicationError(
            f"{pair!r} is not a pair (BASE/QUOTE).", code="INVALID_PAIR", details={"pairs": [f"{pair!r}: BASE/QUOTE"]}
        )
    return f"{base}/{quote}"


def _pairs_check(pairs: list[str], already: list[str]) -> None:
    """A pair newly added to the filter must be one the loop can quote: both symbols NEAR Intents
    tokens the desk knows (synced balances or the well-known list), and a reference price for it
    (REFERENCE_PAIRS, either direction). Else every quote of it would be filtered or skipped, and
    a typo (BTC/EUR for BTC/EURE) would silently stop the quoting."""
    from providers.near_intents.tokens import KNOWN
    from providers.reference.service import reference_pair_for
    from treasury.models import InventoryBalance, Venue

    new = [p for p in pairs if p not in already]
    if not new:
        return
    synced = InventoryBalance.objects.filter(venue=Venue.NEAR_INTENTS).exclude(symbol="")
    symbols = {t.symbol.upper() for t in KNOWN.values()} | {s.upper() for s in synced.values_list("symbol", flat=True)}
    problems = {}
    for pair in new:
        unknown = [s for s in pair.split("/") if s not in symbols]
        if unknown:
            problems[pair] = f"{', '.join(unknown)}: not a NEAR Intents token ({', '.join(sorted(symbols))})"
        elif reference_pair_for(pair) is None:
            problems[pair] = "no reference price: add it to REFERENCE_PAIRS first"
    if problems:
        raise ApplicationError(
            "The loop cannot quote " + "; ".join(f"{p} ({why})" for p, why in problems.items()) + ".",
            code="INVALID_PAIR",
            details={"pairs": [f"{p}: {why}" for p, why in problems.items()]},
        )


def _snapshot(row: SolverConfig) -> dict:
    def text(value):
        return format(Decimal(value).normalize(), "f") if isinstance(value, Decimal) else value

    return {name: text(getattr(row, name)) for name in EDITABLE}


def _clean(name: str, value):
    if name == "pairs":
        if not isinstance(value, list):
            raise ApplicationError("pairs must be a list.", code="VALIDATION_ERROR", details={"pairs": ["A list."]})
        return list(dict.fromkeys(pair_normalise(p) for p in value))
    if name == "price_max_age_ms":
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number <= 0:
            raise ApplicationError(
                "price_max_age_ms must be a positive integer.", code="VALIDATION_ERROR", details={name: ["> 0"]}
            )
        return number
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = Decimal(-1)
    if not number.is_finite() or number < 0 or (name.startswith("max_") and number == 0) or number >= 10**12:
        raise ApplicationError(
            f"{name} must be a non-negative number.", code="VALIDATION_ERROR", details={name: ["≥ 0"]}
        )
    if name.endswith("_pct") and number >= 100:
        raise ApplicationError(f"{name} must be below 100.", code="VALIDATION_ERROR", details={name: ["< 100"]})
    return number


@transaction.atomic
def config_set(*, actor: str, reason: str, **changes) -> SolverConfig:
    """Change settings (any of EDITABLE); REASON_REQUIRED without a reason."""
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(f"Unknown settings: {', '.join(sorted(unknown))}.", code="VALIDATION_ERROR")
    config_get()
    row = SolverConfig.objects.select_for_update().get(pk=1)
    before = _snapshot(row)
    for name, value in changes.items():
        setattr(row, name, _clean(name, value))
    if "pairs" in changes:
        _pairs_check(row.pairs, before["pairs"])
    row.changed_by, row.changed_at, row.reason = actor, timezone.now(), reason.strip()[:300]
    row.save()
    transaction.on_commit(config_forget)
    event_record(
        topic="near_intents.settings_changed",
        aggregate_type="solver_config",
        aggregate_id="1",
        correlation_id="solver-config",
        actor=actor,
        payload={"before": before, "after": _snapshot(row), "reason": row.reason},
    )
    return row


def pair_filter_reset(*, actor: str, reason: str) -> SolverConfig:
    return config_set(actor=actor, reason=reason, pairs=defaults()["pairs"])
