"""What an operator asks of the loop, each in one call: the chain of one quote (why it was
skipped, with the prices and inventory of that moment), skip reasons over the last hour and day,
and each component's state (control row, live process state, counters)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.forms.models import model_to_dict
from django.utils import timezone

from config.errors import NotFoundError
from solver.models import COMPONENTS, EXECUTOR, INGEST, STRATEGY, QuoteCommand, QuoteDecision, RelayQuote
from solver.services.config import config_get
from solver.services.loop import decision_view, hour_notional
from solver.services.state import state_read
from trading.models import ControlState, Event
from trading.services.control import control_gate

COMPONENT_NAMES = {"ingest": INGEST, "strategy": STRATEGY, "executor": EXECUTOR}


def _text(value):
    return None if value is None else format(value.normalize(), "f")


def command_view(c: QuoteCommand) -> dict:
    return {
        "command_id": c.command_id,
        "quote_id": c.quote_id,
        "decision_id": c.decision_id,
        "status": c.status,
        "pair": c.pair,
        "give": {"asset": c.give_asset, "amount": _text(c.give_amount)},
        "receive": {"asset": c.receive_asset, "amount": _text(c.receive_amount)},
        "notional": _text(c.notional),
        "deadline": c.deadline,
        "quote_hash": c.quote_hash,
        "intent_hash": c.intent_hash,
        "tx_hash": c.tx_hash,
        "reservation_id": c.reservation_id,
        "relay_answer": c.relay_answer,
        "sent_at": c.sent_at,
        "answered_at": c.answered_at,
        "status_at": c.status_at,
        "closed_at": c.closed_at,
        "outcome_reason": c.outcome_reason,
        "public_key": (c.response.get("signed_data") or {}).get("public_key", ""),
        "created_at": c.created_at,
    }


def quote_view(q: RelayQuote) -> dict:
    return {
        "quote_id": q.quote_id,
        "received_at": q.received_at,
        "status": q.status,
        "note": q.note,
        "pair": q.pair,
        "direction": q.direction,
        "asset_in": q.asset_in,
        "asset_out": q.asset_out,
        "exact_amount_in": q.exact_amount_in,
        "exact_amount_out": q.exact_amount_out,
        "amount": _text(q.amount),
        "min_deadline_ms": q.min_deadline_ms,
        "raw": q.raw,
    }


def quote_chain(quote_id: str) -> dict:
    """quote → decision (with the reference sample and inventory snapshot it used) → command →
    relay answer → status → settlement, and every ledger event of it in order (the timeline)."""
    quote = RelayQuote.objects.filter(quote_id=quote_id).first()
    if quote is None:
        raise NotFoundError(f"No quote {quote_id}.", code="QUOTE_NOT_FOUND", details={"quote_id": quote_id})
    decision = QuoteDecision.objects.filter(quote_id=quote_id).select_related("reference_sample").first()
    command = QuoteCommand.objects.filter(quote_id=quote_id).first()
    sample = snapshot = None
    if decision is not None and decision.reference_sample is not None:
        s = decision.reference_sample
        sample = {
            "id": s.pk,
            "pair": s.pair,
            "taken_at": s.taken_at,
            "outcome": s.outcome,
            "rate": _text(s.rate),
            "source": s.source,
            "reason": s.reason,
            "kraken_price": _text(s.kraken_price),
            "kraken_age_ms": s.kraken_age_ms,
            "coingecko_price": _text(s.coingecko_price),
            "coingecko_age_ms": s.coingecko_age_ms,
            "basis": s.basis,
        }
    if decision is not None and decision.inventory_snapshot_row_id:
        from treasury.models import InventorySnapshot

        row = InventorySnapshot.objects.filter(pk=decision.inventory_snapshot_row_id).first()
        if row is not None:
            snapshot = {
                k: (_text(v) if hasattr(v, "normalize") else v)
                for k, v in model_to_dict(row, exclude=["balance"]).items()
            }
            snapshot["taken_at"] = row.taken_at
    refs = Q(correlation_id=f"near-quote-{quote_id}")
    if command is not None and command.reservation_id:
        refs |= Q(aggregate_type="reservation", aggregate_id=str(command.reservation_id))
    events = [
        {
            "id": e.id,
            "occurred_at": e.occurred_at,
            "topic": e.topic,
            "actor": e.actor,
            "payload": e.payload,
        }
        for e in Event.objects.filter(refs).order_by("id")
    ]
    return {
        "quote": quote_view(quote),
        "decision": decision_view(decision) if decision else None,
        "reference_sample": sample,
        "inventory_snapshot": snapshot,
        "command": command_view(command) if command else None,
        "timeline": events,
    }


def skip_reasons(*, now=None) -> dict:
    now = now or timezone.now()
    out = {}
    for label, since in (("last_hour", now - timedelta(hours=1)), ("last_day", now - timedelta(days=1))):
        rows = (
            QuoteDecision.objects.filter(created_at__gte=since, decision="skip")
            .values("decision_reason")
            .annotate(n=Count("pk"))
            .order_by("-n", "decision_reason")
        )
        out[label] = {r["decision_reason"]: r["n"] for r in rows}
    return out


_GATE_STATE = {"VENUE_DISARMED": "disarmed", "VENUE_PAUSED": "paused", "VENUE_DISABLED": "disabled"}


def _control(row: ControlState | None, component: str) -> dict:
    """The row, and what it lets the component do now (`state`: armed, draining, paused,
    disarmed, lapsed or disabled: the gate's answer, which also knows the environment's kill
    switch and a timed arming that has run out, then the drain)."""
    gate = control_gate(row, component=component)
    if gate.ok:
        state = "draining" if row.draining else "armed"
    else:  # armed but refused as disarmed: its timed arming has run out (the panel's "lapsed")
        lapsed = gate.code == "VENUE_DISARMED" and row is not None and row.armed
        state = "lapsed" if lapsed else _GATE_STATE.get(gate.code, gate.code)
    if row is None:
        return {"armed": False, "paused": False, "draining": False, "state": state, "state_detail": gate.message}
    return {
        "state": state,
        "state_detail": gate.message,
        "armed": row.armed,
        "paused": row.paused,
        "draining": row.draining,
        "reason": row.reason,
        "changed_by": row.changed_by,
        "changed_at": row.changed_at,
        "expires_at": row.expires_at,
        "paused_until": row.paused_until,
    }


def solver_state() -> dict:
    """Each component: its control state and what the running process reports (the last message
    and its age, counters); the settings; skip reasons; open commands."""
    live = state_read()
    rows = {c.component: c for c in ControlState.objects.filter(component__in=COMPONENTS)}
    now = timezone.now()
    last_decision = QuoteDecision.objects.order_by("-created_at").first()
    last_skip = QuoteDecision.objects.filter(decision="skip").order_by("-created_at").first()
    last_command = QuoteCommand.objects.order_by("-created_at").first()
    counters = live.get("counters", {})
    config = config_get()

    def age(at):
        return None if not at else round(now.timestamp() - float(at), 3)

    relay = live.get("relay", {})
    components = {
        "ingest": {
            "component": INGEST,
            **_control(rows.get(INGEST), INGEST),
            "connected": relay.get("connected", False),
            "last_message_age_s": age(relay.get("last_message_at")),
            "last_quote": live.get("last_quote"),
            "pairs": config.pairs,
            "silent_pairs": live.get("silent_pairs", []),
            "pair_last_quote_at": live.get("pair_last_quote_at", {}),
            "counters": {
                "quotes": counters.get("quotes", 0),
                "accepted": counters.get("skip", 0) + counters.get("quote", 0),
                "filtered": counters.get("filtered", 0),
                "invalid": counters.get("invalid", 0),
                "dropped": counters.get("dropped", 0),
                "duplicates": counters.get("duplicate", 0),
                "invalid_messages": relay.get("invalid_messages", 0),
                "reconnects": relay.get("reconnects", 0),
                "connections": relay.get("connections", 0),
                "errors": relay.get("errors", 0),
            },
            "last_error": relay.get("last_error", ""),
        },
        "strategy": {
            "component": STRATEGY,
            **_control(rows.get(STRATEGY), STRATEGY),
            "threshold_pct": _text(config.threshold_pct),
            "spread_pct": _text(config.spread_pct),
            "max_notional_quote": _text(config.max_notional_quote),
            "max_notional_hour": _text(config.max_notional_hour),
            "notional_last_hour": _text(hour_notional(now)),
            "latest_decision": decision_view(last_decision) if last_decision else None,
            "latest_skip_reason": last_skip.decision_reason if last_skip else "",
            "skips": live.get("skips", {}),
        },
        "executor": {
            "component": EXECUTOR,
            **_control(rows.get(EXECUTOR), EXECUTOR),
            "last_command": command_view(last_command) if last_command else None,
            "in_flight": QuoteCommand.objects.filter(status__in=QuoteCommand.OPEN).count(),
            "completed": QuoteCommand.objects.filter(status__in=QuoteCommand.FINAL).count(),
            "by_status": dict(
                QuoteCommand.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
            ),
            "responses": counters.get("responses", 0),
            "errors": counters.get("errors", 0),
            "latency_ms": live.get("latency_ms"),
        },
    }
    return {
        "running": live.get("running", False),
        "state_age_s": live.get("age_s"),
        "components": components,
        "skip_reasons": skip_reasons(now=now),
    }
