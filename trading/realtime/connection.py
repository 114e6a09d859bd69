"""What both websocket endpoints share: authentication at connect, a bounded send queue
drained by one writer task (backpressure), per-connection rate limiting, the token-expiry
timer, and error/close handling.

Backpressure: every frame for the client goes through `SendQueue`. When it is full,
market data (price ticks, position marks) is dropped oldest-first and counted per kind;
ledger-derived messages (orders, trades, positions, deposits, `/stream` events) and
control replies are never dropped — if the queue is full of those, the client is too slow
and is closed with 4408 so it can resume from `/stream` with `lastEventId`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from config import metrics
from config.inputs import InputRejected, json_loads
from trading.realtime.publish import dumps, iso

logger = logging.getLogger("tradedesk.realtime")

# Close codes (documented in docs/websockets.md)
CLOSE_MESSAGE_TOO_BIG = 1009  # a client message over REALTIME_MAX_MESSAGE_SIZE
CLOSE_UNAUTHENTICATED = 4401  # no/invalid credentials, inactive user, or the token expired
CLOSE_TOO_SLOW = 4408  # send queue full of messages that must not be dropped
CLOSE_REPLAY_TOO_LARGE = 4413  # /stream resume asks for more events than the replay limit
CLOSE_RATE_LIMITED = 4429  # kept sending faster than the message rate limit

_CLOSE = "close"

_live: weakref.WeakSet = weakref.WeakSet()


def live_connections() -> list[RealtimeConsumer]:
    """The authenticated connections this process serves (for stats and tests)."""
    return list(_live)


class SendQueue:
    """A bounded FIFO of outgoing frames for one connection.

    `put_nowait` never blocks: a full queue first drops its oldest droppable entry; when
    there is none, a droppable newcomer is dropped instead and a non-droppable one is
    refused (`False`: the caller disconnects the client). `put` waits for room (replay)."""

    def __init__(self, maxsize: int):
        self.maxsize = max(2, maxsize)
        self._items: deque[list] = deque()  # [payload, droppable, kind, alive]
        self._droppable: deque[list] = deque()  # the droppable entries, oldest first
        self._size = 0
        # the writer parked in `get` waits on a bare future: a price tick wakes every
        # connection's writer, and an asyncio.Event costs twice the Python per wake-up
        self._waiter: asyncio.Future | None = None
        self._room = asyncio.Event()
        self._room.set()
        self.dropped: dict[str, int] = {}
        self.sent = 0

    def __len__(self) -> int:
        return self._size

    def _count_drop(self, kind: str) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        metrics.WS_DROPPED.labels(kind).inc()

    def _drop_oldest(self) -> bool:
        while self._droppable:
            entry = self._droppable.popleft()
            if entry[3]:
                entry[3] = False
                self._size -= 1
                self._count_drop(entry[2])
                return True
        return False

    def put_nowait(self, payload, *, droppable: bool = False, kind: str = "data", force: bool = False) -> bool:
        if self._size >= self.maxsize and not force and not self._drop_oldest():
            if droppable:
                self._count_drop(kind)
                return True
            return False
        entry = [payload, droppable, kind, True]
        self._items.append(entry)
        if droppable:
            self._droppable.append(entry)
        self._size += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self._size >= self.maxsize:
            self._room.clear()
        return True

    async def put(self, payload, *, kind: str = "data") -> None:
        """Enqueue a non-droppable frame, waiting for room (it still pushes market data out)."""
        while self._size >= self.maxsize and not self._drop_oldest():
            self._room.clear()
            await self._room.wait()
        self.put_nowait(payload, kind=kind)

    async def get(self) -> tuple:
        while True:
            while not self._items:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            entry = self._items.popleft()
            if entry[1] and self._droppable and self._droppable[0] is entry:
                self._droppable.popleft()
            if entry[3]:
                entry[3] = False
                self._size -= 1
                self._room.set()
                return entry[0], entry[2]

    def clear(self) -> None:
        for entry in self._items:
            entry[3] = False
        self._items.clear()
        self._droppable.clear()
        self._size = 0
        self._room.set()


class RateLimiter:
    """Token bucket: `rate` messages per second, bursts up to `rate`."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.tokens = self.rate
        self.at = time.monotonic()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RealtimeConsumer(AsyncWebsocketConsumer):
    """Base for `/ws` and `/stream`. Subclasses implement `handle(message: dict)` for client
    messages and `error_frame`/`control_frame` for their message shapes."""

    endpoint = ""

    # -- channels plumbing -------------------------------------------------------------------

    async def dispatch(self, message):
        # Channels closes stale DB connections (a thread hop) before every message; fanning a
        # price tick out to a thousand consumers must not queue behind one thread. Handlers
        # that touch the database go through database_sync_to_async, which does it itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.groups = []  # per instance: channels leaves these on disconnect
        self.closing = False
        self.user = None
        self.queue = SendQueue(settings.REALTIME_SEND_QUEUE_SIZE)
        self.limiter = RateLimiter(settings.REALTIME_RATE_LIMIT)
        self.strikes = 0
        self.reported_drops = 0
        self._tasks: list[asyncio.Task] = []
        self._timers: list[asyncio.TimerHandle] = []
        auth = self.scope.get("auth") or {}
        user = self.scope.get("user")
        subprotocol = auth.get("subprotocol")
        if auth.get("error") or user is None or not user.is_authenticated or not user.is_active:
            code = auth.get("error") or "unauthenticated"
            await self.accept(subprotocol)
            refusal = self.error_frame(code, _AUTH_MESSAGES.get(code, "Authentication required."))
            await self.send(text_data=dumps(refusal))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        await self.accept(subprotocol)
        _live.add(self)
        metrics.WS_CONNECTIONS.labels(self.endpoint).inc()
        loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self._writer()))
        expires_at = auth.get("expires_at")
        if expires_at is not None:
            delay = expires_at.timestamp() - time.time()
            self._timers.append(loop.call_later(max(0.0, delay), self._token_expired))
        if settings.REALTIME_STATS_INTERVAL > 0:
            self._tasks.append(asyncio.create_task(self._stats_loop(settings.REALTIME_STATS_INTERVAL)))
        logger.info("websocket connected", extra={"endpoint": self.endpoint, "user_id": user.pk})

    async def disconnect(self, code):
        if self in _live:
            _live.discard(self)
            metrics.WS_CONNECTIONS.labels(self.endpoint).dec()
        for timer in getattr(self, "_timers", []):
            timer.cancel()
        for task in getattr(self, "_tasks", []):
            task.cancel()

    async def realtime_stop(self, message):
        """Sent to ourselves when a closing client never took its close frame."""
        await self.disconnect(None)
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        raise StopConsumer()

    # -- client messages ---------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.user is None or self.closing:
            return
        if not self.limiter.allow():
            self.strikes += 1
            if self.strikes >= max(1, settings.REALTIME_RATE_LIMIT):
                logger.warning("websocket client flooding; disconnecting", extra=self._log_extra(CLOSE_RATE_LIMITED))
                self.begin_close(
                    CLOSE_RATE_LIMITED, self.error_frame("rate_limited", "Too many messages; connection closed.")
                )
            else:
                limit = settings.REALTIME_RATE_LIMIT
                self.push(self.error_frame("rate_limited", f"More than {limit} messages per second; message ignored."))
            return
        self.strikes = 0
        if text_data is None:
            self.push(self.error_frame("bad_message", "Send JSON text frames."))
            return
        limit = settings.REALTIME_MAX_MESSAGE_SIZE
        if len(text_data) * 4 > limit and len(text_data.encode()) > limit:
            logger.warning("websocket message too big; disconnecting", extra=self._log_extra(CLOSE_MESSAGE_TOO_BIG))
            self.begin_close(
                CLOSE_MESSAGE_TOO_BIG, self.error_frame("message_too_big", f"Messages are at most {limit} bytes.")
            )
            return
        try:
            message = json_loads(text_data)
        except InputRejected as exc:
            code = "bad_json" if exc.code == "JSON_TOO_DEEP" else "invalid_characters"
            self.push(self.error_frame(code, exc.message))
            return
        except ValueError:
            self.push(self.error_frame("bad_json", "The message is not valid JSON."))
            return
        if not isinstance(message, dict):
            self.push(self.error_frame("bad_message", "A message is a JSON object with a `type`."))
            return
        await self.handle(message)

    async def handle(self, message: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- frames to the client ------------------------------------------------------------------

    def error_frame(self, code: str, message: str, **extra) -> dict:
        raise NotImplementedError  # pragma: no cover

    def control_frame(self, type_: str, data: dict, **extra) -> dict:
        raise NotImplementedError  # pragma: no cover

    def stats(self) -> dict:
        return {
            "dropped": dict(self.queue.dropped),
            "queued": len(self.queue),
            "queueSize": self.queue.maxsize,
            "sent": self.queue.sent,
        }

    def push(self, frame: dict, *, droppable: bool = False, kind: str = "data") -> None:
        self.push_text(dumps(frame), droppable=droppable, kind=kind)

    def push_text(self, text: str, *, droppable: bool = False, kind: str = "data") -> None:
        if self.closing:
            return
        had_drops = bool(self.queue.dropped)
        if not self.queue.put_nowait(text, droppable=droppable, kind=kind):
            logger.warning("websocket client too slow; disconnecting", extra=self._log_extra(CLOSE_TOO_SLOW))
            self.begin_close(
                CLOSE_TOO_SLOW,
                self.error_frame("too_slow", "The client is not reading fast enough; resume with /stream."),
            )
        elif droppable and not had_drops and self.queue.dropped:
            logger.info("websocket client falling behind; dropping market data", extra=self._log_extra(None))

    def begin_close(self, code: int, final_frame: dict | None = None) -> None:
        """Stop sending data and close with `code` (after `final_frame`, if any). A client that
        does not take the close frame within REALTIME_CLOSE_GRACE seconds is let go anyway."""
        if self.closing:
            return
        self.closing = True
        self.queue.clear()
        if final_frame is not None:
            self.queue.put_nowait(dumps(final_frame), force=True)
        self.queue.put_nowait(code, kind=_CLOSE, force=True)
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(settings.REALTIME_CLOSE_GRACE, self._force_stop))

    def _force_stop(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.channel_layer.send(self.channel_name, {"type": "realtime.stop"})))

    def _token_expired(self) -> None:
        logger.info("websocket token expired; closing", extra=self._log_extra(CLOSE_UNAUTHENTICATED))
        self.begin_close(CLOSE_UNAUTHENTICATED, self.error_frame("token_expired", "The access token has expired."))

    async def _writer(self) -> None:
        send = self.base_send  # the server's ASGI send: the frame is the only per-client work
        try:
            while True:
                payload, kind = await self.queue.get()
                if kind == _CLOSE:
                    await self.close(code=payload)
                    return
                await send({"type": "websocket.send", "text": payload})
                self.queue.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away mid-send; the disconnect handler cleans up
            logger.debug("websocket writer stopped", exc_info=True)

    async def _stats_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            total = sum(self.queue.dropped.values())
            if total != self.reported_drops:
                self.reported_drops = total
                self.push(self.control_frame("stats", self.stats()))

    def _log_extra(self, code: int | None) -> dict:
        return {
            "endpoint": self.endpoint,
            "user_id": getattr(self.user, "pk", None),
            "close_code": code,
            "dropped": dict(self.queue.dropped),
            "queued": len(self.queue),
        }


_AUTH_MESSAGES = {
    "unauthenticated": "Authentication required: a bearer token or a session.",
    "token_invalid": "The access token is not valid.",
    "token_expired": "The access token has expired.",
    "user_inactive": "The user does not exist or is inactive.",
}


def now_iso() -> str:
    return iso()
