"""NEAR Intents solver loop: quote received → `quote_response` sent.

The NEAR Intents doubles run in a child process (the relay's websocket, the NEAR RPC with the
verifier); the solver runner (`solver.runner.SolverRunner`, every component armed,
`NEAR_SOLVER_WORKERS` deciding threads) in this one, on the bench database. The relay emits
BTC/EURe quote requests at 50 a second for a few seconds, then at 500 a second in three rounds
of a few seconds (its p99 moves a lot from run to run on 2 cores: each round is printed, and
their median is set against the goal), and the bench waits until every quote is decided; for
each answered quote the time from its frame's arrival at the client to the signed
`quote_response` written to the socket (raw quote stored, fair rate sampled, decision, hold,
command committed, NEP-413 signature), p50 / p99 / max, how many were answered, and the client
process's CPU (share of one core, and per quote emitted: the solver's whole work for it, the
answer's recording and the housekeeping included). The relay picks no winner (settlement is not
part of this path and would add its own load).

Baseline, same run, same rates: a bare websocket client sending the relay double's `echo` and
waiting for its answer — the round trip any answer pays at least.

Goal: p99 under 20 ms at 500 quotes/s (the relay waits about 3 s for solvers; the best answer wins).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from bench._db import on_bench_database
from config.aio import event_loop_new, run

RATES = (50, 500)
SECONDS = 4.0
# the goal's rate is measured in rounds: on a 2-core machine its p99 moves a lot from one run of
# the same code to the next (24-85 ms over eight runs), so one round says little
ROUNDS = {50: 1, 500: 3}
GOAL_RATE, GOAL_P99_MS = 500, 20.0
SOLVER = "bench-solver.near"
BTC = "nep141:btc.omft.near"
EURE = "nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the doubles in a child process ---------------------------------------------------------------
def _double(commands, replies) -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.gc_freeze import long_lived_freeze
    from providers.near_intents.sandbox import start_sandbox

    sandbox = start_sandbox(solver_account=SOLVER)
    world = sandbox.world
    world.relay.settle = False
    # the double's own full collections (90-110 ms with Django loaded) stalled its emitter and
    # sent the quotes due meanwhile in one burst: a harness artefact in the solver's p99
    long_lived_freeze()
    replies.put(sandbox.config())
    while True:
        command, arg = commands.get()
        if command == "stop":
            sandbox.stop()
            replies.put("stopped")
            return
        if command == "key":
            world.public_key_add(SOLVER, arg)
            world.balance_set(SOLVER, BTC, 10**6 * 10**8)
            world.balance_set(SOLVER, EURE, 10**12 * 10**18)
            replies.put("ok")
        elif command == "emit":  # (rate, seconds): BTC/EURe requests, both directions
            rate, seconds = arg
            started, n = time.perf_counter(), 0
            while n < rate * seconds:
                due = started + n / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                if n % 2:
                    world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=(100 + n % 900) * 10**18)
                else:
                    world.relay.quote(asset_in=BTC, asset_out=EURE, exact_amount_in=(10**5 + n))
                n += 1
            replies.put(n)


# --- the baseline: echo round trips ----------------------------------------------------------------
async def _echo(url: str, rate: int, seconds: float) -> list[float]:
    from websockets.asyncio.client import connect

    times: list[float] = []
    async with connect(url) as ws:
        pending: dict[str, float] = {}

        async def reader():
            async for raw in ws:
                message = json.loads(raw)
                sent = pending.pop(str(message.get("id")), None)
                if sent is not None:
                    times.append((time.perf_counter() - sent) * 1000)

        task = asyncio.create_task(reader())
        started, n = time.perf_counter(), 0
        while n < rate * seconds:
            wait = started + n / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            rid = str(n)
            pending[rid] = time.perf_counter()
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "echo", "params": [{"quote_id": rid}]}))
            n += 1
        deadline = time.perf_counter() + 5
        while pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
    return times


# --- the run ------------------------------------------------------------------------------------------
def _setup(config: dict, tmp: str, commands, replies) -> None:
    from django.conf import settings

    from delegations.keys import solver_key_create
    from delegations.models import CustodyKey
    from providers.models import ReferenceBasis, ReferenceSource
    from providers.near_intents.client import clients_reset
    from providers.reference.store import Quote, now_ms, quotes_put
    from solver.models import COMPONENTS, QuoteCommand, QuoteDecision, RelayQuote
    from solver.services import loop
    from solver.services.config import config_set
    from trading.services.control import control_arm
    from treasury.models import Reservation
    from treasury.services.sync import treasury_sync

    path = Path(tmp) / "near.json"
    path.write_text(json.dumps(config))
    settings.NEAR_INTENTS_NETWORK = "sandbox"
    settings.NEAR_INTENTS_SANDBOX_CONFIG = str(path)
    settings.NEAR_INTENTS_SOLVER_ACCOUNT = ""
    settings.NEAR_INTENTS_TOKENS = [BTC, EURE]
    settings.REFERENCE_PAIRS = ["BTC/EUR", "BTC/EURE"]
    clients_reset()
    loop.caches_forget()
    key = CustodyKey.objects.filter(purpose="near_solver", network="sandbox", is_active=True).first()
    if key is None:
        key = solver_key_create(network="sandbox", actor="bench")
    commands.put(("key", key.address))
    assert replies.get(timeout=30) == "ok"
    QuoteCommand.objects.all().delete()
    QuoteDecision.objects.all().delete()
    RelayQuote.objects.all().delete()
    Reservation.objects.filter(ref__startswith="quote:").delete()
    for name in ("kraken", "coingecko"):
        ReferenceSource.objects.update_or_create(name=name, defaults={"paused": False, "reason": ""})
    ReferenceBasis.objects.update_or_create(
        asset="EURE", defaults={"equals": "EUR", "rate": 1, "source": "assumed peg", "set_by": "bench"}
    )
    assert treasury_sync(venue="near_intents")["ok"]
    config_set(
        actor="bench",
        reason="bench",
        pairs=["BTC/EURE"],
        max_notional_quote="1000000000",
        max_notional_hour="100000000000",
        price_max_age_ms=600_000,
    )
    for component in COMPONENTS:
        control_arm(component=component, actor="bench", reason="bench")

    def prices():  # Kraken's price kept fresh, as the feeds process keeps it
        while not stop_prices.is_set():
            now = now_ms()
            p = Decimal("60000")
            quotes_put([Quote("kraken", "BTC/EUR", p, now, now, "ws", p, p)])
            stop_prices.wait(0.5)

    threading.Thread(target=prices, daemon=True).start()


stop_prices = threading.Event()


def _quiet_logs() -> None:
    """The solver's JSON log lines (a decision, a submit and a result per answered quote: about
    6,600 a run) formatted and written as in production, to /dev/null instead of the terminal."""
    import logging
    import os

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (the process's, until it exits)


def _run() -> None:
    from django.conf import settings

    from solver.runner import SolverRunner

    _quiet_logs()

    ctx = multiprocessing.get_context("spawn")
    commands, replies = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_double, args=(commands, replies), daemon=True)
    child.start()
    config = replies.get(timeout=60)
    settings.NEAR_SOLVER_HOUSEKEEPING_SECONDS = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        _setup(config, tmp, commands, replies)
        runner = SolverRunner(url=config["relay_ws_url"])
        loop = event_loop_new()
        stop = asyncio.Event()
        thread = threading.Thread(target=lambda: loop.run_until_complete(runner.run(stop)), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not runner.stream.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"solver connected to {config['relay_ws_url']}; {SECONDS:.0f} s per rate\n")
        print(
            f"{'rate/s':>7} {'path':<34} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu':>6} "
            f"{'cpu/quote':>10}"
        )
        try:
            emitted_total, goal_p99s = 0, []
            for rate in RATES:
                echo = run(_echo(config["relay_ws_url"], rate, SECONDS))
                print(
                    f"{rate:>7} {'baseline: relay echo round trip':<34} {len(echo):>6} {_pct(echo, 0.5):>8.2f} "
                    f"{_pct(echo, 0.99):>8.2f} {max(echo):>8.2f} {'':>6}"
                )
                for n in range(ROUNDS.get(rate, 1)):
                    p99, emitted = _round(runner, commands, replies, rate, emitted_before=emitted_total, label=n)
                    emitted_total += emitted
                    if rate == GOAL_RATE:
                        goal_p99s.append(p99)
            if goal_p99s:
                median = sorted(goal_p99s)[len(goal_p99s) // 2]
                print(
                    f"\n{GOAL_RATE}/s p99 by round: {' / '.join(f'{v:.1f}' for v in goal_p99s)} ms; median "
                    f"{median:.1f} ms (goal < {GOAL_P99_MS:.0f} ms: {'met' if median < GOAL_P99_MS else 'not met'})"
                )
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)
            stop_prices.set()
            commands.put(("stop", None))
            try:
                replies.get(timeout=20)
            finally:
                child.join(timeout=10)


def _round(runner, commands, replies, rate: int, *, emitted_before: int, label: int) -> tuple[float, int]:
    """One round at `rate`: the relay emits for SECONDS, the bench waits until every quote is
    decided and answered, and prints the round's line. Returns its p99 and how many were emitted."""
    before = len(runner.latencies_ms)
    answered_before = runner.counters["responses"]
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    commands.put(("emit", (rate, SECONDS)))
    emitted = replies.get(timeout=SECONDS * 10)
    drain = time.monotonic() + 30
    while runner.counters["quotes"] < emitted_before + emitted and time.monotonic() < drain:
        time.sleep(0.05)
    while (runner.deciding or runner.in_flight) and time.monotonic() < drain:
        time.sleep(0.05)
    cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    cpu = cpu_s / (wall1 - wall0)
    lat = runner.latencies_ms[before:]
    answered = runner.counters["responses"] - answered_before
    path = "quote received → response sent" + (f" ({label + 1})" if ROUNDS.get(rate, 1) > 1 else "")
    print(
        f"{rate:>7} {path:<34} {len(lat):>6} {_pct(lat, 0.5):>8.2f} "
        f"{_pct(lat, 0.99):>8.2f} {max(lat) if lat else float('nan'):>8.2f} {cpu:>5.0%} "
        f"{cpu_s * 1000 / max(emitted, 1):>7.2f} ms"
        f"   ({emitted} emitted, {answered} answered, skips {dict(runner.skips)})"
    )
    return _pct(lat, 0.99), emitted


def main() -> None:
    on_bench_database(_run)
