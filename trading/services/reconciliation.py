"""Position reconciliation against a venue (Beat: `venue-reconcile`).

Compares our open trades of a venue with the positions the venue reports for every account
we trade (the desk's own account and delegating wallets). Differences become
`ReconciliationBreak` rows (one open row per difference) with a `reconciliation.break_detected`
event; an operator resolves them in the admin (`reconciliation_break_resolve`): adopt the
venue's view (size), close ours (the venue has no such position), or ignore — each audited
with `reconciliation.break_resolved`. Commands with an unknown outcome are resolved
automatically by `execution_reconcile`; this job is about positions.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from providers.interface import Fill as VenueFill
from providers.interface import VenueException
from trading.models import Order, ReconciliationBreak, Trade, venue_ref
from trading.services.closes import trade_close_record
from trading.services.execution import venue_account
from trading.services.ledger import event_record

logger = logging.getLogger("tradedesk.reconciliation")
K, S = ReconciliationBreak.Kind, ReconciliationBreak.Status
SIZE_TOLERANCE = Decimal("0.000000000001")


def _event(brk: ReconciliationBreak, topic: str, *, actor: str, payload: dict) -> None:
    event_record(
        topic=topic,
        aggregate_type="reconciliation_break",
        aggregate_id=brk.pk,
        correlation_id=f"reconciliation-break-{brk.pk}",
        actor=actor,
        payload={
            "break_id": brk.pk,
            "venue": brk.venue,
            "kind": brk.kind,
            "account": brk.account,
            "pair_id": venue_ref(brk.pair_id),
            "trade_index": venue_ref(brk.trade_index),
            "trade_id": brk.trade_id,
            **payload,
        },
    )


@transaction.atomic
def _break_record(*, venue, kind, account, pair_id, trade_index, trade=None, details=None):
    brk, created = ReconciliationBreak.objects.get_or_create(
        venue=venue,
        kind=kind,
        account=account,
        pair_id=pair_id,
        trade_index=trade_index,
        status=S.OPEN,
        defaults={"trade": trade, "details": details or {}},
    )
    if created:
        _event(brk, "reconciliation.break_detected", actor="system:reconciliation", payload={"details": details or {}})
    return brk if created else None


def _accounts(venue: str, grace: timedelta) -> dict[str, list[Trade]]:
    """Our open trades of `venue` (older than the grace period, without a close in flight), by account."""
    cutoff = timezone.now() - grace
    busy = Order.objects.filter(
        provider=venue, status__in=[Order.Status.SUBMITTING, Order.Status.SUBMITTED, Order.Status.UNKNOWN]
    ).exclude(trade=None)
    trades = (
        Trade.objects.filter(provider=venue, status=Trade.Status.OPEN, opened_at__lte=cutoff)
        .exclude(pk__in=busy.values("trade_id"))
        .order_by("id")
    )
    out: dict[str, list[Trade]] = {}
    for trade in trades:
        opener = trade.orders.order_by("id").first()
        account = venue_account(opener) if opener else f"user:{trade.user_id}"
        out.setdefault(account, []).append(trade)
    return out


def venue_reconcile(
    *, venue: str = "ostium", grace_seconds: float = 60.0, extra_accounts=()
) -> list[ReconciliationBreak]:
    """One reconciliation round for `venue`; returns the breaks newly detected."""
    from providers.registry import get_venue

    adapter = get_venue(venue)
    by_account = _accounts(venue, timedelta(seconds=grace_seconds))
    for account in extra_accounts:
        by_account.setdefault(account, [])
    found = []
    seen_venue_accounts: set[str] = set()
    for account, trades in by_account.items():
        try:
            positions = adapter.get_positions(account=account)
        except VenueException as exc:
            logger.warning("reconciliation: positions unavailable", extra={"venue": venue, "code": str(exc.error.code)})
            continue
        venue_key = positions[0].account.lower() if positions else account.lower()
        theirs = {(p.pair_id, p.trade_index): p for p in positions}
        ours = {(t.pair_id, t.trade_index): t for t in trades}
        for key, trade in ours.items():
            position = theirs.get(key)
            if position is None:
                brk = _break_record(
                    venue=venue,
                    kind=K.MISSING_AT_VENUE,
                    account=account,
                    pair_id=key[0],
                    trade_index=key[1],
                    trade=trade,
                    details={"our_size": str(trade.size)},
                )
            elif abs(position.size - trade.size) > SIZE_TOLERANCE:
                brk = _break_record(
                    venue=venue,
                    kind=K.SIZE_MISMATCH,
                    account=account,
                    pair_id=key[0],
                    trade_index=key[1],
                    trade=trade,
                    details={"our_size": str(trade.size), "venue_size": str(position.size)},
                )
            else:
                brk = None
            if brk:
                found.append(brk)
        if venue_key in seen_venue_accounts:
            continue
        seen_venue_accounts.add(venue_key)
        known = set(
            Trade.objects.filter(provider=venue, status=Trade.Status.OPEN).values_list("pair_id", "trade_index")
        )
        for key, position in theirs.items():
            if key not in ours and key not in known:
                brk = _break_record(
                    venue=venue,
                    kind=K.UNKNOWN_AT_VENUE,
                    account=position.account,
                    pair_id=key[0],
                    trade_index=key[1],
                    details={
                        "symbol": position.symbol,
                        "side": str(position.side),
                        "venue_size": str(position.size),
                        "collateral": str(position.collateral),
                        "entry_price": str(position.entry_price),
                    },
                )
                if brk:
                    found.append(brk)
    return found


@transaction.atomic
def reconciliation_break_resolve(*, break_id: int, action: str, actor: str, note: str = "") -> ReconciliationBreak:
    """adopt: take the venue's view (size) onto our trade, or accept an unknown venue position
    as managed outside Tradedesk; close: close our trade (the venue has none), at its last price,
    recorded as a FILLED close order with origin `reconciliation` (`trading.services.closes`);
    ignore: no change. Audited with `reconciliation.break_resolved`."""
    brk = ReconciliationBreak.objects.select_for_update().get(pk=break_id)
    if brk.status != S.OPEN:
        raise ApplicationError("This break is already resolved.", code="BREAK_RESOLVED", status_code=409)
    if not note.strip():
        raise ApplicationError("A note is required.", code="REASON_REQUIRED")
    payload: dict = {"action": action, "note": note}
    if action == "adopt":
        if brk.kind == K.SIZE_MISMATCH and brk.trade_id:
            trade = Trade.objects.select_for_update().get(pk=brk.trade_id)
            payload["size_before"] = trade.size
            trade.size = Decimal(brk.details["venue_size"])
            trade.save(update_fields=["size", "updated_at"])
            payload["size_after"] = trade.size
        elif brk.kind == K.MISSING_AT_VENUE:
            raise ApplicationError(
                "Nothing to adopt: the venue has no position; close or ignore.", code="INVALID_ACTION"
            )
        brk.status = S.ADOPTED
    elif action == "close":
        if brk.kind != K.MISSING_AT_VENUE or not brk.trade_id:
            raise ApplicationError("Only a trade missing at the venue can be closed here.", code="INVALID_ACTION")
        trade = Trade.objects.get(pk=brk.trade_id)
        order = trade_close_record(
            trade=trade,
            fill=VenueFill(
                price=trade.current_price,
                size=Decimal(0),
                notional=Decimal(0),
                fee=Decimal(0),
                slippage=Decimal(0),
                price_source="reconciliation",
                timestamp=timezone.now(),
            ),
            origin=Order.Origin.RECONCILIATION,
            reason=Trade.CloseReason.VENUE,
            dedupe_key=f"{trade.provider}:reconciliation:{brk.pk}",
            actor=actor,
            source="reconciliation",
            details={"break_id": brk.pk, "note": note.strip()[:500]},
        )
        # None: the trade was closed meanwhile (e.g. the venue's own close arrived); nothing to do
        payload["realized_pnl"] = order.realized_pnl if order else None
        payload["order_id"] = order.pk if order else None
        brk.status = S.CLOSED
    elif action == "ignore":
        brk.status = S.IGNORED
    else:
        raise ApplicationError(f"Unknown action {action!r}.", code="INVALID_ACTION")
    brk.resolved_by, brk.resolved_at, brk.note = actor, timezone.now(), note.strip()[:500]
    brk.save()
    _event(brk, "reconciliation.break_resolved", actor=actor, payload=payload)
    return brk
