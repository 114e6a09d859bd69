"""The solver relay's websocket (the only module here that speaks it): JSON-RPC over one
connection, `Authorization: Bearer <key>` on the handshake.

- On every connection it subscribes to `quote` and `quote_status` and routes events by their
  subscription id. An event is `{"method":"event","params":{"subscription","data","metadata"}}`;
  the documented flat shape (`params` holding the fields) is accepted too.
- `respond(quote_response)` sends `quote_response` and waits for the relay's answer (its
  JSON-RPC result or error) up to a timeout: `RelayTimeout` then, the outcome is unknown.
- Reconnects after any loss with a back-off doubling from NEAR_SOLVER_RECONNECT_MIN_SECONDS to
  _MAX_SECONDS (half of it jitter); only a connection that stayed up NEAR_SOLVER_STABLE_SECONDS
  starts again from the minimum, and at most NEAR_SOLVER_STORM_MAX connections are opened per
  minute: a relay that drops every connection is retried ever more slowly, never in a spin.
- A frame that is not JSON (or not an object) is counted and logged; the connection stays.

Handlers are async callables; each event runs as a task of its own (a slow quote never holds up
the next)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings
from websockets.asyncio.client import connect

from config.inputs import wire_json

logger = logging.getLogger("tradedesk.near_intents.relay")
TOPICS = ("quote", "quote_status")


class RelayError(Exception):
    """The relay answered a request with a JSON-RPC error."""

    def __init__(self, error):
        message = error.get("message") if isinstance(error, dict) else str(error)
        super().__init__(str(message)[:300])
        self.error = error


class RelayTimeout(Exception):
    """No answer in time: the outcome is unknown."""


class RelayNotConnected(Exception):
    """Nothing was sent: there is no connection."""


@dataclass
class RelayEvent:
    topic: str  # quote | quote_status
    data: dict
    metadata: dict = field(default_factory=dict)
    received: float = 0.0  # time.perf_counter() when its frame arrived


def event_parse(message: dict, subscriptions: dict[str, str]) -> RelayEvent | None:
    """The event a relay message carries, or None (an answer, an unknown subscription). Accepts
    `method: "event"` with `params.data` and falls back to the flat `params`."""
    if message.get("method") not in ("event", "subscribe") or not isinstance(message.get("params"), dict):
        return None
    params = message["params"]
    topic = subscriptions.get(str(params.get("subscription", "")))
    data = params.get("data")
    if not isinstance(data, dict):  # the flat shape
        data = {k: v for k, v in params.items() if k not in ("subscription", "metadata")}
    if topic is None:  # route by content when the subscription is not ours (or missing)
        topic = "quote" if "quote_id" in data else "quote_status" if "quote_hash" in data else None
    if topic is None:
        return None
    metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
    return RelayEvent(topic=topic, data=data, metadata=metadata)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


Handler = Callable[[RelayEvent], Awaitable[None]]


class RelayStream:
    def __init__(
        self,
        url: str,
        *,
        api_key: str = "",
        on_event: Handler,
        rng: random.Random | None = None,
        url_source: Callable[[], str] | None = None,
    ):
        """`url_source`, when given, is asked for the relay's address before each connection (the
        demo's relay double gets a new port each time it starts); when it fails, that attempt fails
        as a refused connection would (backoff, then asked again)."""
        self.url, self.api_key, self.on_event = url, api_key, on_event
        self.url_source = url_source
        self.ws = None
        self.connected = False
        self.subscriptions: dict[str, str] = {}  # subscription id -> topic
        self.pending: dict[str, asyncio.Future] = {}
        self.attempts = 0
        self.connections = 0
        self.reconnects = 0
        self.invalid_messages = 0
        self.errors = 0
        self.messages = 0
        self.last_message_at = 0.0  # time.time()
        self.connected_at = 0.0
        self.last_error = ""
        self._opened: deque[float] = deque()
        self._ids = itertools.count(1)
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task] = set()

    # --- the loop ---------------------------------------------------------------------------------
    def backoff(self, attempts: int) -> float:
        low, high = settings.NEAR_SOLVER_RECONNECT_MIN_SECONDS, settings.NEAR_SOLVER_RECONNECT_MAX_SECONDS
        delay = min(high, low * 2 ** max(0, attempts - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def storm_wait(self, now: float) -> float:
        """Seconds to wait before the next connection so at most NEAR_SOLVER_STORM_MAX open per minute."""
        while self._opened and now - self._opened[0] > 60:
            self._opened.popleft()
        if len(self._opened) < settings.NEAR_SOLVER_STORM_MAX:
            return 0.0
        return 60 - (now - self._opened[0])

    async def run(self, stop: asyncio.Event, *, may_connect: Callable[[], Awaitable[bool]] | None = None) -> None:
        retry = False
        while not stop.is_set():
            if may_connect is not None and not await may_connect():
                retry, self.attempts = False, 0
                await wait_or_stop(stop, 1.0)
                continue
            wait = self.storm_wait(time.monotonic())
            if wait > 0:
                logger.warning(
                    "relay reconnect storm: waiting",
                    extra={"venue": "near_intents", "event": "reconnect_storm", "wait_s": wait},
                )
                await wait_or_stop(stop, wait)
                if stop.is_set():
                    break
            if retry:
                self.reconnects += 1
            retry = True
            started = time.monotonic()
            self._opened.append(started)
            try:
                if self.url_source is not None:
                    self.url = self.url_source()
                await self._session(stop, may_connect)
            except Exception as exc:  # refused, handshake, closed: reconnect
                self._error(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                self.connected, self.ws = False, None
                for future in self.pending.values():
                    if not future.done():
                        future.set_exception(RelayTimeout("the connection closed before the answer"))
                self.pending.clear()
            if stop.is_set():
                break
            stable = time.monotonic() - started >= settings.NEAR_SOLVER_STABLE_SECONDS
            self.attempts = 0 if stable else self.attempts + 1
            await wait_or_stop(stop, self.backoff(self.attempts))
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _session(self, stop: asyncio.Event, may_connect) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        async with connect(
            self.url,
            additional_headers=headers,
            open_timeout=10,
            close_timeout=1,
            ping_interval=20,
            ping_timeout=20,
            max_size=2**22,
            user_agent_header="tradedesk",
            # no permessage-deflate: the frames are small JSON, and compressing each one cost
            # CPU on the hot path (a quote in, its response out) at both ends
            compression=None,
        ) as ws:
            self.ws, self.connections = ws, self.connections + 1
            self.subscriptions = {}
            reader = asyncio.create_task(self._read(ws))
            try:
                for topic in TOPICS:
                    sub = await self.request("subscribe", [topic], timeout=10)
                    self.subscriptions[str(sub)] = topic
                self.connected, self.connected_at = True, time.time()
                logger.info(
                    "relay connected", extra={"venue": "near_intents", "event": "relay_connected", "url": self.url}
                )
                while not reader.done():
                    await asyncio.wait({reader}, timeout=1.0)
                    if stop.is_set() or (may_connect is not None and not await may_connect()):
                        await ws.close()
                        break
                if reader.done() and reader.exception() is None and not stop.is_set():
                    self._error(f"connection closed by the relay ({ws.close_code} {ws.close_reason or ''})".strip())
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _read(self, ws) -> None:
        with contextlib.suppress(Exception):  # a closed connection ends the read; the loop reconnects
            async for raw in ws:
                self.on_frame(raw)

    def on_frame(self, raw: str | bytes) -> None:
        received = time.perf_counter()
        self.messages += 1
        self.last_message_at = time.time()
        try:
            message = wire_json(raw)
        except ValueError:
            self._invalid(f"not JSON: {str(raw)[:80]!r}")
            return
        if not isinstance(message, dict):
            self._invalid("not a JSON object")
            return
        rid = message.get("id")
        if rid is not None and ("result" in message or "error" in message):
            future = self.pending.pop(str(rid), None)
            if future is not None and not future.done():
                if message.get("error") is not None:
                    future.set_exception(RelayError(message["error"]))
                else:
                    future.set_result(message.get("result"))
            return
        if rid is None and message.get("error") is not None:
            self._error(f"relay error: {json.dumps(message['error'])[:200]}")
            return
        event = event_parse(message, self.subscriptions)
        if event is None:
            self._invalid("unexpected message")
            return
        event.received = received
        task = asyncio.get_running_loop().create_task(self.on_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request(self, method: str, params, *, timeout: float, on_sent: Callable[[], None] | None = None):
        """Send one JSON-RPC request and wait for its answer: RelayError, RelayTimeout (unknown
        outcome: it may have arrived), RelayNotConnected (nothing sent). `on_sent` is called
        once the frame is written."""
        ws = self.ws
        if ws is None:
            raise RelayNotConnected("not connected to the relay")
        rid = str(next(self._ids))
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        try:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        except Exception as exc:
            self.pending.pop(rid, None)
            raise RelayTimeout(f"send failed: {type(exc).__name__}") from None
        if on_sent is not None:
            on_sent()
        try:
            return await asyncio.wait_for(future, timeout=timeout)
        except TimeoutError:
            raise RelayTimeout(f"no answer to {method} in {timeout} s") from None
        finally:
            self.pending.pop(rid, None)

    async def respond(self, quote_response: dict, *, timeout: float, on_sent: Callable[[], None] | None = None):
        return await self.request("quote_response", [quote_response], timeout=timeout, on_sent=on_sent)

    # --- counters ---------------------------------------------------------------------------------
    def _invalid(self, why: str) -> None:
        self.invalid_messages += 1
        logger.warning(
            "relay invalid message", extra={"venue": "near_intents", "event": "invalid_message", "why": why[:200]}
        )

    def _error(self, why: str) -> None:
        self.errors += 1
        self.last_error = why
        logger.warning(
            "relay connection lost",
            extra={"venue": "near_intents", "event": "relay_error", "why": why, "attempts": self.attempts},
        )

    def state(self) -> dict:
        return {
            "connected": self.connected,
            "connected_at": self.connected_at or None,
            "connections": self.connections,
            "reconnects": self.reconnects,
            "invalid_messages": self.invalid_messages,
            "errors": self.errors,
            "messages": self.messages,
            "last_message_at": self.last_message_at or None,
            "last_error": self.last_error,
            "in_flight": len(self.pending),
        }
