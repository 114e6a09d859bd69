"""Operator actions on the reference prices: pause / resume a source, force a refresh, set a basis.

Each checks the actor's permission, changes the state and writes its ledger event in the same
transaction (`reference.source_paused`, `reference.source_resumed`, `reference.refreshed`,
`reference.basis_changed`). A forced refresh calls the source outside any transaction, then
records what it did.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from configuration.runtime import config_value
from providers.models import ReferenceBasis, ReferenceSource
from providers.reference.config import COINGECKO, KRAKEN, SOURCES
from trading.risk import ReferenceBand
from trading.services.ledger import event_record
from trading.services.operator import PERM_PAUSE, PERM_RISK_LIMIT, actor_label, permission_require


def _source_check(source: str) -> str:
    if source not in SOURCES:
        raise ApplicationError(
            f"Unknown reference source {source!r}.",
            code="VALIDATION_ERROR",
            details={"source": [f"Must be one of: {', '.join(SOURCES)}."]},
        )
    return source


def _reason_check(reason: str) -> str:
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED", details={"reason": ["Required."]})
    return reason.strip()


def _source_snapshot(row: ReferenceSource) -> dict:
    return {"paused": row.paused, "reason": row.reason, "changed_by": row.changed_by, "changed_at": row.changed_at}


@transaction.atomic
def _source_set(*, actor, source: str, reason: str, paused: bool) -> ReferenceSource:
    permission_require(actor=actor, perm=PERM_PAUSE)
    source, reason = _source_check(source), _reason_check(reason)
    row, _ = ReferenceSource.objects.select_for_update().get_or_create(name=source)
    before = _source_snapshot(row)
    row.paused, row.reason, row.changed_by, row.changed_at = paused, reason, actor_label(actor), timezone.now()
    row.save()
    event_record(
        topic="reference.source_paused" if paused else "reference.source_resumed",
        aggregate_type="reference_source",
        aggregate_id=source,
        correlation_id=f"reference-source-{source}",
        actor=row.changed_by,
        payload={"source": source, "reason": reason, "before": before, "after": _source_snapshot(row)},
    )
    return row


def reference_source_pause(*, actor, source: str, reason: str) -> ReferenceSource:
    """Stop using `source`: the policy treats it as unavailable, the Kraken stream drops its
    connection, the CoinGecko poll stops asking."""
    return _source_set(actor=actor, source=source, reason=reason, paused=True)


def reference_source_resume(*, actor, source: str, reason: str) -> ReferenceSource:
    return _source_set(actor=actor, source=source, reason=reason, paused=False)


def reference_refresh(*, actor, source: str | None = None) -> list[dict]:
    """Ask `source` (default: both) for fresh prices now: Kraken's REST Ticker, a CoinGecko poll.
    A paused source is refused (REFERENCE_SOURCE_PAUSED, 409); CoinGecko backing off after a
    429 is refused with REFERENCE_RATE_LIMITED (503) and the seconds left; when every source
    asked failed, REFERENCE_REFRESH_FAILED (503) with each one's error."""
    from providers.coingecko.poll import coingecko_poll
    from providers.kraken.refresh import kraken_refresh
    from providers.reference.service import samples_update

    permission_require(actor=actor, perm=PERM_PAUSE)
    sources = [_source_check(source)] if source else list(SOURCES)
    paused = set(ReferenceSource.objects.filter(name__in=sources, paused=True).values_list("name", flat=True))
    if paused and (source or paused == set(sources)):
        raise ApplicationError(
            f"Reference source {', '.join(sorted(paused))} is paused; resume it first.",
            code="REFERENCE_SOURCE_PAUSED",
            details={"source": sorted(paused)},
            status_code=409,
        )
    results = []
    for name in sources:
        if name in paused:
            results.append({"source": name, "ok": False, "skipped": "paused", "refreshed": []})
        elif name == KRAKEN:
            results.append(kraken_refresh())
        else:
            results.append(coingecko_poll(force=True))
    samples_update()
    with transaction.atomic():
        event_record(
            topic="reference.refreshed",
            aggregate_type="reference_source",
            aggregate_id=source or "all",
            correlation_id=f"reference-source-{source or 'all'}",
            actor=actor_label(actor),
            payload={"results": results},
        )
    limited = [r for r in results if r["source"] == COINGECKO and r.get("skipped") == "rate_limited"]
    if source == COINGECKO and limited:
        raise ApplicationError(
            "CoinGecko is backing off after a 429; try again later.",
            code="REFERENCE_RATE_LIMITED",
            details={"retry_after": round(limited[0].get("retry_after", 0), 1)},
            status_code=503,
        )
    if not any(r["ok"] for r in results):
        raise ApplicationError(
            "The refresh failed.", code="REFERENCE_REFRESH_FAILED", details={"results": results}, status_code=503
        )
    return results


@transaction.atomic
def reference_basis_set(
    *, actor, asset: str, equals: str, rate, source: str, sanity_coingecko_id: str = "", note: str = ""
) -> ReferenceBasis:
    """Create or change the basis of `asset` (1 asset = rate × equals), recording who and when;
    every rate derived through it afterwards records the new basis."""
    permission_require(actor=actor, perm=PERM_RISK_LIMIT)
    errors = {}
    asset, equals = (asset or "").strip().upper(), (equals or "").strip().upper()
    if not asset:
        errors["asset"] = ["Required."]
    if not equals or equals == asset:
        errors["equals"] = ["Required, and not the asset itself."]
    try:
        rate = Decimal(str(rate))
        if not rate.is_finite() or rate <= 0:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["rate"] = ["A positive number."]
    if not (source or "").strip():
        errors["source"] = ["Say where the rate comes from (e.g. assumed peg)."]
    if errors:
        raise ApplicationError("Invalid basis.", code="VALIDATION_ERROR", details=errors)
    row = ReferenceBasis.objects.select_for_update().filter(asset=asset).first()
    before = row.snapshot() if row else None
    row = row or ReferenceBasis(asset=asset)
    row.equals, row.rate, row.source = equals, rate, source.strip()
    row.sanity_coingecko_id, row.note = (sanity_coingecko_id or "").strip(), (note or "").strip()
    row.set_by, row.set_at = actor_label(actor), timezone.now()
    row.save()
    event_record(
        topic="reference.basis_changed",
        aggregate_type="reference_basis",
        aggregate_id=asset,
        correlation_id=f"reference-basis-{asset}",
        actor=row.set_by,
        payload={"asset": asset, "before": before, "after": row.snapshot(), "note": row.note},
    )
    return row


def reference_band_for(asset: str) -> ReferenceBand | None:
    """The reference check of a new order on `asset` (BTC-USD against BTC/USD), or None when
    RISK_REFERENCE_BAND_BPS is 0 or no reference pair covers the asset. The fair rate used is a
    pinned sample (purpose risk_check); an unusable one gives a band without a rate (refused)."""
    from providers.reference.service import ReferenceUnavailable, reference_pair_for, reference_rate_use

    band_bps = Decimal(str(config_value("RISK_REFERENCE_BAND_BPS")))
    if band_bps <= 0:
        return None
    pair = reference_pair_for(asset)
    if pair is None:
        return None
    try:
        used = reference_rate_use(pair, purpose="risk_check")
    except ReferenceUnavailable as exc:
        d = exc.details
        return ReferenceBand(pair, band_bps, None, d.get("sample_id"), d.get("outcome", ""), d.get("reason", ""))
    return ReferenceBand(pair, band_bps, used.rate, used.sample_id, used.outcome, used.reason)
