"""The only module speaking to Kraken: the websocket v2 ticker stream (the `websockets` package)
and the REST Ticker (httpx).

`KrakenStream.run(stop)` runs in the feeds process: connect, subscribe to `ticker` for the pairs
the sources price themselves, write each ticker item to the store as it arrives, and reconnect
after any loss with a back-off that doubles from KRAKEN_RECONNECT_MIN_SECONDS to
KRAKEN_RECONNECT_MAX_SECONDS with jitter; only a connection that stayed up KRAKEN_STABLE_SECONDS
and delivered prices starts the back-off again from the minimum, so a server that closes every
connection after a second is retried ever more slowly, never in a spin. No frame for
KRAKEN_IDLE_TIMEOUT_SECONDS (Kraken sends a heartbeat every second) counts as a lost connection.
Invalid frames are counted and skipped; the connection stays. While an operator has paused the
source the stream holds no connection.

`ticker_rest(symbols)` is the one-shot REST refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from websockets.asyncio.client import connect

from config.inputs import wire_json
from configuration.runtime import config_value
from providers.kraken import wire
from providers.reference import store
from providers.reference.config import KRAKEN, ReferenceConfigError, kraken_rest_url, kraken_ws_url
from providers.reference.store import Quote, now_ms

logger = logging.getLogger("tradedesk.reference.kraken")
WATCH_INTERVAL = 0.5  # seconds between the watchdog's looks (idle, pause, stop)


def _db(fn):
    """Run a sync ORM read off the event loop (one thread; stale connections closed first)."""

    def call():
        close_old_connections()
        return fn()

    return sync_to_async(call, thread_sensitive=True)()


def _kraken_paused() -> bool:
    from providers.models import ReferenceSource

    return ReferenceSource.objects.filter(name=KRAKEN, paused=True).exists()


def _stream_pairs() -> list[str]:
    from providers.reference.service import direct_pairs

    return direct_pairs()


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


class KrakenStream:
    name = KRAKEN

    def __init__(self, *, rng: random.Random | None = None):
        self.redis = None
        self.symbols: frozenset[str] = frozenset()
        self.attempts = 0  # consecutive unstable sessions: the back-off's exponent
        self.connections = 0  # sessions opened by this process
        self.last_frame = 0.0  # time.monotonic() of the last frame
        self._flushed_frame = 0.0
        self._had_prices = False
        self._rng = rng or random.Random()
        self._req_id = 0
        self._closing = ""  # why we closed the connection ourselves (stop, pause, idle)

    # --- the loop -------------------------------------------------------------------------------
    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: half the doubled delay plus up to as much jitter."""
        low, high = settings.KRAKEN_RECONNECT_MIN_SECONDS, settings.KRAKEN_RECONNECT_MAX_SECONDS
        delay = min(high, low * 2 ** max(0, attempts - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    async def run(self, stop: asyncio.Event) -> None:
        self.redis = store.async_client()
        try:
            await store.astate_update(self.redis, KRAKEN, fields={"connected": 0})
            await self._endpoint_wait(stop)
            retry = False
            while not stop.is_set():
                if await _db(_kraken_paused):
                    await store.astate_update(self.redis, KRAKEN, fields={"connected": 0})
                    await wait_or_stop(stop, 1.0)
                    retry, self.attempts = False, 0
                    continue
                if retry:
                    await store.astate_update(self.redis, KRAKEN, incr={"reconnects": 1})
                retry = True
                started, self._had_prices = time.monotonic(), False
                try:
                    await self._session(stop)
                except Exception as exc:  # every loss (refused, handshake, closed, bad config) reconnects
                    await self._error(_describe(exc))
                finally:
                    await store.astate_update(self.redis, KRAKEN, fields={"connected": 0, "disconnected_ms": now_ms()})
                if stop.is_set():
                    break
                stable = self._had_prices and time.monotonic() - started >= settings.KRAKEN_STABLE_SECONDS
                self.attempts = 0 if stable else self.attempts + 1
                await wait_or_stop(stop, self.backoff(self.attempts))
        finally:
            await self.redis.aclose()

    async def _endpoint_wait(self, stop: asyncio.Event) -> None:
        """Until the stream's address resolves. The demo's double writes it once it is up, and the
        feeds process may start first: that is waiting, not a failed connection (no error, no
        reconnect counted); the panel says what it waits for. An address lost later is an error
        like any other."""
        waiting = ""
        while not stop.is_set():
            try:
                kraken_ws_url()
            except ReferenceConfigError as exc:
                if not waiting:
                    waiting = str(exc)
                    logger.info("kraken waiting for its address", extra={"why": waiting[:200]})
                    await store.astate_update(self.redis, KRAKEN, fields={"waiting": waiting[:500]})
                await wait_or_stop(stop, 1.0)
                continue
            break
        if waiting:
            await store.astate_update(self.redis, KRAKEN, fields={"waiting": ""})

    async def _session(self, stop: asyncio.Event) -> None:
        url = kraken_ws_url()
        self.symbols = frozenset(await _db(_stream_pairs))
        async with connect(
            url,
            open_timeout=config_value("KRAKEN_TIMEOUT"),
            close_timeout=1,
            ping_interval=20,
            ping_timeout=20,
            max_size=2**20,
            user_agent_header="tradedesk",
        ) as ws:
            self.connections += 1
            self.last_frame = time.monotonic()
            stamp = now_ms()
            await store.astate_update(
                self.redis,
                KRAKEN,
                fields={
                    "connected": 1,
                    "connected_ms": stamp,
                    "last_frame_ms": stamp,
                    "subscribed": ",".join(sorted(self.symbols)),
                },
            )
            logger.info("kraken connected", extra={"url": url, "symbols": sorted(self.symbols)})
            self._req_id += 1
            await ws.send(
                wire.subscribe_message(
                    sorted(self.symbols), event_trigger=settings.KRAKEN_EVENT_TRIGGER, req_id=self._req_id
                )
            )
            self._closing = ""
            watchdog = asyncio.create_task(self._watch(ws, stop))
            try:
                async for raw in ws:
                    await self.on_frame(raw)
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            if not self._closing:
                await self._error(f"connection closed by the server ({ws.close_code} {ws.close_reason})".strip())

    async def _watch(self, ws, stop: asyncio.Event) -> None:
        """Close the connection on stop, on a pause, or when no frame came for too long; write the
        last frame's time to the store once per look (never per frame)."""
        looks = 0
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            looks += 1
            idle = time.monotonic() - self.last_frame
            if stop.is_set():
                self._closing = "stop"
                await ws.close()
                return
            if idle > settings.KRAKEN_IDLE_TIMEOUT_SECONDS:
                self._closing = "idle"
                await self._error(f"no frame for {idle:.1f} s")
                await ws.close()
                return
            if self.last_frame != self._flushed_frame:
                self._flushed_frame = self.last_frame
                await store.astate_update(self.redis, KRAKEN, fields={"last_frame_ms": now_ms() - int(idle * 1000)})
            if looks % 2 == 0 and await _db(_kraken_paused):
                logger.info("kraken paused: closing the stream")
                self._closing = "pause"
                await ws.close()
                return

    # --- frames ---------------------------------------------------------------------------------
    async def on_frame(self, raw: str | bytes) -> list[Quote]:
        """Handle one frame; returns the quotes it carried (already in the store)."""
        received = now_ms()
        self.last_frame = time.monotonic()
        try:
            message = wire.decode(raw)
        except wire.WireError as exc:
            await self._invalid(str(exc))
            return []
        channel = message.get("channel")
        if channel == "ticker":
            quotes, problems = wire.ticker_quotes(message, symbols=self.symbols, received_ms=received)
            if quotes:
                self._had_prices = True
                await store.aquotes_put(self.redis, quotes)
            if problems:
                await self._invalid("; ".join(problems))
            return quotes
        if channel == "status":
            data = message.get("data")
            system = data[0].get("system") if isinstance(data, list) and data and isinstance(data[0], dict) else None
            if system not in (None, "online"):
                await self._error(f"kraken system status: {system}")
            return []
        if channel == "heartbeat":
            return []
        method = message.get("method")
        if method == "subscribe" and message.get("success") is False:
            await self._error(f"subscribe refused: {message.get('error')} ({message.get('symbol')})")
        elif message.get("error") and method != "subscribe":
            await self._error(f"kraken error: {message.get('error')}")
        return []

    async def _invalid(self, why: str) -> None:
        logger.warning("kraken invalid message", extra={"why": why[:200]})
        await store.astate_update(self.redis, KRAKEN, fields=store.error_fields(why), incr={"invalid_messages": 1})

    async def _error(self, why: str) -> None:
        logger.warning("kraken stream error", extra={"why": why[:200], "attempts": self.attempts})
        await store.astate_update(self.redis, KRAKEN, fields=store.error_fields(why), incr={"errors": 1})


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


# --- REST ---------------------------------------------------------------------------------------
def ticker_rest(symbols: list[str]) -> tuple[list[Quote], dict[str, str]]:
    """One REST Ticker call per symbol: the quotes read, and the error of each symbol that failed."""
    quotes: list[Quote] = []
    errors: dict[str, str] = {}
    with httpx.Client(
        base_url=kraken_rest_url(), timeout=config_value("KRAKEN_TIMEOUT"), headers={"User-Agent": "tradedesk"}
    ) as client:
        for symbol in symbols:
            try:
                response = client.get("/0/public/Ticker", params={"pair": wire.rest_pair(symbol)})
                response.raise_for_status()
                quotes.append(wire.rest_ticker_quote(wire_json(response.content), symbol=symbol, received_ms=now_ms()))
            except httpx.TimeoutException:
                errors[symbol] = f"timeout after {config_value('KRAKEN_TIMEOUT'):g} s"
            except httpx.HTTPStatusError as exc:
                errors[symbol] = f"HTTP {exc.response.status_code}"
            except (httpx.HTTPError, ValueError) as exc:  # transport failures, bad JSON, WireError
                errors[symbol] = _describe(exc)
    return quotes, errors
