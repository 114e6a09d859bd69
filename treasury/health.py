"""The treasury's lines on the control panel (registered with
`trading.admin_panel.health.health_provider_register`): each venue's sync heartbeat, stale
balances (red: spending them is refused), delayed liquidity actions and unacknowledged drift."""

from __future__ import annotations

from django.db.models import Max, Q
from django.utils import timezone

from trading.admin_panel.formatting import number, plural
from trading.admin_panel.health import DOWN, OK, UNKNOWN, WARN, HealthItem
from treasury.models import InventoryBalance, LiquidityAction
from treasury.selectors import inventory_rows, sync_rows

STATUS = {"ok": OK, "warn": WARN, "down": DOWN, "unknown": UNKNOWN}


def treasury_health() -> list[HealthItem]:
    now = timezone.now()
    items = []
    for row in sync_rows(now=now):
        s = row["sync"]
        value = plural(row["assets"], "asset") if s and s.last_success_at else "never synced"
        detail = row["error"] or ""
        if s and s.last_error_code == "NOT_CONFIGURED":
            detail = f"not configured: {s.last_error}"
        items.append(
            HealthItem(
                name=f"Treasury sync {row['venue']}",
                status=STATUS[row["badge"]],
                value=value,
                detail=detail[:300],
                last_seen=s.last_success_at if s else None,
            )
        )
    stale = [r for r in inventory_rows(now=now) if r["status"] == "stale"]
    items.append(
        HealthItem(
            name="Treasury stale balances",
            status=DOWN if stale else OK,
            value=str(len(stale)),
            detail=", ".join(f"{r['venue']} {r['symbol'] or r['asset']}" for r in stale[:6])
            + (" — spending them is refused; refresh on the treasury page" if stale else ""),
        )
    )
    delayed = LiquidityAction.objects.filter(status=LiquidityAction.Status.DELAYED).count()
    items.append(HealthItem(name="Treasury delayed actions", status=DOWN if delayed else OK, value=str(delayed)))
    drifting = InventoryBalance.objects.filter(~Q(drift=0)).order_by("venue", "asset")
    drift = drifting.count()
    shown = ", ".join(f"{b.venue} {b.symbol or b.asset} {number(b.drift)} short" for b in drifting[:6])
    items.append(
        HealthItem(
            name="Treasury drift",
            status=WARN if drift else OK,
            value=str(drift),
            detail=f"credited less than expected: {shown} — acknowledge on the treasury page"
            if drift
            else "no balance credited less than expected",
        )
    )
    return items


def withdrawals_activity():
    """`treasury:withdrawals`' last side effect: a withdrawal or rebalance intent sent."""
    sent = LiquidityAction.objects.filter(
        kind__in=(LiquidityAction.Kind.WITHDRAWAL, LiquidityAction.Kind.REBALANCE), submitted_at__isnull=False
    )
    return sent.aggregate(at=Max("submitted_at"))["at"], "withdrawal or rebalance sent"
