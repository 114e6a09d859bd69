"""The loop's controls and queries through the staff API and the admin."""

import pytest

from tests.conftest import wait_for
from tests.solver.conftest import BTC, EURE, EURE_RAW, arm
from tests.trading.roles import user_in


@pytest.fixture
def risk_admin_client(client, db):
    from trading.admin_panel.roles import roles_and_rows_ensure

    roles_and_rows_ensure()
    client.force_login(user_in("risk_admin"))
    return client


@pytest.fixture
def operator_client(client, db):
    from trading.admin_panel.roles import roles_and_rows_ensure

    roles_and_rows_ensure()
    client.force_login(user_in("operator"))
    return client


def test_a_fresh_deploy_starts_with_every_near_intents_component_disarmed(db):
    from trading.models import ControlState

    rows = ControlState.objects.filter(
        component__in=("near_intents:ingest", "strategy:near_intents", "executor:near_intents")
    )
    assert sorted(r.component for r in rows) == [
        "executor:near_intents",
        "near_intents:ingest",
        "strategy:near_intents",
    ]
    assert not any(r.armed for r in rows)


def test_components_are_armed_paused_drained_and_disarmed_through_the_api_and_audited(operator_client):
    from trading.models import ControlState, Event

    url = "/api/v1/ops/near-intents/components/executor/{}"
    r = operator_client.post(url.format("arm"), {"reason": "go"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["armed"] is True
    r = operator_client.post(url.format("drain"), {"reason": "wind down"}, content_type="application/json")
    assert r.json()["draining"] is True
    r = operator_client.post(url.format("resume"), {"reason": "back"}, content_type="application/json")
    assert r.json()["draining"] is False
    r = operator_client.post(
        "/api/v1/ops/near-intents/components/strategy/pause", {"reason": "look"}, content_type="application/json"
    )
    assert r.json()["paused"] is True
    r = operator_client.post(url.format("disarm"), {"reason": "stop"}, content_type="application/json")
    assert not ControlState.objects.get(component="executor:near_intents").armed
    topics = list(
        Event.objects.filter(aggregate_type="control_state", aggregate_id="executor:near_intents")
        .order_by("id")
        .values_list("topic", flat=True)
    )
    assert topics == ["control.armed", "control.draining", "control.resumed", "control.disarmed"]
    # no reason, unknown component: the envelope
    r = operator_client.post(url.format("arm"), {}, content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"]
    r = operator_client.post(
        "/api/v1/ops/near-intents/components/nope/arm", {"reason": "x"}, content_type="application/json"
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


def test_the_pair_filter_is_read_edited_reset_and_audited(operator_client, settings):
    from trading.models import Event

    settings.NEAR_SOLVER_PAIRS = ["BTC/EURE"]
    base = "/api/v1/ops/near-intents/pair-filter"
    assert operator_client.get(base).json() == {"pairs": ["BTC/EURE"], "defaults": ["BTC/EURE"]}
    settings.REFERENCE_PAIRS = [*settings.REFERENCE_PAIRS, "BTC/USDC"]
    r = operator_client.put(
        base, {"pairs": ["btc-usdc", "BTC/EURE"], "reason": "add usdc"}, content_type="application/json"
    )
    assert r.status_code == 200 and r.json()["pairs"] == ["BTC/USDC", "BTC/EURE"]
    r = operator_client.put(base, {"pairs": ["nonsense"], "reason": "x"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PAIR"
    # a pair the loop could never quote is refused, with why: a typo, or no reference price yet
    r = operator_client.put(base, {"pairs": ["BTC/EUR", "ETH/USDT"], "reason": "x"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PAIR"
    assert r.json()["error"]["details"]["pairs"] == [
        "BTC/EUR: EUR: not a NEAR Intents token (BTC, ETH, EURE, USDC, USDT, WNEAR)",
        "ETH/USDT: no reference price: add it to REFERENCE_PAIRS first",
    ]
    assert operator_client.get(base).json()["pairs"] == ["BTC/USDC", "BTC/EURE"]  # unchanged
    settings.REFERENCE_PAIRS = settings.REFERENCE_PAIRS[:-1]  # a pair already in the filter stays editable
    r = operator_client.put(base, {"pairs": ["BTC/USDC"], "reason": "x"}, content_type="application/json")
    assert r.status_code == 200
    r = operator_client.put(base, {"pairs": ["BTC/USDC", "BTC/EURE"], "reason": "x"}, content_type="application/json")
    assert r.status_code == 200
    r = operator_client.post(base + "/reset", {"reason": "back"}, content_type="application/json")
    assert r.json()["pairs"] == ["BTC/EURE"]
    changes = list(Event.objects.filter(topic="near_intents.settings_changed").order_by("id"))
    assert [e.payload["after"]["pairs"] for e in changes] == [
        ["BTC/USDC", "BTC/EURE"],
        ["BTC/USDC"],
        ["BTC/USDC", "BTC/EURE"],
        ["BTC/EURE"],
    ]
    assert changes[0].payload["before"]["pairs"] == ["BTC/EURE"] and changes[0].actor.endswith(":operator")


def test_the_threshold_needs_a_risk_admin_and_is_audited(operator_client, client, db):
    from trading.models import Event

    r = operator_client.put(
        "/api/v1/ops/near-intents/threshold", {"threshold_pct": "3", "reason": "wider"}, content_type="application/json"
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
    client.force_login(user_in("risk_admin", "risky"))
    r = client.put(
        "/api/v1/ops/near-intents/threshold", {"threshold_pct": "3", "reason": "wider"}, content_type="application/json"
    )
    assert r.status_code == 200 and r.json()["threshold_pct"] == "3"
    event = Event.objects.get(topic="near_intents.settings_changed")
    assert (event.payload["before"]["threshold_pct"], event.payload["after"]["threshold_pct"]) == ("2", "3")
    r = client.put(
        "/api/v1/ops/near-intents/limits",
        {"max_notional_quote": "500", "reason": "small"},
        content_type="application/json",
    )
    assert r.json()["max_notional_quote"] == "500"
    for unplain in ("3e0", "３", "NaN"):  # refused as on the trade endpoints
        r = client.put(
            "/api/v1/ops/near-intents/threshold",
            {"threshold_pct": unplain, "reason": "x"},
            content_type="application/json",
        )
        assert r.status_code == 400 and "threshold_pct" in r.json()["error"]["details"], unplain


def test_one_quote_s_chain_and_skip_reasons_in_one_call(desk, solver, staff_client):
    from solver.models import QuoteCommand

    arm("strategy:near_intents")
    relay = desk.world.relay
    skipped = relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
    wait_for(lambda: solver.runner.counters["skip"] == 1, what="skipped")
    arm("executor:near_intents")
    quoted = relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
    wait_for(lambda: QuoteCommand.objects.filter(quote_id=quoted, status="settled").exists(), what="settled")

    why = staff_client.get(f"/api/v1/ops/near-intents/quotes/{skipped}").json()
    assert why["decision"]["decision_reason"] == "EXECUTOR_DISARMED" and why["command"] is None
    assert why["reference_sample"]["rate"] == "60000" and why["reference_sample"]["kraken_price"] == "60000"
    assert why["decision"]["inventory_snapshot"]["spendable"] == "2"
    assert why["inventory_snapshot"]["credited"] == "2"

    chain = staff_client.get(f"/api/v1/ops/near-intents/quotes/{quoted}").json()
    topics = [e["topic"] for e in chain["timeline"]]
    assert topics[0] == "near_intents.quote.received" and topics[-1] == "near_intents.quote.settled"
    assert {"inventory.reserved", "inventory.consumed"} <= set(topics)
    assert chain["command"]["status"] == "settled" and chain["command"]["relay_answer"] == {"result": "OK"}

    reasons = staff_client.get("/api/v1/ops/near-intents/skip-reasons").json()
    assert reasons["last_hour"] == {"EXECUTOR_DISARMED": 1} and reasons["last_day"] == {"EXECUTOR_DISARMED": 1}
    r = staff_client.get("/api/v1/ops/near-intents/quotes/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "QUOTE_NOT_FOUND"

    page = staff_client.get(f"/admin/solver/relayquote/chain/{quoted}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "near_intents.quote.settled" in html and "QUOTED" in html
    assert "BTC/EURE sell · 1,000 EURE in · accepted" in html  # what the quote asked, in the token's units
    assert "<td>60,000</td>" in html  # the reference rate as a number, not its 18 stored decimals

    wait_for(lambda: staff_client.get("/api/v1/ops/near-intents").json()["running"], what="state written")
    state = staff_client.get("/api/v1/ops/near-intents").json()
    ingest = state["components"]["ingest"]
    assert ingest["armed"] and ingest["connected"] and ingest["counters"]["quotes"] == 2
    assert ingest["last_message_age_s"] is not None
    assert state["components"]["executor"]["by_status"] == {"settled": 1}
    assert state["components"]["strategy"]["latest_skip_reason"] == "EXECUTOR_DISARMED"


def test_the_control_panel_shows_each_component(desk, solver, staff_client):
    from solver.models import QuoteCommand

    arm("strategy:near_intents", "executor:near_intents")
    quote_id = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=500 * EURE_RAW)
    wait_for(lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").exists(), what="settled")
    wait_for(lambda: staff_client.get("/api/v1/ops/near-intents").json()["running"], what="state written")
    status = staff_client.get("/admin/control-panel/status.json").json()
    text = str(status)
    assert "NEAR Intents ingest" in text and "NEAR Intents executor" in text
    assert "completed 1" in text and "quotes 1" in text

    # the components table: when each last did something, and what (not an executor's venue commands)
    from datetime import datetime, timedelta

    from django.utils import timezone

    from solver.models import QuoteDecision

    command = QuoteCommand.objects.get(quote_id=quote_id)
    activity = {c["component"]: (c["last_activity"], c["activity"]) for c in status["components"]}
    assert activity["executor:near_intents"] == (command.sent_at.isoformat(), "quote_response sent")
    decided = QuoteDecision.objects.get(quote_id=quote_id).created_at
    assert activity["strategy:near_intents"] == (decided.isoformat(), "decision")
    at, what = activity["near_intents:ingest"]
    assert what == "message from the relay" and timezone.now() - datetime.fromisoformat(at) < timedelta(seconds=30)
    assert activity["executor:paper"] == (None, "command sent to the venue")  # none to the paper venue
    assert activity["treasury:withdrawals"] == (None, "withdrawal or rebalance sent")

    # the lists print amounts as an operator reads them, in the token's symbol
    from solver.models import RelayQuote

    unreadable = RelayQuote.objects.create(quote_id="unreadable", raw={}, status="invalid", note="both amounts")
    quotes = staff_client.get("/admin/solver/relayquote/").content.decode()
    assert "500 EURE in" in quotes and "500.000000" not in quotes
    assert 'field-amount_col">-</td>' in quotes  # a request with no readable amount: a dash, not " in"
    chain_page = staff_client.get(f"/admin/solver/relayquote/chain/{unreadable.quote_id}/").content.decode()
    assert "(no pair)  · invalid" in chain_page
    commands = staff_client.get("/admin/solver/quotecommand/").content.decode()
    assert f"{command.give_amount.normalize():f} BTC" in commands and "EURE" in commands
    assert f'<span title="{command.quote_id}">{command.quote_id[:8]}…</span>' in commands  # whole in its tooltip
    assert "Gross edge %" in staff_client.get("/admin/solver/quotedecision/").content.decode()


def test_the_panel_says_what_each_component_may_do_now_not_only_whether_it_is_armed(desk, solver, staff_client):
    """A paused or draining component is armed but does nothing new: its health line says so
    (amber); one whose arming has run out is "lapsed" (the loop's own gate treats it as disarmed)."""
    from datetime import timedelta

    from django.utils import timezone

    from trading.models import ControlState
    from trading.services.control import control_arm, control_drain, control_pause, control_resume

    def lines(details=False):
        items = staff_client.get("/admin/control-panel/status.json").json()["health"]
        return {
            i["name"]: i["detail"] if details else (i["status"], i["value"])
            for i in items
            if i["name"].startswith("NEAR Intents")
        }

    assert lines(details=True)["NEAR Intents executor"] == "in flight 0, completed 0"  # no dangling "; "
    arm("strategy:near_intents", "executor:near_intents")
    wait_for(lambda: lines()["NEAR Intents ingest"] == ("ok", "connected"), what="connected")
    assert lines()["NEAR Intents strategy"] == ("ok", "armed")
    assert lines()["NEAR Intents executor"] == ("ok", "armed")

    control_pause(component="near_intents:ingest", actor="test", reason="look")
    control_pause(component="strategy:near_intents", actor="test", reason="look")
    control_drain(component="executor:near_intents", actor="test", reason="wind down")
    now = lines()
    assert now["NEAR Intents ingest"] == ("warn", "connected, paused")
    assert now["NEAR Intents strategy"] == ("warn", "paused")
    assert now["NEAR Intents executor"] == ("warn", "draining")

    control_resume(component="executor:near_intents", actor="test", reason="back")
    control_arm(
        component="executor:near_intents",
        actor="test",
        reason="a while",
        expires_at=timezone.now() + timedelta(seconds=4),  # a panel read waits up to 1 s for a worker's ping
    )
    assert lines()["NEAR Intents executor"] == ("ok", "armed")
    wait_for(lambda: lines()["NEAR Intents executor"] == ("off", "lapsed"), what="the arming lapsed")
    assert ControlState.objects.get(component="executor:near_intents").armed  # the row, until the expiry job
    state = staff_client.get("/api/v1/ops/near-intents").json()["components"]["executor"]
    assert state["armed"] is True and state["state"] == "lapsed" and "armed until" in state["state_detail"]
