"""Fresh deploy state, kill switch, pause/drain at placing time, and timed states expiring."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import ApplicationError
from trading.models import ControlState, Event, Order, TradingState
from trading.services import control
from trading.services.execution import order_execute
from trading.services.expiry import control_expiry_run
from trading.services.orders import order_place

pytestmark = pytest.mark.django_db
D = Decimal


def _place(user, **kw):
    return order_place(user=user, asset="BTC-USD", side="long", collateral=D(100), leverage=D(2), **kw)


def test_a_fresh_database_has_every_component_disarmed():
    rows = dict(ControlState.objects.values_list("component", "armed"))

    assert {"executor:paper", "executor:ostium", "executor:near_intents"} <= set(rows)
    assert {"treasury:withdrawals", "signer:ostium"} <= set(rows)
    assert not any(rows.values())
    for venue in ("paper", "ostium", "near_intents"):
        assert control.executor_gate(venue).code == "VENUE_DISARMED"


def test_the_kill_switch_beats_an_armed_database_row_at_execution(settings, markets, trader, armed):
    settings.VENUE_ENABLED = settings.VENUE_ENABLED | {"paper": False}
    order = _place(trader)

    assert order_execute(order_id=order.pk) == "rejected:VENUE_DISABLED"

    order.refresh_from_db()
    assert ControlState.objects.get(component="executor:paper").armed
    assert order.status == "REJECTED" and order.error_code == "VENUE_DISABLED"
    assert not order.commands.exists()


def test_a_paused_venue_refuses_new_orders_when_placed(markets, trader, armed):
    control.control_pause(component="executor:paper", actor="op", reason="maintenance")

    with pytest.raises(ApplicationError) as err:
        _place(trader)

    assert err.value.code == "RISK_VENUE_PAUSED"
    assert not Order.objects.exists()
    assert Event.objects.get(topic="risk.rejected").payload["code"] == "RISK_VENUE_PAUSED"


def test_a_draining_venue_refuses_new_exposure_but_its_executor_finishes_accepted_orders(markets, trader, armed):
    queued = _place(trader)
    control.control_drain(component="executor:paper", actor="op", reason="end of day")

    with pytest.raises(ApplicationError) as err:
        _place(trader)
    order_execute(order_id=queued.pk)

    assert err.value.code == "RISK_VENUE_DRAINING"
    queued.refresh_from_db()
    assert queued.status == "FILLED"


def test_an_expired_timed_halt_returns_to_its_previous_state_with_an_event():
    control.trading_state_set(scope_type="venue", scope_key="paper", state="REDUCE_ONLY", actor="op", reason="thin")
    until = timezone.now() + timedelta(minutes=5)
    control.trading_state_set(
        scope_type="venue", scope_key="paper", state="HALTED", actor="op", reason="outage", expires_at=until
    )

    assert control_expiry_run(now=until - timedelta(seconds=1)) == {"trading_states": 0, "control_states": 0}
    assert control_expiry_run(now=until + timedelta(seconds=1))["trading_states"] == 1

    row = TradingState.objects.get(scope_type="venue", scope_key="paper")
    assert row.state == "REDUCE_ONLY" and row.expires_at is None and row.previous_state == "HALTED"
    event = Event.objects.get(topic="trading_state.expired")
    assert event.payload["expired_state"] == "HALTED" and event.payload["state"] == "REDUCE_ONLY"
    assert control_expiry_run(now=until + timedelta(minutes=1))["trading_states"] == 0  # once only


def test_a_timed_pause_lapses_to_running_and_a_timed_arm_to_disarmed():
    until = timezone.now() + timedelta(minutes=1)
    control.control_arm(component="executor:paper", actor="op", reason="r")
    control.control_pause(component="executor:paper", actor="op", reason="lunch", expires_at=until)
    control.control_arm(component="signer:ostium", actor="op", reason="one hour", expires_at=until)

    assert control_expiry_run(now=until + timedelta(seconds=1))["control_states"] == 2

    paper = ControlState.objects.get(component="executor:paper")
    signer = ControlState.objects.get(component="signer:ostium")
    assert paper.armed and not paper.paused and control.executor_gate("paper").ok
    assert not signer.armed
    assert Event.objects.filter(topic="control.expired").count() == 2


def test_a_timed_arming_outlives_a_pause_a_resume_and_a_drain_and_still_lapses():
    """Arm for an hour, pause to look, resume: still armed until the hour ends, then disarmed
    (the pause and the resume used to clear the arming's expiry: armed for good)."""
    until = timezone.now() + timedelta(hours=1)
    control.control_arm(component="executor:paper", actor="op", reason="one hour", expires_at=until)
    control.control_pause(component="executor:paper", actor="op", reason="look")
    control.control_resume(component="executor:paper", actor="op", reason="fine")
    control.control_drain(component="executor:paper", actor="op", reason="wind down")
    control.control_resume(component="executor:paper", actor="op", reason="back")

    row = ControlState.objects.get(component="executor:paper")
    assert row.armed and row.expires_at == until and control.executor_gate("paper").ok
    assert control.control_gate(row, component="executor:paper", now=until).code == "VENUE_DISARMED"
    assert control_expiry_run(now=until + timedelta(seconds=1))["control_states"] == 1
    row.refresh_from_db()
    assert not row.armed and row.expires_at is None
    assert Event.objects.get(topic="control.expired").payload["lapsed"] == "arm"


def test_a_timed_pause_of_a_timed_arming_ends_first_and_the_arming_keeps_its_own_end():
    now = timezone.now()
    pause_end, arm_end = now + timedelta(minutes=10), now + timedelta(hours=1)
    control.control_arm(component="executor:paper", actor="op", reason="one hour", expires_at=arm_end)
    control.control_pause(component="executor:paper", actor="op", reason="ten minutes", expires_at=pause_end)
    row = ControlState.objects.get(component="executor:paper")
    assert (row.paused_until, row.expires_at) == (pause_end, arm_end)
    assert control.executor_gate("paper").code == "VENUE_PAUSED"

    assert control_expiry_run(now=pause_end + timedelta(seconds=1))["control_states"] == 1
    row.refresh_from_db()
    assert row.armed and not row.paused and row.paused_until is None and row.expires_at == arm_end
    assert control.executor_gate("paper").ok

    # paused again (for good) before the hour ends: disarmed at its end all the same
    control.control_pause(component="executor:paper", actor="op", reason="look")
    assert control_expiry_run(now=arm_end + timedelta(seconds=1))["control_states"] == 1
    row.refresh_from_db()
    assert not row.armed and row.paused and row.expires_at is None
    lapses = list(Event.objects.filter(topic="control.expired").order_by("id").values_list("payload", flat=True))
    assert [p["lapsed"] for p in lapses] == ["pause", "arm"]
    assert lapses[0]["after"]["paused"] is False and lapses[1]["after"]["armed"] is False


def test_a_pause_and_an_arming_due_together_lapse_in_one_run_with_an_event_each():
    until = timezone.now() + timedelta(minutes=5)
    control.control_arm(component="executor:paper", actor="op", reason="r", expires_at=until)
    control.control_pause(component="executor:paper", actor="op", reason="r", expires_at=until)

    assert control_expiry_run(now=until + timedelta(seconds=1))["control_states"] == 1
    row = ControlState.objects.get(component="executor:paper")
    assert not row.armed and not row.paused and row.expires_at is None and row.paused_until is None
    assert [e.payload["lapsed"] for e in Event.objects.filter(topic="control.expired").order_by("id")] == [
        "pause",
        "arm",
    ]


def test_the_expiry_job_is_in_the_beat_schedule():
    from config.schedule import BEAT_SCHEDULE

    assert BEAT_SCHEDULE["control-expiry"]["task"] == "trading.tasks.control_expiry_task"


def test_reduce_only_refuses_new_exposure_at_placing_but_lets_a_close_execute(markets, trader, armed):
    from trading.services.orders import trade_close

    opened = _place(trader)
    order_execute(order_id=opened.pk)
    opened.refresh_from_db()
    control.trading_state_set(scope_type="venue", scope_key="paper", state="REDUCE_ONLY", actor="op", reason="risk")

    with pytest.raises(ApplicationError) as err:
        _place(trader)
    close = trade_close(user=trader, pair_id=opened.trade.pair_id, trade_index=opened.trade.trade_index)
    order_execute(order_id=close.pk)

    assert err.value.code == "RISK_REDUCE_ONLY"
    close.refresh_from_db()
    assert close.status == "FILLED"
