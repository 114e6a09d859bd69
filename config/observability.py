"""The desk's state as numbers, read from PostgreSQL and Redis when asked: what `/metrics`
exports as gauges at scrape time (`StateCollector`) and what the control panel's health page shows
(`trading/admin_panel/health.py` reads the same functions). One source for both.

Each reading is cheap (indexed counts, a handful of Redis keys) and a failing one is skipped
(counted in `tradedesk_state_reading_errors`): a scrape never fails because one part is down."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from config.clock import seconds_since

logger = logging.getLogger("tradedesk.metrics")


# --- readings (the panel reads these too) ------------------------------------------------------


def orders_open() -> list[dict]:
    """Orders not in a final status, per (status, venue): count and the oldest's last change."""
    from trading.models import Order

    rows = (
        Order.objects.exclude(status__in=Order.TERMINAL)
        .values("status", "provider")
        .annotate(count=Count("id"), oldest=Min("updated_at"))
        .order_by()
    )
    return list(rows)


def outbox_state() -> dict:
    from trading.models import OutboxMessage

    S = OutboxMessage.Status
    pending = OutboxMessage.objects.filter(status=S.PENDING).aggregate(count=Count("id"), oldest=Min("created_at"))
    dead = OutboxMessage.objects.filter(status=S.DEAD).count()
    return {"pending": pending["count"], "oldest_pending": pending["oldest"], "dead": dead}


def webhook_state() -> dict:
    from webhooks.models import WebhookDelivery, WebhookEndpoint

    S = WebhookDelivery.Status
    backlog = WebhookDelivery.objects.filter(status__in=(S.PENDING, S.DELIVERING)).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    return {
        "backlog": backlog["count"],
        "oldest_backlog": backlog["oldest"],
        "failed": WebhookDelivery.objects.filter(status=S.FAILED).count(),
        "endpoints_disabled": WebhookEndpoint.objects.filter(disabled_at__isnull=False).count(),
    }


def queue_depth() -> int:
    """Tasks waiting in the Celery queue (Redis LLEN of the queue's list)."""
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=1, socket_connect_timeout=1)
    try:
        return int(client.llen(settings.CELERY_TASK_DEFAULT_QUEUE))
    finally:
        client.close()


def beat_last_run():
    """When Beat's scheduler last ticked: its own heartbeat (config/beat.py), the reading the
    control panel's Beat badge shows."""
    from datetime import UTC

    from config.beat import beat_heartbeat_read

    stamp = beat_heartbeat_read()
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp is not None else None


def prices_cached() -> list:
    from providers.prices import prices_cached_all

    return prices_cached_all()


def breakers() -> list[dict]:
    from providers.ostium.resilience import breaker_state

    return [{"provider": "ostium", **breaker_state(settings.OSTIUM_NETWORK)}]


def inventory_state() -> list[dict]:
    """Per (venue, asset): the oldest sync among its accounts and how many balances are stale."""
    from treasury.models import InventoryBalance

    now = timezone.now()
    out: dict[tuple[str, str], dict] = {}
    for row in InventoryBalance.objects.only("venue", "asset", "status", "synced_at"):
        key = (row.venue, row.asset)
        item = out.setdefault(key, {"venue": row.venue, "asset": row.asset, "age": 0.0, "stale": 0})
        age = row.age_seconds(now)
        item["age"] = max(item["age"], age if age is not None else float("inf"))
        item["stale"] += int(row.effective_status(now) == InventoryBalance.Status.STALE)
    return list(out.values())


def liquidity_open() -> list[dict]:
    """Liquidity actions (fundings, withdrawals, rebalances) not final, per venue, kind and status
    (`delayed` among them: funding delayed, open past FUNDING_DELAY_ALERT_MINUTES)."""
    from treasury.models import LiquidityAction

    return list(
        LiquidityAction.objects.filter(status__in=LiquidityAction.OPEN)
        .values("venue", "kind", "status")
        .annotate(count=Count("id"))
        .order_by()
    )


def stop_missing_count() -> int:
    """Open positions flagged without a working stop (the protective engine's stop coverage)."""
    from trading.models import Position
    from trading.protective.models import PositionRiskState

    return PositionRiskState.objects.filter(
        stop_missing_flagged_at__isnull=False, position__status=Position.Status.OPEN
    ).count()


def executors() -> list[dict]:
    """Per venue: whether its executor is armed (and not lapsed) and whether the venue is enabled
    (the environment's kill switch, then the runtime configuration): an armed executor of a
    disabled venue is a contradiction to alert on."""
    from trading.models import ControlState
    from trading.services.control import venue_enabled

    now = timezone.now()
    states = {s.component: s for s in ControlState.objects.filter(component__startswith="executor:")}
    out = []
    for venue in settings.VENUE_ENABLED:
        state = states.get(f"executor:{venue}")
        armed = bool(state and state.armed_at(now))
        out.append({"venue": venue, "armed": armed, "enabled": venue_enabled(venue)})
    return out


def engine_last_run():
    from trading.protective.models import EngineHeartbeat

    return EngineHeartbeat.objects.aggregate(at=Max("last_run_at"))["at"]


# --- the collector -----------------------------------------------------------------------------


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class StateCollector:
    """Gauges of the desk's state, read at scrape time (registered only in the scrape's own
    registry, so prometheus_client's multiprocess limits do not apply to it)."""

    def collect(self):
        now = timezone.now()
        errors = _gauge("tradedesk_state_reading_errors", "State readings that failed in this scrape", ("reading",))
        for name, fn in _READINGS:
            try:
                yield from fn(now)
            except Exception:
                logger.warning("metrics state reading failed", extra={"reading": name}, exc_info=True)
                errors.add_metric([name], 1)
        yield errors


def _orders(now):
    open_ = _gauge("tradedesk_orders_open", "Orders not in a final status, by status and venue", ("status", "venue"))
    unknown_age = _gauge(
        "tradedesk_orders_unknown_oldest_age_seconds",
        "Age of the oldest order in UNKNOWN (since its last change), by venue",
        ("venue",),
    )
    in_flight = _gauge("tradedesk_orders_submitting", "Orders handed to a venue (SUBMITTING), by venue", ("venue",))
    for row in orders_open():
        open_.add_metric([row["status"], row["provider"]], row["count"])
        if row["status"] == "UNKNOWN":
            unknown_age.add_metric([row["provider"]], seconds_since(row["oldest"], now) or 0.0)
        if row["status"] == "SUBMITTING":
            in_flight.add_metric([row["provider"]], row["count"])
    yield from (open_, unknown_age, in_flight)


def _outbox(now):
    state = outbox_state()
    g = _gauge("tradedesk_outbox_backlog", "Outbox messages not yet published")
    g.add_metric([], state["pending"])
    age = _gauge("tradedesk_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox message")
    age.add_metric([], seconds_since(state["oldest_pending"], now) or 0.0)
    dead = _gauge("tradedesk_outbox_dead", "Outbox messages given up on")
    dead.add_metric([], state["dead"])
    yield from (g, age, dead)


def _webhooks(now):
    state = webhook_state()
    backlog = _gauge("tradedesk_webhook_backlog", "Webhook deliveries not yet delivered (pending or in flight)")
    backlog.add_metric([], state["backlog"])
    age = _gauge("tradedesk_webhook_oldest_age_seconds", "Age of the oldest undelivered webhook delivery")
    age.add_metric([], seconds_since(state["oldest_backlog"], now) or 0.0)
    failed = _gauge("tradedesk_webhook_failed", "Webhook deliveries given up on")
    failed.add_metric([], state["failed"])
    disabled = _gauge("tradedesk_webhook_endpoints_disabled", "Webhook endpoints disabled after failing")
    disabled.add_metric([], state["endpoints_disabled"])
    yield from (backlog, age, failed, disabled)


def _celery(now):
    g = _gauge("tradedesk_celery_queue_depth", "Tasks waiting in the Celery queue", ("queue",))
    g.add_metric([settings.CELERY_TASK_DEFAULT_QUEUE], queue_depth())
    yield g


def _beat(now):
    when = beat_last_run()
    g = _gauge("tradedesk_beat_last_run_timestamp_seconds", "When Beat last ran its outbox sweep (Unix time)")
    if when is not None:
        g.add_metric([], when.timestamp())
    yield g
    engine = engine_last_run()
    e = _gauge("tradedesk_protective_last_run_timestamp_seconds", "The protective engine's newest heartbeat")
    if engine is not None:
        e.add_metric([], engine.timestamp())
    yield e


def _prices(now):
    age = _gauge(
        "tradedesk_price_age_seconds", "Age of the cached price, by source (venue) and symbol", ("source", "symbol")
    )
    stale = _gauge("tradedesk_price_stale", "1 when the cached price is older than PRICE_MAX_AGE", ("source", "symbol"))
    for tick in prices_cached():
        seconds = seconds_since(tick.timestamp, now)
        age.add_metric([tick.venue, tick.symbol], seconds)
        stale.add_metric([tick.venue, tick.symbol], float(seconds > settings.PRICE_MAX_AGE))
    yield from (age, stale)


_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def _breakers(now):
    g = _gauge("tradedesk_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ("provider", "network"))
    f = _gauge("tradedesk_breaker_failures", "Consecutive failures the breaker counted", ("provider", "network"))
    for b in breakers():
        g.add_metric([b["provider"], b["network"]], _BREAKER_VALUE[b["state"]])
        f.add_metric([b["provider"], b["network"]], b["failures"])
    yield from (g, f)


def _inventory(now):
    age = _gauge(
        "tradedesk_inventory_age_seconds", "Age of the oldest inventory sync, by venue and asset", ("venue", "asset")
    )
    stale = _gauge(
        "tradedesk_inventory_stale", "Inventory balances that are stale, by venue and asset", ("venue", "asset")
    )
    for row in inventory_state():
        age.add_metric([row["venue"], row["asset"]], row["age"])
        stale.add_metric([row["venue"], row["asset"]], row["stale"])
    yield from (age, stale)


def _liquidity(now):
    g = _gauge(
        "tradedesk_liquidity_actions_open",
        "Liquidity actions not final, by venue, kind and status (delayed: a funding overdue)",
        ("venue", "kind", "status"),
    )
    for row in liquidity_open():
        g.add_metric([row["venue"], row["kind"], row["status"]], row["count"])
    yield g


def _risk(now):
    g = _gauge("tradedesk_positions_without_stop", "Open positions flagged without a working stop")
    g.add_metric([], stop_missing_count())
    yield g


def _executors(now):
    armed = _gauge("tradedesk_executor_armed", "1 when the venue's executor is armed", ("venue",))
    enabled = _gauge(
        "tradedesk_venue_enabled", "1 when the venue is enabled (kill switch, then runtime configuration)", ("venue",)
    )
    for row in executors():
        armed.add_metric([row["venue"]], float(row["armed"]))
        enabled.add_metric([row["venue"]], float(row["enabled"]))
    yield from (armed, enabled)


def _clock(now):
    g = _gauge("tradedesk_scrape_timestamp_seconds", "When this scrape read the state (Unix time)")
    g.add_metric([], time.time())
    yield g


_READINGS = [
    ("orders", _orders),
    ("outbox", _outbox),
    ("webhooks", _webhooks),
    ("celery", _celery),
    ("beat", _beat),
    ("prices", _prices),
    ("breakers", _breakers),
    ("inventory", _inventory),
    ("liquidity", _liquidity),
    ("risk", _risk),
    ("executors", _executors),
    ("clock", _clock),
]
