"""POST /api/v1/trading/trades (paper venue) against a single-INSERT DRF baseline, in one run,
under each serving stack of BENCH_STACKS (default `before,now`: uvicorn with Django's own ASGI
handler, then with config/handler.py, the Procfile's; `granian` and `gunicorn` are measured
when installed; see STACKS).

A real server (BENCH_WORKERS processes, `bench._asgi`: at most
BENCH_SERVER_CONCURRENCY requests inside Django per process, the rest queue in the event
loop) runs against its own database (`<name>_bench`, recreated) on the configured PostgreSQL
server and Redis, with `bench._settings` (psycopg pool, header auth, Server-Timing). 32
concurrent clients (one keep-alive connection each, spread evenly over the server processes;
each posts for its own BENCH_USERS_PER_CLIENT users in turn) post for BENCH_SECONDS per
endpoint after a warm-up, in BENCH_ROUNDS slices
taken in turn (baseline, trades, trades without key, baseline, ...), so that a drift in the
machine's state during the run touches every endpoint alike. Reported per endpoint:
server-side latency p50/p99 from the `Server-Timing` header (time inside Django: middleware +
view + queries), client-side latency p50/p99 (adds the queueing in front of the workers),
throughput, the CPU the server processes and the load generator spent per request, and SQL
statements per request. The trades endpoint
is measured with an Idempotency-Key per request (as clients send it) and without. Every request
says `Prefer: respond-async` (the baseline ignores it): the trades endpoint answers 202 as soon
as the order is placed, the path whose throughput this bench guards; without the preference a
request would wait for the venue's outcome (docs/api.md), which is the worker's speed, not the
web process's. Orders are only placed (the placing path never calls the venue); no worker
executes them during the run and their queue is purged afterwards.

The risk limits are the defaults: with 25 users per client each user places well under the
default 60 orders a minute. (With one user per client each placed ~300 a minute, five times
what the risk engine admits, and the bench had to raise the limit; rejected orders would show
in the `errors` row.)

Both endpoints get the same server, settings, client and body. The load generator shares the
CPUs with the server, PostgreSQL and Redis, so it is a bare HTTP/1.1 loop on asyncio streams
(about 0.1 ms of CPU per request; a general-purpose async client spent ~2 ms, more than the
baseline endpoint itself). One request at a time is inside Django per worker process by
default, as with gunicorn's sync workers: with two, their threads share one GIL, and each
request's Server-Timing also counted the time it waited for the other's Python. With a cheap
client the run is CPU-bound on the server side, so the throughput ratio is close to the ratio
of the endpoints' CPU per request (plus their database work).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from config.aio import run  # the client's event loop: uvloop, as the server's

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
# Each client posts for its own users in turn, so that each stays under the default risk limit
# of 60 orders a minute (the bench runs with the default limits; rejected orders show as errors).
USERS_PER_CLIENT = int(os.environ.get("BENCH_USERS_PER_CLIENT", "25"))
USERS = CLIENTS * USERS_PER_CLIENT
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(max(2, os.cpu_count() or 2))))
SERVER_CONCURRENCY = int(os.environ.get("BENCH_SERVER_CONCURRENCY", "1"))
TARGETS = {"p50_ms": 15.0, "p99_ms": 50.0, "throughput_ratio": 0.60}
GOALS = {"trades_rps": 350.0, "server_p99_ms": 20.0}
BODY = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "50", "leverage": "5"}


def _base_database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from config import embedded

    return embedded.postgres_url()


def _bench_database(url: str) -> str:
    """Recreate `<name>_bench` on the same server; return its URL."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    host = cfg.get("HOST") or cfg.get("OPTIONS", {}).get("host") or None
    name = f"{cfg['NAME']}_bench"
    with psycopg.connect(
        dbname="postgres",
        host=host,
        port=cfg.get("PORT") or None,
        user=cfg.get("USER") or None,
        password=cfg.get("PASSWORD") or None,
        autocommit=True,
    ) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(database_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="bench._settings",
        CELERY_QUEUE="tradedesk-bench",
        BENCH_SERVER_CONCURRENCY=str(SERVER_CONCURRENCY),
        CACHE_KEY_PREFIX="td-bench",
        CHANNELS_PREFIX="td-bench-asgi",
        LOG_LEVEL="ERROR",
        PYTHONPATH=str(ROOT),
        # the `trade` rate limit is still checked on every request (its Redis counters are part
        # of the cost), but set high enough that the load never reaches it
        THROTTLE_RATES="trade=100000000/min",
    )
    if "REDIS_URL" not in env:
        from config import embedded

        env["REDIS_URL"] = embedded.redis_url()
    return env


SEED = f"""
import django
django.setup()
from decimal import Decimal
from django.db import connection
from django.contrib.auth import get_user_model
from providers.paper.seed import seed_paper_demo
from providers.markets import markets_cache_clear
from providers.prices import price_set
from trading.services.control import control_arm
from bench._server import CREATE_BASELINE_TABLE
seed_paper_demo()
markets_cache_clear()
price_set("BTC-USD", Decimal("60000"))
control_arm(component="executor:paper", actor="bench", reason="benchmark")
User = get_user_model()
ids = [User.objects.create(username=f"bench{{i}}", email=f"bench{{i}}@example.com").pk for i in range({USERS})]
with connection.cursor() as cur:
    cur.execute(CREATE_BASELINE_TABLE)
print(",".join(map(str, ids)))
"""

QUERIES = """
import json, uuid, django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client()
body = json.dumps(BODY_VALUE)
out = []
for path, key in (("/bench/baseline", False), ("/api/v1/trading/trades", True), ("/api/v1/trading/trades", False)):
    headers = {"HTTP_X_BENCH_USER": "USER_ID", "HTTP_PREFER": "respond-async"}
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = uuid.uuid4().hex
    client.post(path, body, content_type="application/json", **headers)  # warm
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = uuid.uuid4().hex
    with CaptureQueriesContext(connection) as q:
        response = client.post(path, body, content_type="application/json", **headers)
    assert response.status_code in (201, 202), response.content
    out.append(str(sum(1 for x in q.captured_queries if x["sql"] not in ("BEGIN",))))
print(",".join(out))
"""

PURGE = """
import django
django.setup()
from config.celery import app
print(app.control.purge())
"""

REFRESH_PRICE = """
import django, time
django.setup()
from providers.prices import price_get
while True:
    price_get("BTC-USD", use_cache=False)  # keep the cached tick fresh, like the Beat price job
    time.sleep(5)
"""


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class _Connection:
    """One keep-alive HTTP/1.1 connection: a bare request/response loop on asyncio streams.
    The load generator shares the CPUs with the server, so it should cost as little as it can;
    a general-purpose client spends more CPU per request than the baseline endpoint does."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return await self.request("POST", path, body, headers)

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        payload = await self.reader.readexactly(int(response_headers.get("content-length", "0")))
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _balanced_connections(host: str, port: int, count: int) -> tuple[list[_Connection], dict[str, int]]:
    """`count` keep-alive connections spread evenly over the server's worker processes.

    Each new connection goes to whichever process accepts it first; with keep-alive a run kept
    that spread, and one with most clients on one process and the other idle served half the
    requests, by luck (runs of the same endpoint differed by up to 2x). Each connection asks
    `/health` which process answers (`X-Bench-Pid`); surplus ones are closed and replaced."""
    per_process = -(-count // WORKERS)
    kept: list[_Connection] = []
    spare: list[_Connection] = []
    spread: dict[str, int] = {}
    for _ in range(count * 20):
        if len(kept) == count:
            break
        connection = _Connection(host, port)
        _, headers, _ = await connection.request("GET", "/health", b"", {})
        pid = headers.get("x-bench-pid", "?")
        if spread.get(pid, 0) < per_process:
            spread[pid] = spread.get(pid, 0) + 1
            kept.append(connection)
        else:
            spare.append(connection)  # held open meanwhile: that process is busier to accept
    for connection in spare:
        await connection.close()
    while len(kept) < count:  # not balanced in time: run with what the kernel gives
        kept.append(_Connection(host, port))
    return kept, spread


async def _load(base: str, path: str, users: list[int], *, seconds: float, idempotent: bool) -> dict:
    """CLIENTS connections, each posting for its share of `users` in turn, for `seconds`."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    body = json.dumps(BODY).encode()
    server_ms: list[float] = []
    client_ms: list[float] = []
    errors: dict[int, int] = {}
    connections, spread = await _balanced_connections(host, port, CLIENTS)
    stop_at = time.perf_counter() + seconds

    async def worker(own_users: list[int], connection: _Connection):
        headers = {"Prefer": "respond-async"}  # answered at once: the placing path (see the docstring)
        turn = 0
        try:
            while time.perf_counter() < stop_at:
                headers["X-Bench-User"] = str(own_users[turn % len(own_users)])
                turn += 1
                if idempotent:
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                started = time.perf_counter()
                status, response_headers, payload = await connection.post(path, body, headers)
                elapsed = (time.perf_counter() - started) * 1000
                if status not in (201, 202):  # the baseline's 201, the placed order's 202
                    errors[status] = errors.get(status, 0) + 1
                    if len(errors) == 1 and sum(errors.values()) == 1:
                        print(f"  first error on {path}: {status} {payload[:300]!r}")
                    continue
                client_ms.append(elapsed)
                timing = response_headers.get("server-timing", "")
                if "dur=" in timing:
                    server_ms.append(float(timing.split("dur=")[1]))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker(users[i::CLIENTS], c) for i, c in enumerate(connections))), seconds + 60
    )  # a stuck server fails
    wall = time.perf_counter() - started
    return {"spread": spread, "server_ms": server_ms, "client_ms": client_ms, "errors": errors, "wall": wall}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (Linux /proc; NaN elsewhere)."""
    total = 0.0
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, IndexError):
        return float("nan")
    return total


def _process_tree(pid: int) -> list[int]:
    """`pid` and its children (the uvicorn supervisor and its workers)."""
    found = [pid]
    try:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
    except OSError:
        pass
    return found


def _store_cpu() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL and Redis process on this machine (by name; empty
    when they run elsewhere)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "redis-server"):
                found[int(entry.name)] = _cpu_seconds([int(entry.name)])
        except OSError:
            continue
    return found


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the machine so far, from /proc/stat."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _slice(base: str, path: str, users: list[int], server_pids: list[int], *, idempotent: bool) -> dict:
    """One endpoint's load for SECONDS / ROUNDS, with the CPU the server processes, this client
    and the local PostgreSQL and Redis spent on it, and how busy the machine was."""
    client_before, server_before = time.process_time(), _cpu_seconds(server_pids)
    store_before, machine_before = _store_cpu(), _machine_busy()
    result = run(_load(base, path, users, seconds=SECONDS / ROUNDS, idempotent=idempotent))
    result["server_cpu_s"] = _cpu_seconds(server_pids) - server_before
    result["client_cpu_s"] = time.process_time() - client_before
    store_after, machine_after = _store_cpu(), _machine_busy()
    result["store_cpu_s"] = sum(store_after[pid] - cpu for pid, cpu in store_before.items() if pid in store_after)
    result["machine"] = (machine_after[0] - machine_before[0], machine_after[1] - machine_before[1])
    return result


def _summary(slices: list[dict]) -> dict:
    """An endpoint's slices taken together: throughput over their summed wall time, latency
    percentiles over all their requests, CPU per request served."""
    server_ms = [ms for s in slices for ms in s["server_ms"]]
    client_ms = [ms for s in slices for ms in s["client_ms"]]
    errors: dict[int, int] = {}
    for s in slices:
        for status, n in s["errors"].items():
            errors[status] = errors.get(status, 0) + n
    served = len(client_ms) + sum(errors.values()) or 1
    spreads = {"/".join(str(n) for n in sorted(s["spread"].values(), reverse=True)) for s in slices}
    return {
        "spread": ", ".join(sorted(spreads)),
        "requests": len(client_ms),
        "errors": errors,
        "throughput": len(client_ms) / sum(s["wall"] for s in slices),
        "server_p50": _percentile(server_ms, 50),
        "server_p99": _percentile(server_ms, 99),
        "server_mean": statistics.fmean(server_ms) if server_ms else float("nan"),
        "client_p50": _percentile(client_ms, 50),
        "client_p99": _percentile(client_ms, 99),
        "server_cpu": sum(s["server_cpu_s"] for s in slices) * 1000 / served,
        "client_cpu": sum(s["client_cpu_s"] for s in slices) * 1000 / served,
        "store_cpu": sum(s["store_cpu_s"] for s in slices) * 1000 / served,
        "machine_busy": 100 * sum(s["machine"][0] for s in slices) / sum(s["machine"][1] for s in slices),
    }


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bench server exited")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the bench server did not start")


def _round_ratios(slices: dict[str, list[dict]]) -> list[float]:
    """trades/baseline throughput of each round (its two slices ran back to back): how much the
    ratio moves with the machine during one run."""
    return [
        (len(t["client_ms"]) / t["wall"]) / (len(b["client_ms"]) / b["wall"])
        for b, t in zip(slices["baseline"], slices["trades"], strict=True)
        if b["client_ms"] and b["wall"] and t["wall"]
    ]


def _print(results: dict[str, dict], queries: list[str], rounds: list[float]) -> None:
    base, trades, plain = results["baseline"], results["trades"], results["trades-no-key"]
    rows = [
        ("server p50 (ms)", "server_p50", "{:.2f}"),
        ("server p99 (ms)", "server_p99", "{:.2f}"),
        ("server mean (ms)", "server_mean", "{:.2f}"),
        ("client p50 (ms)", "client_p50", "{:.2f}"),
        ("client p99 (ms)", "client_p99", "{:.2f}"),
        ("throughput (req/s)", "throughput", "{:.1f}"),
        ("server CPU/req (ms)", "server_cpu", "{:.2f}"),
        ("client CPU/req (ms)", "client_cpu", "{:.2f}"),
        ("PG+Redis CPU/req (ms)", "store_cpu", "{:.2f}"),
        ("machine CPU busy (%)", "machine_busy", "{:.0f}"),
        ("requests (2xx)", "requests", "{}"),
        ("clients per process", "spread", "{}"),
    ]
    print(f"\n{'':22}{'baseline INSERT':>18}{'POST trades':>18}{'(no Idem.-Key)':>18}")
    for label, key, fmt in rows:
        print(f"{label:22}{fmt.format(base[key]):>18}{fmt.format(trades[key]):>18}{fmt.format(plain[key]):>18}")
    print(f"{'SQL statements/req':22}{queries[0]:>18}{queries[1]:>18}{queries[2]:>18}")
    errors = [str(r["errors"] or "-") for r in (base, trades, plain)]
    print(f"{'errors':22}{errors[0]:>18}{errors[1]:>18}{errors[2]:>18}")
    ratio = trades["throughput"] / base["throughput"] if base["throughput"] else 0
    print(f"\nthroughput ratio trades/baseline: {ratio:.0%} (target >= {TARGETS['throughput_ratio']:.0%})")
    if rounds:
        each = " ".join(f"{r:.0%}" for r in rounds)
        print(f"  round by round: {each} (median {statistics.median(rounds):.0%})")
    # The ratio of the CPU each request cost the whole machine (server, load generator, PostgreSQL
    # and Redis): what the throughput ratio comes to when the machine is CPU-bound. Where it is
    # less busy (waits on fsync, or a slower machine), the throughput ratio comes out higher.
    costs = [sum(r[k] for k in ("server_cpu", "client_cpu", "store_cpu")) for r in (base, trades)]
    if costs[1]:
        print(f"  CPU per request, baseline/trades: {costs[0]:.2f}/{costs[1]:.2f} ms = {costs[0] / costs[1]:.0%}")
    print(f"load average (1 min) after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"trades server p50 {trades['server_p50']:.2f} ms (target < {TARGETS['p50_ms']:.0f}), "
        f"p99 {trades['server_p99']:.2f} ms (target < {TARGETS['p99_ms']:.0f})"
    )


# The serving stacks measured, each a command serving `bench._asgi` (or a WSGI app) on PORT.
# "before" is the stack this project ran until config/handler.py; "now" is the Procfile's.
STACKS = {
    "before": (
        "uvicorn, Django's ASGI handler (a new thread per request)",
        ["uvicorn", "bench._asgi:stock_application", "--workers", str(WORKERS)],
    ),
    "now": (
        "uvicorn, config.handler (reused request threads)",
        ["uvicorn", "bench._asgi:application", "--workers", str(WORKERS)],
    ),
    # candidates measured when installed (not dependencies): granian (a Rust HTTP server) with
    # config.handler, and gunicorn gthread (WSGI: no websockets, no async views) as a reference
    "granian": (
        "granian, config.handler (reused request threads)",
        ["granian", "--interface", "asgi", "bench._asgi:application", "--workers", str(WORKERS)],
    ),
    "gunicorn": (
        "gunicorn gthread, WSGI (1 thread per worker)",
        ["gunicorn", "config.wsgi:application", "-k", "gthread", "--threads", "1", "-w", str(WORKERS)],
    ),
}
CHOSEN = [name for name in os.environ.get("BENCH_STACKS", "before,now").split(",") if name]


def _server_command(stack: str, port: int) -> list[str]:
    _, argv = STACKS[stack]
    if argv[0] == "uvicorn":
        return [sys.executable, "-m", *argv, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                "--log-level", "warning"]  # fmt: skip
    if argv[0] == "granian":
        return [sys.executable, "-m", *argv, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [sys.executable, "-m", *argv, "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]


ENDPOINTS = (
    ("baseline", "/bench/baseline", False),
    ("trades", "/api/v1/trading/trades", True),
    ("trades-no-key", "/api/v1/trading/trades", False),
)


def _measure(stacks: list[str], env: dict, users: list[int], queries: list[str]) -> dict[str, dict[str, dict]]:
    """Every stack's server at once (each on its own port, idle while another is measured),
    warmed up, then slices taken in turn over stacks and endpoints, so that the machine's drift
    during the run (other work on it) touches every stack and endpoint alike; prints each
    stack's table."""
    python = sys.executable
    servers: dict[str, tuple[str, subprocess.Popen]] = {}
    refresher = subprocess.Popen([python, "-c", REFRESH_PRICE], cwd=ROOT, env=env)
    try:
        for stack in stacks:
            port = _free_port()
            servers[stack] = (
                f"http://127.0.0.1:{port}",
                subprocess.Popen(_server_command(stack, port), cwd=ROOT, env=env),
            )
        for base, server in servers.values():
            _wait_ready(base, server)
        pids = {stack: _process_tree(server.pid) for stack, (_, server) in servers.items()}
        for base, _ in servers.values():
            for _, path, idem in ENDPOINTS:
                run(_load(base, path, users, seconds=WARMUP, idempotent=idem))
        slices = {stack: {name: [] for name, _, _ in ENDPOINTS} for stack in stacks}
        for _ in range(ROUNDS):
            for stack, (base, _) in servers.items():
                for name, path, idem in ENDPOINTS:
                    slices[stack][name].append(_slice(base, path, users, pids[stack], idempotent=idem))
        measured = {}
        for stack in stacks:
            print(f"\n--- {stack}: {STACKS[stack][0]}")
            measured[stack] = {name: _summary(parts) for name, parts in slices[stack].items()}
            _print(measured[stack], queries, _round_ratios(slices[stack]))
        return measured
    finally:
        for proc in (refresher, *(server for _, server in servers.values())):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _compare(measured: dict[str, dict[str, dict]]) -> None:
    """The stacks side by side, with the goals: trades (with Idempotency-Key) >= 350 req/s,
    server p99 < 20 ms, trades/baseline >= 60 %."""
    print(f"\n{'stack':10}{'baseline req/s':>16}{'trades req/s':>14}{'ratio':>8}{'trades p99 (server)':>21}")
    for stack, r in measured.items():
        ratio = r["trades"]["throughput"] / r["baseline"]["throughput"] if r["baseline"]["throughput"] else 0
        print(
            f"{stack:10}{r['baseline']['throughput']:>16.1f}{r['trades']['throughput']:>14.1f}{ratio:>8.0%}"
            f"{r['trades']['server_p99']:>18.2f} ms"
        )
    if "before" in measured and "now" in measured and measured["before"]["trades"]["throughput"]:
        gain = measured["now"]["trades"]["throughput"] / measured["before"]["trades"]["throughput"]
        print(f"trades now/before: {gain:.2f}x")
    print(
        f"goals (now): trades >= {GOALS['trades_rps']:.0f} req/s, server p99 < {GOALS['server_p99_ms']:.0f} ms, "
        f"trades/baseline >= {TARGETS['throughput_ratio']:.0%}"
    )


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    database_url = _bench_database(_base_database_url())
    env = _env(database_url)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run([python, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    users = [int(x) for x in seeded.stdout.strip().splitlines()[-1].split(",")]
    script = QUERIES.replace("USER_ID", str(users[0])).replace("BODY_VALUE", repr(BODY))
    counted = subprocess.run([python, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    queries = counted.stdout.strip().splitlines()[-1].split(",")
    print(f"load average (1 min) before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"{WORKERS} server processes ({SERVER_CONCURRENCY} requests in Django at once per process), "
        f"{CLIENTS} concurrent clients ({USERS_PER_CLIENT} users each, in turn), "
        f"{SECONDS:.0f}s per endpoint in {ROUNDS} interleaved slices "
        f"(+{WARMUP:.0f}s warm-up), database {urlsplit(database_url).path.lstrip('/')}"
    )
    stacks = []
    for stack in CHOSEN:
        server = STACKS[stack][1][0]
        if server in ("gunicorn", "granian") and importlib.util.find_spec(server) is None:
            print(f"--- {stack}: skipped ({server} is not installed)")
        else:
            stacks.append(stack)
    try:
        _compare(_measure(stacks, env, users, queries))
    finally:
        subprocess.run([python, "-c", PURGE], cwd=ROOT, env=env, capture_output=True)
