"""A small registry of health providers for the control panel.

A provider is a callable returning a list of `HealthItem`s. Apps register theirs in
`AppConfig.ready()` with `health_provider_register(name, fn)`; the built-in ones below look
up optional models by name (the protective engine's `EngineHeartbeat`, webhook deliveries),
so those parts plug in when they land without this module changing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger("tradedesk.health")

OK, WARN, DOWN, UNKNOWN = "ok", "warn", "down", "unknown"


@dataclass
class HealthItem:
    name: str
    status: str  # ok / warn / down / unknown
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
    age = (timezone.now() - when).total_seconds()
    return OK if age <= warn_after else WARN if age <= down_after else DOWN


def find_model(*names: str):
    """The first installed model whose class name is one of `names` (any app), or None."""
    wanted = {n.lower() for n in names}
    for model in apps.get_models():
        if model.__name__.lower() in wanted:
            return model
    return None


# --- built-in providers -----------------------------------------------------------------------


def beat_health() -> list[HealthItem]:
    """Beat's heartbeat: when the outbox sweep last ran (django_celery_beat records it)."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(task="trading.tasks.outbox_dispatch_task").order_by("-last_run_at").first()
    when = task.last_run_at if task else None
    return [
        HealthItem(
            name="Celery Beat (outbox sweep)",
            status=age_status(when, warn_after=30, down_after=120),
            value="last run" if when else "never ran",
            detail="" if task else "schedule not synced (manage.py sync_beat_schedule)",
            last_seen=when,
        )
    ]


def queue_depth() -> int:
    """Tasks waiting in the Celery queue (Redis LLEN of the queue's list)."""
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=1, socket_connect_timeout=1)
    try:
        return int(client.llen(settings.CELERY_TASK_DEFAULT_QUEUE))
    finally:
        client.close()


def celery_queue_health() -> list[HealthItem]:
    depth = queue_depth()
    return [
        HealthItem(
            name=f"Celery queue {settings.CELERY_TASK_DEFAULT_QUEUE}",
            status=OK if depth < 100 else WARN if depth < 1000 else DOWN,
            value=f"{depth} waiting",
        )
    ]


def engine_heartbeat_health() -> list[HealthItem]:
    model = find_model("EngineHeartbeat")
    if model is None:
        return [HealthItem(name="Protective engine", status=UNKNOWN, detail="no heartbeat model installed yet")]
    fields = [f.name for f in model._meta.get_fields() if getattr(f, "get_internal_type", None)]
    time_field = next(
        (
            f
            for f in ("last_run_at", "beat_at", "last_beat_at", "last_seen_at", "updated_at", "at", "created_at")
            if f in fields
        ),
        None,
    )
    if time_field is None:
        return [HealthItem(name="Protective engine", status=UNKNOWN, detail="heartbeat model has no time field")]
    when = model.objects.order_by(f"-{time_field}").values_list(time_field, flat=True).first()
    return [
        HealthItem(
            name="Protective engine",
            status=age_status(when, warn_after=10, down_after=60),
            value="heartbeat" if when else "no heartbeat yet",
            last_seen=when,
        )
    ]


def webhook_health() -> list[HealthItem]:
    model = find_model("WebhookDelivery", "Delivery")
    if model is None:
        return [HealthItem(name="Undelivered webhooks", status=UNKNOWN, detail="webhooks not installed yet")]
    names = {f.name for f in model._meta.get_fields()}
    qs = model.objects.all()
    if "status" in names:
        qs = qs.exclude(status__in=["delivered", "succeeded", "success", "DELIVERED", "SUCCEEDED"])
    elif "delivered_at" in names:
        qs = qs.filter(delivered_at__isnull=True)
    count = qs.count()
    return [HealthItem(name="Undelivered webhooks", status=OK if count == 0 else WARN, value=str(count))]


def stale_after() -> timedelta:
    return timedelta(seconds=settings.PRICE_MAX_AGE)


health_provider_register("beat", beat_health)
health_provider_register("celery_queue", celery_queue_health)
health_provider_register("engine", engine_heartbeat_health)
health_provider_register("webhooks", webhook_health)
