"""The protective-order engine: stop-loss, take-profit, trailing stop, OCO and held LIMIT
entries, evaluated set-based per venue and asset on every price tick (tick listener) and every
second (Beat, against the latest cached price), plus the liquidation watch and stop coverage.
Orders are evaluated at the price of the venue holding them (`providers.prices`: a tick names
its venue), never at another venue's price of the same asset.

One evaluation of one asset at one venue's price, in one transaction:
    stale guard → advisory lock (per asset), leaving staleness and "is any trailing stop due?"
    (three small statements in one round trip) → if due, trailing activation/ratchet (one
    statement, writing the `order.trailing_started` events) → triggers (one statement: the UPDATE, its
    `order.triggered` events and their outbox messages, set-based from the UPDATE's RETURNING
    rows; only the ids fired come back) →
    after commit: one task that fans out execution of the triggered orders (the executor's
    ordinary claim → close command path) and one push task per trailing stop that moved
    enough on a native-SL/TP venue.

Who owns what: the paper venue rests plain LIMIT entries itself (they never wait in
PENDING_TRIGGER); a LIMIT order waiting in PENDING_TRIGGER is one we hold (a venue without
resting limits) and fires here. On venues holding SL/TP natively (`native_sl_tp`), STOP_LOSS and
TAKE_PROFIT orders are the venue's to fire (it closes the trade and tells us by venue event), and
so are trailing stops once a level was pushed: they ratchet here, at the venue's price, and each
level that moved at least TRAILING_MIN_STEP_PCT from the last one pushed becomes the venue's SL
(`update_sl`), which the venue fires (its stop trails ours by less than that step). OCO orders
are always evaluated and fired here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from config import metrics
from config.logging import log_event
from trading import outbox
from trading import protective_sql as Q
from trading.models import EngineHeartbeat, Order, Position
from trading.services.ledger import event_record, event_record_many
from trading.ulid import new_ulid_prefix

logger = logging.getLogger("tradedesk.protective")

BEAT = "beat"
TICK = "tick"


# --- venue capabilities ---------------------------------------------------------------------------


def native_sl_tp_venues() -> list[str]:
    """Venues that hold SL/TP natively (their declared capabilities, read without building a
    client), plus the PROTECTIVE_NATIVE_SL_TP_VENUES setting (so the native path can run against
    paper)."""
    from providers.registry import venue_capabilities, venue_names

    names = {v for v in venue_names() if venue_capabilities(v).native_sl_tp}
    names.update(v.strip() for v in settings.PROTECTIVE_NATIVE_SL_TP_VENUES if v.strip())
    return sorted(names)


def limit_orders_held_here(venue: str) -> bool:
    """Does the engine hold LIMIT entries for `venue` (it cannot rest them)? Venues say so by
    declaring `native_limit_orders=False`; PROTECTIVE_HELD_LIMIT_VENUES adds venues (tests, demos).
    The paper venue rests its limits itself."""
    if venue in settings.PROTECTIVE_HELD_LIMIT_VENUES:
        return True
    from providers.registry import venue_capabilities

    return not venue_capabilities(venue).native_limit_orders


# --- one evaluation -------------------------------------------------------------------------------


@dataclass
class Evaluation:
    asset: str
    price: Decimal | None
    venue: str = ""
    stale: bool = False
    stale_entered: bool = False
    triggered: list[int] = field(default_factory=list)
    trailing_moved: int = 0
    pushes: list[int] = field(default_factory=list)


def _cursor() -> psycopg.Cursor:
    """A server-side-binding cursor on Django's connection (same transaction): parameters and
    arrays travel as values instead of being quoted into the SQL text (much faster for the
    id/price arrays here). Never prepared, so each statement is planned for its values."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _rows(sql: str, params: dict) -> list[tuple]:
    with _cursor() as cursor:
        cursor.execute(sql, params, prepare=False)
        return cursor.fetchall() if cursor.description else []


def _execute(sql: str, params: dict) -> None:
    with _cursor() as cursor:
        cursor.execute(sql, params, prepare=False)


def _pipelined(*statements: str, params: dict) -> list[list[tuple]]:
    """Run statements one after the other, as `_rows` would (each with its own snapshot), but
    sent in one round trip (psycopg pipeline mode). The rows of each, in order."""
    connection.ensure_connection()
    cursors = []
    with connection.connection.pipeline():
        for sql in statements:
            cursor = _cursor()
            cursor.execute(sql, params, prepare=False)
            cursors.append(cursor)
    out = []
    for cursor in cursors:
        with cursor:
            out.append(cursor.fetchall() if cursor.description else [])
    return out


def price_too_old(price_at: datetime | None, *, now: datetime | None = None) -> bool:
    if price_at is None:
        return True
    age = ((now or timezone.now()) - price_at).total_seconds()
    return age > settings.PROTECTIVE_MAX_PRICE_AGE_SECONDS


@transaction.atomic
def _asset_stale_mark(*, venue: str, asset: str, price, price_at, source: str, door: str) -> bool:
    """Record that `asset` has no usable price at `venue`; `price.stale` only when entering staleness."""
    params = {"venue": venue, "asset": asset, "price": price, "price_at": price_at, "source": source or ""}
    was = _rows(Q.STALE_WAS, params)
    _execute(Q.STALE_ENTER, params)
    entered = not (was and was[0][0])
    if entered:
        event_record(
            topic="price.stale",
            aggregate_type="asset",
            aggregate_id=asset,
            correlation_id=f"asset-{asset}",
            payload={
                "asset": asset,
                "venue": venue,
                "price": price,
                "price_at": price_at,
                "source": source,
                "max_age_seconds": settings.PROTECTIVE_MAX_PRICE_AGE_SECONDS,
                "door": door,
            },
        )
        freshness = None if price_at is None else int((timezone.now() - price_at).total_seconds() * 1000)
        transaction.on_commit(
            lambda: log_event(
                logger,
                "price.stale",
                level=logging.WARNING,
                venue=venue,
                pair=asset,
                topic="price.stale",
                source=source,
                price_freshness_ms=freshness,
                door=door,
            )
        )
    return entered


def protective_evaluate(
    *,
    venue: str,
    asset: str,
    price: Decimal | None,
    price_at: datetime | None,
    source: str = "",
    door: str = TICK,
    native: list[str] | None = None,
) -> Evaluation:
    """Evaluate every pending order of `asset` held at `venue` at `price`, that venue's price
    (observed at `price_at`). A price older than PROTECTIVE_MAX_PRICE_AGE_SECONDS (or none)
    fires nothing: the asset is reported stale."""
    clock = time.perf_counter()
    try:
        return _evaluate(
            venue=venue, asset=asset, price=price, price_at=price_at, source=source, door=door, native=native
        )
    finally:
        metrics.PROTECTIVE_EVALUATIONS.labels(door).inc()
        metrics.PROTECTIVE_LATENCY.labels(door).observe(time.perf_counter() - clock)


def _evaluate(*, venue, asset, price, price_at, source, door, native) -> Evaluation:
    asset = asset.strip().upper()
    result = Evaluation(asset=asset, price=price, venue=venue)
    if price is None or price_too_old(price_at):
        result.stale = True
        result.stale_entered = _asset_stale_mark(
            venue=venue, asset=asset, price=price, price_at=price_at, source=source, door=door
        )
        return result
    price = Decimal(price)
    params = {
        "venue": venue,
        "asset": asset,
        "price": price,
        "price_at": price_at,
        "source": source,
        "native": native if native is not None else native_sl_tp_venues(),
        "min_step": Decimal(str(settings.TRAILING_MIN_STEP_PCT)),
    }
    with transaction.atomic():
        *_, [(trailing_due,)] = _pipelined(
            Q.ADVISORY_LOCK, Q.FRESH_MARK if door == BEAT else Q.FRESH_LEAVE, Q.TRAILING_DUE, params=params
        )
        shared = {"price": price, "source": source, "venue": venue, "door": door}
        started = 0
        if trailing_due:
            [(result.trailing_moved, started, result.pushes)] = _rows(
                Q.TRAILING_RATCHET, {**params, **_events_params("order.trailing_started", shared)}
            )
        shared = {"from": Order.Status.PENDING_TRIGGER, "to": Order.Status.TRIGGERED, "price_at": price_at, **shared}
        fired = _rows(Q.TRIGGER, {**params, **_events_params("order.triggered", shared)})
        result.triggered = [row[0] for row in fired]
        if started or fired:
            outbox.kick_after_commit()
        if result.triggered:
            ids = list(result.triggered)
            transaction.on_commit(lambda: _enqueue_execution(ids))
            metrics.after_commit(lambda: _count_triggers(door, venue, len(ids)))
        if result.pushes:
            pushes = list(result.pushes)
            transaction.on_commit(lambda: _enqueue_pushes(pushes))
    return result


def _count_triggers(door: str, venue: str, n: int) -> None:
    metrics.PROTECTIVE_TRIGGERS.labels(door).inc(n)
    metrics.ORDERS.labels(Order.Status.TRIGGERED, venue).inc(n)


def _events_params(topic: str, shared: dict) -> dict:
    """Parameters of the ledger events a statement writes (see `protective_sql`): a block of
    event ids, the time, the payload part every event shares, the outbox handlers of `topic`."""
    return {
        "ulid_prefix": new_ulid_prefix(),
        "now": timezone.now(),
        "shared": json.dumps(shared, cls=DjangoJSONEncoder)[1:],  # the members and "}": SQL prepends its own
        "handlers": outbox.handlers_for(topic),
    }


def _enqueue_execution(order_ids: list[int]) -> None:
    from config.celery import enqueue
    from trading.protective.tasks import protective_execute_task

    enqueue(protective_execute_task, order_ids, swept_by="execution reconciliation")


def _enqueue_pushes(order_ids: list[int]) -> None:
    from config.celery import enqueue
    from trading.protective.tasks import trailing_stop_push_task

    for pk in order_ids:
        enqueue(trailing_stop_push_task, pk, swept_by="execution reconciliation")


def protective_execute(*, order_ids: list[int]) -> dict[int, str]:
    """Hand triggered orders to the executor: one `execute_order_task` each (the executor
    claims the order, writes its close command and calls the venue exactly once)."""
    from trading.tasks import execute_order_task

    out = {}
    for pk in order_ids:
        execute_order_task.delay(pk)
        out[pk] = "enqueued"
    return out


def trailing_stop_push(*, order_id: int) -> str:
    """Send a trailing stop's level (`venue_stop_price`) to a native-SL/TP venue with
    `update_sl`, through the executor's command path (command row first, then the call)."""
    from trading.services.execution import _send_command, venue_account

    def build(order: Order):
        if order.status != Order.Status.PENDING_TRIGGER or order.venue_stop_price is None or order.trade is None:
            return None
        return {
            "account": venue_account(order),
            "pair_id": order.trade.pair_id,
            "trade_index": order.trade.trade_index,
            "price": order.venue_stop_price,
            "delegated": order.provider != "paper" and bool(order.wallet_address),
        }

    from trading.models import ExecutionCommand

    return _send_command(order_id=order_id, action=ExecutionCommand.Action.UPDATE_SL, build=build)


# --- doors ----------------------------------------------------------------------------------------


def protective_on_tick(tick) -> None:
    """Tick listener (providers.prices): evaluate the ticked asset's orders at the tick's venue
    at once, and tally it for the `tick` heartbeat."""
    if not settings.PROTECTIVE_TICK_LISTENER:
        return
    started = time.perf_counter()
    result, error = None, ""
    try:
        result = protective_evaluate(
            venue=tick.venue,
            asset=tick.symbol,
            price=tick.price,
            price_at=tick.timestamp,
            source=tick.source,
            door=TICK,
        )
    except Exception as exc:
        error = f"{tick.venue}:{tick.symbol}: {type(exc).__name__}: {exc}"
        raise
    finally:
        _tick_heartbeat(
            asset=_label(tick.venue, tick.symbol.strip().upper()),
            result=result,
            ms=(time.perf_counter() - started) * 1000,
            error=error,
        )


def _label(venue: str, asset: str) -> str:
    """How an asset at a venue is named in heartbeats: `venue:asset`."""
    return f"{venue}:{asset}"


@dataclass
class _TickTally:
    """Tick evaluations of this process since its last `tick` heartbeat write."""

    runs: int = 0
    assets: set = field(default_factory=set)
    triggered: int = 0
    moved: int = 0
    slowest_ms: float = 0.0
    stale: set = field(default_factory=set)
    error: str = ""
    written_at: float | None = None  # time.monotonic() of the last write


_tick_tally = _TickTally()
_tick_tally_lock = threading.Lock()


def _tick_heartbeat(*, asset: str, result: Evaluation | None, ms: float, error: str) -> None:
    """Count one tick evaluation; write the `tick` heartbeat (one upsert) when none was written by
    this process for PROTECTIVE_TICK_HEARTBEAT_SECONDS, with what was counted since. So the
    heartbeat shows the engine alive whenever ticks are evaluated, for at most one small write
    per second per process. A failed write is logged, never raised into the tick."""
    global _tick_tally
    now = time.monotonic()
    with _tick_tally_lock:
        tally = _tick_tally
        tally.runs += 1
        tally.assets.add(asset)
        tally.slowest_ms = max(tally.slowest_ms, ms)
        if result is not None:
            tally.triggered += len(result.triggered)
            tally.moved += result.trailing_moved
            if result.stale:
                tally.stale.add(asset)
        if error:
            tally.error = error
        if tally.written_at is not None and now - tally.written_at < settings.PROTECTIVE_TICK_HEARTBEAT_SECONDS:
            return
        _tick_tally = _TickTally(written_at=now)
    params = {
        "name": TICK,
        "at": timezone.now(),
        "runs": tally.runs,
        "assets": len(tally.assets),
        "triggered": tally.triggered,
        "moved": tally.moved,
        "duration_ms": Decimal(str(round(tally.slowest_ms, 3))),
        "stale": json.dumps(sorted(tally.stale)),
        "error": tally.error[:2000],
    }
    try:
        with transaction.atomic():  # a savepoint when the tick came inside a caller's transaction
            _execute(Q.HEARTBEAT_ADD, params)
    except Exception:
        logger.warning("could not write the tick heartbeat", exc_info=True)


def _cached_ticks(held: list[tuple[str, str]]) -> dict:
    """Latest cached ticks of (venue, asset) (the Beat never calls a feed: a missing price is a
    stale asset)."""
    from providers.prices import price_cached

    out = {}
    for venue, asset in held:
        tick = price_cached(asset, venue=venue)
        if tick is not None:
            out[(venue, asset)] = tick
    return out


def protective_monitor_run() -> EngineHeartbeat:
    """Beat job: evaluate every (venue, asset) with pending orders against that venue's latest
    cached price (so a dropped tick is caught within a second), run the liquidation watch and
    stop coverage, and record the heartbeat."""
    started = time.perf_counter()
    pending = {(venue, asset): count for venue, asset, count in _rows(Q.PENDING_ASSETS, {})}
    position_assets = set(
        Position.objects.filter(status=Position.Status.OPEN).values_list("provider", "asset").distinct()
    )
    held = sorted(set(pending) | position_assets)
    ticks = _cached_ticks(held)
    native = native_sl_tp_venues()
    triggered = moved = 0
    stale: list[str] = []
    fresh: dict[tuple[str, str], Decimal] = {}
    errors = []
    for venue, asset in held:
        key = (venue, asset)
        tick = ticks.get(key)
        try:
            if key in pending:
                ev = protective_evaluate(
                    venue=venue,
                    asset=asset,
                    price=tick.price if tick else None,
                    price_at=tick.timestamp if tick else None,
                    source=tick.source if tick else "",
                    door=BEAT,
                    native=native,
                )
                triggered += len(ev.triggered)
                moved += ev.trailing_moved
                if ev.stale:
                    stale.append(_label(venue, asset))
                    continue
            elif tick is None or price_too_old(tick.timestamp):
                stale.append(_label(venue, asset))
                continue
            fresh[key] = tick.price
        except Exception as exc:  # one asset failing must not stop the others
            logger.exception("protective evaluation failed", extra={"asset": asset, "venue": venue})
            errors.append(f"{_label(venue, asset)}: {type(exc).__name__}: {exc}")
    near, missing = risk_watch_run(prices=fresh)
    duration = Decimal(str(round((time.perf_counter() - started) * 1000, 3)))
    return _heartbeat_record(
        name=BEAT,
        assets=len(held),
        orders=sum(pending.values()),
        triggered=triggered,
        moved=moved,
        duration_ms=duration,
        stale=stale,
        near=near,
        missing=missing,
        error="; ".join(errors)[:2000],
    )


def _heartbeat_record(*, name, assets, orders, triggered, moved, duration_ms, stale, near, missing, error):
    from django.db.models import F

    values = {
        "last_run_at": timezone.now(),
        "assets_evaluated": assets,
        "orders_evaluated": orders,
        "triggered": triggered,
        "trailing_moved": moved,
        "duration_ms": duration_ms,
        "stale_assets": stale,
        "near_liquidation": near,
        "stop_missing": missing,
        "last_error": error,
    }
    with transaction.atomic():
        beat, created = EngineHeartbeat.objects.select_for_update().get_or_create(name=name, defaults=values)
        if not created:
            EngineHeartbeat.objects.filter(pk=beat.pk).update(
                **values, runs=F("runs") + 1, total_triggered=F("total_triggered") + triggered
            )
        else:
            EngineHeartbeat.objects.filter(pk=beat.pk).update(runs=1, total_triggered=triggered)
        beat.refresh_from_db()
    return beat


# --- liquidation watch and stop coverage ----------------------------------------------------------


@transaction.atomic
def risk_watch_run(*, prices: dict[tuple[str, str], Decimal]) -> tuple[int, int]:
    """Flag positions entering "near liquidation" (at the given fresh prices, {(venue, asset):
    price}: a position is judged at its venue's price) and positions without a working stop for
    longer than STOP_COVERAGE_GRACE_SECONDS; one ledger event each, on entering the condition.
    Returns how many were flagged now."""
    held = sorted(prices)
    near = _rows(
        Q.NEAR_LIQUIDATION,
        {
            "venues": [venue for venue, _ in held],
            "assets": [asset for _, asset in held],
            "prices": [prices[key] for key in held],
            "pct": Decimal(str(settings.LIQUIDATION_WARN_PCT)),
        },
    )
    missing = _rows(Q.STOP_COVERAGE, {"grace": float(settings.STOP_COVERAGE_GRACE_SECONDS)})
    events = []
    for pk, price, liq, user_id, asset, side, provider in near:
        events.append(
            {
                "topic": "risk.near_liquidation",
                "aggregate_type": "position",
                "aggregate_id": pk,
                "correlation_id": f"position-{pk}",
                "payload": {
                    "position_id": pk,
                    "user_id": user_id,
                    "provider": provider,
                    "asset": asset,
                    "side": side,
                    "price": price,
                    "liquidation_price": liq,
                    "distance_pct": (abs(price - liq) / price * 100).quantize(Decimal("0.0001")),
                    "warn_pct": Decimal(str(settings.LIQUIDATION_WARN_PCT)) * 100,
                },
            }
        )
    for pk, since, user_id, asset, side, provider in missing:
        events.append(
            {
                "topic": "risk.stop_missing",
                "aggregate_type": "position",
                "aggregate_id": pk,
                "correlation_id": f"position-{pk}",
                "payload": {
                    "position_id": pk,
                    "user_id": user_id,
                    "provider": provider,
                    "asset": asset,
                    "side": side,
                    "uncovered_since": since,
                    "grace_seconds": settings.STOP_COVERAGE_GRACE_SECONDS,
                },
            }
        )
    event_record_many(events)
    return len(near), len(missing)
