"""The event ledger: `event_record` is the one way any app writes an event (`event_record_many`
for many at once, `insert_with_event` for a new row and its first event in one statement)."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import sql
from django.utils import timezone

from config.context import correlation_id_var
from trading import outbox, outbox_listener
from trading.models import Event, OutboxMessage
from trading.ulid import new_ulid

# The event and its outbox rows in one statement (one round-trip; this runs on every order).
_EVENT_COLUMNS = (
    "id, occurred_at, topic, aggregate_type, aggregate_id, correlation_id, causation_id, actor, payload, version"
)
_EVENT_SQL = f"""
INSERT INTO {Event._meta.db_table} ({_EVENT_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
"""
# params: event id, next_attempt_at, created_at, handler names
_OUTBOX_SQL = f"""
INSERT INTO {OutboxMessage._meta.db_table}
    (event_id, handler, status, attempts, next_attempt_at, last_error, created_at)
SELECT %s, handler, '{OutboxMessage.Status.PENDING}', 0, %s, '', %s FROM unnest(%s::text[]) AS handler
"""
_EVENT_WITH_OUTBOX_SQL = f"WITH event AS ({_EVENT_SQL}) {_OUTBOX_SQL}"
# A new row (`row`: an INSERT ... RETURNING id) and its first event: the row's id goes into the
# event's aggregate id, correlation id (prefix + id) and payload (under a key).
_ROW_EVENT_SQL = f"""
WITH row AS ({{insert}}), event AS (
    INSERT INTO {Event._meta.db_table} ({_EVENT_COLUMNS})
    SELECT %s, %s::timestamptz, %s, %s, row.id::text, %s::text || row.id, %s, %s,
        jsonb_build_object(%s::text, row.id) || %s::jsonb, %s::int
    FROM row
){{outbox}}
SELECT id FROM row{{notify}}
"""


# Joined to the row's SELECT when the new row has outbox messages: the worker's listener
# (`trading/outbox_listener.py`) hears it when the transaction commits and kicks the dispatcher.
# One statement still; a dispatcher kick after commit would cost the writer a Redis round trip.
def _notify_join() -> str:
    return f", ({outbox_listener.notify_sql()}) AS notified"


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
    kick: bool = True,
) -> Event:
    """Append one event in the caller's transaction and queue it for every handler whose
    topic patterns match; the dispatcher is kicked after commit. A rolled-back transaction
    leaves neither the event nor its outbox rows.

    `kick=False` leaves the kick to a follow-up the transaction sets off anyway, whose own
    event kicks the dispatcher (which publishes every pending message in order): a task it
    enqueues after commit that always records the aggregate's next event. The Beat sweep
    publishes whatever a lost follow-up leaves behind."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the transaction of the state change")
    event = Event(
        id=new_ulid(),
        occurred_at=timezone.now(),
        topic=topic,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload=payload or {},
        actor=actor,
        correlation_id=correlation_id or correlation_id_var.get() or "",
        causation_id=causation_id or "",
        version=version,
    )
    params = [
        event.id,
        event.occurred_at,
        event.topic,
        event.aggregate_type,
        event.aggregate_id,
        event.correlation_id,
        event.causation_id,
        event.actor,
        json.dumps(event.payload, cls=DjangoJSONEncoder),
        event.version,
    ]
    names = outbox.handlers_for(topic)
    with connection.cursor() as cur:
        if names:
            cur.execute(_EVENT_WITH_OUTBOX_SQL, [*params, event.id, event.occurred_at, event.occurred_at, names])
        else:
            cur.execute(_EVENT_SQL, params)
    event._state.adding = False
    if names and kick:
        outbox.kick_after_commit()
    return event


def insert_with_event(
    instance,
    *,
    topic: str,
    aggregate_type: str,
    correlation_prefix: str,
    id_key: str,
    payload: dict,
    actor: str = "system",
    causation_id: str = "",
    version: int = 1,
    kick: bool = True,
    also=None,
) -> str:
    """INSERT `instance` (a new model row) and its first event in one statement: a
    single-statement transaction of its own outside `atomic`, or part of the caller's inside.
    The new row's id is the event's aggregate id, its correlation id (`correlation_prefix` +
    id) and `payload[id_key]`. Two round trips fewer than BEGIN, the two INSERTs and COMMIT,
    for the writes that need nothing else in their transaction (a new order on its way to the
    executor). With outbox rows (and `kick`), the statement also notifies the workers' outbox
    listeners (`trading/outbox_listener.py`), delivered when the transaction commits: no kick
    after commit, no round trip of its own. `also(instance) -> (sql, params)`: one more CTE of
    the statement (it may read the new row's id: `(SELECT id FROM row)`), built once the row's
    own values are set (e.g. a request's idempotent response). Returns the event's id (no Event
    is built: the new order's path has no use for one, and building it cost ~30 µs a trade)."""
    insert_sql, insert_params = _insert_returning_id(instance)
    event_id, occurred_at = new_ulid(), timezone.now()
    names = outbox.handlers_for(topic)
    also_sql, also_params = also(instance) if also is not None else ("", [])
    statement = _ROW_EVENT_SQL.format(
        insert=insert_sql,
        outbox=(f", outbox AS ({_OUTBOX_SQL})" if names else "") + (f", also AS ({also_sql})" if also_sql else ""),
        notify=_notify_join() if names and kick else "",
    )
    params = [
        *insert_params,
        event_id,
        occurred_at,
        topic,
        aggregate_type,
        correlation_prefix,
        causation_id,
        actor,
        id_key,
        json.dumps(payload, cls=DjangoJSONEncoder),
        version,
    ]
    if names:
        params += [event_id, occurred_at, occurred_at, names]
    params += also_params
    with connection.cursor() as cur:
        cur.execute(statement, params)
        (pk,) = cur.fetchone()
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return event_id


# A model's `INSERT ... RETURNING id` depends only on its fields, so it is compiled once per
# model (kept split at its placeholders); each row's values are prepared as Django's insert
# compiler prepares them. A NULL value is written into the SQL rather than passed: psycopg keeps
# a statement's parsed form only while it has at most 50 parameters, and an order with its event
# and outbox rows has 60, about half of them NULL (each parse took ~0.13 ms). The statement text
# differs per pattern of NULL columns, a handful per model.
_INSERT_PARTS: dict[type, list[str]] = {}
_INSERT_SQL: dict[tuple[type, tuple[bool, ...]], str] = {}
# Per model, which fields prepare None as NULL (asked of each field once: all but a JSON field,
# whose None would be the JSON null): their None values skip the preparation (about half an
# order's fields are None, and preparing each costs a few µs).
_NONE_IS_NULL: dict[type, tuple[bool, ...]] = {}


def _insert_returning_id(instance) -> tuple[str, list]:
    model = type(instance)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    values = [f.pre_save(instance, True) for f in fields]  # sets auto_now(_add) on the instance
    plain = not any(hasattr(v, "resolve_expression") for v in values)  # an expression compiles to its own SQL
    parts = _INSERT_PARTS.get(model) if plain else None
    if parts is not None:
        # the connection itself, not the `connection` proxy: each field's preparation reads
        # `connection.ops`, and through the proxy every read was a context-local look-up (about
        # half of this function's time for an order's 43 fields)
        conn = connections[DEFAULT_DB_ALIAS]
        none_is_null = _NONE_IS_NULL.get(model)
        if none_is_null is None:
            none_is_null = tuple(f.get_db_prep_save(None, connection=conn) is None for f in fields)
            _NONE_IS_NULL[model] = none_is_null
        prepared = [
            None if v is None and null else f.get_db_prep_save(v, connection=conn)
            for f, v, null in zip(fields, values, none_is_null, strict=True)
        ]
        nulls = tuple(v is None for v in prepared)
        statement = _INSERT_SQL.get((model, nulls))
        if statement is None:
            statement = _INSERT_SQL[model, nulls] = parts[0] + "".join(
                ("NULL" if null else "%s") + part for null, part in zip(nulls, parts[1:], strict=True)
            )
        return statement, [v for v in prepared if v is not None]
    query = sql.InsertQuery(model)
    query.insert_values(fields, [instance])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [model._meta.pk]
    [(insert_sql, insert_params)] = compiler.as_sql()
    split = insert_sql.split("%s")
    # then each value is one plain %s
    if plain and len(split) == len(fields) + 1 and not any(hasattr(f, "get_placeholder") for f in fields):
        _INSERT_PARTS[model] = split
    return insert_sql, list(insert_params)


def events_for_correlation(correlation_id: str):
    return Event.objects.filter(correlation_id=correlation_id).order_by("id")


def _event_values(pk: str, e: dict, *, now, correlation: str) -> tuple:
    """One event's column values, in `_EVENT_COLUMNS` order, for the bulk writers: `e` holds
    `event_record`'s keyword arguments, plus an optional `occurred_at` and a `payload_json`
    already encoded."""
    return (
        pk,
        e.get("occurred_at") or now,
        e["topic"],
        e["aggregate_type"],
        str(e["aggregate_id"]),
        e.get("correlation_id") or correlation,
        e.get("causation_id") or "",
        e.get("actor", "system"),
        e.get("payload_json") or json.dumps(e.get("payload") or {}, cls=DjangoJSONEncoder),
        e.get("version", 1),
    )


def event_record_many(events: list[dict]) -> list[str]:
    """`event_record` for many events at once (same fields as its keyword arguments; a payload
    may come already encoded as `payload_json`), written with COPY in the caller's transaction:
    for engines that change many rows in one statement (protective triggers). Returns the new
    event ids, in order."""
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
        with cursor.copy(f"COPY {Event._meta.db_table} ({_EVENT_COLUMNS}) FROM STDIN") as copy:
            ids = new_ulids(len(events))
            for pk, e in zip(ids, events, strict=True):
                copy.write_row(_event_values(pk, e, now=now, correlation=default_correlation))
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


def event_rows_sql(events: list[dict]) -> tuple[str, list, str, list, list[str]]:
    """The multi-row INSERTs of `events` and of their outbox rows (empty when no handler wants
    them): (events SQL, params, outbox SQL, params, event ids), for a caller that writes them as
    parts of one statement of its own, in its transaction (as CTEs of it: the outbox rows'
    foreign keys are checked at the end of the statement; the caller kicks the dispatcher,
    `outbox.kick_after_commit`, when there are outbox rows). Each event: `event_record`'s keyword
    arguments, plus an optional `id` and `occurred_at` taken when the event happened (the ledger
    orders by id)."""
    from trading.ulid import new_ulids

    default_correlation = correlation_id_var.get() or ""
    now = timezone.now()
    fresh = iter(new_ulids(len(events)))
    ids = [e.get("id") or next(fresh) for e in events]  # an id taken earlier keeps the event's place
    rows, params, messages, message_params = [], [], [], []
    for pk, e in zip(ids, events, strict=True):
        rows.append("(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)")
        params += _event_values(pk, e, now=now, correlation=default_correlation)
        for name in outbox.handlers_for(e["topic"]):
            messages.append(f"(%s, %s, '{OutboxMessage.Status.PENDING}', 0, %s, '', %s)")
            message_params += [pk, name, now, now]
    events_sql = f"INSERT INTO {Event._meta.db_table} ({_EVENT_COLUMNS}) VALUES {', '.join(rows)}"
    outbox_sql = ""
    if messages:
        outbox_sql = (
            f"INSERT INTO {OutboxMessage._meta.db_table} "
            "(event_id, handler, status, attempts, next_attempt_at, last_error, created_at) "
            f"VALUES {', '.join(messages)}"
        )
    return events_sql, params, outbox_sql, message_params, ids
