"""Price-tick fan-out to websocket clients, beside the raw channel layer.

Starts the web process (uvicorn serving `config.asgi:application`) as a subprocess, connects
BENCH_WS_CLIENTS (default 1,000) websocket clients subscribed to one pair, and publishes
ticks with `publish_price_tick` (the function the price service calls). Prints
- delivery latency p50/p99 from the publish call to each client's receipt, at a low rate;
- the highest tick rate (of a doubling ladder) sustained with no client falling behind
  (every client got every tick and p99 latency stayed under BENCH_WS_LAG_MS);
and the same two figures for the baseline: the same fan-out through the raw channel layer
(1,000 channel-layer receivers in a group, no consumer, no websocket), published through the
same `group_send_sync`. Clients and receivers run in this process, so both figures carry the
same harness cost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "1000"))
LATENCY_TICKS = int(os.environ.get("BENCH_WS_LATENCY_TICKS", "40"))
LADDER = [int(r) for r in os.environ.get("BENCH_WS_RATES", "10,20,40,80,160,320").split(",")]
WINDOW = float(os.environ.get("BENCH_WS_WINDOW", "3"))
LAG_MS = float(os.environ.get("BENCH_WS_LAG_MS", "250"))
PAIR = "BTC-USD"
ROOT = Path(__file__).resolve().parent.parent


def _setup() -> tuple[dict, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    env["CHANNELS_PREFIX"] = "td-bench-asgi"  # keep off the channels of a running deployment
    env["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    from bench._db import bench_database

    project_db = bench_database()
    from django.conf import settings

    # the server uses the bench database; the embedded services (if any) were started by this
    # process: hand them to the server, with the keys this process signs the client's token with
    # and the channel prefix it publishes on (Django may have been set up by an earlier
    # benchmark of the same run, before the defaults above)
    env["DATABASE_URL"] = _db_url(settings.DATABASES["default"])
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SECRET_KEY"] = settings.SECRET_KEY
    env["JWT_SIGNING_KEY"] = settings.JWT_SIGNING_KEY
    env["CHANNELS_PREFIX"] = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return env, project_db


def _db_url(db: dict) -> str:
    host = db.get("HOST") or ""
    if host.startswith("/"):
        return f"postgres://{db.get('USER') or 'postgres'}@/{db['NAME']}?host={host}"
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
            # as in the Procfile: websockets' sans-I/O protocol (a third less CPU per frame than
            # uvicorn's legacy `websockets` one here), no per-connection compression of each frame
            "--ws",
            "websockets-sansio",
            "--ws-per-message-deflate",
            "false",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the web process exited") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the web process did not start")


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a process so far; this process when pid is None."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Sink:
    """Receipt times per tick sequence number, from every client."""

    def __init__(self, clients: int):
        self.clients = clients
        self.sent: dict[int, float] = {}
        self.latencies: dict[int, list[float]] = {}

    def got(self, seq: int, at: float) -> None:
        self.latencies.setdefault(seq, []).append(at - self.sent.get(seq, at))

    def window(self, seqs: range) -> tuple[list[float], bool]:
        samples, complete = [], True
        for seq in seqs:
            got = self.latencies.get(seq, [])
            complete &= len(got) == self.clients
            samples.extend(got)
        return samples, complete


class Publisher:
    """Publishes ticks at a paced rate from worker threads (sync code, like a feed)."""

    def __init__(self, publish_one):
        self.publish_one = publish_one
        self.pool = ThreadPoolExecutor(max_workers=8)

    def run(self, sink: Sink, first_seq: int, count: int, rate: float) -> float:
        start = time.perf_counter()
        futures = []
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            seq = first_seq + i
            sink.sent[seq] = time.perf_counter()
            futures.append(self.pool.submit(self.publish_one, seq))
        for f in futures:
            f.result()
        return count / (time.perf_counter() - start)


async def _drive(sink: Sink, publisher: Publisher, label: str, server_pid: int | None = None) -> dict:
    """Latency at a low rate, then the rate ladder. Returns the figures."""
    loop = asyncio.get_running_loop()
    seq = 1
    # warm up (first-message costs: connection pools, lazy imports), not measured
    await loop.run_in_executor(None, publisher.run, sink, seq, 3, 4.0)
    await _settle(sink, range(seq, seq + 3))
    seq += 3
    # latency (and the CPU each tick costs the fan-out side and this harness)
    cpu_fan, cpu_self = _cpu_seconds(server_pid), _cpu_seconds(None)
    await loop.run_in_executor(None, publisher.run, sink, seq, LATENCY_TICKS, 4.0)
    await _settle(sink, range(seq, seq + LATENCY_TICKS), timeout=30)
    cpu_fan, cpu_self = _cpu_seconds(server_pid) - cpu_fan, _cpu_seconds(None) - cpu_self
    samples, complete = sink.window(range(seq, seq + LATENCY_TICKS))
    figures = {
        "server_cpu_ms": (cpu_fan * 1000 / LATENCY_TICKS) if server_pid else None,
        "harness_cpu_ms": cpu_self * 1000 / LATENCY_TICKS,
        "p50_ms": _pct(samples, 0.50) * 1000,
        "p99_ms": _pct(samples, 0.99) * 1000,
        "complete": complete,
        "sustained": 0,
        "ladder": [],
    }
    seq += LATENCY_TICKS
    for rate in LADDER:
        count = max(1, int(rate * WINDOW))
        achieved = await loop.run_in_executor(None, publisher.run, sink, seq, count, float(rate))
        await _settle(sink, range(seq, seq + count))
        samples, complete = sink.window(range(seq, seq + count))
        p99 = _pct(samples, 0.99) * 1000
        ok = complete and p99 < LAG_MS and achieved >= rate * 0.9
        figures["ladder"].append((rate, round(achieved), round(p99, 1), complete))
        print(
            f"  {label}: {rate:>4} ticks/s (achieved {achieved:6.1f}) p99 {p99:8.1f} ms "
            f"{'all delivered' if complete else 'MISSED TICKS'} -> {'ok' if ok else 'behind'}",
            flush=True,
        )
        seq += count
        if not ok:
            break
        figures["sustained"] = rate
    return figures


async def _settle(sink: Sink, seqs: range, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(sink.latencies.get(s, [])) >= sink.clients for s in seqs):
            return
        await asyncio.sleep(0.05)


# --- the realtime path: web process + websocket clients ----------------------------------------


class _Client(asyncio.Protocol):
    """A minimal RFC 6455 client (handshake, masked sends, unmasked reads): one price frame
    costs it microseconds, so a thousand of them in this process measure the server rather
    than the harness (the `websockets` client costs ~0.5 ms of CPU per frame; the tests use it)."""

    marker = b'"price":"'

    def __init__(self, sink: Sink, port: int, path: str, ready: asyncio.Future):
        self.sink, self.port, self.path, self.ready = sink, port, path, ready
        self.buf = bytearray()
        self.upgraded = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Origin: http://localhost\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str, opcode: int = 0x1) -> None:
        payload = text.encode()
        mask = secrets.token_bytes(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(self.buf[:60]).decode(errors="replace")))
                return
            del self.buf[: end + 4]
            self.upgraded = True
            self.send_text(json.dumps({"type": "subscribe", "channel": "prices", "data": {"pairs": [PAIR]}}))
        buf = self.buf
        while len(buf) >= 2:
            n, head = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + n:
                break
            opcode, payload = buf[0] & 0x0F, bytes(buf[head : head + n])
            del buf[: head + n]
            if opcode == 0x1:
                i = payload.find(self.marker)
                if i >= 0:
                    start = i + len(self.marker)
                    self.sink.got(int(payload[start : payload.index(b'"', start)]), time.perf_counter())
                elif not self.ready.done():
                    if b'"subscribed"' in payload:
                        self.ready.set_result(True)
                    else:  # refused (an error frame): measuring nothing is not a result
                        self.ready.set_exception(RuntimeError(payload.decode(errors="replace")[:200]))
            elif opcode == 0x9:
                self.send_text(payload.decode(errors="replace"), opcode=0xA)


async def _websocket_run(port: int, token: str, publisher: Publisher, server_pid: int) -> dict:
    loop = asyncio.get_running_loop()
    sink = Sink(CLIENTS)
    transports = []
    for batch in range(0, CLIENTS, 100):
        ready = []
        for _ in range(min(100, CLIENTS - batch)):
            fut = loop.create_future()
            transport, _ = await loop.create_connection(
                lambda fut=fut: _Client(sink, port, f"/ws?token={token}", fut), "127.0.0.1", port
            )
            transports.append(transport)
            ready.append(fut)
        await asyncio.wait_for(asyncio.gather(*ready), 120)
    try:
        return await _drive(sink, publisher, "websocket", server_pid)
    finally:
        for transport in transports:
            transport.close()


# --- the baseline: raw channel layer ------------------------------------------------------------


async def _layer_run(publisher: Publisher, group: str) -> dict:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    sink = Sink(CLIENTS)
    names = [await layer.new_channel() for _ in range(CLIENTS)]
    for name in names:
        await layer.group_add(group, name)

    async def receiver(name):
        while True:
            message = await layer.receive(name)
            sink.got(message["seq"], time.perf_counter())

    tasks = [asyncio.ensure_future(receiver(n)) for n in names]
    try:
        return await _drive(sink, publisher, "baseline ")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in names:
            await layer.group_discard(group, name)


def main() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, CLIENTS * 2 + 256)), hard))
    env, project_db = _setup()
    try:
        _run(env)
    finally:
        from bench._db import bench_database_restore

        bench_database_restore(project_db)


def _run(env: dict) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from providers.interface import PriceTick
    from trading import tokens
    from trading.realtime.publish import group_send_sync, publish_price_tick

    user, _ = get_user_model().objects.get_or_create(username="bench-realtime", defaults={"email": None})
    token, _ = tokens.access_encode(user=user)  # as /auth/login issues it

    def publish_tick(seq: int) -> None:
        publish_price_tick(
            PriceTick(symbol=PAIR, price=Decimal(seq), timestamp=datetime.now(UTC), source="bench", venue="paper")
        )

    group = "bench.baseline"

    def publish_raw(seq: int) -> None:
        group_send_sync(group, {"type": "bench.tick", "seq": seq})

    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    print(
        f"realtime fan-out: {CLIENTS} clients, 1 pair; {os.cpu_count()} CPUs, load average {load[0]:.1f} at start",
        flush=True,
    )
    port = _free_port()
    server = _start_server(env, port)
    try:
        ws = asyncio.run(_websocket_run(port, token, Publisher(publish_tick), server.pid))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    base = asyncio.run(_layer_run(Publisher(publish_raw), group))

    print()
    header = f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}{'sustained ticks/s':>20}"
    print(header + f"{'web CPU ms/tick':>17}{'harness CPU ms/tick':>21}")
    for label, f in (("websocket (/ws, 1 web process)", ws), ("baseline: raw channel layer", base)):
        sustained = f"{f['sustained']}" if f["sustained"] else f"< {LADDER[0]}"
        server_cpu = "-" if f["server_cpu_ms"] is None else f"{f['server_cpu_ms']:.1f}"
        print(
            f"{label:<34}{f['p50_ms']:>10.1f}{f['p99_ms']:>10.1f}{sustained:>20}"
            f"{server_cpu:>17}{f['harness_cpu_ms']:>21.1f}"
        )
    print(
        f"(sustained: highest rate of {LADDER} at which every client received every tick with p99 < {LAG_MS:.0f} ms"
        f" over {WINDOW:.0f} s; deliveries per second = rate x {CLIENTS}. CPU ms/tick: CPU the web process and"
        f" this harness spent per tick delivered to all {CLIENTS}, at {4} ticks/s; on a busy machine latency is"
        " mostly waiting for a CPU, the CPU cost is what a free core would need)",
        flush=True,
    )


if __name__ == "__main__":
    main()
