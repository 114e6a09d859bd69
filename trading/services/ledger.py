"""The event ledger: `event_record` is the one way any app writes an event."""

from __future__ import annotations

from django.db import connection

from config.context import correlation_id_var
from trading import outbox
from trading.models import Event, OutboxMessage


def event_record(
    *,
    topic: str,
    aggregate_type: str,
    aggregate_id,
    payload: dict | None = None,
    actor: str = "system",
    correlation_id: str | None = None,
    causation_id: str | None = None,
    version: int = 1,
) -> Event:
    """Append one event in the caller's transaction and queue it for every handler whose
    topic patterns match; the dispatcher is kicked after commit. A rolled-back transaction
    leaves neither the event nor its outbox rows."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the transaction of the state change")
    event = Event.objects.create(
        topic=topic,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload=payload or {},
        actor=actor,
        correlation_id=correlation_id or correlation_id_var.get() or "",
        causation_id=causation_id or "",
        version=version,
    )
    names = outbox.handlers_for(topic)
    if names:
        OutboxMessage.objects.bulk_create(OutboxMessage(event=event, handler=name) for name in names)
        outbox.kick_after_commit()
    return event


def events_for_correlation(correlation_id: str):
    return Event.objects.filter(correlation_id=correlation_id).order_by("id")


def event_record_many(events: list[dict]) -> list[Event]:
    """`event_record` for many events at once (same fields as its keyword arguments), in two
    bulk inserts: for engines that change many rows in one statement (protective triggers)."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record_many must run inside the transaction of the state change")
    if not events:
        return []
    default_correlation = correlation_id_var.get() or ""
    rows = [
        Event(
            topic=e["topic"],
            aggregate_type=e["aggregate_type"],
            aggregate_id=str(e["aggregate_id"]),
            payload=e.get("payload") or {},
            actor=e.get("actor", "system"),
            correlation_id=e.get("correlation_id") or default_correlation,
            causation_id=e.get("causation_id") or "",
            version=e.get("version", 1),
        )
        for e in events
    ]
    Event.objects.bulk_create(rows)
    messages = [OutboxMessage(event=row, handler=name) for row in rows for name in outbox.handlers_for(row.topic)]
    if messages:
        OutboxMessage.objects.bulk_create(messages)
        outbox.kick_after_commit()
    return rows
