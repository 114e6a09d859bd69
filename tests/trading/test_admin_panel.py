"""The admin as control panel: panel page, confirmations, role enforcement at the door,
read-only ledger, risk limit edits with audit events, and the order timeline."""

import html
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import ledger_events_for, wait_for
from tests.trading.roles import user_in
from trading.models import ControlState, Event, Order, RiskLimit, TradingState

pytestmark = pytest.mark.django_db
D = Decimal


def _login(client, group, username=None):
    user = user_in(group, username)
    client.force_login(user)
    return user


def test_the_admin_index_is_the_control_panel_for_staff_with_view_rights(client):
    _login(client, "viewer")

    page = client.get(reverse("admin:index"))

    assert page.status_code == 200
    body = page.content.decode()
    assert "executor:paper" in body and "signer:ostium" in body and "treasury:withdrawals" in body
    assert "disarmed" in body and "Price freshness" in body and "<svg" in body
    assert client.get(reverse("admin:models_index")).status_code == 200


def test_a_viewer_sees_no_action_buttons_an_operator_sees_arm_a_risk_admin_sees_halt_all(client):
    _login(client, "viewer")
    body = client.get(reverse("admin:control_panel")).content.decode()
    assert ">Arm<" not in body and ">Disarm<" not in body and "HALT EVERYTHING" not in body and ">Halt<" not in body

    _login(client, "operator")
    body = client.get(reverse("admin:control_panel")).content.decode()
    assert ">Arm<" in body and "HALT EVERYTHING" not in body

    _login(client, "risk_admin")
    body = client.get(reverse("admin:control_panel")).content.decode()
    assert "HALT EVERYTHING" in body and ">Halt<" in body and ">Arm<" not in body


def test_an_action_needs_a_reason_on_its_confirmation_page(client):
    op = _login(client, "operator")
    url = reverse("admin:control_action", args=["executor:paper", "arm"])

    assert client.get(url).status_code == 200
    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert not ControlState.objects.get(component="executor:paper").armed

    done = client.post(url, {"reason": "market open"})

    assert done.status_code == 302
    state = ControlState.objects.get(component="executor:paper")
    assert state.armed and state.reason == "market open" and state.changed_by == f"user:{op.pk}:operator"
    assert Event.objects.filter(topic="control.armed", aggregate_id="executor:paper").count() == 1


def test_a_forged_post_by_a_viewer_is_refused_and_changes_nothing(client):
    _login(client, "viewer")

    for url in (
        reverse("admin:control_action", args=["executor:paper", "arm"]),
        reverse("admin:halt_all"),
        reverse("admin:trading_state_action", args=["halt"]),
    ):
        assert client.post(url, {"reason": "forged", "scope_type": "global"}).status_code == 403
    # the changelist action, forged
    pk = ControlState.objects.get(component="executor:paper").pk
    response = client.post(
        reverse("admin:trading_controlstate_changelist"),
        {"action": "arm", "_selected_action": [pk], "confirm": "yes", "reason": "forged"},
        follow=True,
    )

    assert response.status_code in (200, 403)
    assert not ControlState.objects.filter(armed=True).exists()
    assert not TradingState.objects.exists()
    assert not Event.objects.filter(aggregate_type__in=["control_state", "trading_state"]).exists()


def test_changelist_actions_confirm_then_apply_with_the_reason_and_expiry(client):
    _login(client, "operator")
    pks = list(ControlState.objects.filter(component__startswith="executor:").values_list("pk", flat=True))
    url = reverse("admin:trading_controlstate_changelist")

    confirm = client.post(url, {"action": "pause", "_selected_action": pks})
    assert confirm.status_code == 200 and "Yes, pause selected components" in confirm.content.decode()
    assert not ControlState.objects.filter(paused=True).exists()

    client.post(
        url, {"action": "pause", "_selected_action": pks, "confirm": "yes", "reason": "venue upgrade", "expires_at": ""}
    )

    assert ControlState.objects.filter(paused=True, reason="venue upgrade").count() == 3
    assert Event.objects.filter(topic="control.paused").count() == 3


def test_a_risk_admin_sets_a_timed_halt_on_a_venue_from_the_panel(client):
    _login(client, "risk_admin")
    url = reverse("admin:trading_state_action", args=["halt"])

    client.post(
        url, {"scope_type": "venue", "scope_key": "ostium", "reason": "RPC down", "expires_at": "2999-01-01 00:00"}
    )

    row = TradingState.objects.get(scope_type="venue", scope_key="ostium")
    assert row.state == "HALTED" and row.expires_at.year == 2999 and row.previous_state == "ACTIVE"


def test_ledger_and_execution_records_are_read_only_even_for_superusers(client, operator_user):
    client.force_login(operator_user)
    for model in ("event", "outboxmessage", "executioncommand", "fill", "idempotencyrecord"):
        assert client.get(reverse(f"admin:trading_{model}_add")).status_code == 403, model
    event = Event.objects.create(topic="t", aggregate_type="x", aggregate_id="1")
    page = client.get(reverse("admin:trading_event_change", args=[event.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(reverse("admin:trading_event_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()


def test_risk_limits_are_validated_and_every_change_is_audited_with_before_and_after(client):
    _login(client, "risk_admin")
    add = reverse("admin:trading_risklimit_add")

    bad = client.post(add, {"instrument": "BTC-USD", "max_notional": "-5", "max_slippage": "3"})
    assert bad.status_code == 200 and not RiskLimit.objects.exists()
    assert "Must be positive" in bad.content.decode() and "Must be between" in bad.content.decode()

    client.post(add, {"instrument": "btc-usd", "max_notional": "1000"})
    row = RiskLimit.objects.get(instrument="BTC-USD")
    client.post(
        reverse("admin:trading_risklimit_change", args=[row.pk]), {"max_notional": "2500", "max_leverage": "10"}
    )

    events = list(Event.objects.filter(topic="risk.limit_changed").order_by("id"))
    assert [D(e.payload["after"]["max_notional"]) for e in events] == [D(1000), D(2500)]
    assert events[0].payload["created"] is True and events[0].payload["before"]["max_notional"] is None
    assert D(events[1].payload["before"]["max_notional"]) == D(1000)
    assert set(events[1].payload["changed"]) == {"max_notional", "max_leverage"}


def test_an_operator_cannot_edit_risk_limits(client):
    _login(client, "operator")

    assert client.post(reverse("admin:trading_risklimit_add"), {"max_notional": "1"}).status_code == 403
    assert not RiskLimit.objects.exists()


def test_the_status_json_reports_components_and_attention_counts(client, markets, trader):
    _login(client, "viewer")
    unknown = Order.objects.create(
        user=trader, provider="paper", asset="BTC-USD", order_type="MARKET", side="long", status="UNKNOWN"
    )
    ledger_events_for(unknown)

    data = client.get(reverse("admin:control_panel_status")).json()

    paper = next(c for c in data["components"] if c["component"] == "executor:paper")
    assert paper["status"] == "disarmed" and paper["armed"] is False
    assert data["attention"]["unknown_orders"] == 1
    assert {p["symbol"] for p in data["prices"]} >= {"BTC-USD", "ETH-USD"}
    assert any(h["name"].startswith("Celery queue") for h in data["health"])


def test_drain_shows_draining_while_orders_are_in_flight_then_drained(client, markets, trader, armed):
    from trading.services import control
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    _login(client, "viewer")
    order = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(2))
    control.control_drain(component="executor:paper", actor="op", reason="closing time")

    def status():
        data = client.get(reverse("admin:control_panel_status")).json()
        return next(c for c in data["components"] if c["component"] == "executor:paper")

    assert status()["status"] == "draining" and status()["in_flight"] == 1
    assert (status()["last_activity"], status()["activity"]) == (None, "command sent to the venue")  # none yet
    order_execute(order_id=order.pk)
    assert status()["status"] == "drained"
    from trading.models import ExecutionCommand

    sent = ExecutionCommand.objects.get(order=order).sent_at
    assert (status()["last_activity"], status()["activity"]) == (sent.isoformat(), "command sent to the venue")


def test_a_components_activity_probe_that_fails_shows_as_failed_not_an_error_page(client):
    from trading.admin_panel import activity

    def broken():
        raise RuntimeError("the store is gone")

    _login(client, "viewer")
    was = activity._activity.get("treasury:withdrawals")
    activity.activity_provider_register("treasury:withdrawals", broken)
    try:
        data = client.get(reverse("admin:control_panel_status")).json()
        page = client.get(reverse("admin:index"))
    finally:
        activity.activity_provider_register("treasury:withdrawals", was)
    shown = next(c for c in data["components"] if c["component"] == "treasury:withdrawals")
    assert (shown["last_activity"], shown["activity"]) == (None, "probe failed: RuntimeError")
    assert page.status_code == 200 and "probe failed: RuntimeError" in page.content.decode()


def test_the_timeline_shows_events_commands_and_redacts_secrets(client, markets, trader, armed):
    from trading.models import ExecutionCommand
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    _login(client, "viewer")
    order = order_place(
        user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(2), stop_price=D(55000)
    )
    order_execute(order_id=order.pk)
    command = ExecutionCommand.objects.get(order=order)
    ExecutionCommand.objects.filter(pk=command.pk).update(request={**command.request, "api_key": "tdk_live_secret"})

    page = client.get(reverse("admin:timeline", args=["order", order.pk]))

    body = page.content.decode()
    assert page.status_code == 200
    for topic in ("order.accepted", "order.submitting", "order.filled", "trade.opened"):
        assert topic in body, topic
    assert "risk engine passed" in body and command.idempotency_key in body
    assert "tdk_live_secret" not in body and "[REDACTED]" in body
    # the trade's transaction hash is public: shown, for the block explorer
    opened = Event.objects.get(topic="trade.opened", payload__order_id=order.pk).payload["transaction_hash"]
    assert len(opened) == 66 and f'"transaction_hash": "{opened}"' in html.unescape(body)
    order.refresh_from_db()
    assert f"/admin/trading/trade/{order.trade_id}/change/" in body
    assert client.get(reverse("admin:timeline", args=["trade", order.trade_id])).status_code == 200
    assert client.get(reverse("admin:timeline", args=["position", order.trade.position_id])).status_code == 200
    change = client.get(reverse("admin:trading_order_change", args=[order.pk])).content.decode()
    assert reverse("admin:timeline", args=["order", order.pk]) in change
    listing = client.get(reverse("admin:trading_order_changelist")).content.decode()
    assert reverse("admin:timeline", args=["order", order.pk]) in listing


def test_the_panel_shows_a_kill_switched_venue_as_disabled_whatever_its_row_says(client, settings):
    from trading.services.control import control_arm

    """The executor, and the components that write to Ostium beside it (the signer service, the
    delegations' relay): none can act, so none is shown armed."""
    ostium = ("executor:ostium", "signer:ostium", "delegations:relay")
    for component in ostium:
        control_arm(component=component, actor="op", reason="live")
    control_arm(component="deposits:relay", actor="op", reason="live")  # not an Ostium write
    settings.VENUE_ENABLED = settings.VENUE_ENABLED | {"ostium": False}
    _login(client, "viewer")

    data = client.get(reverse("admin:control_panel_status")).json()

    shown = {c["component"]: c for c in data["components"]}
    for component in ostium:
        assert shown[component]["armed"] is True and shown[component]["status"] == "disabled", component
        assert "OSTIUM_ENABLED=false" in shown[component]["waiting_on"]
    assert shown["deposits:relay"]["status"] == "armed"


def test_the_panel_shows_an_armings_end_and_a_pauses_end_apart(client):
    from datetime import UTC, datetime, timedelta

    from trading.services.control import control_arm, control_pause, control_resume

    arm_end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    pause_end = arm_end - timedelta(hours=1)
    control_arm(component="executor:paper", actor="op", reason="two hours", expires_at=arm_end)
    control_pause(component="executor:paper", actor="op", reason="an hour", expires_at=pause_end)
    _login(client, "viewer")

    paper = next(
        c
        for c in client.get(reverse("admin:control_panel_status")).json()["components"]
        if c["component"] == "executor:paper"
    )
    assert paper["status"] == "paused" and f"{pause_end:%H:%M}" in paper["waiting_on"]
    assert (paper["expires_at"], paper["paused_until"]) == (arm_end.isoformat(), pause_end.isoformat())
    page = client.get(reverse("admin:index")).content.decode()
    assert (
        f"paused until {pause_end:%Y-%m-%d %H:%M} UTC" in page and f"armed until {arm_end:%Y-%m-%d %H:%M} UTC" in page
    )

    control_resume(component="executor:paper", actor="op", reason="back")  # the arming's end stays
    page = client.get(reverse("admin:index")).content.decode()
    assert "paused until" not in page and f"armed until {arm_end:%Y-%m-%d %H:%M} UTC" in page


def test_halt_everything_from_the_panel_as_a_risk_admin(client):
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="op", reason="live")
    _login(client, "risk_admin")
    url = reverse("admin:halt_all")
    assert "executor:paper" in client.get(url).content.decode()

    response = client.post(url, {"reason": "venue outage", "expires_at": ""})

    assert response.status_code == 302
    assert TradingState.objects.get(scope_type="global").state == "HALTED"
    assert not ControlState.objects.filter(armed=True).exists()
    assert Event.objects.get(topic="desk.halted").payload["reason"] == "venue outage"


def test_force_close_from_the_positions_list_places_a_close_through_the_executor(client, markets, trader, armed):
    from trading.models import Position
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    opened = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(2))
    order_execute(order_id=opened.pk)
    position = Position.objects.get(user=trader, status="open")
    _login(client, "operator")
    url = reverse("admin:trading_position_changelist")

    client.post(
        url,
        {"action": "force_close", "_selected_action": [position.pk], "confirm": "yes", "reason": "risk call"},
    )

    opened.refresh_from_db()
    close = Order.objects.get(reduce_only=True)
    assert close.status == "ACCEPTED" and close.trade_id == opened.trade_id
    order_execute(order_id=close.pk)
    position.refresh_from_db()
    assert position.status == "closed"
    assert Event.objects.get(topic="trade.force_close_requested").payload["reason"] == "risk call"


def test_a_viewer_cannot_force_close_from_the_positions_list(client, markets, trader, armed):
    from trading.models import Position
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    order_execute(order_id=order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(2)).pk)
    position = Position.objects.get(user=trader, status="open")
    _login(client, "viewer")

    client.post(
        reverse("admin:trading_position_changelist"),
        {"action": "force_close", "_selected_action": [position.pk], "confirm": "yes", "reason": "forged"},
    )

    assert not Order.objects.filter(reduce_only=True).exists()
    assert not Event.objects.filter(topic="trade.force_close_requested").exists()


@pytest.mark.celery
def test_the_celery_line_is_red_when_no_worker_answers_even_with_an_empty_queue(celery_worker, settings):
    """An empty queue is not health by itself: with every worker gone, what Beat and the API hand
    over waits there, and the line said "0 waiting", green."""
    from config.celery import app
    from trading.admin_panel.health import celery_queue_health

    (line,) = celery_queue_health()
    assert (line.status, line.value) == ("ok", "0 waiting") and line.detail.startswith("a worker answers (")

    settings.READY_CELERY_TIMEOUT = 0.2
    original = app.control.ping
    app.control.ping = lambda timeout, limit=None: []  # every worker gone: what the broker would answer
    try:
        (line,) = celery_queue_health()
    finally:
        app.control.ping = original
    assert (line.status, line.value) == ("down", "0 waiting")
    assert line.detail == "no worker answered within 0.2 s: nothing runs this queue"


def test_the_beat_badge_reads_beats_own_heartbeat():
    import time

    from config.beat import HEARTBEAT_SECONDS, beat_heartbeat_write
    from trading.admin_panel.health import DOWN, OK, WARN, beat_health

    now = time.time()
    beat_heartbeat_write(now - 1)
    assert beat_health()[0].status == OK
    beat_heartbeat_write(now - HEARTBEAT_SECONDS - 2)
    assert beat_health()[0].status == WARN
    beat_heartbeat_write(now - 2 * HEARTBEAT_SECONDS - 1)
    assert beat_health()[0].status == DOWN


def test_the_panel_marks_open_positions_as_the_api_does(client, markets, trader, armed, api):
    from providers.prices import price_set
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    opened = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))
    order_execute(order_id=opened.pk)
    price_set("BTC-USD", D("61200"))  # the mark moves; the position row keeps its fill's

    [position] = api.get("/api/v1/trading/positions").json()["positions"]
    _login(client, "viewer")
    data = client.get(reverse("admin:control_panel_status")).json()

    paper = next(v for v in data["venues"] if v["venue"] == "paper")
    marked = D(position["unrealized_pnl"])
    assert marked > 0
    assert D(paper["unrealized"]) == marked.quantize(D("0.01"))
    assert D(paper["exposure"]) == (D(position["quantity"]) * D("61200")).quantize(D("0.01"))
    assert D(paper["pnl_today"]) == (D(paper["realized_today"]) + D(paper["unrealized"]))
    assert {"venue": "paper", "symbol": "BTC-USD"}.items() <= next(
        p for p in data["prices"] if p["symbol"] == "BTC-USD"
    ).items()


def test_the_stop_loss_take_profit_answer_is_marked_to_market(markets, trader, armed, api):
    from providers.prices import price_set
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    opened = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))
    order_execute(order_id=opened.pk)
    price_set("BTC-USD", D("61200"))
    from trading.models import Trade

    trade = Trade.objects.get(user=trader)

    answer = api.patch(
        f"/api/v1/trading/trades/{trade.pair_id}/{trade.trade_index}", {"take_profit_price": "65000"}, format="json"
    )

    assert answer.status_code == 200, answer.content
    assert D(answer.json()["current_price"]) == D("61200")
    assert D(answer.json()["unrealized_pnl"]) > 0


def test_a_scope_typo_is_refused_with_a_hint_and_nothing_is_recorded(client, markets):
    _login(client, "risk_admin")
    url = reverse("admin:trading_state_action", args=["reduce_only"])

    page = client.post(url, {"scope_type": "instrument", "scope_key": "BTCUSD", "reason": "thin book"})

    assert page.status_code == 200
    assert "No instrument &#x27;BTCUSD&#x27;. Did you mean BTC-USD?" in page.content.decode()
    assert not TradingState.objects.filter(scope_type="instrument").exists()
    assert not Event.objects.filter(topic="trading_state.changed").exists()

    client.post(url, {"scope_type": "instrument", "scope_key": "btc-usd", "reason": "thin book"})
    assert TradingState.objects.get(scope_type="instrument").scope_key == "BTC-USD"


def test_the_service_refuses_unknown_scopes_and_strategy_scopes_while_no_strategy_exists(markets):
    from config.errors import ApplicationError
    from trading.services.control import trading_state_set

    for scope_type, key in (("instrument", "BTCUSD"), ("venue", "kraken"), ("strategy", "momentum")):
        with pytest.raises(ApplicationError) as refused:
            trading_state_set(scope_type=scope_type, scope_key=key, state="HALTED", actor="op", reason="r")
        assert refused.value.code == "UNKNOWN_SCOPE" and list(refused.value.details) == ["scope_key"]


def test_a_scope_back_to_active_drops_off_the_panel_and_stays_in_the_ledger(client, markets):
    from trading.services.control import trading_state_set

    trading_state_set(scope_type="instrument", scope_key="SOL-USD", state="REDUCE_ONLY", actor="op", reason="thin")
    _login(client, "viewer")
    scopes = [t["scope"] for t in client.get(reverse("admin:control_panel_status")).json()["trading_states"]]
    assert scopes == ["global", "instrument:SOL-USD"]

    trading_state_set(scope_type="instrument", scope_key="SOL-USD", state="ACTIVE", actor="op", reason="deep again")

    scopes = [t["scope"] for t in client.get(reverse("admin:control_panel_status")).json()["trading_states"]]
    assert scopes == ["global"]
    assert Event.objects.filter(topic="trading_state.changed", aggregate_id="instrument:SOL-USD").count() == 2


def test_halt_everything_shows_a_banner_on_every_page_and_resume_rearms_exactly_what_it_disarmed(client):
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="op", reason="live")
    control_arm(component="treasury:withdrawals", actor="op", reason="live")
    admin = _login(client, "risk_admin", "rita")
    client.post(reverse("admin:halt_all"), {"reason": "venue outage"})

    page = client.get(reverse("admin:trading_order_changelist")).content.decode()
    assert 'id="td-restrictions"' in page and "venue outage" in page
    assert f"by rita (user {admin.pk})" in page and "HALTED</strong> on <strong>global" in page
    confirm = client.get(reverse("admin:resume_all")).content.decode()
    assert "arm executor:paper" in confirm and "arm treasury:withdrawals" in confirm
    assert "arm signer:ostium" not in confirm  # it was disarmed before the halt

    response = client.post(reverse("admin:resume_all"), {"reason": "outage over"})

    assert response.status_code == 302
    assert TradingState.objects.get(scope_type="global").state == "ACTIVE"
    armed = set(ControlState.objects.filter(armed=True).values_list("component", flat=True))
    assert armed == {"executor:paper", "treasury:withdrawals"}
    resumed = Event.objects.get(topic="desk.resumed")
    assert resumed.payload["rearmed"] == ["executor:paper", "treasury:withdrawals"]
    assert resumed.causation_id == Event.objects.get(topic="desk.halted").id
    assert 'id="td-restrictions"' not in client.get(reverse("admin:trading_order_changelist")).content.decode()


def test_resume_gives_a_timed_arming_back_with_its_end_and_not_one_that_ended_during_the_halt(client):
    from datetime import UTC, datetime, timedelta

    from trading.services.control import control_arm

    later = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    soon = timezone.now() + timedelta(seconds=1)
    control_arm(component="executor:paper", actor="op", reason="two hours", expires_at=later)
    control_arm(component="treasury:withdrawals", actor="op", reason="a moment", expires_at=soon)
    _login(client, "risk_admin")
    client.post(reverse("admin:halt_all"), {"reason": "venue outage"})
    assert Event.objects.get(topic="desk.halted").payload["was_armed"] == ["executor:paper", "treasury:withdrawals"]
    wait_for(lambda: timezone.now() > soon, what="the short arming's end")

    confirm = client.get(reverse("admin:resume_all")).content.decode()
    assert f"arm executor:paper until {later:%Y-%m-%d %H:%M} UTC" in confirm
    assert "not treasury:withdrawals: its arming ended during the halt" in confirm
    client.post(reverse("admin:resume_all"), {"reason": "outage over"})

    paper = ControlState.objects.get(component="executor:paper")
    assert paper.armed and paper.expires_at == later
    assert not ControlState.objects.get(component="treasury:withdrawals").armed
    resumed = Event.objects.get(topic="desk.resumed").payload
    assert (resumed["rearmed"], resumed["lapsed_during_halt"]) == (["executor:paper"], ["treasury:withdrawals"])


def test_resume_needs_the_halt_all_permission(client):
    from trading.services.control import trading_state_set

    trading_state_set(scope_type="global", state="HALTED", actor="op", reason="r")
    _login(client, "operator")
    page = client.get(reverse("admin:trading_order_changelist")).content.decode()
    assert 'id="td-restrictions"' in page and 'id="td-resume-all"' not in page
    assert client.post(reverse("admin:resume_all"), {"reason": "mine"}).status_code == 403
    assert TradingState.objects.get(scope_type="global").state == "HALTED"


def test_the_timeline_tells_the_order_as_a_story(client, markets, trader, armed):
    from providers.prices import price_set
    from trading.services.execution import order_execute
    from trading.services.orders import order_place
    from trading.services.protective import protective_monitor_run

    trader.first_name, trader.last_name = "Alice", ""
    trader.save()
    order = order_place(
        user=trader,
        asset="BTC-USD",
        side="long",
        collateral=D(100),
        leverage=D(5),
        stop_price=D(58000),
        take_profit_price=D(61200),
    )
    order_execute(order_id=order.pk)
    price_set("BTC-USD", D("61250"))
    protective_monitor_run()
    for triggered in Order.objects.filter(status__in=("TRIGGERED", "ACCEPTED", "SUBMITTING")):
        order_execute(order_id=triggered.pk)
    order.refresh_from_db()
    _login(client, "viewer")

    page = client.get(reverse("admin:timeline", args=["order", order.pk])).content.decode()

    story = page[page.index('id="td-story"') : page.index("</div>", page.index('id="td-story"'))]
    assert "Alice opened a 5× BTC-USD long with 100.00 USD at " in story
    assert "the risk engine passed it at reference 60,000.00 (paper)" in story
    assert f"filled at {order.filled_price:,.2f}," in story
    assert "stop-loss at 58,000.00" in story and "take-profit at 61,200.00 placed, and it fired" in story
    assert "closed by take-profit at " in story and "PnL +" in story
    assert "None" not in story and "E-" not in story


def test_pnl_over_time_charts_and_csv_exports_of_trades_and_fills(client, markets, trader, armed):
    from datetime import timedelta

    from django.utils import timezone

    from trading.models import Fill, Trade
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    opened = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))
    order_execute(order_id=opened.pk)
    trade = Trade.objects.get(user=trader)
    close = order_place(user=trader, asset="BTC-USD", side="long", reduce_only=True, trade=trade)
    order_execute(order_id=close.pk)
    _login(client, "viewer")

    panel = client.get(reverse("admin:control_panel")).content.decode()
    assert "Open exposure by instrument (USD)" in panel and "Realised PnL, cumulative, last 14 days" in panel
    page = client.get(reverse("admin:pnl"), {"user": trader.pk, "days": 7}).content.decode()
    assert "Realised PnL of trader, cumulative, last 7 days" in page and "<polyline" in page
    assert client.get(reverse("admin:pnl"), {"user": 999999}).status_code == 404

    today = timezone.now().date()
    fills = client.get(reverse("admin:export_csv", args=["fills"]), {"from": str(today), "to": str(today)})
    lines = fills.content.decode().strip().splitlines()
    assert fills["Content-Type"] == "text/csv" and lines[0].startswith("id,user,trade_id,order_id,kind,price")
    assert len(lines) == 1 + Fill.objects.count() == 3
    assert "E-" not in fills.content.decode()
    trades = client.get(reverse("admin:export_csv", args=["trades"]))
    assert len(trades.content.decode().strip().splitlines()) == 2
    earlier = str(today - timedelta(days=10))
    empty = client.get(reverse("admin:export_csv", args=["trades"]), {"from": earlier, "to": earlier})
    assert len(empty.content.decode().strip().splitlines()) == 1
    assert client.get(reverse("admin:export_csv", args=["trades"]), {"from": "yesterday"}).status_code == 400


def test_the_stock_admin_lists_print_times_as_the_panel_does(client):
    """`2026-12-07 12:07:31 UTC`, as `formatting.when` and the panel's own templates print them
    (config/formats), not Django's `Dec. 7, 2026, 12:07 p.m.`."""
    from datetime import UTC, datetime

    from webhooks.models import WebhookAllowlist

    _login(client, "operator")
    WebhookAllowlist.objects.create(cidr="10.0.0.0/8", created_at=datetime(2026, 12, 7, 12, 7, 31, tzinfo=UTC))
    page = client.get(reverse("admin:webhooks_webhookallowlist_changelist")).content.decode()
    assert "2026-12-07 12:07:31 UTC" in page and "p.m." not in page
