"""Reads behind the treasury page, the staff API and the control panel lines."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from config.clock import seconds_since
from treasury.models import InventoryBalance, InventorySync, LiquidityAction, Venue

BADGE = {"ok": "ok", "drift": "warn", "stale": "down"}


def inventory_rows(*, venue: str | None = None, now=None) -> list[dict]:
    """Every balance with what a consumer may spend, its sync age and its effective status."""
    now = now or timezone.now()
    qs = InventoryBalance.objects.order_by("venue", "account", "symbol", "asset")
    if venue:
        qs = qs.filter(venue=venue)
    rows = []
    for b in qs:
        status = b.effective_status(now)
        age = b.age_seconds(now)
        rows.append(
            {
                "balance": b,
                "id": b.pk,
                "venue": b.venue,
                "account": b.account,
                "asset": b.asset,
                "symbol": b.symbol,
                "decimals": b.decimals,
                "credited": b.credited,
                "reserved": b.reserved,
                "spendable": b.spendable if status != "stale" else None,
                "pending_in": b.pending_in,
                "pending_out": b.pending_out,
                "locked": b.locked,
                "drift": b.drift,
                "status": status,
                "stale_reason": b.why_stale(now) if status == "stale" else "",
                "synced_at": b.synced_at,
                "sync_age_seconds": None if age is None else round(age, 1),
                "sync_source": b.sync_source,
                "badge": BADGE[status],
            }
        )
    return rows


def sync_rows(*, now=None) -> list[dict]:
    """Each venue's sync heartbeat (every venue, synced or not)."""
    now = now or timezone.now()
    beats = {s.venue: s for s in InventorySync.objects.all()}
    rows = []
    for venue in Venue.values:
        s = beats.get(venue)
        age = seconds_since(s.last_success_at, now) if s else None
        if s is None or s.last_error_code == "NOT_CONFIGURED":
            badge = "unknown"
        elif s.last_error_code or age is None or age > settings.INVENTORY_MAX_AGE_SECONDS:
            badge = "down"  # the last run failed, or too long ago: its balances are stale
        else:
            badge = "ok"
        rows.append(
            {
                "venue": venue,
                "sync": s,
                "age_seconds": None if age is None else round(age, 1),
                "badge": badge,
                "assets": s.assets if s else 0,
                "error": f"{s.last_error_code}: {s.last_error}" if s and s.last_error_code else "",
                "notes": s.notes if s else "",
            }
        )
    return rows


def pipeline(*, limit: int = 100, include_closed: bool = False):
    """Liquidity actions for the page: delayed ones on top, then open ones, newest first."""
    qs = (
        LiquidityAction.objects.all()
        if include_closed
        else LiquidityAction.objects.filter(status__in=LiquidityAction.OPEN)
    )
    return qs.annotate(
        delayed_first=Case(
            When(status=LiquidityAction.Status.DELAYED, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
    ).order_by("delayed_first", "-created_at")[:limit]


def recent_closed(*, limit: int = 20):
    return LiquidityAction.objects.filter(~Q(status__in=LiquidityAction.OPEN)).order_by("-updated_at")[:limit]
