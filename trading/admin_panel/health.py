"""A small registry of health providers for the control panel.

A provider is a callable returning a list of `HealthItem`s. Apps register theirs in
`AppConfig.ready()` with `health_provider_register(name, fn)`; the built-in ones below read
the protective engine's heartbeat and the webhook deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from config import observability
from config.clock import seconds_since

logger = logging.getLogger("tradedesk.health")

OK, WARN, DOWN, UNKNOWN = "ok", "warn", "down", "unknown"
OFF = "off"  # switched off by an operator (disarmed, or a kill switch): nothing to judge, nothing wrong


@dataclass
class HealthItem:
    name: str
    status: str  # ok / warn / down / unknown / off
    value: str = ""
    detail: str = ""
    last_seen: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "detail": self.detail,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


_providers: dict[str, Callable[[], list[HealthItem]]] = {}


def health_provider_register(name: str, fn: Callable[[], list[HealthItem]]) -> None:
    _providers[name] = fn


def health_collect() -> list[HealthItem]:
    """Every provider's items; a failing provider shows as one `unknown` item, never an error page."""
    items: list[HealthItem] = []
    for name, fn in _providers.items():
        try:
            items.extend(fn())
        except Exception as exc:  # a broken probe must not take the panel down
            logger.warning("health provider failed", extra={"provider": name}, exc_info=True)
            items.append(HealthItem(name=name, status=UNKNOWN, detail=f"probe failed: {type(exc).__name__}"))
    return items


def age_status(when: datetime | None, *, warn_after: float, down_after: float) -> str:
    if when is None:
        return UNKNOWN
    age = seconds_since(when)
    return OK if age <= warn_after else WARN if age <= down_after else DOWN


# --- built-in providers -----------------------------------------------------------------------


def beat_health() -> list[HealthItem]:
    """Beat's own heartbeat, written by its scheduler on each tick that reads the schedule (at
    least every HEARTBEAT_SECONDS): OK within one interval and a second, WARN up to two
    intervals, DOWN after (Beat stopped, or paused because the database is down)."""
    from config.beat import HEARTBEAT_SECONDS

    when = observability.beat_last_run()  # /metrics: tradedesk_beat_last_run_timestamp_seconds
    status = age_status(when, warn_after=HEARTBEAT_SECONDS + 1, down_after=2 * HEARTBEAT_SECONDS)
    return [
        HealthItem(
            name="Celery Beat",
            status=DOWN if when is None else status,
            value="heartbeat" if when else "no heartbeat",
            detail="" if when else "Beat has not run since Redis was last emptied (start it: make run)",
            last_seen=when,
        )
    ]


queue_depth = observability.queue_depth  # the same reading as /metrics' tradedesk_celery_queue_depth


def celery_queue_health() -> list[HealthItem]:
    """The queue's depth, and whether a worker answers at all: an empty queue with no worker is
    not healthy (what Beat and the API hand over would wait there)."""
    from config.health import celery_workers

    depth = queue_depth()
    workers = celery_workers()
    status = OK if depth < 100 else WARN if depth < 1000 else DOWN
    return [
        HealthItem(
            name=f"Celery queue {settings.CELERY_TASK_DEFAULT_QUEUE}",
            status=status if workers else DOWN,
            value=f"{depth} waiting",
            detail=f"a worker answers ({workers[0]})"
            if workers
            else f"no worker answered within {settings.READY_CELERY_TIMEOUT:g} s: nothing runs this queue",
        )
    ]


def engine_heartbeat_health() -> list[HealthItem]:
    """The newest heartbeat of the engine's doors (Beat run or tick listener)."""

    when = observability.engine_last_run()
    return [
        HealthItem(
            name="Protective engine",
            status=age_status(when, warn_after=10, down_after=60),
            value="heartbeat" if when else "no heartbeat yet",
            last_seen=when,
        )
    ]


def webhook_health() -> list[HealthItem]:
    """Undelivered webhook deliveries: those still due (tradedesk_webhook_backlog) and those given
    up on (tradedesk_webhook_failed), the numbers /metrics exports."""
    state = observability.webhook_state()
    count = state["backlog"] + state["failed"]
    return [HealthItem(name="Undelivered webhooks", status=OK if count == 0 else WARN, value=str(count))]


def stale_after() -> timedelta:
    return timedelta(seconds=settings.PRICE_MAX_AGE)


health_provider_register("beat", beat_health)
health_provider_register("celery_queue", celery_queue_health)
health_provider_register("engine", engine_heartbeat_health)
health_provider_register("webhooks", webhook_health)
