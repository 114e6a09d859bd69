"""Client `Idempotency-Key`s for write endpoints.

    same key + same body      → the stored response (status and body), replayed
    same key + different body → 422 IDEMPOTENCY_KEY_REUSED
    same key, first in flight → 409 IDEMPOTENCY_IN_PROGRESS

The key is claimed by inserting a committed `in_progress` row (the unique (user, key) index
decides between concurrent requests), the view runs, and the response is stored. A 5xx
releases the key so the client may retry. Keys live IDEMPOTENCY_TTL_HOURS; a Beat job
purges older ones."""

from __future__ import annotations

import contextlib
import hashlib
import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, ConflictError
from trading.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


def request_hash(*, method: str, path: str, body: bytes | dict | None) -> str:
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body or b"null")
        except ValueError:
            canonical = bytes(body)
        else:
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    else:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    h = hashlib.sha256()
    h.update(method.upper().encode() + b" " + path.encode() + b"\n")
    h.update(canonical)
    return h.hexdigest()


@dataclass(frozen=True)
class Claim:
    record: IdempotencyRecord
    replay: bool  # True: `record` holds the response to send back


def _expired(record: IdempotencyRecord) -> bool:
    return record.created_at < timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApplicationError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.", code="IDEMPOTENCY_KEY_INVALID"
        )


def idempotency_claim(*, user, key: str, method: str, path: str, digest: str) -> Claim:
    _check_key(key)
    for _ in range(2):
        try:
            return Claim(
                record=_insert_claim(user=user, key=key, method=method, path=path, digest=digest), replay=False
            )
        except IntegrityError:
            record = IdempotencyRecord.objects.filter(user=user, key=key).first()
            if record is None:
                continue  # released meanwhile: try again
            if _expired(record):
                IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).delete()
                continue
            if record.request_hash != digest:
                raise ApplicationError(
                    "This Idempotency-Key was used with a different request.",
                    code="IDEMPOTENCY_KEY_REUSED",
                    status_code=422,
                ) from None
            if record.status == IdempotencyRecord.Status.IN_PROGRESS:
                raise ConflictError(
                    "A request with this Idempotency-Key is still in progress.", code="IDEMPOTENCY_IN_PROGRESS"
                ) from None
            return Claim(record=record, replay=True)
    raise ConflictError("Could not claim the Idempotency-Key; retry.", code="IDEMPOTENCY_IN_PROGRESS")


# Idempotency records are written with one statement each, committed without waiting for the
# WAL flush (synchronous_commit off for that statement's own transaction). Safe: PostgreSQL
# flushes WAL in order, so the order committed after a claim makes the claim durable too; a
# completion lost in a crash leaves the key `in_progress` (409 until it expires), never a
# second order. Inside a caller's transaction the plain ORM is used (its commit is not ours
# to relax). A placed order's 202 is stored by the order's own statement instead
# (`idempotency_completion_sql`): it commits with the order.
_CLAIM_SQL = """
INSERT INTO trading_idempotencyrecord
    (user_id, key, method, path, request_hash, status, created_at)
SELECT %s, %s, %s, %s, %s, 'in_progress', %s FROM (SELECT set_config('synchronous_commit', 'off', true)) AS _cfg
RETURNING id
"""
_COMPLETE_SQL = """
UPDATE trading_idempotencyrecord
SET status = 'done', response_status = %s, response_body = %s, completed_at = %s
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS _cfg
WHERE id = %s
"""


def _relaxed() -> bool:
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def idempotency_deferrable() -> bool:
    """A claim may wait for the view's first read: it will commit with that read (autocommit)."""
    return _relaxed()


def _insert_claim(*, user, key: str, method: str, path: str, digest: str) -> IdempotencyRecord:
    now = timezone.now()
    if not _relaxed():
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user=user, key=key, method=method, path=path, request_hash=digest, created_at=now
            )
    with connection.cursor() as cur:
        cur.execute(_CLAIM_SQL, [user.pk, key, method, path, digest, now])
        (pk,) = cur.fetchone()
    return IdempotencyRecord(pk=pk, user=user, key=key, method=method, path=path, request_hash=digest, created_at=now)


def idempotency_complete(*, record: IdempotencyRecord, status: int, body) -> None:
    if status >= 500:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    now = timezone.now()
    if not _relaxed():
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status=IdempotencyRecord.Status.DONE, response_status=status, response_body=body, completed_at=now
        )
        return
    with connection.cursor() as cur:
        cur.execute(_COMPLETE_SQL, [status, json.dumps(body, cls=DjangoJSONEncoder), now, record.pk])


# --- the response stored by the view's own write ------------------------------------------------
# While a view runs under a claimed key, the request's record waits in a context variable. A
# write that already knows the response it leads to (a placed order's 202) may store it in its
# own statement (`idempotency_completion_sql`, a CTE of the order's INSERT): one round trip
# fewer, and the record completes in the same commit as the order. The decorator then checks
# that the view answered exactly what was stored, and completes the record itself otherwise.


@dataclass
class Pending:
    record_pk: int | None  # None: a deferred claim not made yet (`idempotency_deferring`)
    stored: tuple[int, object] | None = None  # (status, body) committed with the view's write
    deferred: dict | None = None  # the claim's values, while it waits for the view's first read


_pending: ContextVar[Pending | None] = ContextVar("idempotency_pending", default=None)


@contextlib.contextmanager
def idempotency_holding(*, record: IdempotencyRecord):
    """The view's run under `record`'s claim: its writes may store the response
    (`idempotency_pending`)."""
    token = _pending.set(Pending(record_pk=record.pk))
    try:
        yield _pending.get()
    finally:
        _pending.reset(token)


def idempotency_pending() -> Pending | None:
    """The claimed record of the request being served, when its response may still be stored
    with a write that commits on its own (autocommit: not inside a caller's transaction, whose
    rollback would leave the record in progress). A claim still deferred is made first (a write
    never runs unclaimed; `ClaimTaken` when the key is held)."""
    pending = _pending.get()
    if pending is not None and pending.deferred is not None:
        idempotency_claim_deferred_now()
    if pending is None or pending.stored is not None or connection.in_atomic_block:
        return None
    return pending


# --- the claim folded into the view's first read ------------------------------------------------
# Under `@idempotent(claim_with_read=True)` the key is not claimed before the view runs: the
# view's first statement (the order's risk snapshot, `selectors.risk_snapshot_load`) carries the
# claim as a CTE (`INSERT ... ON CONFLICT DO NOTHING`), committed with it. One round trip fewer
# per request. What ran before it only read. The claim still comes before anything the view does
# that counts: a replay finds its key before the risk engine runs (no second `risk.rejected`),
# and of concurrent duplicates only the one whose INSERT won goes on; the others stop with
# `ClaimTaken` and the decorator answers them as an ordinary claim would (replay, 409, 422).


class ClaimTaken(Exception):
    """The deferred claim found the key held (in flight, done or expired): the view stops; the
    decorator claims the usual way to learn which."""


@contextlib.contextmanager
def idempotency_deferring(*, user, key: str, method: str, path: str, digest: str):
    """The view's run with the claim deferred to its first read (`idempotency_claim_sql`)."""
    _check_key(key)
    claim = {"user": user, "key": key, "method": method, "path": path, "digest": digest}
    token = _pending.set(Pending(record_pk=None, deferred=claim))
    try:
        yield _pending.get()
    finally:
        _pending.reset(token)


_CLAIM_CTE_SQL = """
claim AS (
    INSERT INTO trading_idempotencyrecord (user_id, key, method, path, request_hash, status, created_at)
    SELECT %(claim_user)s, %(claim_key)s, %(claim_method)s, %(claim_path)s, %(claim_digest)s, 'in_progress',
        %(claim_at)s
    FROM (SELECT set_config('synchronous_commit', 'off', true)) AS _cfg
    ON CONFLICT (user_id, key) DO NOTHING
    RETURNING id
)"""


def idempotency_claim_sql() -> tuple[str, dict] | None:
    """(CTE, named params) of the deferred claim, for a read that commits on its own (autocommit;
    `synchronous_commit` off for it, as `_CLAIM_SQL`), or None when there is none to make. The
    read selects `(SELECT id FROM claim)` and hands it to `idempotency_claim_settle`."""
    pending = _pending.get()
    if pending is None or pending.deferred is None or not _relaxed():
        return None
    c = pending.deferred
    return _CLAIM_CTE_SQL, {
        "claim_user": c["user"].pk,
        "claim_key": c["key"],
        "claim_method": c["method"],
        "claim_path": c["path"],
        "claim_digest": c["digest"],
        "claim_at": timezone.now(),
    }


def idempotency_claim_settle(claimed_id: int | None) -> None:
    """The folded claim's outcome: the record is the request's, or `ClaimTaken`."""
    pending = _pending.get()
    if claimed_id is None:
        raise ClaimTaken()
    pending.record_pk, pending.deferred = claimed_id, None


def idempotency_claim_deferred_now() -> None:
    """Make a deferred claim on its own (a read that cannot carry it: inside a transaction)."""
    pending = _pending.get()
    if pending is None or pending.deferred is None:
        return
    c = pending.deferred
    try:
        record = _insert_claim(user=c["user"], key=c["key"], method=c["method"], path=c["path"], digest=c["digest"])
    except IntegrityError:
        raise ClaimTaken() from None
    pending.record_pk, pending.deferred = record.pk, None


# A CTE of a statement whose first CTE is `row` (`ledger.insert_with_event`): the record done
# with the response, the new row's id under `id_key` in the body.
_COMPLETE_WITH_ROW_SQL = """
UPDATE trading_idempotencyrecord
SET status = 'done', response_status = %s, completed_at = %s,
    response_body = %s::jsonb || jsonb_build_object(%s::text, (SELECT id FROM row))
WHERE id = %s AND status = 'in_progress'
"""


def idempotency_completion_sql(*, pending: Pending, status: int, body: dict, id_key: str) -> tuple[str, list]:
    """(SQL, params) of the CTE storing `status` and `body` (its `id_key` filled in with the new
    row's id) as `pending`'s response."""
    encoded = json.dumps({k: v for k, v in body.items() if k != id_key}, cls=DjangoJSONEncoder)
    return _COMPLETE_WITH_ROW_SQL, [status, timezone.now(), encoded, id_key, pending.record_pk]


def idempotency_release(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, status=IdempotencyRecord.Status.IN_PROGRESS).delete()


def idempotency_purge(*, now=None) -> int:
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
