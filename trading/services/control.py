"""Control states (arm/disarm per component) and trading states (per scope).

Every change locks the row, records who/when/why and writes its ledger event in the same
transaction. The environment kill switch (`PAPER_ENABLED`, `OSTIUM_ENABLED`,
`NEAR_INTENTS_ENABLED`) beats the database: a disabled venue is never armed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from config.logging import log_event
from configuration.registry import PROVIDERS
from configuration.runtime import provider_enabled
from trading.models import ControlState, TradingState
from trading.services.ledger import event_record

logger = logging.getLogger("tradedesk.control")

EXECUTOR_PREFIX = "executor:"


def executor_component(venue: str) -> str:
    return f"{EXECUTOR_PREFIX}{venue}"


def venue_enabled(venue: str) -> bool:
    """Whether a venue is enabled: the environment's kill switch (`*_ENABLED=false`) wins, then
    the runtime configuration (the admin), then enabled."""
    if venue not in PROVIDERS:
        return bool(settings.VENUE_ENABLED.get(venue, True))
    return provider_enabled(venue)


# Components that write to a venue without being its executor: the venue's kill switch stops them
# as it stops the executor (their own code refuses too), and the panel shows them disabled.
KILL_SWITCHED_WITH = {"signer:ostium": "ostium", "delegations:relay": "ostium"}


def kill_switch_venue(component: str) -> str | None:
    """The venue whose environment kill switch stops `component` (None: no kill switch)."""
    if component.startswith(EXECUTOR_PREFIX):
        return component[len(EXECUTOR_PREFIX) :]
    return KILL_SWITCHED_WITH.get(component)


def _kill_switched(component: str) -> bool:
    venue = kill_switch_venue(component)
    return venue is not None and not venue_enabled(venue)


def _snapshot(state: ControlState) -> dict:
    return {
        "armed": state.armed,
        "paused": state.paused,
        "draining": state.draining,
        "reason": state.reason,
        "changed_by": state.changed_by,
        "changed_at": state.changed_at,
        "expires_at": state.expires_at,
        "paused_until": state.paused_until,
    }


@transaction.atomic
def _control_change(*, component: str, actor: str, reason: str, topic: str, **changes) -> ControlState:
    """Apply `changes` (and only them: an arming's expiry outlives a pause, a resume or a drain;
    a timed pause's end is its own) with the reason and the actor, and record the event."""
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED", details={"component": component})
    state, _ = ControlState.objects.select_for_update().get_or_create(component=component)
    before = _snapshot(state)
    for name, value in changes.items():
        setattr(state, name, value)
    state.reason = reason.strip()
    state.changed_by = actor
    state.changed_at = timezone.now()
    state.save()
    event_record(
        topic=topic,
        aggregate_type="control_state",
        aggregate_id=component,
        correlation_id=f"control-{component}",
        actor=actor,
        payload={"component": component, "before": before, "after": _snapshot(state)},
    )
    transaction.on_commit(lambda: _log_change(topic, component, actor, state.reason))
    return state


def _log_change(topic: str, component: str, actor: str, reason: str) -> None:
    """Seed 004 "log when": an executor (or strategy) arms or disarms, pauses, drains, resumes."""
    venue = component.split(":", 1)[1] if component.startswith("executor:") else None
    log_event(logger, topic, control_component=component, venue=venue, topic=topic, actor=actor, reason=reason)


def control_arm(*, component: str, actor: str, reason: str, expires_at: datetime | None = None) -> ControlState:
    if _kill_switched(component):
        raise ApplicationError(
            f"{component} is disabled by its environment kill switch and cannot be armed.",
            code="VENUE_DISABLED",
            details={"component": component},
            status_code=409,
        )
    return _control_change(
        component=component, actor=actor, reason=reason, topic="control.armed", expires_at=expires_at, armed=True
    )


def control_disarm(*, component: str, actor: str, reason: str) -> ControlState:
    return _control_change(
        component=component, actor=actor, reason=reason, topic="control.disarmed", armed=False, expires_at=None
    )


def control_pause(*, component: str, actor: str, reason: str, expires_at: datetime | None = None) -> ControlState:
    """Pause (until `expires_at` when given: then it resumes by itself, `paused_until`). A timed
    arming keeps its own expiry: the component is disarmed then, paused or not."""
    return _control_change(
        component=component, actor=actor, reason=reason, topic="control.paused", paused=True, paused_until=expires_at
    )


def control_resume(*, component: str, actor: str, reason: str) -> ControlState:
    """Lift a pause or a drain (arming is separate: a timed arming keeps its expiry)."""
    return _control_change(
        component=component,
        actor=actor,
        reason=reason,
        topic="control.resumed",
        paused=False,
        paused_until=None,
        draining=False,
    )


def control_drain(*, component: str, actor: str, reason: str) -> ControlState:
    """Finish what is in flight, accept nothing new (new exposure is refused at placing)."""
    return _control_change(component=component, actor=actor, reason=reason, topic="control.draining", draining=True)


@dataclass(frozen=True)
class Gate:
    ok: bool
    code: str = ""
    message: str = ""


def control_gate(state: ControlState | None, *, component: str, now=None) -> Gate:
    """May `component` cause a side effect now? Pure: pass the row (None = no row = disarmed)."""
    if _kill_switched(component):
        return Gate(False, "VENUE_DISABLED", f"{component} is disabled by its environment kill switch.")
    if state is None or not state.armed:
        return Gate(False, "VENUE_DISARMED", f"{component} is disarmed.")
    if not state.armed_at(now):
        return Gate(False, "VENUE_DISARMED", f"{component} was armed until {state.expires_at.isoformat()}.")
    if state.paused:
        return Gate(False, "VENUE_PAUSED", f"{component} is paused.")
    return Gate(True)


def executor_gate(venue: str) -> Gate:
    return component_gate(executor_component(venue))


def side_effect_gate(*, component: str, venue: str, asset: str, reduces_exposure: bool) -> Gate:
    """May `component` cause a side effect on (venue, asset) now? Its control state, then the
    trading states: HALTED refuses everything, REDUCE_ONLY what adds exposure. The executor
    asks it for every order; the Ostium signer service for every open and close it is sent."""
    gate = control_gate(ControlState.objects.filter(component=component).first(), component=component)
    if not gate.ok:
        return gate
    for scope, state in trading_states_for(venue=venue, asset=asset).items():
        if state == "HALTED":
            return Gate(False, "TRADING_HALTED", f"Trading is halted ({scope}).")
        if state == "REDUCE_ONLY" and not reduces_exposure:
            return Gate(False, "TRADING_REDUCE_ONLY", f"Only exposure-reducing orders may execute ({scope}).")
    return Gate(True)


def ostium_write_gate(*, component: str, asset: str, reduces_exposure: bool, trading_states: bool) -> Gate:
    """The gate Ostium writes outside the executor ask (`providers.ostium.write_gate`): the
    component's state, and with `trading_states` the trading states of (ostium, asset)."""
    if trading_states:
        return side_effect_gate(component=component, venue="ostium", asset=asset, reduces_exposure=reduces_exposure)
    return component_gate(component)


def component_gate(component: str) -> Gate:
    """May `component` cause a side effect now (its control state alone)?"""
    return control_gate(ControlState.objects.filter(component=component).first(), component=component)


def scope_keys(scope_type: str) -> list[str]:
    """The keys a trading state may be set on, per scope type: the venues the desk knows, the
    instruments of its markets (the paper book's and every enabled venue's list), and the
    strategies (none: orders carry no strategy, so a strategy scope would never be checked; it
    is refused rather than shown as a restriction that does nothing — a strategy's own control
    row, `strategy:<name>`, is what stops it)."""
    if scope_type == TradingState.Scope.VENUE:
        return sorted(settings.VENUE_ENABLED)
    if scope_type == TradingState.Scope.INSTRUMENT:
        from providers.markets import venue_markets
        from providers.models import PaperMarket

        symbols = set(PaperMarket.objects.values_list("symbol", flat=True))
        for venue, enabled in settings.VENUE_ENABLED.items():
            if not enabled:
                continue
            try:
                symbols |= {m.symbol for m in venue_markets(venue)}  # (cached MARKETS_CACHE_TTL seconds)
            except Exception:  # a venue that cannot list its markets now: its instruments are not offered
                logger.warning("scope keys: %s could not list its markets", venue, exc_info=True)
        return sorted(symbols)
    return []


def scope_key_check(scope_type: str, scope_key: str) -> str:
    """`scope_key` normalised (instruments upper-case), or an UNKNOWN_SCOPE error naming what
    exists. A scope that already has a row may always be changed (to clear an old one)."""
    if scope_type == TradingState.Scope.GLOBAL:
        return ""
    key = (scope_key or "").strip()
    if scope_type == TradingState.Scope.INSTRUMENT:
        key = key.upper()
    if not key:
        raise ApplicationError(
            f"Choose a {scope_type}.", code="SCOPE_REQUIRED", details={"scope_key": [f"Choose a {scope_type}."]}
        )
    known = scope_keys(scope_type)
    if key in known or TradingState.objects.filter(scope_type=scope_type, scope_key=key).exists():
        return key
    if scope_type == TradingState.Scope.STRATEGY:
        message = (
            f"No trading state can be set on strategy {key!r}: orders carry no strategy, so the risk engine "
            f"would never check it. Arm, disarm or pause its control row (strategy:{key}) instead."
        )
        raise ApplicationError(message, code="UNKNOWN_SCOPE", details={"scope_key": [message]})
    import difflib

    if known:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else f" Known: {', '.join(known[:20])}."
    else:
        hint = f" No {scope_type} exists yet."
    message = f"No {scope_type} {key!r}.{hint}"
    raise ApplicationError(message, code="UNKNOWN_SCOPE", details={"scope_key": [message]})


@transaction.atomic
def trading_state_set(
    *,
    scope_type: str,
    scope_key: str = "",
    state: str,
    actor: str,
    reason: str,
    expires_at: datetime | None = None,
) -> TradingState:
    if scope_type not in TradingState.Scope.values:
        raise ApplicationError(f"Unknown scope type {scope_type!r}.", code="INVALID_SCOPE")
    if state not in TradingState.State.values:
        raise ApplicationError(f"Unknown trading state {state!r}.", code="INVALID_TRADING_STATE")
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    scope_key = scope_key_check(scope_type, scope_key)
    row, _ = TradingState.objects.select_for_update().get_or_create(scope_type=scope_type, scope_key=scope_key)
    previous = row.effective_state()
    row.previous_state = previous
    row.state = state
    row.reason = reason.strip()
    row.changed_by = actor
    row.changed_at = timezone.now()
    row.expires_at = expires_at
    row.save()
    event_record(
        topic="trading_state.changed",
        aggregate_type="trading_state",
        aggregate_id=f"{scope_type}:{scope_key}",
        correlation_id=f"trading-state-{scope_type}:{scope_key}",
        actor=actor,
        payload={
            "scope_type": scope_type,
            "scope_key": scope_key,
            "state": state,
            "previous_state": previous,
            "reason": row.reason,
            "expires_at": expires_at,
        },
    )
    return row


def trading_states_for(*, venue: str, asset: str, now=None) -> dict[str, str]:
    """Effective states for the scopes an order on (venue, asset) falls under (one query)."""
    from django.db.models import Q

    rows = TradingState.objects.filter(
        Q(scope_type="global") | Q(scope_type="venue", scope_key=venue) | Q(scope_type="instrument", scope_key=asset)
    )
    now = now or timezone.now()
    out = {}
    for row in rows:
        label = "global" if row.scope_type == "global" else f"{row.scope_type}:{row.scope_key}"
        out[label] = row.effective_state(now)
    return out
