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


def event_record_many(events: list[dict]) -> list[str]:
    """`event_record` for many events at once (same fields as its keyword arguments; a payload
    may come already encoded as `payload_json`), written with COPY in the caller's transaction:
    for engines that change many rows in one statement (protective triggers). Returns the new
    event ids, in order."""
    import json

    from django.core.serializers.json import DjangoJSONEncoder
    from django.utils import timezone

    from trading.ulid import new_ulids

    if not connection.in_atomic_block:
        raise RuntimeError("event_record_many must run inside the transaction of the state change")
    if not events:
        return []
    default_correlation = correlation_id_var.get() or ""
    now = timezone.now()
    messages = []
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(
            f"COPY {Event._meta.db_table} (id, occurred_at, topic, aggregate_type, aggregate_id, correlation_id, "
            "causation_id, actor, payload, version) FROM STDIN"
        ) as copy:
            ids = new_ulids(len(events))
            for pk, e in zip(ids, events, strict=True):
                copy.write_row(
                    (
                        pk,
                        now,
                        e["topic"],
                        e["aggregate_type"],
                        str(e["aggregate_id"]),
                        e.get("correlation_id") or default_correlation,
                        e.get("causation_id") or "",
                        e.get("actor", "system"),
                        e.get("payload_json") or json.dumps(e.get("payload") or {}, cls=DjangoJSONEncoder),
                        e.get("version", 1),
                    )
                )
                messages.extend((pk, name) for name in outbox.handlers_for(e["topic"]))
        if messages:
            with cursor.copy(
                f"COPY {OutboxMessage._meta.db_table} (event_id, handler, status, attempts, next_attempt_at, "
                "last_error, created_at) FROM STDIN"
            ) as copy:
                for pk, name in messages:
                    copy.write_row((pk, name, OutboxMessage.Status.PENDING, 0, now, "", now))
    if messages:
        outbox.kick_after_commit()
    return ids
