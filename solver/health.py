"""The solver loop's lines on the control panel (registered with
`trading.admin_panel.health.health_provider_register`): one per component with what its control
state lets it do now (`state`: armed, paused, draining, disarmed, lapsed — a timed arming that
has run out — or disabled), the last message and its age and the counters, silent pairs, open
commands."""

from __future__ import annotations

from datetime import UTC, datetime

from trading.admin_panel.health import DOWN, OFF, OK, WARN, HealthItem


def _status(component: dict) -> str:
    """Armed: ok; paused or draining (an operator's hold, nothing new done): warn; disarmed,
    lapsed or disabled by the environment's kill switch: off (nothing to judge)."""
    state = component["state"]
    return OK if state == "armed" else WARN if state in ("paused", "draining") else OFF


def solver_health() -> list[HealthItem]:
    from solver.services.queries import solver_state

    state = solver_state()
    c = state["components"]
    ingest, strategy, executor = c["ingest"], c["strategy"], c["executor"]
    items = []
    n = ingest["counters"]
    if ingest["state"] in ("disarmed", "lapsed", "disabled"):
        status, value = OFF, ingest["state"]
    elif not state["running"]:
        status, value = DOWN, "process not running (manage.py near_solver)"
    elif not ingest["connected"]:
        status, value = DOWN, "relay not connected"
    elif ingest["state"] != "armed":  # paused or draining: connected, the quotes stored dropped
        status, value = WARN, f"connected, {ingest['state']}"
    else:
        status, value = (WARN if ingest["silent_pairs"] else OK), "connected"
    age = ingest["last_message_age_s"]
    items.append(
        HealthItem(
            name="NEAR Intents ingest",
            status=status,
            value=value,
            detail=(f"last message {age:.1f} s ago; " if age is not None else "no message yet; ")
            + f"quotes {n['quotes']}, filtered {n['filtered']}, invalid {n['invalid']}, dropped {n['dropped']}, "
            f"duplicates {n['duplicates']}, invalid messages {n['invalid_messages']}, reconnects {n['reconnects']}"
            + (f"; silent: {', '.join(ingest['silent_pairs'])}" if ingest["silent_pairs"] else ""),
        )
    )
    latest = strategy["latest_decision"]
    items.append(
        HealthItem(
            name="NEAR Intents strategy",
            status=_status(strategy),
            value=strategy["state"],
            detail=f"edge ≥ {strategy['threshold_pct']} %, spread {strategy['spread_pct']} %; "
            + (f"last: {latest['decision']} {latest['decision_reason']}; " if latest else "no decision yet; ")
            + "skips last hour: "
            + (", ".join(f"{k} {v}" for k, v in state["skip_reasons"]["last_hour"].items()) or "none"),
        )
    )
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(executor["by_status"].items()))
    items.append(
        HealthItem(
            name="NEAR Intents executor",
            status=_status(executor),
            value=executor["state"],
            detail=f"in flight {executor['in_flight']}, completed {executor['completed']}"
            + (f"; {by_status}" if by_status else ""),
        )
    )
    return items


# --- the panel's "last activity" of each component (`activity_provider_register`) ---------------
def ingest_activity():
    from solver.services.state import state_read

    at = state_read().get("relay", {}).get("last_message_at")
    return (datetime.fromtimestamp(float(at), UTC) if at else None), "message from the relay"


def strategy_activity():
    from solver.models import QuoteDecision

    return QuoteDecision.objects.order_by("-created_at").values_list("created_at", flat=True).first(), "decision"


def executor_activity():
    from solver.models import QuoteCommand

    sent = QuoteCommand.objects.filter(sent_at__isnull=False).order_by("-created_at")  # created_at is indexed
    return sent.values_list("sent_at", flat=True).first(), "quote_response sent"
