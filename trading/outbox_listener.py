"""The worker's ear for new outbox messages: `LISTEN "outbox_pending:<queue>"` (its Celery queue)
on a connection of its own.

A new order's INSERT (`ledger.insert_with_event`) carries `pg_notify('outbox_pending:<queue>', '')` in
the same statement, so the notification rides the order's COMMIT: the placing request pays no
round trip for it (the per-commit Redis kick it replaces cost the request about 0.2 ms of CPU).
PostgreSQL delivers a notification only when its transaction commits, and folds the ones of a
transaction into one. This thread, in each worker's main process, wakes on them and kicks the
dispatcher as the committing process used to (`outbox._kick`, coalesced by `config/kicks.py`:
a burst of orders costs one dispatch task, not one per order).

Nothing is lost when a notification is: the messages are rows, Beat's sweep (every 2 s) runs the
dispatcher whatever happened, and on every (re)connect the listener kicks once for what was
committed while nobody listened. With no worker running, nobody listens and the notifications
are dropped by PostgreSQL (a notification queue only holds them for listening sessions).

LISTEN needs a session of its own on the server (not a transaction-pooling proxy); NOTIFY does
not, it is part of the writing transaction. PostgreSQL serialises the commits of notifying
transactions (a short lock while the notification is queued): felt at thousands of commits a
second, not at this desk's order rates."""

from __future__ import annotations

import functools
import logging
import re
import threading

from celery import bootsteps


@functools.cache
def channel() -> str:
    """The notification channel of this desk's workers: named after its Celery queue, so that
    another desk's processes on the same database (a demo started by a test, with a queue of its
    own) are not kicked to execute its orders with their settings."""
    from django.conf import settings

    queue = re.sub(r"[^A-Za-z0-9_.:-]", "_", settings.CELERY_TASK_DEFAULT_QUEUE)
    return f"outbox_pending:{queue}"[:63]  # a channel name is at most 63 bytes
    # (read when first used, not at import: the worker's bootstep imports this module while
    # the settings module, which imports the Celery app, may still be loading)


def notify_sql() -> str:
    """The statement that notifies this desk's listeners (joined to a new order's INSERT)."""
    return f"SELECT pg_notify('{channel()}', '')"


logger = logging.getLogger("tradedesk.outbox")

# What a psycopg connection of our own takes of Django's connection parameters (the rest are
# Django's cursor and adapter choices).
_NOT_FOR_PSYCOPG = ("cursor_factory", "context", "prepare_threshold")


def _connection_params() -> dict:
    from django.db import connections

    params = connections["default"].get_connection_params()
    return {k: v for k, v in params.items() if k not in _NOT_FOR_PSYCOPG}


class KickListener:
    """A daemon thread: LISTEN, and on each wake (one or several notifications) kick the
    dispatcher once. Reconnects after a lost connection (PostgreSQL restarted), with a back-off."""

    def __init__(self, *, kick=None, poll_seconds: float = 1.0, retry_seconds: float = 1.0):
        from trading import outbox

        self.kick = kick or outbox._kick
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.listening = threading.Event()  # set while LISTEN is in place (tests wait for it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-kick-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg
        from psycopg import sql

        retry = self.retry_seconds
        while not self._stop.is_set():
            try:
                with psycopg.connect(**_connection_params(), autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel())))
                    retry = self.retry_seconds
                    self._kick()  # what was committed while nobody listened
                    self.listening.set()
                    while not self._stop.is_set():
                        woken = False
                        for _ in conn.notifies(timeout=self.poll_seconds, stop_after=1):
                            woken = True  # the ones that came in the same read are folded in
                        if woken:
                            self._kick()
            except Exception:
                logger.warning("outbox listener lost its connection; Beat's sweep covers the gap", exc_info=True)
            self.listening.clear()
            self._stop.wait(retry)
            retry = min(retry * 2, 30.0)

    def _kick(self) -> None:
        try:
            self.kick()
        except Exception:  # _kick logs and swallows broker errors itself; anything else: Beat sweeps
            logger.warning("outbox listener could not kick the dispatcher", exc_info=True)


class KickListenerStep(bootsteps.StartStopStep):
    """Runs a `KickListener` for as long as the Celery worker runs (every pool: prefork's main
    process, the threads pool of the tests); stopped on a warm or a cold shutdown."""

    requires = ("celery.worker.components:Pool",)

    def create(self, parent):
        return KickListener()
