"""Webhook services: endpoints (create, update, delete, rotate, ping), turning ledger events
into deliveries, attempting a delivery, retries, redelivery and the sweep.

Nothing external (DNS, HTTP) is called while a transaction is open: an attempt claims the
delivery in one short transaction, calls the receiver, then records the outcome in another.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from config import crypto
from config.errors import ApplicationError
from trading.services.ledger import event_record
from webhooks import clock, signing, transport
from webhooks.models import PING, SUBSCRIBABLE, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookNotice
from webhooks.safety import UnsafeTarget, target_check
from webhooks.topics import event_type_for, owner_id_of

logger = logging.getLogger("tradedesk.webhooks")


# --- endpoints ----------------------------------------------------------------------------------


def _check_event_types(event_types) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise ApplicationError("Give at least one event type.", code="webhook_event_types_invalid")
    unknown = sorted({str(t) for t in event_types} - set(SUBSCRIBABLE))
    if unknown:
        raise ApplicationError(
            "Unknown event types.",
            code="webhook_event_types_invalid",
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


def endpoint_create(*, user, url: str, event_types: list[str], description: str = "") -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its signing secret (shown to the user only now)."""
    event_types = _check_event_types(event_types)
    target_check(url)  # before the transaction: it resolves DNS
    secret = signing.secret_generate()
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


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
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


def _enqueue(delivery_id: int, countdown: float = 0) -> None:
    from config.celery import enqueue
    from webhooks.tasks import webhook_deliver_task

    enqueue(webhook_deliver_task, delivery_id, swept_by="the delivery sweep", countdown=max(0.0, countdown))


def _enqueue_after_commit(delivery_id: int, countdown: float = 0) -> None:
    transaction.on_commit(lambda: _enqueue(delivery_id, countdown))


def _new_delivery(endpoint: WebhookEndpoint, *, event_id: str, event_type: str, occurred_at, data, now):
    webhook_id = WebhookDelivery.new_webhook_id()
    return WebhookDelivery(
        webhook_id=webhook_id,
        endpoint=endpoint,
        event_id=event_id,
        event_type=event_type,
        payload={"id": webhook_id, "event_type": event_type, "timestamp": occurred_at.isoformat(), "data": data},
        next_attempt_at=now,
        created_at=now,
    )


def deliveries_create_for_event(event, *, now: datetime | None = None) -> list[int]:
    """Outbox handler: one delivery per subscribed active endpoint of the event's owner
    (`payload["user_id"]`). Runs in the dispatcher's transaction, so it happens exactly once per
    event; the (endpoint, event) unique constraint makes a repeat a no-op. Tasks are enqueued
    after commit."""
    event_type = event_type_for(event.topic)
    owner = owner_id_of(event.payload or {})
    if event_type is None or owner is None:
        return []
    now = now or clock.now()
    endpoints = [
        e for e in WebhookEndpoint.objects.filter(user_id=owner, is_active=True) if e.subscribes_to(event_type)
    ]
    if not endpoints:
        return []
    WebhookDelivery.objects.bulk_create(
        [
            _new_delivery(
                e, event_id=event.id, event_type=event_type, occurred_at=event.occurred_at, data=event.payload, now=now
            )
            for e in endpoints
        ],
        ignore_conflicts=True,
    )
    ids = list(
        WebhookDelivery.objects.filter(
            event_id=event.id, endpoint__in=endpoints, status=WebhookDelivery.Status.PENDING
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        _enqueue_after_commit(pk)
    return ids


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
    _enqueue_after_commit(delivery.pk)
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
    _enqueue_after_commit(delivery.pk)
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
            code="webhook_endpoint_disabled",
            details={"delivery_ids": disabled},
            status_code=409,
        )
    return sum(_redeliver(d, actor, now) for d in rows)


def endpoint_redeliver_failed(*, endpoint: WebhookEndpoint, actor: str, now: datetime | None = None) -> int:
    ids = WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.FAILED).values_list(
        "pk", flat=True
    )
    return delivery_redeliver(delivery_ids=list(ids), actor=actor, now=now)


# --- attempts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    delivery: WebhookDelivery
    number: int
    secrets: list[str]
    url: str
    endpoint_failing: bool


def max_attempts() -> int:
    return len(settings.WEBHOOK_RETRY_SCHEDULE) + 1


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt of a round, with jitter."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    base = schedule[min(attempts, len(schedule)) - 1]
    jitter = settings.WEBHOOK_RETRY_JITTER
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


@transaction.atomic
def _claim(delivery_id: int, now: datetime) -> _Claim | str | None:
    """Take a due delivery for one attempt. The endpoint's row lock serialises claims per
    endpoint, so counting its in-flight deliveries enforces WEBHOOK_ENDPOINT_CONCURRENCY."""
    delivery = (
        WebhookDelivery.objects.select_for_update(skip_locked=True)
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .first()
    )
    if delivery is None:
        return None  # delivered, failed, in flight, not due yet, or another worker has it
    # Lock the endpoint first, then count in a statement of its own: under READ COMMITTED a
    # count inside the locking statement would use the snapshot taken before the lock wait and
    # miss the claim that just committed (a third delivery in flight with a cap of two).
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    endpoint.in_flight = WebhookDelivery.objects.filter(
        endpoint=endpoint, status=WebhookDelivery.Status.DELIVERING, lease_until__gt=now
    ).count()
    if not endpoint.is_active:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        delivery.last_error = "endpoint disabled"
        delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
        return None
    if endpoint.in_flight >= settings.WEBHOOK_ENDPOINT_CONCURRENCY:
        delay = settings.WEBHOOK_CONCURRENCY_RETRY_DELAY * random.uniform(1.0, 1.5)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        delivery.save(update_fields=["next_attempt_at", "updated_at"])
        _enqueue_after_commit(delivery.pk, delay)
        return "busy"
    delivery.status = WebhookDelivery.Status.DELIVERING
    delivery.attempts += 1
    delivery.total_attempts += 1
    delivery.lease_until = now + timedelta(seconds=settings.WEBHOOK_LEASE)
    delivery.save(update_fields=["status", "attempts", "total_attempts", "lease_until", "updated_at"])
    return _Claim(
        delivery=delivery,
        number=delivery.total_attempts,
        secrets=endpoint_secrets(endpoint, now),
        url=endpoint.url,
        endpoint_failing=endpoint.failing_since is not None,
    )


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered / retry / failed / gone / busy / skipped
    response_code: int | None = None
    error: str = ""
    next_attempt_at: datetime | None = None


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


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> Outcome:
    """Make one attempt at a due delivery. Safe to call twice or concurrently: only the caller
    that claims the delivery makes the request."""
    now = now or clock.now()
    claim = _claim(delivery_id, now)
    if claim is None:
        return Outcome(status="skipped")
    if claim == "busy":
        return Outcome(status="busy")
    delivery = claim.delivery
    body = body_bytes(delivery.payload)
    timestamp = int(now.timestamp())
    headers = signing.signed_headers(
        secrets_newest_first=claim.secrets,
        msg_id=delivery.webhook_id,
        delivery_id=delivery.webhook_id,
        event_type=delivery.event_type,
        timestamp=timestamp,
        body=body,
    )
    started = time.monotonic()
    try:
        target = target_check(claim.url)  # again now: DNS may have changed since creation
    except UnsafeTarget as exc:
        result, kind, error = None, "final", f"refused: {exc.message}"
    else:
        result = transport.post(target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT)
        kind, error = _classify(result)
    duration_ms = int((time.monotonic() - started) * 1000)
    if kind == "ok":
        outcome = _record_success(claim, now, duration_ms, result)
    else:
        outcome = _record_failure(claim, now, duration_ms, result, kind, error)
    logger.info(
        "webhook attempt",
        extra={
            "delivery": delivery.webhook_id,
            "attempt": claim.number,
            "response_code": outcome.response_code,
            "outcome": outcome.status,
        },
    )
    return outcome


def _attempt_row(claim: _Claim, now, duration_ms, result, error="") -> WebhookAttempt:
    return WebhookAttempt.objects.create(
        delivery_id=claim.delivery.pk,
        number=claim.number,
        started_at=now,
        duration_ms=duration_ms,
        response_code=result.status if result else None,
        response_body=(result.body if result else "")[: transport.BODY_LIMIT],
        error=error[:500],
    )


@transaction.atomic
def _record_success(claim: _Claim, now, duration_ms, result) -> Outcome:
    """The common path, in as few round trips as possible: no row locks needed."""
    if not WebhookDelivery.objects.filter(pk=claim.delivery.pk).update(
        status=WebhookDelivery.Status.DELIVERED,
        delivered_at=now,
        next_attempt_at=None,
        lease_until=None,
        last_response_code=result.status,
        last_error="",
        updated_at=clock.now(),
    ):
        return Outcome(status="skipped")  # the endpoint was deleted meanwhile
    _attempt_row(claim, now, duration_ms, result)
    if claim.endpoint_failing:
        WebhookEndpoint.objects.filter(pk=claim.delivery.endpoint_id, failing_since__isnull=False).update(
            failing_since=None
        )
    return Outcome(status="delivered", response_code=result.status)


@transaction.atomic
def _record_failure(claim: _Claim, now, duration_ms, result, kind, error) -> Outcome:
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery.pk).first()
    if delivery is None:  # the endpoint was deleted meanwhile
        return Outcome(status="skipped")
    code = result.status if result else None
    _attempt_row(claim, now, duration_ms, result, error)
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
        _enqueue_after_commit(delivery.pk, delay)
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


# --- the sweep ----------------------------------------------------------------------------------


def deliveries_sweep(*, now: datetime | None = None, grace_seconds: float = 30) -> dict:
    """Beat job: nothing is silently lost. Deliveries whose worker vanished mid-attempt (lease
    expired) go back to pending (or fail if it was their last attempt); pending deliveries overdue
    by more than `grace_seconds` (their task was lost) are enqueued again."""
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
    due = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - timedelta(seconds=grace_seconds)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: settings.WEBHOOK_SWEEP_BATCH]
    )
    due += [d.pk for d in lost if d.status == WebhookDelivery.Status.PENDING]
    for pk in dict.fromkeys(due):
        _enqueue(pk)
    return {"recovered": recovered, "enqueued": len(set(due))}
