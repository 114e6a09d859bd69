"""Outbox dispatcher: publishes committed ledger events to registered handlers.

`event_record` writes one `OutboxMessage` per (event, matching handler) in the same
transaction as the event, so a rolled-back transaction publishes nothing and a committed
one is published at least once. Per handler, messages go out in event-id order: one
dispatcher at a time per handler (a PostgreSQL advisory lock), and a failing message blocks
the ones behind it (head of line) until it succeeds or is given up as dead after
`OUTBOX_MAX_ATTEMPTS`, when the next ones proceed and an operator sees it in the admin.

Handlers are plain callables `fn(event) -> None`, registered at app start-up
(`AppConfig.ready`) with topic patterns (`fnmatch` style, e.g. `order.*`). A handler that
raises is retried with exponential backoff. A handler's own database writes run in a
savepoint, so they commit together with the message being marked delivered.

A handler may also give `batch(events) -> None`, the same work for many events at once (one
query and one INSERT for a burst instead of a few statements and a savepoint per event). The
dispatcher calls it with every ready message of a round, in order, in one savepoint; when it
raises, that savepoint is rolled back and the messages go through `fn` one at a time, so a
failing event is retried (and blocks the ones behind it) exactly as without a batch. A batch
must therefore be safe to follow with `fn` for the same events (at least once, as always).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from config.kicks import CoalescedKick

logger = logging.getLogger("tradedesk.outbox")


@dataclass(frozen=True)
class Handler:
    name: str
    fn: Callable
    topics: tuple[str, ...]
    batch: Callable | None = None

    def wants(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.topics)


_handlers: dict[str, Handler] = {}
# topic -> the names of the handlers that want it: every event written asks (an order's own
# statement too), and matching each handler's patterns cost about 30 µs; emptied whenever the
# handlers change
_names_by_topic: dict[str, tuple[str, ...]] = {}


def register_handler(name: str, fn: Callable, *, topics: Iterable[str] = ("*",), batch: Callable | None = None) -> None:
    _handlers[name] = Handler(name=name, fn=fn, topics=tuple(topics), batch=batch)
    _names_by_topic.clear()


def unregister_handler(name: str) -> None:
    _handlers.pop(name, None)
    _names_by_topic.clear()


def handlers_for(topic: str) -> list[str]:
    names = _names_by_topic.get(topic)
    if names is None:
        names = _names_by_topic[topic] = tuple(h.name for h in _handlers.values() if h.wants(topic))
    return list(names)


# A kick enqueues a dispatch only when none is queued or running (config/kicks.py): the one
# there is absorbs it, and a running dispatch drains again before it ends (`outbox_dispatch_
# while_kicked`). A burst of N commits costs one dispatch task that stays alive while they keep
# coming, not one queued task per commit. The mark expires on its own in case the queued task is
# lost; Beat's sweep (every 2 s) covers that gap.
KICK_QUEUED = "outbox:dispatch-queued"
KICK_QUEUED_TTL = 5
DISPATCH_KICKS = CoalescedKick(KICK_QUEUED, KICK_QUEUED_TTL)


def _kick() -> None:
    from config.celery import enqueue
    from trading.tasks import outbox_dispatch_task

    if not DISPATCH_KICKS.kick():
        return  # a dispatch is queued or running: it will see this commit
    if not enqueue(outbox_dispatch_task, swept_by="the Beat outbox sweep"):
        DISPATCH_KICKS.clear()  # nothing stands for the kicks now: the next one tries again


def kick_mark_clear() -> None:
    """Forget the queued-dispatch mark: the queue was purged (the run it stood for is gone)."""
    DISPATCH_KICKS.clear()


def kick_after_commit() -> None:
    """Enqueue one dispatch after the current transaction commits (once per transaction)."""
    pending = getattr(connection, "run_on_commit", [])
    if any(entry[1] is _kick for entry in pending):
        return
    transaction.on_commit(_kick)


# A process committing hundreds of times a second (the NEAR Intents solver) kicks through one
# thread of its own instead: the first commit's kick goes at once, then at most one every
# KICK_SOON_SECONDS covers every commit made meanwhile (a kick is a Redis round trip).
KICK_SOON_SECONDS = 0.25
_kicker: list = []  # [the kicker thread, its "a commit wants a kick" event]
_kicker_lock = threading.Lock()


def _kicker_run(wanted: threading.Event) -> None:
    while True:
        wanted.wait()
        wanted.clear()
        _kick()
        time.sleep(KICK_SOON_SECONDS)


def _kick_soon() -> None:
    with _kicker_lock:
        if not _kicker or not _kicker[0].is_alive():
            wanted = threading.Event()
            thread = threading.Thread(target=_kicker_run, args=(wanted,), name="outbox-kicker", daemon=True)
            _kicker[:] = [thread, wanted]
            thread.start()
        _kicker[1].set()


def kick_soon_after_commit() -> None:
    """`kick_after_commit` for a hot loop: after the commit, the process's kicker thread kicks
    the dispatcher, at most once every KICK_SOON_SECONDS."""
    pending = getattr(connection, "run_on_commit", [])
    if any(entry[1] is _kick_soon for entry in pending):
        return
    transaction.on_commit(_kick_soon)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, 300))


def _dispatch_handler(handler: Handler, batch_size: int, max_attempts: int) -> int:
    try:
        return _dispatch_handler_round(handler, batch_size, max_attempts)
    finally:
        _local.several = False


# A round's transaction takes the handler's lock and commits without waiting for its WAL to reach
# the disk (`synchronous_commit` off for this transaction only): a fsync less on the way of every
# published event (1-4 ms on a shared disk). What a PostgreSQL crash can lose of it is the
# round's own writes, whole: its messages are pending again and published again, which the
# outbox allows (at least once; the websocket and executor handlers take a repeat). A webhook
# delivery it wrote is never sent before it is on disk: a run claims it in a transaction that
# commits synchronously, and a commit flushes the WAL up to itself, every earlier commit too.
_ROUND_START_SQL = "SELECT pg_try_advisory_xact_lock(%s, %s), set_config('synchronous_commit', 'off', true)"


def _dispatch_handler_round(handler: Handler, batch_size: int, max_attempts: int) -> int:
    from trading.models import OutboxMessage

    done = 0
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(_ROUND_START_SQL, [4242, zlib.crc32(handler.name.encode()) & 0x7FFFFFFF])
            if not cur.fetchone()[0]:
                return 0  # another dispatcher is publishing for this handler
        now = timezone.now()
        rows = list(
            OutboxMessage.objects.select_related("event")
            .filter(handler=handler.name, status=OutboxMessage.Status.PENDING)
            .order_by("event_id")[:batch_size]
        )
        ready = []
        for row in rows:
            if row.next_attempt_at > now:
                break  # head of line is waiting for its retry: keep order
            ready.append(row)
        _local.several = len(ready) > 1  # a burst: `after_dispatch` hands off at once
        delivered = []
        if handler.batch is not None and len(ready) > 1:
            try:
                with transaction.atomic():
                    handler.batch([row.event for row in ready])
            except Exception:
                logger.warning(
                    "outbox batch failed; one message at a time", extra={"handler": handler.name}, exc_info=True
                )
            else:
                delivered, ready = [row.pk for row in ready], []
        for row in ready:
            try:
                with transaction.atomic():
                    handler.fn(row.event)
            except Exception as exc:
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                if row.attempts >= max_attempts:
                    row.status = OutboxMessage.Status.DEAD
                    row.save(update_fields=["attempts", "last_error", "status"])
                    logger.error("outbox message dead", extra={"handler": handler.name, "event_id": row.event_id})
                    continue
                row.next_attempt_at = now + _backoff(row.attempts)
                row.save(update_fields=["attempts", "last_error", "next_attempt_at"])
                logger.warning(
                    "outbox handler failed; will retry",
                    extra={"handler": handler.name, "event_id": row.event_id, "attempts": row.attempts},
                )
                break
            delivered.append(row.pk)
        if delivered:
            OutboxMessage.objects.filter(pk__in=delivered).update(
                status=OutboxMessage.Status.DELIVERED, delivered_at=timezone.now(), attempts=F("attempts") + 1
            )
            done = len(delivered)
    return done


# Which handlers have pending messages, in one statement (an index probe each): a round skips
# the others rather than taking each one's lock and reading its empty queue (four statements a
# handler; a burst of single commits makes many short dispatch runs, each at least two rounds).
_PENDING_HANDLERS_SQL = """
SELECT name FROM unnest(%s::text[]) AS name
WHERE EXISTS (SELECT 1 FROM trading_outboxmessage WHERE handler = name AND status = 'pending')
"""


def _handlers_pending(handlers: list[Handler]) -> list[Handler]:
    if not handlers:
        return []
    with connection.cursor() as cur:
        cur.execute(_PENDING_HANDLERS_SQL, [[h.name for h in handlers]])
        pending = {row[0] for row in cur.fetchall()}
    return [h for h in handlers if h.name in pending]


def outbox_dispatch(*, batch_size: int | None = None, max_rounds: int = 50) -> int:
    """Publish pending messages for every handler until nothing is ready; returns the count."""
    batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
    max_attempts = settings.OUTBOX_MAX_ATTEMPTS
    total = 0
    for round_ in range(max_rounds):
        handlers = _handlers_pending(list(_handlers.values()))
        if handlers and round_:
            _after_hand_off_now()  # more to publish (a burst): the follow-ups go to tasks of their own now
        progressed = sum(_dispatch_handler(h, batch_size, max_attempts) for h in handlers)
        total += progressed
        if not progressed:
            break
    return total


# Follow-up work a handler's commit sets off (a webhook delivery run), which the dispatch task
# may do itself once it has published everything: no task published, handed over by the worker
# and started in another process (a few Redis round trips and a prefork hand-off, a third of a
# paced webhook's commit → first attempt). Per thread: the tests' worker runs tasks in threads.
_local = threading.local()


def after_dispatch(fn: Callable[[], object], *, otherwise: Callable[[], object]) -> object:
    """In a dispatch task: call `fn` in this task once the dispatch has nothing more to publish
    (a quiet moment: one message a round); in a burst (the handler was given several messages
    at once, the next round finds more, or commits kicked the dispatch meanwhile) call
    `otherwise` (publish a task for the work) at once instead, so the work waits neither for
    the burst to end nor for the process that dispatches it. Outside a dispatch task (a test, a
    web request, another task): `otherwise` at once. Each kind of work once per round: `fn` and
    `otherwise` are told apart by `fn`. Returns what `otherwise` returned, or True when deferred."""
    pending = getattr(_local, "after", None)
    if pending is None or getattr(_local, "several", False):
        return otherwise()
    if all(f is not fn for f, _ in pending):
        pending.append((fn, otherwise))
    return True


def _after_hand_off_now() -> None:
    if getattr(_local, "after", None):
        _after_hand_off(_after_take())


def _after_take() -> list[tuple[Callable, Callable]]:
    pending, _local.after = _local.after, []
    return pending


def _after_run(pending: list[tuple[Callable, Callable]]) -> None:
    for fn, _ in pending:
        try:
            fn()
        except Exception:  # the dispatch's work is committed; the follow-up's own recovery covers it
            logger.exception("work after the outbox dispatch failed", extra={"work": getattr(fn, "__name__", fn)})


def _after_hand_off(pending: list[tuple[Callable, Callable]]) -> None:
    for _, otherwise in pending:
        try:
            otherwise()
        except Exception:
            logger.exception("could not hand off work after the outbox dispatch")


def outbox_dispatch_while_kicked(*, seconds: float | None = None) -> int:
    """`_dispatch_while_kicked`, with the work handlers set off (`after_dispatch`) done in this
    task when the dispatch ends with nothing left to publish, or handed off while it drains."""
    _local.after = []
    try:
        total, idle = _dispatch_while_kicked(seconds=seconds)
    except BaseException:
        _after_hand_off(_after_take())
        _local.after = None
        raise
    pending = _after_take()
    _local.after = None
    (_after_run if idle else _after_hand_off)(pending)
    return total


def _dispatch_while_kicked(*, seconds: float | None = None) -> tuple[int, bool]:
    """The dispatch task: publish, and again while kicks keep coming (commits made meanwhile),
    for at most `seconds` (OUTBOX_DISPATCH_SECONDS); then hand over to a follow-up task (queued
    behind what else waits, so a long burst does not keep a worker process from other tasks).
    A task that finds another draining (a Beat sweep's) publishes once and leaves the kicks to it.
    Returns the count and whether it ended idle (no kick waiting: not handed over)."""
    from config.celery import enqueue
    from trading.tasks import outbox_dispatch_task

    deadline = time.monotonic() + (settings.OUTBOX_DISPATCH_SECONDS if seconds is None else seconds)
    drainer, token = DISPATCH_KICKS.acquire()
    total = 0
    while True:
        try:
            total += outbox_dispatch()
        except BaseException:
            if drainer:
                DISPATCH_KICKS.clear()  # the next kick enqueues a dispatch (Beat sweeps meanwhile)
            raise
        if not drainer:
            return total, True
        done, token = DISPATCH_KICKS.finish(token)
        if done:
            return total, True
        _after_hand_off_now()  # kicks are coming (a burst): the follow-ups go to tasks of their own
        if time.monotonic() >= deadline:  # kicks are waiting: the counter stays, for the follow-up
            DISPATCH_KICKS.release()
            if not enqueue(outbox_dispatch_task, swept_by="the Beat outbox sweep"):
                DISPATCH_KICKS.clear()
            return total, False
