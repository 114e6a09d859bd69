"""Celery Beat's scheduler (settings.CELERY_BEAT_SCHEDULER): django-celery-beat's database
scheduler, made to outlive a database outage.

django-celery-beat reads the schedule from PostgreSQL on every tick and in full every five
minutes; with the database down the full read raised OperationalError out of `tick()` and Beat
exited (rc=1), and the per-tick read logged a traceback up to a dozen times a second. Here a
database error pauses the schedule instead: one error line, a retry after 1, 2, 4, then every
`BACKOFF_MAX` seconds (a warning each minute while it lasts), and the schedule resumes — with
one info line — as soon as the database answers. Nothing is sent while it is paused: every job
needs the database. Starting while the database is down waits for it the same way (and
SIGTERM stops it meanwhile).

Each tick that reads the schedule also writes Beat's heartbeat (`HEARTBEAT_KEY` in the cache,
at most once a second, and a tick at least every `HEARTBEAT_SECONDS`): the control panel's
Beat badge reads it, so it is green while Beat runs and red within two heartbeat intervals of
Beat stopping or pausing.
"""

from __future__ import annotations

import contextlib
import logging
import time

from django.db import DatabaseError, InterfaceError, close_old_connections, connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger("tradedesk.beat")

DATABASE_ERRORS = (DatabaseError, InterfaceError)  # OperationalError is a DatabaseError
BACKOFF_MAX = 5.0  # seconds between retries once the outage has lasted a few seconds
REPORT_EVERY = 60.0  # seconds between "still unavailable" warnings
HEARTBEAT_KEY = "beat:heartbeat"  # the Unix time of Beat's last tick that read the schedule
HEARTBEAT_SECONDS = 5.0  # Beat ticks (and so writes its heartbeat) at least this often


def beat_heartbeat_write(now: float | None = None) -> None:
    from django.core.cache import cache

    cache.set(HEARTBEAT_KEY, time.time() if now is None else now, timeout=None)


def beat_heartbeat_read() -> float | None:
    """The Unix time of Beat's last heartbeat, or None when it never wrote one."""
    from django.core.cache import cache

    value = cache.get(HEARTBEAT_KEY)
    return float(value) if value is not None else None


_stop_requested = False


def stop_on_signal() -> None:
    """SIGTERM and SIGINT stop Beat by raising SystemExit where it is, and Beat's loop saves the
    schedule on its way out (`celery.beat.Service.start`). Celery's own handler saved it inside
    the handler: when the signal came while Beat was in a query, that re-entered the connection
    the interrupted query held (its lock is not re-entrant) and Beat hung for good.

    The request is also remembered, and the next tick raises it again: a signal that lands in a
    finaliser (a Redis client's `__del__` closing its connection) has its SystemExit swallowed
    by Python ("Exception ignored in ..."), and Beat ran on."""
    from celery import platforms

    platforms.signals.update(SIGTERM=stop_request, SIGINT=stop_request)


def stop_request(signum=None, frame=None):
    global _stop_requested
    _stop_requested = True
    raise SystemExit()


def stop_if_requested() -> None:
    if _stop_requested:
        raise SystemExit()


class ResilientDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self._down_since: float | None = None
        self._retry_delay = 1.0
        self._reported_at = 0.0
        self._setup_pending = False
        self._heartbeat_at = 0.0
        super().__init__(*args, **kwargs)

    def setup_schedule(self):
        # Not a wait here: Beat's SIGTERM handler builds the scheduler again when it is not
        # there yet, and a Beat waiting in its constructor could not be stopped. The first
        # ticks set it up instead, pausing like any tick while the database is down.
        try:
            super().setup_schedule()
        except DATABASE_ERRORS as exc:
            self._setup_pending = True
            self._database_down(exc)

    def tick(self, *args, **kwargs):
        stop_if_requested()  # a stop whose SystemExit was swallowed (see stop_on_signal)
        try:
            if self._setup_pending:
                super().setup_schedule()
                self._setup_pending = False
            interval = super().tick(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            return self._database_down(exc)
        if self._down_since is not None:
            logger.info(
                "Beat: the database is back after %.0f s; schedule resumed", time.monotonic() - self._down_since
            )
            self._down_since = None
            self._retry_delay = 1.0
        self._heartbeat()
        return min(interval, HEARTBEAT_SECONDS)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._heartbeat_at < 1.0:
            return
        try:
            beat_heartbeat_write()
        except Exception:  # Redis down: the badge goes red, which is true (nothing is sent either)
            logger.warning("Beat: could not write its heartbeat", exc_info=True)
        self._heartbeat_at = now

    def sync(self):
        if self._down_since is not None:  # (while paused the entries' run times are written later)
            return
        try:
            super().sync()
        except DATABASE_ERRORS as exc:  # e.g. stopped mid-query (stop_on_signal): the run times are lost
            logger.warning("Beat: could not save the schedule's run times: %s", exc)

    def schedule_changed(self) -> bool:
        """The base class's check, except that a database error reaches `tick()` (which pauses)
        instead of being logged with its traceback on every tick and ignored."""
        close_old_connections()
        last, ts = self._last_timestamp, self.Changes.last_change()
        self._last_timestamp = ts
        return bool(ts and ts > (last or ts))

    def _database_down(self, exc: Exception) -> float:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = self._reported_at = now
            logger.error("Beat: the database is unavailable; schedule paused until it answers: %s", exc)
        elif now - self._reported_at >= REPORT_EVERY:
            self._reported_at = now
            logger.warning("Beat: the database is still unavailable after %.0f s: %s", now - self._down_since, exc)
        for conn in connections.all(initialized_only=True):
            with contextlib.suppress(*DATABASE_ERRORS):
                conn.close()  # a broken connection: the next attempt opens a new one
        if self._schedule is None:  # the first read failed: read it again next time
            self._initial_read = True
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, BACKOFF_MAX)
        return delay
