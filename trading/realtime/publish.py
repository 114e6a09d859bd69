"""Publishing to websocket clients: every send goes through `group_send_sync`.

- `publish_ledger_event(event)` is the outbox handler (registered as `realtime` in
  `TradingConfig.ready`): a committed event goes to the group of the user it is about
  (`payload["user_id"]`) and to the all-ledger group staff streams listen on.
- `publish_price_tick(tick)` is a price-service tick listener: one message to `prices.<PAIR>`.
- `publish_position_marks(user_id, positions)` / `publish_position_marks_many(marks)`: current
  price and unrealised PnL of users' open positions (the trading core's tick listener,
  `trading.services.marks.position_marks_on_tick`, calls the latter once per tick).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder

from providers.interface import PriceTick
from trading.realtime import groups

POSITION_MARK_FIELDS = ("pair", "side", "size", "entry_price", "current_price", "unrealized_pnl")


def dumps(obj) -> str:
    """JSON for clients: Decimals as strings, datetimes as ISO 8601 UTC."""
    return json.dumps(obj, cls=DjangoJSONEncoder, separators=(",", ":"))


def iso(moment: datetime | None = None) -> str:
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the one sending helper -----------------------------------------------------------------


class _PublisherLoop:
    """One long-lived event loop per process that sync code hands group sends to.

    `async_to_sync(layer.group_send)` called from plain sync code (a Celery task, the outbox
    dispatcher, a price-feed thread) builds a new event loop, a new thread and a new Redis
    connection pool for every call — about 13 ms per send measured here, against about 1 ms
    on a loop that keeps its connections. So sync callers submit to this loop instead and
    wait for the result; the channel layer keeps its pool for this loop. Started lazily and
    again after a fork (Celery prefork children)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=run, name="realtime-publisher", daemon=True).start()
                started.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_publisher = _PublisherLoop()


def group_send_sync(group: str, message: dict, *, timeout: float = 5.0) -> None:
    """Send `message` to a channel-layer group from sync code; raises if Redis fails, so the
    outbox retries the event. Call it after commit (the outbox handler runs after commit)."""
    group_send_many_sync([(group, message)], timeout=timeout)


def group_send_many_sync(sends: Iterable[tuple[str, dict]], *, timeout: float = 5.0) -> None:
    """`group_send_sync` for several (group, message) pairs at once: they go out concurrently on
    the publisher loop (one round trip's wait for all, not one each); raises the first failure."""
    group_send_steps_sync([list(sends)], timeout=timeout)


def group_send_steps_sync(steps: Iterable[list[tuple[str, dict]]], *, timeout: float = 5.0) -> None:
    """Several `group_send_many_sync` calls in one hand-off to the publisher loop: each step's
    sends go out concurrently, the steps one after another (in order: a group receives the
    messages of an earlier step first), each step within `timeout`; raises the first failure."""
    steps = [step for step in steps if step]
    if not steps:
        return
    layer = get_channel_layer()
    loop = _publisher.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # pragma: no cover - a programming error, would deadlock
        raise RuntimeError("group_send_sync called from the publisher loop; await layer.group_send instead")

    async def send_all() -> None:
        for sends in steps:
            await asyncio.wait_for(
                asyncio.gather(*(layer.group_send(group, message) for group, message in sends)), timeout
            )

    asyncio.run_coroutine_threadsafe(send_all(), loop).result(timeout * len(steps) + 1)


# --- ledger events (outbox handler) -----------------------------------------------------------


def event_user_id(payload: dict) -> int | None:
    value = (payload or {}).get("user_id")
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def envelope(event) -> groups.EventEnvelope:
    return {
        "eventId": event.id,
        "timestamp": iso(event.occurred_at),
        "topic": event.topic,
        "correlationId": event.correlation_id,
        "causationId": event.causation_id,
        "payload": json.loads(dumps(event.payload)),
        "version": event.version,
    }


def ledger_message(event) -> groups.LedgerEventMessage:
    return {
        "type": "ledger.event",
        "event": envelope(event),
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "user_id": event_user_id(event.payload),
    }


def publish_ledger_event(event) -> None:
    """Outbox handler: publish one committed event to its user's group and the staff group."""
    publish_ledger_events([event])


def publish_ledger_events(events) -> None:
    """`publish_ledger_event` for many (the outbox handler's batch): one hand-off to the
    publisher loop for all, the events in order."""
    steps = []
    for event in events:
        message = ledger_message(event)
        sends = [(groups.LEDGER_ALL, message)]
        if message["user_id"] is not None:
            sends.insert(0, (groups.user_group(message["user_id"]), message))
        steps.append(sends)
    group_send_steps_sync(steps)


# --- prices and marks -------------------------------------------------------------------------


def price_update_frame(tick: PriceTick) -> str:
    pair = groups.normalise_pair(tick.symbol)
    return dumps(
        {
            "type": "price_update",
            "channel": "prices",
            "data": {
                "pair": pair,
                "price": tick.price,
                "bid": tick.bid,
                "ask": tick.ask,
                "source": tick.source,
                "venue": tick.venue,
                "timestamp": iso(tick.timestamp),
            },
            "timestamp": iso(),
        }
    )


def publish_price_tick(tick: PriceTick) -> None:
    """Tick listener (registered `routed_only`: the price of the venue the pair routes to): fan
    one tick out to the subscribers of its pair (market data — a slow client may have older
    ticks dropped, see docs/websockets.md)."""
    pair = groups.normalise_pair(tick.symbol)
    if pair is None:
        raise ValueError(f"not a pair name: {tick.symbol!r}")
    message: groups.PriceTickMessage = {"type": "price.tick", "pair": pair, "text": price_update_frame(tick)}
    group_send_sync(groups.price_group(pair), message)


def position_marks_message(user_id: int, positions: Iterable[dict]) -> groups.PositionMarksMessage | None:
    """The channel-layer message carrying a user's position marks as finished `position_update`
    frames (serialised here once, not by every connection of the user); None when empty."""
    stamp = iso()
    frames = []
    for position in positions:
        missing = [f for f in POSITION_MARK_FIELDS if f not in position]
        if missing:
            raise ValueError(f"position mark is missing {', '.join(missing)}")
        pair = groups.normalise_pair(position["pair"]) or position["pair"]
        data = {**position, "pair": pair, "reason": "mark"}
        frames.append(dumps({"type": "position_update", "channel": "positions", "data": data, "timestamp": stamp}))
    if not frames:
        return None
    return {"type": "position.marks", "user_id": int(user_id), "frames": frames}


def publish_position_marks(user_id: int, positions: Iterable[dict]) -> None:
    """Push the current mark of a user's open positions to their `/ws` `positions` channel.

    Each position is a dict with at least:
      pair (str, "BTC-USD"), side ("long" | "short"), size (Decimal, base units),
      entry_price (Decimal), current_price (Decimal), unrealized_pnl (Decimal, USD)
    and optionally: position_id, provider, collateral, leverage, liquidation_price,
    margin_ratio, updated_at (datetime) — any further keys are passed through. Decimals and
    datetimes reach clients as strings. Clients receive one `position_update` per position
    with `data.reason == "mark"`; marks are market data and may be dropped for a slow client."""
    publish_position_marks_many({user_id: positions})


def publish_position_marks_many(marks: dict[int, Iterable[dict]]) -> None:
    """`publish_position_marks` for several users at once ({user_id: positions}), sent
    concurrently."""
    sends = []
    for user_id, positions in marks.items():
        message = position_marks_message(user_id, positions)
        if message is not None:
            sends.append((groups.user_group(user_id), message))
    group_send_many_sync(sends)
