"""Reference prices: the Kraken ingest.

1. Ingest cost per Kraken message, in process: `KrakenStream.on_frame` (parse with Decimals,
   validate, write the quote to Redis, wake the sampler) over 20,000 ticker frames, beside a
   baseline of the least any ingest must do per frame (`json.loads` + one Redis SET of the frame).
2. Tick received -> fair rate available, over a real websocket: the Kraken double (a child process)
   streams ticker updates at 500 (then 2,000) a second for 10 s to the real client; for each frame
   the time from the client's receipt to the quote being in Redis (where every fair-rate read finds
   it), p50 / p99 / max, the client process's CPU (share of one core), and the backlog: frames sent
   vs handled and the send -> handled lag at the start and the end of the run. Baseline: a bare
   websocket client doing `json.loads` + one Redis SET per frame, at the same rate, same run.
3. The read side: one `evaluate_pairs(["BTC/EUR"])` (Redis + the pause and basis rows), p50 / p99.

Goal: p99 under 5 ms in process, 500 messages/s sustained on one core with no backlog.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime

PAIR = "BTC/EUR"
FRAMES = 20_000
SECONDS = 10.0


def _frame(i: int) -> str:
    bid = 60000 + (i % 50) * 0.1
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {"symbol": PAIR, "bid": bid, "bid_qty": 1.5, "ask": bid + 0.2, "ask_qty": 2.0, "last": bid + 0.1}
    item |= {"volume": 1234.5, "vwap": bid, "low": bid, "high": bid, "change": 0.0, "change_pct": 0.0}
    return json.dumps({"channel": "ticker", "type": "update", "data": [{**item, "timestamp": stamp}]})


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the double in a child process --------------------------------------------------------------
def _double(commands, replies) -> None:
    from providers.kraken.sandbox import KrakenSandbox

    double = KrakenSandbox({PAIR: ("60000", "60000.2", "60000.1")}).start()
    replies.put(double.ws_url)
    while True:
        command = commands.get()
        if command is None:
            break
        rate, seconds = command
        replies.put(double.stream(PAIR, rate=rate, seconds=seconds))
    double.stop()


# --- 1. in-process ingest cost ------------------------------------------------------------------
async def _ingest_cost() -> tuple[float, float, dict]:
    from providers.kraken.client import KrakenStream
    from providers.reference import store

    frames = [_frame(i) for i in range(FRAMES)]
    stream = KrakenStream()
    stream.redis, stream.symbols = store.async_client(), frozenset({PAIR})
    key = store.quote_key("bench", PAIR)
    for raw in frames[:500]:  # warm up both paths
        await stream.on_frame(raw)
        json.loads(raw)
        await stream.redis.set(key, raw)
    walls: dict[str, list[float]] = {"ours": [], "base": []}
    started = time.process_time()
    for raw in frames:
        t0 = time.perf_counter()
        await stream.on_frame(raw)
        walls["ours"].append(time.perf_counter() - t0)
    ours = (time.process_time() - started) / FRAMES
    started = time.process_time()
    for raw in frames:
        t0 = time.perf_counter()
        json.loads(raw)
        await stream.redis.set(key, raw)
        walls["base"].append(time.perf_counter() - t0)
    base = (time.process_time() - started) / FRAMES
    await stream.redis.delete(key)
    await stream.redis.aclose()
    return ours, base, walls


# --- 2. over a websocket ------------------------------------------------------------------------
class _Run:
    def __init__(self):
        self.latencies: list[float] = []  # seconds, receipt -> in Redis
        self.lags: list[tuple[float, float]] = []  # (handled at, handled - sent) in seconds

    def record(self, received: float, observed_ms: int) -> None:
        done = time.perf_counter()
        self.latencies.append(done - received)
        self.lags.append((done, time.time() - observed_ms / 1000))


async def _stream_run(url: str, commands, replies, rate: float, *, baseline: bool) -> dict:
    from providers.kraken.client import KrakenStream

    run = _Run()
    stop = asyncio.Event()
    if baseline:
        task = asyncio.create_task(_bare_client(url, run, stop))
    else:
        stream = KrakenStream()
        original = stream.on_frame

        async def on_frame(raw):
            received = time.perf_counter()
            got = await original(raw)
            for q in got:
                run.record(received, q.observed_ms)
            return got

        stream.on_frame = on_frame
        task = asyncio.create_task(stream.run(stop))
    while not run.latencies:  # connected and subscribed: the snapshot came in
        await asyncio.sleep(0.05)
    run.latencies.clear()
    run.lags.clear()
    loop = asyncio.get_running_loop()
    cpu, wall = time.process_time(), time.perf_counter()
    commands.put((rate, SECONDS))
    sent = await loop.run_in_executor(None, replies.get)
    await asyncio.sleep(0.2)  # the last frames in flight
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    await asyncio.wait_for(task, 30)
    handled = len(run.latencies)
    first = [lag for at, lag in run.lags[: max(1, handled // 10)]]
    last = [lag for at, lag in run.lags[-max(1, handled // 10) :]]
    return {
        "sent": sent,
        "handled": handled,
        "p50": _pct(run.latencies, 0.50) * 1000,
        "p99": _pct(run.latencies, 0.99) * 1000,
        "max": max(run.latencies) * 1000,
        "cpu_share": cpu / wall,
        "cpu_per_msg_us": cpu / max(1, handled) * 1e6,
        "lag_first_ms": statistics.median(first) * 1000,
        "lag_last_ms": statistics.median(last) * 1000,
    }


async def _bare_client(url: str, run: _Run, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    from providers.reference import store

    redis = store.async_client()
    key = store.quote_key("bench", PAIR)
    async with connect(url, max_size=2**20, close_timeout=1) as ws:
        await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": [PAIR]}}))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            received = time.perf_counter()
            message = json.loads(raw)
            if message.get("channel") == "ticker":
                await redis.set(key, raw)
                stamp = datetime.fromisoformat(message["data"][0]["timestamp"])
                run.record(received, int(stamp.timestamp() * 1000))
    await redis.delete(key)
    await redis.aclose()


def _read_latency(n: int = 2000) -> tuple[float, float]:
    from providers.reference.service import evaluate_pairs

    for _ in range(100):
        evaluate_pairs([PAIR])
    times = []
    for _ in range(n):
        started = time.perf_counter()
        evaluate_pairs([PAIR])
        times.append(time.perf_counter() - started)
    return _pct(times, 0.5) * 1000, _pct(times, 0.99) * 1000


def _bench() -> None:
    from django.conf import settings

    from providers.models import ReferenceSource
    from providers.reference.store import store_clear

    settings.REFERENCE_PAIRS = [PAIR]
    ReferenceSource.objects.update_or_create(name="kraken", defaults={"paused": False})
    store_clear()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (latency tails grow with the load)")
    ours, base, walls = asyncio.run(_ingest_cost())
    print(f"\n-- ingest per Kraken message, in process ({FRAMES:,} frames)")
    print(f"  {'':52} {'CPU':>8} {'wall p50':>9} {'wall p99':>9}")
    for label, cpu, wall in (
        ("KrakenStream.on_frame (parse, validate, Redis write)", ours, walls["ours"]),
        ("baseline: json.loads + one Redis SET", base, walls["base"]),
    ):
        print(f"  {label:52} {cpu * 1e6:6.1f}us {_pct(wall, 0.5) * 1e3:7.3f}ms {_pct(wall, 0.99) * 1e3:7.3f}ms")
    print(f"  ratio {ours / base:.2f}; at most {1 / ours:,.0f} messages/s on one core (baseline {1 / base:,.0f})")

    context = multiprocessing.get_context("spawn")
    commands, replies = context.Queue(), context.Queue()
    child = context.Process(target=_double, args=(commands, replies), daemon=True)
    child.start()
    try:
        url = replies.get(timeout=60)
        settings.KRAKEN_WS_URL = url
        print("\n-- tick received -> fair rate available (over a websocket from the double, 10 s per row)")
        print(
            f"  {'client':10} {'rate/s':>7} {'sent':>6} {'handled':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
            f" {'CPU/msg':>8} {'1 core':>7} {'lag start':>9} {'lag end':>8}"
        )
        for rate in (500, 2000):
            for name, baseline in (("baseline", True), ("ours", False)):
                r = asyncio.run(_stream_run(url, commands, replies, rate, baseline=baseline))
                print(
                    f"  {name:10} {rate:7} {r['sent']:6} {r['handled']:7} {r['p50']:7.3f} {r['p99']:7.3f}"
                    f" {r['max']:7.2f} {r['cpu_per_msg_us']:6.0f}us {r['cpu_share']:6.0%}"
                    f" {r['lag_first_ms']:7.1f}ms {r['lag_last_ms']:6.1f}ms"
                )
    finally:
        commands.put(None)
        child.join(timeout=30)
    p50, p99 = _read_latency()
    print("\n-- reading a fair rate (evaluate_pairs: Redis + pause and basis rows)")
    print(f"  p50 {p50:.3f} ms   p99 {p99:.3f} ms")
    store_clear()


def main() -> None:
    os.environ["CACHE_KEY_PREFIX"] = "td-bench"  # never a deployment's reference state
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    from bench._db import on_bench_database

    on_bench_database(_bench)
