"""Timed control and trading states return to where they were when their expiry passes.

`control_expiry_run()` is a Beat job (`config/schedule.py`: `control-expiry`). Until it runs,
the gates already read an expired state conservatively (`TradingState.effective_state`,
`control_gate`); the job makes the change durable and writes its event.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from trading.models import ControlState, TradingState
from trading.services.control import _log_change, _snapshot
from trading.services.ledger import event_record

EXPIRY_ACTOR = "system:expiry"


def _control_due(now) -> Q:
    """Control states with an end passed by `now`: a timed arming, or a timed pause still paused."""
    return Q(expires_at__lte=now) | Q(paused_until__lte=now, paused=True)


@transaction.atomic
def trading_state_expire(*, pk: int, now=None) -> TradingState | None:
    """Return one expired trading state to its previous state (ACTIVE when none was recorded)."""
    now = now or timezone.now()
    row = TradingState.objects.select_for_update().filter(pk=pk, expires_at__lte=now).first()
    if row is None:
        return None
    expired, restored = row.state, row.previous_state or TradingState.State.ACTIVE
    expired_at = row.expires_at
    row.previous_state, row.state = expired, restored
    row.reason = f"{expired} expired at {expired_at.isoformat()} (was: {row.reason})"[:2000]
    row.changed_by, row.changed_at, row.expires_at = EXPIRY_ACTOR, now, None
    row.save()
    event_record(
        topic="trading_state.expired",
        aggregate_type="trading_state",
        aggregate_id=f"{row.scope_type}:{row.scope_key}",
        correlation_id=f"trading-state-{row.scope_type}:{row.scope_key}",
        actor=EXPIRY_ACTOR,
        payload={
            "scope_type": row.scope_type,
            "scope_key": row.scope_key,
            "expired_state": expired,
            "state": restored,
            "expires_at": expired_at,
        },
    )
    return row


@transaction.atomic
def control_state_expire(*, pk: int, now=None) -> ControlState | None:
    """A timed pause lapses to running (`paused_until`); a timed arm lapses to disarmed
    (`expires_at`), paused or not. One event per lapse, the pause's first."""
    now = now or timezone.now()
    row = ControlState.objects.select_for_update().filter(_control_due(now), pk=pk).first()
    if row is None:
        return None
    lapses = []
    if row.paused and row.paused_until and row.paused_until <= now:
        lapses.append(("pause", row.paused_until, {"paused": False, "paused_until": None}))
    if row.expires_at and row.expires_at <= now:
        lapses.append(("arm", row.expires_at, {"armed": False, "expires_at": None}))
    for lapsed, at, changes in lapses:
        before = _snapshot(row)
        for name, value in changes.items():
            setattr(row, name, value)
        row.reason = f"timed {lapsed} expired at {at.isoformat()}"
        row.changed_by, row.changed_at = EXPIRY_ACTOR, now
        row.save()
        event_record(
            topic="control.expired",
            aggregate_type="control_state",
            aggregate_id=row.component,
            correlation_id=f"control-{row.component}",
            actor=EXPIRY_ACTOR,
            payload={"component": row.component, "lapsed": lapsed, "before": before, "after": _snapshot(row)},
        )
        component, reason = row.component, row.reason
        transaction.on_commit(lambda c=component, r=reason: _log_change("control.expired", c, EXPIRY_ACTOR, r))
    return row


def control_expiry_run(*, now=None) -> dict[str, int]:
    """Beat job: expire every due trading state and control state (one transaction each)."""
    now = now or timezone.now()
    out = {"trading_states": 0, "control_states": 0}
    for pk in TradingState.objects.filter(expires_at__lte=now).values_list("pk", flat=True):
        out["trading_states"] += trading_state_expire(pk=pk, now=now) is not None
    for pk in ControlState.objects.filter(_control_due(now)).values_list("pk", flat=True):
        out["control_states"] += control_state_expire(pk=pk, now=now) is not None
    return out
