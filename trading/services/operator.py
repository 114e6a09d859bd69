"""Operator actions with object-level permission checks.

Every door an operator uses (admin actions, the control panel, management commands) calls
these services with the acting `User`; the service checks the permission itself and raises
`ApplicationError(code="PERMISSION_DENIED", status_code=403)` when the actor lacks it, so a
forged request cannot get past a hidden button. Superusers hold every permission.

Roles (groups created by migration): `viewer` (view only), `operator` (arm/disarm, pause,
resume, drain, force-close), `risk_admin` (risk limits, trading states, halt everything).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.errors import ApplicationError
from trading.models import ControlState, Event, Order, Position, RiskLimit, Trade, TradingState
from trading.services import control
from trading.services.ledger import event_record

PERM_ARM = "trading.arm_controlstate"
PERM_PAUSE = "trading.pause_controlstate"
PERM_TRADING_STATE = "trading.change_tradingstate"
PERM_HALT_ALL = "trading.halt_all"
PERM_FORCE_CLOSE = "trading.force_close_position"
PERM_RISK_LIMIT = "trading.change_risklimit"

# action name -> (service, permission, takes expires_at)
CONTROL_ACTIONS = {
    "arm": (control.control_arm, PERM_ARM, True),
    "disarm": (control.control_disarm, PERM_ARM, False),
    "pause": (control.control_pause, PERM_PAUSE, True),
    "resume": (control.control_resume, PERM_PAUSE, False),
    "drain": (control.control_drain, PERM_PAUSE, False),
}
TRADING_STATE_ACTIONS = {
    "halt": TradingState.State.HALTED,
    "reduce_only": TradingState.State.REDUCE_ONLY,
    "activate": TradingState.State.ACTIVE,
}


def actor_label(user) -> str:
    """How an operator appears in `changed_by` and event `actor`: stable id plus a readable name."""
    return f"user:{user.pk}:{user.get_username()}"


def permission_require(*, actor, perm: str) -> None:
    if actor is None or not getattr(actor, "is_active", False) or not actor.has_perm(perm):
        raise ApplicationError(
            "You do not have permission to do this.",
            code="PERMISSION_DENIED",
            details={"permission": perm},
            status_code=403,
        )


def _future(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", code="EXPIRY_IN_PAST")
    return expires_at


def control_state_change(
    *, actor, component: str, action: str, reason: str, expires_at: datetime | None = None
) -> ControlState:
    """arm / disarm / pause / resume / drain one component, as `actor`."""
    if action not in CONTROL_ACTIONS:
        raise ApplicationError(f"Unknown control action {action!r}.", code="INVALID_ACTION")
    service, perm, timed = CONTROL_ACTIONS[action]
    permission_require(actor=actor, perm=perm)
    if not component.startswith("strategy:") and not ControlState.objects.filter(component=component).exists():
        raise ApplicationError(
            f"No component {component!r}.", code="UNKNOWN_COMPONENT", details={"component": component}, status_code=404
        )
    if expires_at is not None and not timed:
        raise ApplicationError(f"{action} takes no expiry.", code="EXPIRY_NOT_ALLOWED")
    kwargs = {"expires_at": _future(expires_at)} if timed else {}
    return service(component=component, actor=actor_label(actor), reason=reason, **kwargs)


def trading_state_change(
    *,
    actor,
    scope_type: str,
    scope_key: str = "",
    state: str,
    reason: str,
    expires_at: datetime | None = None,
) -> TradingState:
    """Set ACTIVE / REDUCE_ONLY / HALTED on a scope, as `actor` (optionally until `expires_at`)."""
    permission_require(actor=actor, perm=PERM_TRADING_STATE)
    return control.trading_state_set(
        scope_type=scope_type,
        scope_key=scope_key,
        state=state,
        actor=actor_label(actor),
        reason=reason,
        expires_at=_future(expires_at),
    )


@transaction.atomic
def desk_halt_all(*, actor, reason: str, expires_at: datetime | None = None) -> dict:
    """One click stops everything: the global trading state goes HALTED (until `expires_at`
    if given) and every component is disarmed (components stay disarmed after the expiry;
    re-arming is a deliberate act per component)."""
    permission_require(actor=actor, perm=PERM_HALT_ALL)
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    label = actor_label(actor)
    state = control.trading_state_set(
        scope_type=TradingState.Scope.GLOBAL,
        state=TradingState.State.HALTED,
        actor=label,
        reason=reason,
        expires_at=_future(expires_at),
    )
    disarmed, was_armed, armed_until = [], [], {}
    now = timezone.now()
    for row in ControlState.objects.order_by("component"):
        control.control_disarm(component=row.component, actor=label, reason=reason)
        disarmed.append(row.component)
        if row.armed_at(now):  # an arming already run out is not given back
            was_armed.append(row.component)
            if row.expires_at is not None:
                armed_until[row.component] = row.expires_at
    event_record(
        topic="desk.halted",
        aggregate_type="desk",
        aggregate_id="global",
        correlation_id="trading-state-global:",
        actor=label,
        payload={
            "reason": reason.strip(),
            "expires_at": expires_at,
            "disarmed": disarmed,
            "was_armed": was_armed,
            "armed_until": armed_until,  # a timed arming is given back with its end
        },
    )
    return {"trading_state": state, "disarmed": disarmed, "was_armed": was_armed}


def desk_resume_plan() -> dict | None:
    """What "Resume trading" would do now: None when the global scope is not HALTED; else the
    halt it undoes (`desk.halted` event, or None when the global halt was set on its own) and
    the components it re-arms: those the halt disarmed that were armed before it and are still
    disarmed (a component armed again by hand since is left alone), a timed arming until its
    end (`until`); one whose end passed during the halt is not re-armed (`lapsed`)."""
    row = TradingState.objects.filter(scope_type=TradingState.Scope.GLOBAL).first()
    if row is None or row.effective_state() != TradingState.State.HALTED:
        return None
    halt = Event.objects.filter(topic="desk.halted").order_by("-id").first()
    if halt is not None and halt.occurred_at < row.changed_at - timedelta(seconds=5):
        halt = None  # the global state was set HALTED again after (and apart from) that halt
    wanted = (halt.payload.get("was_armed") or []) if halt else []
    until = {c: parse_datetime(at) for c, at in ((halt.payload.get("armed_until") or {}) if halt else {}).items()}
    disarmed = ControlState.objects.filter(component__in=wanted, armed=False)
    still_disarmed = set(disarmed.values_list("component", flat=True))
    now = timezone.now()
    lapsed = [c for c in wanted if c in still_disarmed and c in until and until[c] <= now]
    rearm = [c for c in wanted if c in still_disarmed and c not in lapsed]
    return {"halt": halt, "state": row, "rearm": rearm, "until": until, "lapsed": lapsed}


@transaction.atomic
def desk_resume(*, actor, reason: str) -> dict:
    """One step back from HALT EVERYTHING: the global scope returns to ACTIVE and exactly the
    components the halt disarmed (that were armed before it) are armed again, recorded as one
    `desk.resumed` event that cites the halt."""
    permission_require(actor=actor, perm=PERM_HALT_ALL)
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    plan = desk_resume_plan()
    if plan is None:
        raise ApplicationError("Trading is not halted globally.", code="NOT_HALTED", status_code=409)
    label = actor_label(actor)
    control.trading_state_set(
        scope_type=TradingState.Scope.GLOBAL, state=TradingState.State.ACTIVE, actor=label, reason=reason
    )
    for component in plan["rearm"]:
        control.control_arm(component=component, actor=label, reason=reason, expires_at=plan["until"].get(component))
    halt = plan["halt"]
    event_record(
        topic="desk.resumed",
        aggregate_type="desk",
        aggregate_id="global",
        correlation_id="trading-state-global:",
        causation_id=halt.id if halt else "",
        actor=label,
        payload={
            "reason": reason.strip(),
            "rearmed": plan["rearm"],
            "lapsed_during_halt": plan["lapsed"],
            "halted_by": halt.actor if halt else "",
        },
    )
    return {"rearmed": plan["rearm"], "lapsed": plan["lapsed"]}


def trade_force_close(*, actor, trade: Trade, reason: str) -> Order:
    """Close an open trade on the owner's behalf, through the normal close path (order →
    risk engine → executor). The request is recorded first, then the close order cites it."""
    permission_require(actor=actor, perm=PERM_FORCE_CLOSE)
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    if trade.status != Trade.Status.OPEN:
        raise ApplicationError("The trade is not open.", code="TRADE_NOT_OPEN", status_code=409)
    label = actor_label(actor)
    with transaction.atomic():
        requested = event_record(
            topic="trade.force_close_requested",
            aggregate_type="trade",
            aggregate_id=trade.pk,
            correlation_id=f"trade-{trade.pk}",
            actor=label,
            payload={"trade_id": trade.pk, "reason": reason.strip(), "user_id": trade.user_id},
        )
    from trading.services.orders import order_place

    return order_place(
        user=trade.user,
        asset=trade.asset,
        side=trade.side,
        order_type=Order.Type.MARKET,
        reduce_only=True,
        trade=trade,
        close_fraction=Decimal(1),
        origin=Order.Origin.OPERATOR,
        actor=label,
        causation_id=requested.id,
    )


def position_force_close(*, actor, position: Position, reason: str) -> list[Order]:
    """Force-close every open trade of a position."""
    permission_require(actor=actor, perm=PERM_FORCE_CLOSE)
    trades = list(position.trades.filter(status=Trade.Status.OPEN).order_by("id"))
    if not trades:
        raise ApplicationError("The position has no open trade.", code="POSITION_NOT_OPEN", status_code=409)
    return [trade_force_close(actor=actor, trade=t, reason=reason) for t in trades]


RISK_LIMIT_FIELDS = (
    "max_notional",
    "max_leverage",
    "max_open_positions",
    "max_slippage",
    "price_band",
    "daily_loss_cap",
    "max_orders_per_minute",
)


@transaction.atomic
def risk_limit_update(*, actor, instrument: str, values: dict) -> RiskLimit:
    """Create or change the limits of `instrument` ("" = global) and record
    `risk.limit_changed` with before/after values (validated by the admin form)."""
    permission_require(actor=actor, perm=PERM_RISK_LIMIT)
    unknown = set(values) - set(RISK_LIMIT_FIELDS)
    if unknown:
        raise ApplicationError("Unknown risk limit field.", code="INVALID_FIELD", details={"fields": sorted(unknown)})
    row, created = RiskLimit.objects.select_for_update().get_or_create(instrument=instrument.strip().upper())
    before = {name: getattr(row, name) for name in RISK_LIMIT_FIELDS}
    for name, value in values.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    after = {name: getattr(row, name) for name in RISK_LIMIT_FIELDS}
    changed = sorted(name for name in RISK_LIMIT_FIELDS if before[name] != after[name])
    event_record(
        topic="risk.limit_changed",
        aggregate_type="risk_limit",
        aggregate_id=row.instrument or "global",
        correlation_id=f"risk-limit-{row.instrument or 'global'}",
        actor=actor_label(actor),
        payload={
            "instrument": row.instrument,
            "created": created,
            "changed": changed,
            "before": before,
            "after": after,
        },
    )
    from trading.selectors import risk_limits_cache_clear

    transaction.on_commit(risk_limits_cache_clear)
    return row
