"""The solver loop's lines on the control panel (registered with
`trading.admin_panel.health.health_provider_register`): one per component with what its control
state lets it do now (`state`: armed, paused, draining, disarmed, lapsed — a timed arming that
has run out — or disabled), the last message and its age and the counters, silent pairs, open
commands."""

from __future__ import annotations

from trading.admin_panel.health import DOWN, OK, UNKNOWN, WARN, HealthItem


def _status(component: dict) -> str:
    """Armed: ok; paused or draining (an operator's hold, nothing new done): warn; disarmed,
    lapsed or disabled by the environment's kill switch: unknown (off, nothing to judge)."""
    state = component["state"]
    return OK if state == "armed" else WARN if state in ("paused", "draining") else UNKNOWN


def solver_health() -> list[HealthItem]:
    from solver.services.queries import solver_state

    state = solver_state()
    c = state["components"]
    ingest, strategy, executor = c["ingest"], c["strategy"], c["executor"]
    items = []
    n = ingest["counters"]
    if ingest["state"] in ("disarmed", "lapsed", "disabled"):
        status, value = UNKNOWN, ingest["state"]
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
    items.append(
        HealthItem(
            name="NEAR Intents executor",
            status=_status(executor),
            value=executor["state"],
            detail=f"in flight {executor['in_flight']}, completed {executor['completed']}; "
            + ", ".join(f"{k} {v}" for k, v in sorted(executor["by_status"].items())),
        )
    )
    return items
