"""Control states (arm/disarm) and trading states: services, events, kill switch, expiry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import ApplicationError
from trading.models import ControlState, Event, TradingState
from trading.services import control

pytestmark = pytest.mark.django_db


def test_a_fresh_deploy_has_every_executor_disarmed():
    rows = {c.component: c for c in ControlState.objects.filter(component__startswith="executor:")}
    assert set(rows) == {"executor:paper", "executor:ostium", "executor:near_intents"}
    assert not any(c.armed for c in rows.values())
    assert control.executor_gate("paper").code == "VENUE_DISARMED"


def test_arm_records_who_when_why_and_writes_an_event():
    state = control.control_arm(component="executor:paper", actor="user:1", reason="going live")

    assert state.armed and state.changed_by == "user:1" and state.reason == "going live"
    event = Event.objects.get(topic="control.armed")
    assert event.aggregate_id == "executor:paper" and event.actor == "user:1"
    assert event.payload["before"]["armed"] is False and event.payload["after"]["armed"] is True
    assert control.executor_gate("paper").ok


def test_disarm_pause_resume_and_drain_each_write_their_event():
    control.control_arm(component="executor:paper", actor="op", reason="r1")
    control.control_pause(component="executor:paper", actor="op", reason="r2")
    assert control.executor_gate("paper").code == "VENUE_PAUSED"
    control.control_resume(component="executor:paper", actor="op", reason="r3")
    assert control.executor_gate("paper").ok
    control.control_drain(component="executor:paper", actor="op", reason="r4")
    assert ControlState.objects.get(component="executor:paper").draining
    control.control_disarm(component="executor:paper", actor="op", reason="r5")
    assert control.executor_gate("paper").code == "VENUE_DISARMED"
    topics = list(Event.objects.filter(aggregate_type="control_state").values_list("topic", flat=True))
    assert topics == ["control.armed", "control.paused", "control.resumed", "control.draining", "control.disarmed"]


def test_every_change_needs_a_reason():
    with pytest.raises(ApplicationError) as err:
        control.control_arm(component="executor:paper", actor="op", reason="  ")
    assert err.value.code == "REASON_REQUIRED"
    assert not ControlState.objects.get(component="executor:paper").armed


def test_the_kill_switch_beats_the_database(settings):
    control.control_arm(component="executor:paper", actor="op", reason="armed before the switch")
    settings.VENUE_ENABLED = settings.VENUE_ENABLED | {"paper": False}

    assert ControlState.objects.get(component="executor:paper").armed  # the row still says armed
    assert control.executor_gate("paper").code == "VENUE_DISABLED"
    with pytest.raises(ApplicationError) as err:
        control.control_arm(component="executor:paper", actor="op", reason="try again")
    assert err.value.code == "VENUE_DISABLED"


def test_an_arm_with_an_expiry_lapses_to_disarmed():
    control.control_arm(
        component="executor:paper", actor="op", reason="one hour", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert control.executor_gate("paper").code == "VENUE_DISARMED"


def test_unknown_components_are_disarmed():
    assert control.executor_gate("nowhere").code == "VENUE_DISARMED"


def test_trading_state_set_keeps_the_previous_state_and_writes_an_event():
    control.trading_state_set(scope_type="venue", scope_key="paper", state="REDUCE_ONLY", actor="op", reason="r")
    row = control.trading_state_set(scope_type="venue", scope_key="paper", state="HALTED", actor="op", reason="worse")

    assert (row.state, row.previous_state, row.changed_by) == ("HALTED", "REDUCE_ONLY", "op")
    events = Event.objects.filter(topic="trading_state.changed").order_by("id")
    assert [e.payload["state"] for e in events] == ["REDUCE_ONLY", "HALTED"]
    assert events.last().payload["previous_state"] == "REDUCE_ONLY"
    assert control.trading_states_for(venue="paper", asset="BTC-USD") == {"venue:paper": "HALTED"}


def test_an_expired_trading_state_falls_back_to_the_previous_one():
    control.trading_state_set(scope_type="global", state="REDUCE_ONLY", actor="op", reason="r")
    control.trading_state_set(
        scope_type="global",
        state="HALTED",
        actor="op",
        reason="5 min",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert control.trading_states_for(venue="paper", asset="X")["global"] == "REDUCE_ONLY"


def test_trading_state_rejects_unknown_values():
    with pytest.raises(ApplicationError):
        control.trading_state_set(scope_type="planet", state="HALTED", actor="op", reason="r")
    with pytest.raises(ApplicationError):
        control.trading_state_set(scope_type="global", state="PANIC", actor="op", reason="r")
    assert not TradingState.objects.exists()


def test_seed_demo_arms_only_the_paper_executor_and_the_near_intents_ingest_and_strategy():
    from django.core.management import call_command

    call_command("seed_demo")
    call_command("seed_demo")  # idempotent

    armed = set(ControlState.objects.filter(armed=True).values_list("component", flat=True))
    assert armed == {"executor:paper", "near_intents:ingest", "strategy:near_intents"}  # no other executor
    assert ControlState.objects.get(component="executor:paper").reason == "demo seed"
    assert Event.objects.filter(topic="control.armed").count() == 3
