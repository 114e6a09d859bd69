"""A loopback double of Kraken: the websocket v2 ticker channel and the REST Ticker, speaking
Kraken's wire formats (see `wire.py`), so the real client code runs against it in tests and in
`make run`'s demo.

    kraken = KrakenSandbox({"BTC/EUR": ("60000.1", "60000.3")}).start()
    kraken.ws_url, kraken.rest_url
    kraken.set_price("BTC/EUR", "60010", "60012")   # pushed to subscribers as an update

Scripting: `disconnect()` (abort every connection), `set_down(True)` (abort and refuse handshakes
with 503 until `set_down(False)`), `storm(every=1.0)` (close each connection that long after it
opens: a reconnect storm), `send_raw("{not json")` (invalid JSON to every subscriber),
`silence("BTC/EUR")` (no more updates for a symbol while heartbeats go on), `rest_fail(...)`.
Counters: `connections_total`, `subscribe_requests`, `rest_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from providers.kraken.wire import rest_pair
from providers.reference.sandbox import HttpDouble, JsonHandler

FIAT = {"EUR", "USD", "GBP", "JPY", "CAD", "CHF", "AUD"}


def _stamp(at: float | None = None) -> str:
    return datetime.fromtimestamp(at or time.time(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rest_key(symbol: str) -> str:
    """Kraken's internal result key: XXBTZEUR for the old X/Z-named assets, else the altname."""
    base, quote = rest_pair(symbol)[:-3], rest_pair(symbol)[-3:]
    if base in ("XBT", "ETH", "LTC", "XRP", "XLM", "ETC", "XMR", "ZEC", "REP", "MLN") and quote in FIAT:
        return f"X{base}Z{quote}"
    return rest_pair(symbol)


class _RestHandler(JsonHandler):
    def do_GET(self):
        path, params = self.query()
        double: KrakenSandbox = self.double
        double.rest_requests.append({"path": path, "params": params})
        if path != "/0/public/Ticker":
            self.reply(404, {"error": ["EGeneral:Unknown method"]})
            return
        failure = double._rest_failure()
        if failure is not None:
            status, errors = failure
            if status == 200:
                self.reply(200, {"error": errors})
            else:
                self.reply(status, raw=b'{"error":["EService:Unavailable"]}')
            return
        symbol = {rest_pair(s): s for s in double.book}.get(params.get("pair", "").upper())
        if symbol is None:
            self.reply(200, {"error": ["EQuery:Unknown asset pair"]})
            return
        bid, ask, last = (str(v) for v in double.book[symbol])
        entry = {
            "a": [ask, "1", "1.000"],
            "b": [bid, "1", "1.000"],
            "c": [last, "0.01000000"],
            "v": ["100.0", "250.0"],
            "p": [last, last],
            "t": [1000, 2500],
            "l": [bid, bid],
            "h": [ask, ask],
            "o": last,
        }
        self.reply(200, {"error": [], "result": {rest_key(symbol): entry}})


class KrakenSandbox:
    SCRIPT_ACTIONS = frozenset({"set_price", "disconnect", "set_down", "storm", "send_raw", "silence", "rest_fail"})

    def __init__(
        self, prices: dict[str, tuple] | None = None, *, host: str = "127.0.0.1", port: int = 0, heartbeat: float = 1.0
    ):
        self.book: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        for symbol, values in (prices or {}).items():
            self._book_set(symbol, *values)
        self.host, self._port, self.heartbeat = host, port, heartbeat
        self.connections_total = 0
        self.subscribe_requests: list[dict] = []
        self.rest_requests: list[dict] = []
        self.silenced: set[str] = set()
        self.down = False
        self.storm_every: float | None = None
        self._rest_failures: list[tuple[int, list]] = []
        self._clients: set = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._rest = HttpDouble(_RestHandler, double=self, host=host, name="kraken-sandbox-rest")
        self.ws_url = ""
        self.rest_url = self._rest.url

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> KrakenSandbox:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="kraken-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("kraken sandbox did not start")
        self._rest.start()
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)
        self._rest.stop()

    async def _serve(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handler, self.host, self._port, process_request=self._process_request) as server:
            port = server.sockets[0].getsockname()[1]
            self.ws_url = f"ws://{self.host}:{port}/v2"
            beat = asyncio.create_task(self._heartbeats())
            self._ready.set()
            await self._stopped.wait()
            beat.cancel()
            for ws in list(self._clients):
                ws.transport.abort()

    def _call(self, fn, *args):
        """Run `fn(*args)` (a coroutine function) on the double's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(timeout=10)

    # --- websocket ------------------------------------------------------------------------------
    def _process_request(self, connection, request):
        if self.down:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
        return None

    async def _handler(self, ws) -> None:
        ws.symbols = set()
        self._clients.add(ws)
        self.connections_total += 1
        storm = self._loop.call_later(self.storm_every, ws.transport.abort) if self.storm_every else None
        try:
            await ws.send(
                json.dumps(
                    {
                        "channel": "status",
                        "type": "update",
                        "data": [{"version": "2.0.10", "system": "online", "api_version": "v2", "connection_id": 1}],
                    }
                )
            )
            async for raw in ws:
                await self._request(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)
            if storm is not None:
                storm.cancel()

    async def _request(self, ws, raw) -> None:
        now = _stamp()
        try:
            message = json.loads(raw)
        except ValueError:
            await ws.send(json.dumps({"error": "Malformed request", "success": False, "time_in": now, "time_out": now}))
            return
        method, req_id = message.get("method"), message.get("req_id")
        if method == "ping":
            await ws.send(json.dumps({"method": "pong", "req_id": req_id, "time_in": now, "time_out": _stamp()}))
            return
        if method != "subscribe":
            await ws.send(json.dumps({"error": f"Unsupported method {method}", "method": method, "success": False}))
            return
        self.subscribe_requests.append(message)
        params = message.get("params") or {}
        for symbol in params.get("symbol") or []:
            if params.get("channel") != "ticker" or symbol not in self.book:
                ack = {
                    "error": f"Currency pair not supported {symbol}",
                    "method": "subscribe",
                    "req_id": req_id,
                    "success": False,
                    "symbol": symbol,
                    "time_in": now,
                    "time_out": _stamp(),
                }
                await ws.send(json.dumps(ack))
                continue
            result = {
                "channel": "ticker",
                "event_trigger": params.get("event_trigger", "trades"),
                "snapshot": params.get("snapshot", True),
                "symbol": symbol,
            }
            ack = {"method": "subscribe", "result": result, "success": True, "time_in": now, "time_out": _stamp()}
            await ws.send(json.dumps({**ack, "req_id": req_id}))
            ws.symbols.add(symbol)
            if params.get("snapshot", True):
                await ws.send(self._ticker_frame(symbol, "snapshot"))

    def _ticker_frame(self, symbol: str, kind: str, *, at: float | None = None) -> str:
        bid, ask, last = self.book[symbol]
        item = {
            "symbol": symbol,
            "bid": float(bid),
            "bid_qty": 1.5,
            "ask": float(ask),
            "ask_qty": 2.0,
            "last": float(last),
            "volume": 1234.5,
            "vwap": float(last),
            "low": float(bid),
            "high": float(ask),
            "change": 0.0,
            "change_pct": 0.0,
            "timestamp": _stamp(at),
        }
        return json.dumps({"channel": "ticker", "type": kind, "data": [item]})

    async def _heartbeats(self) -> None:
        frame = json.dumps({"channel": "heartbeat"})
        while True:
            await asyncio.sleep(self.heartbeat)
            for ws in list(self._clients):
                if ws.symbols:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(frame)

    async def _broadcast(self, symbol: str | None, frame: str) -> int:
        sent = 0
        for ws in list(self._clients):
            if (symbol is None and ws.symbols) or symbol in ws.symbols:
                try:
                    await ws.send(frame)
                    sent += 1
                except ConnectionClosed:
                    pass
        return sent

    # --- scripting ------------------------------------------------------------------------------
    def _book_set(self, symbol: str, bid, ask=None, last=None) -> None:
        bid = Decimal(str(bid))
        ask = Decimal(str(ask)) if ask is not None else bid
        self.book[symbol] = (bid, ask, Decimal(str(last)) if last is not None else (bid + ask) / 2)

    def set_price(self, symbol: str, bid, ask=None, last=None, push: bool = True, at: float | None = None) -> int:
        """Set a symbol's top of book; push an update to its subscribers (unless silenced)."""
        self._book_set(symbol, bid, ask, last)
        if not push or symbol in self.silenced or self._loop is None:
            return 0
        return self._call(self._broadcast, symbol, self._ticker_frame(symbol, "update", at=at))

    def disconnect(self) -> int:
        """Drop every live connection at once (the client sees an abnormal close)."""

        async def abort():
            clients = list(self._clients)
            for ws in clients:
                ws.transport.abort()
            return len(clients)

        return self._call(abort)

    def set_down(self, down: bool = True) -> None:
        """While down: every connection dropped and every handshake refused with 503."""
        self.down = bool(down)
        if self.down:
            self.disconnect()

    def storm(self, every: float | None = 1.0) -> None:
        """Close each new connection `every` seconds after it opens (None: stop)."""
        self.storm_every = every

    def send_raw(self, text: str) -> int:
        """Send `text` as it is (invalid JSON, say) to every subscriber."""
        return self._call(self._broadcast, None, text)

    def silence(self, symbol: str, silent: bool = True) -> None:
        """No more updates for `symbol` (heartbeats and other symbols go on)."""
        (self.silenced.add if silent else self.silenced.discard)(symbol)

    def rest_fail(self, status: int = 200, errors: list | None = None, times: int = 1) -> None:
        """The next `times` REST calls answer `status` (200 with Kraken's `errors` array)."""
        self._rest_failures.extend([(status, errors or ["EService:Unavailable"])] * times)

    def _rest_failure(self) -> tuple[int, list] | None:
        return self._rest_failures.pop(0) if self._rest_failures else None

    def stream(self, symbol: str, *, rate: float, seconds: float, step: Decimal = Decimal("0.1")) -> int:
        """Push `rate` updates a second for `seconds` (the price ticks up and down by `step`);
        returns the number sent to each subscriber. Blocks until done."""

        async def run():
            bid, ask, _ = self.book[symbol]
            interval, count = 1 / rate, int(rate * seconds)
            start = time.perf_counter()
            for i in range(count):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                offset = step * (i % 2)
                self.book[symbol] = (bid + offset, ask + offset, bid + offset)
                await self._broadcast(symbol, self._ticker_frame(symbol, "update"))
            return count

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=seconds * 3 + 30)

    @property
    def connections_open(self) -> int:
        return len(self._clients)
