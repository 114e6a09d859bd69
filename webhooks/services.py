"""Webhook services: endpoints (create, update, delete, rotate, ping), turning ledger events
into deliveries, the delivery run (claim, send, record), retries, redelivery and the sweep.

Nothing external (DNS, HTTP) is called while a transaction is open: a run claims a batch of
due deliveries in one short transaction, sends them (many at once, on the webhook event loop:
`webhooks/transport.py`), then records the outcomes in others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.db.models import F

from config import crypto, metrics
from config.errors import ApplicationError
from config.kicks import CoalescedKick
from configuration.runtime import config_value
from trading.services.ledger import event_record
from webhooks import clock, signing, transport
from webhooks.models import PING, SUBSCRIBABLE, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookNotice
from webhooks.safety import UnsafeTarget, allowlist_load, is_address, target_check
from webhooks.topics import event_type_for, owner_id_of

logger = logging.getLogger("tradedesk.webhooks")


# --- endpoints ----------------------------------------------------------------------------------


def _check_event_types(event_types) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise ApplicationError("Give at least one event type.", code="WEBHOOK_EVENT_TYPES_INVALID")
    unknown = sorted({str(t) for t in event_types} - set(SUBSCRIBABLE))
    if unknown:
        raise ApplicationError(
            "Unknown event types.",
            code="WEBHOOK_EVENT_TYPES_INVALID",
            details={"unknown": unknown, "allowed": SUBSCRIBABLE},
        )
    return sorted({str(t) for t in event_types})


def _endpoint_event(endpoint: WebhookEndpoint, topic: str, actor: str, **extra) -> None:
    from urllib.parse import urlsplit

    event_record(
        topic=topic,
        aggregate_type="webhook_endpoint",
        aggregate_id=endpoint.pk,
        actor=actor,
        payload={
            "user_id": endpoint.user_id,
            "endpoint_id": endpoint.pk,
            "host": urlsplit(endpoint.url).hostname or "",  # not the URL: a query may hold a token
            "event_types": endpoint.event_types,
            "is_active": endpoint.is_active,
            **extra,
        },
    )


def endpoint_create(
    *, user, url: str, event_types: list[str], description: str = "", secret: str | None = None
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its signing secret (shown to the user only now): the
    client's own `secret` when it is strong enough (`signing.secret_problem`), else generated."""
    event_types = _check_event_types(event_types)
    if secret is not None and (problem := signing.secret_problem(secret)):
        raise ApplicationError(problem, code="WEAK_SECRET", details={"min_bytes": signing.MIN_SECRET_BYTES})
    target_check(url)  # before the transaction: it resolves DNS
    secret = secret or signing.secret_generate()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            user=user,
            url=url,
            description=description,
            event_types=event_types,
            secret_encrypted=crypto.encrypt(secret),
            secret_fingerprint=crypto.fingerprint(secret),
        )
        _endpoint_event(endpoint, "webhook.endpoint_created", f"user:{user.pk}")
    return endpoint, secret


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: str,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    if event_types is not None:
        event_types = _check_event_types(event_types)
    if url is not None and url != endpoint.url:
        target_check(url)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        changed = []
        for field, value in (("url", url), ("event_types", event_types), ("description", description)):
            if value is not None and getattr(endpoint, field) != value:
                setattr(endpoint, field, value)
                changed.append(field)
        if is_active is not None and is_active != endpoint.is_active:
            endpoint.is_active = is_active
            changed.append("is_active")
            if is_active:  # re-enabled: a fresh start
                endpoint.failing_since = None
                endpoint.disabled_at = None
                endpoint.disabled_reason = ""
            else:
                endpoint.disabled_at = clock.now()
                endpoint.disabled_reason = f"disabled by {actor}"
        if changed:
            endpoint.save()
            _endpoint_event(endpoint, "webhook.endpoint_updated", actor, changed=changed)
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    """Delete the endpoint with its deliveries and their attempt log. Its deliveries and then the
    endpoint are locked first, in the order a delivery run locks them: a run recording an attempt
    holds its deliveries until it commits, and the dispatcher adding a delivery holds the
    endpoint's key. Waiting for them here lets the cascade see their rows; without it the cascade,
    collected before they committed, would leave an attempt pointing at a deleted delivery and
    fail at commit. A deadlock (a run claiming a delivery added meanwhile) is tried again."""
    for attempt in range(3):
        try:
            with transaction.atomic():
                _endpoint_delete_locked(endpoint, actor)
            return
        except OperationalError as exc:
            deadlock = getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "40P01"
            if not deadlock or attempt == 2 or connection.in_atomic_block:
                raise


def _endpoint_delete_locked(endpoint: WebhookEndpoint, actor: str) -> None:
    pk = endpoint.pk
    list(WebhookDelivery.objects.select_for_update().filter(endpoint_id=pk).order_by("pk").values_list("pk", flat=True))
    list(WebhookEndpoint.objects.select_for_update().filter(pk=pk).values_list("pk", flat=True))
    list(WebhookDelivery.objects.select_for_update().filter(endpoint_id=pk).order_by("pk").values_list("pk", flat=True))
    _endpoint_event(endpoint, "webhook.endpoint_deleted", actor)
    endpoint.delete()


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: str, now: datetime | None = None) -> str:
    """A new secret (returned once). The old one keeps signing beside it for
    WEBHOOK_SECRET_ROTATION_GRACE seconds."""
    now = now or clock.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = signing.secret_generate()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_fingerprint = endpoint.secret_fingerprint
    endpoint.previous_secret_expires_at = now + timedelta(seconds=settings.WEBHOOK_SECRET_ROTATION_GRACE)
    endpoint.secret_encrypted = crypto.encrypt(secret)
    endpoint.secret_fingerprint = crypto.fingerprint(secret)
    endpoint.save()
    _endpoint_event(
        endpoint,
        "webhook.secret_rotated",
        actor,
        fingerprint=endpoint.secret_fingerprint,
        previous_expires_at=endpoint.previous_secret_expires_at.isoformat(),
    )
    return secret


def endpoint_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets to sign with, newest first."""
    out = [crypto.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        out.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return out


def _notice_text(endpoint: WebhookEndpoint, reason: str, now: datetime) -> str:
    failing = endpoint.failing_since.isoformat() if endpoint.failing_since else "n/a"
    return (
        f"Hello {endpoint.user.get_username()},\n\n"
        f"Your webhook endpoint #{endpoint.pk} ({endpoint.url}) was disabled on {now.isoformat()}.\n"
        f"Reason: {reason}\n"
        f"Failing since: {failing}\n\n"
        "No more events will be sent to it. Fix the receiver, then re-enable the endpoint\n"
        f"(PATCH /api/v1/webhooks/{endpoint.pk} with is_active=true) and redeliver the failed\n"
        "deliveries if you need them.\n"
    )


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, now: datetime) -> WebhookNotice:
    """Disable an endpoint that keeps failing (or answered 410): ledger event, a notice for the
    admin (plain text, ready to email), and its waiting deliveries fail. Call inside a transaction
    holding the endpoint's row lock."""
    endpoint.is_active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason[:300]
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])
    _endpoint_event(endpoint, "webhook.endpoint_disabled", "system", reason=reason)
    waiting = list(
        WebhookDelivery.objects.select_for_update(skip_locked=True)
        .filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING)
        .values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=waiting).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None, last_error="endpoint disabled"
    )
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.pk, "reason": reason})
    return WebhookNotice.objects.create(
        endpoint=endpoint,
        user=endpoint.user,
        subject=f"Webhook endpoint #{endpoint.pk} disabled",
        text=_notice_text(endpoint, reason, now),
        created_at=now,
    )


# --- deliveries ---------------------------------------------------------------------------------


def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent (keys sorted, so every attempt sends the same body)."""
    return json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode()


# An immediate kick enqueues a run only when none is queued or draining (config/kicks.py): the
# draining run claims again before it ends when kicks came meanwhile (deliveries committed), so
# a burst is served by one run that stays alive while deliveries keep coming, not by a run per
# commit queued behind the outbox's tasks. A run kicked for later (a retry's time) is marked by
# the second it is due in, so a burst of retries costs one run per second, not one task per
# delivery. Marks expire on their own; the Beat sweep covers a lost run.
RUN_QUEUED = "webhooks:run-queued"
RUN_QUEUED_TTL = 5
RUN_KICKS = CoalescedKick(RUN_QUEUED, RUN_QUEUED_TTL)


def _run_enqueue() -> bool:
    from config.celery import enqueue
    from webhooks.tasks import webhook_deliver_task

    if enqueue(webhook_deliver_task, swept_by="the webhook sweep"):
        return True
    RUN_KICKS.clear()  # nothing stands for the kicks now: the next one tries again
    return False


def _run_here() -> dict:
    return deliveries_run(kicks=RUN_KICKS)


def deliveries_kick(countdown: float = 0) -> bool:
    """Start a delivery run now (unless one is queued or running: it takes these deliveries
    too), or at the first whole second at least `countdown` from now (so that it finds every
    delivery due within that second). Returns whether one was started or enqueued.

    A run kicked by the outbox dispatch task (new deliveries committed by its handler) is made by
    that task once it has nothing more to publish (`outbox.after_dispatch`): one event at a time,
    its first attempt does not wait for a task to be published, handed over and started in the
    other worker process. In a burst (several events in the dispatch's round, or more to publish
    after it), the run is enqueued as a task of its own at once, as elsewhere."""
    from django.core.cache import cache

    from config.celery import enqueue
    from trading import outbox
    from webhooks.tasks import webhook_deliver_task

    if countdown <= 0:
        if not RUN_KICKS.kick():
            return False  # a run is queued or running: it will claim these
        return bool(outbox.after_dispatch(_run_here, otherwise=_run_enqueue))
    due = math.ceil(time.time() + countdown)
    key, ttl, countdown = f"{RUN_QUEUED}:{due}", math.ceil(countdown) + 60, due - time.time()
    try:
        if not cache.add(key, 1, ttl):
            return False  # a run is queued for then already
    except Exception:  # Redis down: the broker is too; the Beat sweep kicks a run
        logger.warning("could not enqueue a webhook delivery run; the sweep will", exc_info=True)
        return False
    return enqueue(webhook_deliver_task, swept_by="the webhook sweep", countdown=countdown)


def run_mark_clear() -> None:
    """Forget the queued-run mark: the queue was purged (the run it stood for is gone)."""
    RUN_KICKS.clear()


def _kick_after_commit(countdown: float = 0) -> None:
    """Kick a run after the current transaction commits (once per transaction and countdown)."""
    for entry in getattr(connection, "run_on_commit", []):
        if getattr(entry[1], "webhook_countdown", None) == countdown:
            return

    def kick():
        deliveries_kick(countdown)

    kick.webhook_countdown = countdown
    transaction.on_commit(kick)


def _utc_z(moment: datetime) -> str:
    """ISO 8601 in UTC written with `Z`, as seed 003 §4.7.4 shows the body's timestamp."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _new_delivery(endpoint: WebhookEndpoint, *, event_id: str, event_type: str, occurred_at, data, now):
    webhook_id = WebhookDelivery.new_webhook_id()
    return WebhookDelivery(
        webhook_id=webhook_id,
        endpoint=endpoint,
        event_id=event_id,
        event_type=event_type,
        payload={"id": webhook_id, "event_type": event_type, "timestamp": _utc_z(occurred_at), "data": data},
        next_attempt_at=now,
        created_at=now,
    )


def _data(event_type: str, payload: dict) -> dict:
    """A delivery's `data`: the event payload. A `trade.executed` of an opening order also names
    the trade the fill opened (`trade_id`), which its `order.filled` event could not: the trade
    is made after it, in the same transaction, so it exists when the dispatcher gets here."""
    if event_type == "trade.executed" and payload.get("trade_id") is None and payload.get("order_id"):
        from trading.models import Order

        trade_id = Order.objects.filter(pk=payload["order_id"]).values_list("trade_id", flat=True).first()
        if trade_id is not None:
            return {**payload, "trade_id": trade_id}
    return payload


def deliveries_create_for_event(event, *, now: datetime | None = None) -> None:
    """Outbox handler: one delivery per subscribed active endpoint of the event's owner
    (`payload["user_id"]`). Runs in the dispatcher's transaction, so it happens exactly once per
    event; the (endpoint, event) unique constraint makes a repeat a no-op. A delivery run is
    kicked after commit."""
    deliveries_create_for_events([event], now=now)


def deliveries_create_for_events(events, *, now: datetime | None = None) -> None:
    """`deliveries_create_for_event` for many events (the outbox handler's batch): the owners'
    endpoints in one query, every delivery in one INSERT, in event order."""
    wanted = []
    for event in events:
        event_type = event_type_for(event.topic)
        owner = owner_id_of(event.payload or {})
        if event_type is not None and owner is not None:
            wanted.append((event, event_type, owner))
    if not wanted:
        return
    now = now or clock.now()
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for e in WebhookEndpoint.objects.filter(user_id__in={owner for _, _, owner in wanted}, is_active=True).order_by(
        "pk"
    ):
        endpoints.setdefault(e.user_id, []).append(e)
    rows = []
    for event, event_type, owner in wanted:
        subscribed = [e for e in endpoints.get(owner, ()) if e.subscribes_to(event_type)]
        if not subscribed:
            continue
        data = _data(event_type, event.payload or {})
        rows += [
            _new_delivery(
                e, event_id=event.id, event_type=event_type, occurred_at=event.occurred_at, data=data, now=now
            )
            for e in subscribed
        ]
    if rows:
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        _kick_after_commit()


@transaction.atomic
def endpoint_ping(*, endpoint: WebhookEndpoint, actor: str, now: datetime | None = None) -> WebhookDelivery:
    """Send a `ping` event to one endpoint (the test button)."""
    now = now or clock.now()
    event = event_record(
        topic="webhook.ping",
        aggregate_type="webhook_endpoint",
        aggregate_id=endpoint.pk,
        actor=actor,
        payload={"user_id": endpoint.user_id, "endpoint_id": endpoint.pk},
    )
    delivery = _new_delivery(
        endpoint,
        event_id=event.id,
        event_type=PING,
        occurred_at=event.occurred_at,
        data={"endpoint_id": endpoint.pk, "message": "ping from Tradedesk"},
        now=now,
    )
    delivery.save()
    _kick_after_commit()
    return delivery


def _redeliver(delivery: WebhookDelivery, actor: str, now: datetime) -> bool:
    if delivery.status not in (WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DELIVERED):
        return False
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.last_error = ""
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "last_error", "updated_at"])
    event_record(
        topic="webhook.redelivery_requested",
        aggregate_type="webhook_delivery",
        aggregate_id=delivery.webhook_id,
        actor=actor,
        payload={
            "user_id": delivery.endpoint.user_id,
            "endpoint_id": delivery.endpoint_id,
            "event_id": delivery.event_id,
        },
    )
    _kick_after_commit()
    return True


@transaction.atomic
def delivery_redeliver(*, delivery_ids, actor: str, now: datetime | None = None) -> int:
    """Send failed or delivered deliveries again, with the same webhook-id and body, from a fresh
    retry schedule. Deliveries of disabled endpoints are refused (enable the endpoint first)."""
    now = now or clock.now()
    rows = list(
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(pk__in=list(delivery_ids))
        .order_by("pk")
    )
    disabled = [d.pk for d in rows if not d.endpoint.is_active]
    if disabled:
        raise ApplicationError(
            "The endpoint is disabled; enable it before redelivering.",
            code="WEBHOOK_ENDPOINT_DISABLED",
            details={"delivery_ids": disabled},
            status_code=409,
        )
    return sum(_redeliver(d, actor, now) for d in rows)


def endpoint_redeliver_failed(*, endpoint: WebhookEndpoint, actor: str, now: datetime | None = None) -> int:
    ids = WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.FAILED).values_list(
        "pk", flat=True
    )
    return delivery_redeliver(delivery_ids=list(ids), actor=actor, now=now)


# --- the delivery run --------------------------------------------------------------------------
#
# A run (the Celery task `webhook_deliver_task`, kicked after a delivery is committed, at a
# retry's time and by the Beat sweep) claims due deliveries in batches with SKIP LOCKED, sends
# them on the webhook event loop and records the outcomes, claiming more as groups finish, until
# nothing is due. An endpoint is served by one run at a time: a batch claims only deliveries of
# endpoints with none in flight (the endpoint's row lock makes that exact), and the run sends at
# most WEBHOOK_ENDPOINT_CONCURRENCY of one endpoint's at once, over keep-alive connections.


@dataclass(frozen=True)
class _Claim:
    delivery: WebhookDelivery
    number: int
    signer: signing.Signer  # the endpoint's secrets (newest first), keyed once per claim
    url: str
    endpoint_failing: bool
    lease_until: datetime
    claimed_at: float  # time.monotonic() of the claim


@dataclass(frozen=True)
class _Sent:
    """What became of one claimed delivery on the loop. kind: ok / retry / gone / final, or
    unsent (not attempted: released untouched)."""

    claim: _Claim
    kind: str
    started_at: datetime | None = None
    duration_ms: int = 0
    result: transport.HttpResult | None = None
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered / retry / failed / gone / busy / skipped / released (claimed, not attempted)
    response_code: int | None = None
    error: str = ""
    next_attempt_at: datetime | None = None


def max_attempts() -> int:
    return len(config_value("WEBHOOK_RETRY_SCHEDULE")) + 1


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt of a round, with jitter."""
    schedule = config_value("WEBHOOK_RETRY_SCHEDULE")
    base = schedule[min(attempts, len(schedule)) - 1]
    jitter = config_value("WEBHOOK_RETRY_JITTER")
    return base * random.uniform(1 - jitter, 1 + jitter)


def _retry_after(headers: dict | None, now: datetime) -> float | None:
    value = (headers or {}).get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, settings.WEBHOOK_RETRY_AFTER_MIN), settings.WEBHOOK_RETRY_AFTER_MAX)


# Pending deliveries that are due, of endpoints no other run holds (no delivery of theirs
# leased, but for the asking run's own in flight: `own`). Plain SQL, compiled once: the ORM's
# version of this query (a subquery, a row lock) took most of a run's CPU when deliveries
# trickle in and each run claims one or two.
_DUE_WHERE = """
d.status = 'pending' AND d.next_attempt_at <= %(now)s AND NOT EXISTS (
    SELECT 1 FROM {table} AS x
    WHERE x.endpoint_id = d.endpoint_id AND x.status = 'delivering' AND x.lease_until > %(now)s
      AND x.id <> ALL(%(own)s::bigint[])
)
"""
_DUE_EXISTS_SQL = "SELECT EXISTS (SELECT 1 FROM {table} AS d WHERE " + _DUE_WHERE + ")"
_CLAIM_SQL = (
    "SELECT d.* FROM {table} AS d WHERE "
    + _DUE_WHERE
    + "{only} ORDER BY d.next_attempt_at, d.id LIMIT %(limit)s FOR UPDATE OF d SKIP LOCKED"
)
# The claim proper, after the endpoints' locks: the rows (locked by the first statement) whose
# endpoint no other run holds become this run's. In a statement of its own: under READ COMMITTED
# a check inside the first statement used the snapshot taken before any lock wait, and would miss
# a run that claimed deliveries of the same endpoint and committed meanwhile. The check and the
# UPDATE are one statement (one round trip less on every attempt's way); the rows it updates are
# not visible to its own check, so it claims several of one endpoint at once.
_CLAIM_UPDATE_SQL = """
UPDATE {table} AS d
SET status = 'delivering', attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
    lease_until = %(lease)s, updated_at = %(at)s
WHERE d.id = ANY(%(ids)s::bigint[]) AND NOT EXISTS (
    SELECT 1 FROM {table} AS x
    WHERE x.endpoint_id = d.endpoint_id AND x.status = 'delivering' AND x.lease_until > %(now)s
      AND x.id <> ALL(%(own)s::bigint[])
)
RETURNING d.id
"""


def _sql(template: str, **parts) -> str:
    return template.format(table=WebhookDelivery._meta.db_table, **parts)


def _any_due(now: datetime) -> bool:
    with connection.cursor() as cur:
        cur.execute(_sql(_DUE_EXISTS_SQL), {"now": now, "own": []})
        return bool(cur.fetchone()[0])


@transaction.atomic
def _claim_batch(*, now: datetime, limit: int, delivery_id: int | None = None, own=()) -> list[_Claim]:
    """Take up to `limit` due deliveries (oldest first) of endpoints no other run holds: `own`
    are the ids the calling run has in flight (its endpoints it may claim more of)."""
    only = "" if delivery_id is None else " AND d.id = %(id)s"
    own = list(own)
    rows = list(
        WebhookDelivery.objects.raw(
            _sql(_CLAIM_SQL, only=only), {"now": now, "limit": limit, "id": delivery_id, "own": own}
        )
    )
    if not rows:
        return []
    endpoints = {
        e.pk: e
        for e in WebhookEndpoint.objects.select_for_update().filter(pk__in={r.endpoint_id for r in rows}).order_by("pk")
    }
    disabled = [r.pk for r in rows if r.endpoint_id in endpoints and not endpoints[r.endpoint_id].is_active]
    if disabled:
        WebhookDelivery.objects.filter(pk__in=disabled).update(
            status=WebhookDelivery.Status.FAILED,
            next_attempt_at=None,
            last_error="endpoint disabled",
            updated_at=clock.now(),
        )
    rows = [r for r in rows if r.endpoint_id in endpoints and r.pk not in disabled]
    if not rows:
        return []
    lease_until = now + timedelta(seconds=settings.WEBHOOK_LEASE)
    with connection.cursor() as cur:
        cur.execute(
            _sql(_CLAIM_UPDATE_SQL),
            {"ids": [r.pk for r in rows], "lease": lease_until, "at": clock.now(), "now": now, "own": own},
        )
        claimed = {row[0] for row in cur.fetchall()}
    rows = [r for r in rows if r.pk in claimed]
    if not rows:
        return []
    claimed_endpoints = {r.endpoint_id for r in rows}
    signers = {pk: signing.Signer(endpoint_secrets(e, now)) for pk, e in endpoints.items() if pk in claimed_endpoints}
    claimed_at = time.monotonic()
    claims = []
    for r in rows:
        r.status = WebhookDelivery.Status.DELIVERING
        r.attempts += 1
        r.total_attempts += 1
        r.lease_until = lease_until
        endpoint = endpoints[r.endpoint_id]
        claims.append(
            _Claim(
                delivery=r,
                number=r.total_attempts,
                signer=signers[r.endpoint_id],
                url=endpoint.url,
                endpoint_failing=endpoint.failing_since is not None,
                lease_until=lease_until,
                claimed_at=claimed_at,
            )
        )
    return claims


def _classify(result: transport.HttpResult) -> tuple[str, str]:
    """(kind, error): kind is ok / retry / gone / final."""
    if result.status is None:
        return "retry", result.error
    code = result.status
    if 200 <= code < 300:
        return "ok", ""
    if code == 410:
        return "gone", "410 Gone: the receiver asked us to stop"
    if code == 429 or code >= 500:
        return "retry", f"HTTP {code}"
    if 300 <= code < 400:
        location = (result.headers or {}).get("location", "")
        return "final", f"HTTP {code} redirect not followed (Location: {location[:200]})"
    return "final", f"HTTP {code}"


# A target check (DNS and the allowlist) is reused for an endpoint's next attempts for this long.
TARGET_CHECK_REUSE = 1.0
# Seconds of the lease kept free after an attempt's timeout (recording it, clock drift).
LEASE_MARGIN = 5.0


class _Lane:
    """What one endpoint's groups in flight in a run share (touched only on the webhook loop):
    the WEBHOOK_ENDPOINT_CONCURRENCY slots, the last target check, and whether it answered 410."""

    def __init__(self):
        self.slots: asyncio.Semaphore | None = None
        self.checked: dict = {}
        self.gone = False


async def _send_group(
    claims: list[_Claim], *, allowlist, fixed_now: datetime | None, lane: _Lane | None = None
) -> list[_Sent]:
    """Send one endpoint's claimed deliveries, at most WEBHOOK_ENDPOINT_CONCURRENCY at once
    (with the other groups of its `lane`), on the webhook loop. The target is checked (resolved,
    refused if unsafe) before the attempts and again before any made more than
    TARGET_CHECK_REUSE seconds later; each request goes to the checked address. An attempt that
    could outlast its lease is not made (its delivery goes back untouched), nor is any after a
    410 (the endpoint is being disabled)."""
    loop = asyncio.get_running_loop()
    timeout, ca_bundle = settings.WEBHOOK_TIMEOUT, settings.WEBHOOK_CA_BUNDLE
    lease, url = settings.WEBHOOK_LEASE, claims[0].url
    lane = lane or _Lane()
    if lane.slots is None:
        lane.slots = asyncio.Semaphore(settings.WEBHOOK_ENDPOINT_CONCURRENCY)
    slots, checked = lane.slots, lane.checked
    literal = is_address(urlsplit(url).hostname or "")

    async def check():
        if checked and time.monotonic() - checked["at"] <= TARGET_CHECK_REUSE:
            return checked["target"]
        check_now = functools.partial(target_check, url, allowlist=allowlist)
        try:
            # a host name is resolved off the loop (getaddrinfo blocks); an address needs no lookup
            target = check_now() if literal else await loop.run_in_executor(None, check_now)
        except UnsafeTarget as exc:
            target = exc
        checked.update(target=target, at=time.monotonic())
        return target

    async def one(claim: _Claim) -> _Sent:
        async with slots:
            if lane.gone or time.monotonic() - claim.claimed_at + timeout + LEASE_MARGIN > lease:
                return _Sent(claim, "unsent")
            try:
                started_at, started = fixed_now or clock.now(), time.monotonic()
                delivery = claim.delivery
                body = body_bytes(delivery.payload)
                headers = claim.signer.headers(
                    msg_id=delivery.webhook_id,
                    delivery_id=delivery.webhook_id,
                    event_type=delivery.event_type,
                    timestamp=int(started_at.timestamp()),
                    body=body,
                )
                target = await check()  # again now: DNS may have changed since creation
                if isinstance(target, UnsafeTarget):
                    result, kind, error = None, "final", f"refused: {target.message}"
                else:
                    result = await transport.post(
                        target, body=body, headers=headers, timeout=timeout, ca_bundle=ca_bundle
                    )
                    kind, error = _classify(result)
            except Exception:  # a defect, not the receiver: the delivery goes back untouched
                logger.exception("webhook attempt failed to run", extra={"delivery": claim.delivery.webhook_id})
                return _Sent(claim, "unsent")
            lane.gone = lane.gone or kind == "gone"
            duration_ms = int((time.monotonic() - started) * 1000)
            return _Sent(claim, kind, started_at, duration_ms, result, error)

    sent = list(await asyncio.gather(*(one(c) for c in claims)))
    for s in sent:
        if s.kind != "unsent":
            metrics.WEBHOOK_ATTEMPTS.labels(s.kind).inc()
    return sent


def _attempt_row(sent: _Sent) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=sent.claim.delivery.pk,
        number=sent.claim.number,
        started_at=sent.started_at,
        duration_ms=sent.duration_ms,
        response_code=sent.result.status if sent.result else None,
        response_body=(sent.result.body if sent.result else "")[: transport.BODY_LIMIT],
        error=sent.error[:500],
    )


_DELIVERED_SQL = """
UPDATE {delivery} AS d
SET status = %s, delivered_at = v.at, next_attempt_at = NULL, lease_until = NULL,
    last_response_code = v.code, last_error = '', updated_at = %s
FROM unnest(%s::bigint[], %s::timestamptz[], %s::integer[]) AS v(id, at, code)
WHERE d.id = v.id
RETURNING d.id
"""


@transaction.atomic
def _record_successes(sent: list[_Sent]) -> list[Outcome]:
    """The common path, in two or three statements for the whole group (one UPDATE from arrays:
    Django's bulk_update builds a CASE per row and field, costlier than the requests were)."""
    with connection.cursor() as cur:
        cur.execute(
            _DELIVERED_SQL.format(delivery=WebhookDelivery._meta.db_table),
            [
                WebhookDelivery.Status.DELIVERED.value,
                clock.now(),
                [s.claim.delivery.pk for s in sent],
                [s.started_at for s in sent],
                [s.result.status for s in sent],
            ],
        )
        ids = {row[0] for row in cur.fetchall()}  # locked now: the endpoint cannot be deleted under the rows below
    WebhookAttempt.objects.bulk_create([_attempt_row(s) for s in sent if s.claim.delivery.pk in ids])
    failing = {s.claim.delivery.endpoint_id for s in sent if s.claim.endpoint_failing and s.claim.delivery.pk in ids}
    if failing:
        WebhookEndpoint.objects.filter(pk__in=failing, failing_since__isnull=False).update(failing_since=None)
    return [
        Outcome(status="delivered", response_code=s.result.status)
        if s.claim.delivery.pk in ids
        else Outcome(status="skipped")  # the endpoint was deleted meanwhile
        for s in sent
    ]


@transaction.atomic
def _record_failure(sent: _Sent) -> Outcome:
    claim, result, kind, error, now = sent.claim, sent.result, sent.kind, sent.error, sent.started_at
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery.pk).first()
    if delivery is None:  # the endpoint was deleted meanwhile
        return Outcome(status="skipped")
    code = result.status if result else None
    _attempt_row(sent).save()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    if delivery.status != WebhookDelivery.Status.DELIVERING:
        # the sweep took it back meanwhile (lease ran out): its state is the sweep's now
        return Outcome(status=delivery.status, response_code=code, error=error)
    delivery.last_response_code = code
    delivery.last_error = error[:500]
    delivery.lease_until = None
    next_at = None
    if kind == "retry" and delivery.attempts < max_attempts():
        delay = retry_delay(delivery.attempts)
        if code == 429:
            delay = _retry_after(result.headers, now) or delay
        next_at = now + timedelta(seconds=delay)
        delivery.status = WebhookDelivery.Status.PENDING
        outcome_status = "retry"
        _kick_after_commit(delay)
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        outcome_status = "gone" if kind == "gone" else "failed"
    delivery.next_attempt_at = next_at
    delivery.save()
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        endpoint.save(update_fields=["failing_since", "updated_at"])
    if endpoint.is_active:
        if kind == "gone":
            endpoint_disable(
                endpoint=endpoint, reason=f"the receiver answered 410 Gone (delivery {delivery.webhook_id})", now=now
            )
        elif now - endpoint.failing_since >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER):
            endpoint_disable(
                endpoint=endpoint,
                reason=f"every attempt has failed since {endpoint.failing_since.isoformat()} (last: {error[:150]})",
                now=now,
            )
    return Outcome(status=outcome_status, response_code=code, error=error, next_attempt_at=next_at)


def _release(sent: list[_Sent]) -> None:
    """Unattempted deliveries go back as they were (still due; the attempt is not counted),
    unless the sweep took them back meanwhile; those of an endpoint disabled meanwhile (a 410
    in their group) fail as its waiting deliveries did. (Nothing to release: no transaction.)"""
    if sent:
        with transaction.atomic():
            _release_rows(sent)


def _release_rows(sent: list[_Sent]) -> None:
    ids = [s.claim.delivery.pk for s in sent]
    WebhookDelivery.objects.filter(
        pk__in=ids, status=WebhookDelivery.Status.DELIVERING, lease_until=sent[0].claim.lease_until
    ).update(
        status=WebhookDelivery.Status.PENDING,
        attempts=F("attempts") - 1,
        total_attempts=F("total_attempts") - 1,
        lease_until=None,
        updated_at=clock.now(),
    )
    WebhookDelivery.objects.filter(pk__in=ids, status=WebhookDelivery.Status.PENDING, endpoint__is_active=False).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None, last_error="endpoint disabled"
    )


def _record(sent: list[_Sent]) -> list[Outcome]:
    """Record a group's outcomes (in the order of `sent`)."""
    outcomes: dict[int, Outcome] = {}
    ok = [s for s in sent if s.kind == "ok"]
    if ok:
        outcomes.update(zip([id(s) for s in ok], _record_successes(ok), strict=True))
    for s in sent:
        if s.kind not in ("ok", "unsent"):
            outcomes[id(s)] = _record_failure(s)
    _release([s for s in sent if s.kind == "unsent"])
    result = [outcomes.get(id(s), Outcome(status="released")) for s in sent]
    for s, outcome in zip(sent, result, strict=True):
        if s.kind != "unsent":
            logger.info(
                "webhook attempt",
                extra={
                    "delivery": s.claim.delivery.webhook_id,
                    "attempt": s.claim.number,
                    "response_code": outcome.response_code,
                    "outcome": outcome.status,
                },
            )
    return result


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> Outcome:
    """Make one attempt at one due delivery, through the same claim, send and record as a run
    (tests drive the clock through `now`). Safe to call twice or concurrently: only the caller
    that claims the delivery makes the request. "busy": it is due, but a run holds its endpoint."""
    at = now or clock.now()
    claims = _claim_batch(now=at, limit=1, delivery_id=delivery_id)
    if not claims:
        due = WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=at
        ).exists()
        return Outcome(status="busy" if due else "skipped")
    allowlist = allowlist_load()
    sent = transport.submit(_send_group(claims, allowlist=allowlist, fixed_now=now)).result()
    return _record(sent)[0]


# How long a run waits for a group to finish before it looks for new deliveries again.
RUN_POLL = 0.2


def deliveries_run(*, kicks: CoalescedKick | None = None) -> dict:
    """Deliver what is due: claim batches of up to WEBHOOK_BATCH_SIZE (twice that in flight at
    most), send each endpoint's group on the webhook loop, record groups as they finish, and
    claim again while they are sent (more of the endpoints this run holds too: their groups
    share the endpoint's concurrency slots), until nothing is due or WEBHOOK_RUN_SECONDS have
    passed (then a follow-up run is kicked). With `kicks` (the task's run), the run that is the
    drainer (config/kicks.py: no other run is) looks again when it finds nothing more to claim
    if kicks came meanwhile (deliveries committed since), rather than end and leave them to a
    run queued behind other tasks; any other run claims what it can and ends. Due deliveries left
    because another run held their endpoint, or were locked by a claim under way, get a run
    WEBHOOK_CONCURRENCY_RETRY_DELAY seconds later."""
    deadline = time.monotonic() + settings.WEBHOOK_RUN_SECONDS
    drainer, token = kicks.acquire() if kicks else (False, None)
    try:
        return _run_loop(deadline, kicks if drainer else None, token)
    except BaseException:
        if drainer:
            kicks.clear()  # the next kick enqueues a run (its deliveries: the sweep, if need be)
        raise


def _run_loop(deadline: float, kicks: CoalescedKick | None, token) -> dict:
    groups: dict[concurrent.futures.Future, list[_Claim]] = {}
    lanes: dict[tuple, list] = {}  # (endpoint, url) -> [_Lane, groups in flight]
    counts: dict[str, int] = {}
    allowlist, allowlist_at = None, 0.0
    drainer = kicks is not None
    touched = time.monotonic()
    while True:
        if drainer and time.monotonic() - touched > 1.0:
            kicks.touch()
            touched = time.monotonic()
        own = [c.delivery.pk for g in groups.values() for c in g]
        room = min(settings.WEBHOOK_BATCH_SIZE, 2 * settings.WEBHOOK_BATCH_SIZE - len(own))
        if room > 0 and time.monotonic() < deadline:
            claims = _claim_batch(now=clock.now(), limit=room, own=own)
            if claims:
                if allowlist is None or time.monotonic() - allowlist_at > TARGET_CHECK_REUSE:
                    allowlist, allowlist_at = allowlist_load(), time.monotonic()
                by_endpoint: dict[tuple, list[_Claim]] = {}
                for c in claims:
                    by_endpoint.setdefault((c.delivery.endpoint_id, c.url), []).append(c)
                for key, group in by_endpoint.items():
                    lane = lanes.setdefault(key, [_Lane(), 0])
                    lane[1] += 1
                    future = transport.submit(_send_group(group, allowlist=allowlist, fixed_now=None, lane=lane[0]))
                    groups[future] = group
        if not groups:
            if not drainer:
                break
            done, token = kicks.finish(token)
            if done:
                break
            if time.monotonic() < deadline:
                continue  # deliveries were committed meanwhile: claim them
            # the counter stays set (kicks keep coming): it stands for this follow-up run
            from config.celery import enqueue
            from webhooks.tasks import webhook_deliver_task

            kicks.release()
            if not enqueue(webhook_deliver_task, swept_by="the webhook sweep"):
                kicks.clear()
            return counts
        done, _ = concurrent.futures.wait(groups, timeout=RUN_POLL, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            group = groups.pop(future)
            key = (group[0].delivery.endpoint_id, group[0].url)
            lanes[key][1] -= 1
            if not lanes[key][1]:  # a lane lives while its endpoint has groups in flight
                del lanes[key]
            for outcome in _record(future.result()):
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
    if _any_due(clock.now()):
        deliveries_kick(0 if time.monotonic() >= deadline else settings.WEBHOOK_CONCURRENCY_RETRY_DELAY)
    return counts


# --- the sweep ----------------------------------------------------------------------------------


def deliveries_sweep(*, now: datetime | None = None, grace_seconds: float = 30) -> dict:
    """Beat job: nothing is silently lost. Deliveries whose worker vanished mid-attempt (lease
    expired) go back to pending (or fail if it was their last attempt); if any delivery is
    overdue by more than `grace_seconds` (the run meant for it was lost), a run is kicked."""
    now = now or clock.now()
    recovered = 0
    with transaction.atomic():
        lost = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True).filter(
                status=WebhookDelivery.Status.DELIVERING, lease_until__lt=now
            )[: settings.WEBHOOK_SWEEP_BATCH]
        )
        for d in lost:
            last = d.attempts >= max_attempts()
            d.status = WebhookDelivery.Status.FAILED if last else WebhookDelivery.Status.PENDING
            d.next_attempt_at = None if last else now
            d.lease_until = None
            d.last_error = f"worker lost during attempt {d.attempts}"
            d.save(update_fields=["status", "next_attempt_at", "lease_until", "last_error", "updated_at"])
            recovered += 1
    overdue = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - timedelta(seconds=grace_seconds)
    ).count()
    if overdue or any(d.status == WebhookDelivery.Status.PENDING for d in lost):
        deliveries_kick()
    return {"recovered": recovered, "overdue": overdue}
