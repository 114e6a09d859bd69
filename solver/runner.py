"""The `near_solver` process: the relay websocket (`providers.near_intents.relay.RelayStream`)
feeding the loop (`solver.services.loop`) on threads of its own, and the housekeeping rounds
(deadlines and unknown outcomes, silent pairs, the component state written to Redis).

- Ingest disarmed: no connection at all. Paused or draining: connected, quotes dropped (counted).
- The quotes waiting are decided together (`loop.quotes_receive`, a batch in one transaction):
  stored, decided, and when armed gated, held, signed and committed, then each answered one's
  `quote_response` is sent and the relay's answer recorded (`RelayTimeout` → unknown).
- At start, commands signed but without a recorded answer become unknown: nothing is resent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection

from config.gc_freeze import long_lived_freeze
from providers.near_intents.relay import RelayError, RelayEvent, RelayNotConnected, RelayStream, RelayTimeout
from solver.models import EXECUTOR, INGEST, STRATEGY
from solver.services import loop
from solver.services.state import state_write

logger = logging.getLogger("tradedesk.near_intents.solver")
CONNECTION_CHECK_SECONDS = 1.0
BATCH_MAX = 100  # quotes decided in one transaction at most
# batches being decided at once: while one waits on the database, the next is decided
DECIDERS = 2
# the caches a batch reads (`loop.caches_refresh`) are read again ahead of time this often, while
# the ingest is armed; the fair rates (whose evaluation may write a sample, pinned for decisions)
# only while quotes came in the last WARM_FAIR_SECONDS
WARM_SECONDS = 0.05
WARM_FAIR_SECONDS = 60.0
_thread = threading.local()


class SolverRunner:
    def __init__(self, *, url: str, api_key: str = "", workers: int | None = None, url_source=None):
        self.pool = ThreadPoolExecutor(max_workers=workers or settings.NEAR_SOLVER_WORKERS, thread_name_prefix="solver")
        # quotes are decided in batches (group commit) on DECIDERS threads of their own
        self.decide_pool = ThreadPoolExecutor(max_workers=DECIDERS, thread_name_prefix="solver-decide")
        self.waiting: list[tuple[loop.Received, float]] = []  # quotes received, not in a batch yet
        self.deciders: set[asyncio.Task] = set()
        self.sending: set[asyncio.Task] = set()
        self.oks: list = []  # (plan, the relay's result, a future) to record
        self.recorder: asyncio.Task | None = None
        # the relay's answers are recorded on threads of their own: a quote never waits behind them
        self.after = ThreadPoolExecutor(max_workers=2, thread_name_prefix="solver-after")
        self.stream = RelayStream(url, api_key=api_key, on_event=self.on_event, url_source=url_source)
        self.counters: Counter = Counter()
        self.skips: Counter = Counter()
        self.controls: dict[str, dict] = {}
        self.pairs: list[str] = []
        self.pair_seen: dict[str, float] = {}
        self.silent: list[str] = []
        self.last_quote: dict = {}
        self.last_command: dict = {}
        self.last_status: dict = {}
        self.in_flight = 0
        self.deciding = 0  # quotes received and not decided yet (waiting for a worker or on one)
        self.latencies_ms: list[float] = []  # quote received → quote_response sent (bench, state)
        self.started_at = time.time()

    @staticmethod
    def _call(fn, *args, **kwargs):
        """`fn` on a worker thread's own connection. The connection is checked (Django's health
        check: a `SELECT 1` round trip) at most once a CONNECTION_CHECK_SECONDS per thread, and
        after any error, instead of before every call. It is kept past CONN_MAX_AGE (only a
        broken one is replaced): closed and opened again once a minute, a thread paid the new
        connection (a few ms) on a quote's way, and its statements were parsed and planned
        again (prepared ones are the connection's)."""
        now = time.monotonic()
        if now - getattr(_thread, "checked", 0.0) > CONNECTION_CHECK_SECONDS:
            connection.close_at = None
            close_old_connections()
            _thread.checked = now
        try:
            return fn(*args, **kwargs)
        except Exception:
            _thread.checked = 0.0
            raise

    async def db(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: self._call(fn, *args, **kwargs))

    async def after_send(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.after, lambda: self._call(fn, *args, **kwargs))

    # --- controls -------------------------------------------------------------------------------
    def _controls_read(self) -> None:
        from solver.services.config import config_get
        from trading.models import ControlState
        from trading.services.control import control_gate

        rows = {c.component: c for c in ControlState.objects.filter(component__in=(INGEST, STRATEGY, EXECUTOR))}
        out = {}
        for component in (INGEST, STRATEGY, EXECUTOR):
            row = rows.get(component)
            gate = control_gate(row, component=component)
            out[component] = {
                "armed": bool(row and row.armed),
                "paused": bool(row and row.paused),
                "draining": bool(row and row.draining),
                "open": gate.ok and not (row and row.draining),
                "code": gate.code,
            }
        for component, now in out.items():
            before = self.controls.get(component)
            if before is not None and before["armed"] != now["armed"]:
                loop.log(
                    logging.WARNING,
                    component.split(":")[0] if component != INGEST else "ingest",
                    "arm" if now["armed"] else "disarm",
                    "control",
                    message=f"{component} {'armed' if now['armed'] else 'disarmed'}",
                )
        self.controls = out
        self.pairs = list(config_get().pairs)

    async def may_connect(self) -> bool:
        return bool(self.controls.get(INGEST, {}).get("armed"))

    def ingest_open(self) -> bool:
        return bool(self.controls.get(INGEST, {}).get("open"))

    # --- events ---------------------------------------------------------------------------------
    async def on_event(self, event: RelayEvent) -> None:
        if event.topic == "quote":
            await self.on_quote(event.data, event.metadata, received=event.received or None)
        elif event.topic == "quote_status":
            self.counters["quote_status"] += 1
            self.last_status = {"at": time.time(), "data": event.data}
            try:
                await self.db(loop.status_apply, event.data)
            except Exception:
                logger.exception(
                    "quote_status handling failed", extra={"venue": "near_intents", "event": "status_failed"}
                )

    async def on_quote(self, data: dict, metadata: dict, *, received: float | None = None) -> None:
        """Queue the quote for the decider: every quote waiting when it is free is decided in one
        batch (`loop.quotes_receive`: one transaction, one commit)."""
        started = received or time.perf_counter()
        received_at = datetime.now(UTC) - timedelta(seconds=time.perf_counter() - started)
        self.counters["quotes"] += 1
        self.last_quote = {"at": time.time(), "quote_id": data.get("quote_id")}
        self.deciding += 1
        self.waiting.append((loop.Received(data, metadata, received_at), started))
        if sum(not task.done() for task in self.deciders) < DECIDERS:
            task = asyncio.get_running_loop().create_task(self._decide_waiting())
            self.deciders.add(task)
            task.add_done_callback(self.deciders.discard)

    async def _decide_waiting(self) -> None:
        """Decide what waits, a batch (at most BATCH_MAX quotes) at a time, on a decider thread;
        each answered quote's response is sent as its batch commits."""
        while self.waiting:
            batch, self.waiting = self.waiting[:BATCH_MAX], self.waiting[BATCH_MAX:]
            ingest_open = self.ingest_open()
            logs: list = []  # the batch's log lines, written once its responses are on their way
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self.decide_pool,
                    functools.partial(
                        self._call, loop.quotes_receive, [r for r, _ in batch], ingest_open=ingest_open, logs_later=logs
                    ),
                )
            except Exception:
                self.counters["errors"] += len(batch)
                logger.exception(
                    "quote handling failed",
                    extra={"venue": "near_intents", "event": "quote_failed", "count": len(batch)},
                )
                continue
            finally:
                self.deciding -= len(batch)
            for (_, started), outcome in zip(batch, outcomes, strict=True):
                if outcome.status == "error":  # logged; nothing recorded, nothing sent
                    self.counters["errors"] += 1
                    continue
                self.counters[outcome.status] += 1
                if outcome.pair and outcome.status not in ("filtered", "invalid"):
                    self.pair_seen[outcome.pair] = time.time()
                if outcome.status == "skip":
                    self.skips[outcome.reason] += 1
                if outcome.plan is not None:
                    self.in_flight += 1
                    task = asyncio.get_running_loop().create_task(self._send(outcome.plan, started))
                    self.sending.add(task)
                    task.add_done_callback(self.sending.discard)
            if logs:  # after the sends: their tasks were scheduled first and write before they wait
                asyncio.get_running_loop().call_soon(self._write_logs, logs)

    async def _warm(self, stop: asyncio.Event) -> None:
        """Keep the caches a batch reads warm (`loop.caches_refresh`), so that no quote pays for
        a read, the first after a quiet spell included."""
        while not stop.is_set():
            if self.controls.get(INGEST, {}).get("armed"):
                fair = time.time() - self.last_quote.get("at", 0.0) < WARM_FAIR_SECONDS
                try:
                    await self.db(loop.caches_refresh, fair_rates=fair)
                except Exception:
                    logger.warning(
                        "solver caches not refreshed", exc_info=True, extra={"venue": "near_intents", "event": "warm"}
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=WARM_SECONDS)

    def _write_logs(self, logs: list) -> None:
        """A committed batch's log lines, on the threads that record the relay's answers."""

        def write():
            for lines in logs:
                try:
                    lines()
                except Exception:
                    logger.exception(
                        "writing a batch's log lines failed", extra={"venue": "near_intents", "event": "log_failed"}
                    )

        try:
            self.after.submit(write)
        except RuntimeError:  # stopping: the pool is shut down
            write()

    async def _send(self, plan: loop.Plan, started: float) -> None:
        try:

            def sent():  # quote received → quote_response written to the socket
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                del self.latencies_ms[:-20000]

            try:
                result = await self.stream.respond(
                    plan.response, timeout=settings.NEAR_SOLVER_RESPONSE_TIMEOUT, on_sent=sent
                )
            except RelayError as exc:
                await self.after_send(loop.response_record, plan.command_id, error=exc.error)
            except RelayTimeout as exc:
                await self.after_send(loop.response_record, plan.command_id, timeout=str(exc))
            except RelayNotConnected as exc:
                await self.after_send(loop.response_record, plan.command_id, not_sent=str(exc))
            else:
                await self._record_ok(plan, result)
            self.last_command = {"at": time.time(), "command_id": plan.command_id, "quote_id": plan.quote_id}
            self.counters["responses"] += 1
        except Exception:
            logger.exception(
                "recording the relay's answer failed",
                extra={"venue": "near_intents", "event": "result_failed", "command_id": plan.command_id},
            )
        finally:
            self.in_flight -= 1

    async def _record_ok(self, plan: loop.Plan, result) -> None:
        """The relay's "OK" recorded: with every other one that arrives while the last ones are
        being recorded, in one statement (`loop.responses_ok`), on the threads of their own."""
        done = asyncio.get_running_loop().create_future()
        self.oks.append((plan, result, done))
        if self.recorder is None or self.recorder.done():
            self.recorder = asyncio.get_running_loop().create_task(self._record_oks())
        await done

    async def _record_oks(self) -> None:
        while self.oks:
            batch, self.oks = self.oks[: BATCH_MAX * 2], self.oks[BATCH_MAX * 2 :]
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.after, functools.partial(self._call, loop.responses_ok, [(p, r) for p, r, _ in batch])
                )
            except Exception as exc:
                for *_, done in batch:
                    done.set_exception(exc)
            else:
                for *_, done in batch:
                    done.set_result(None)

    # --- housekeeping -----------------------------------------------------------------------------
    def _housekeeping(self) -> dict:
        self._controls_read()
        counts = loop.reconcile()
        now = time.time()
        silent = []
        if self.stream.connected:
            since = max(self.stream.connected_at, self.started_at)
            for pair in self.pairs:
                last = self.pair_seen.get(pair, since)
                if now - max(last, since) > settings.NEAR_SOLVER_PAIR_SILENT_SECONDS:
                    silent.append(pair)
        for pair in set(silent) - set(self.silent):
            loop.log(
                logging.WARNING,
                "ingest",
                "pair_silent",
                "norm.swap_demand",
                pair=pair,
                message=f"no quote for {pair} while the relay connection is healthy",
            )
        self.silent = silent
        state_write(self.state())
        return counts

    def state(self) -> dict:
        latencies = sorted(self.latencies_ms[-1000:])

        def pct(p):
            return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 3) if latencies else None

        return {
            "written_at": time.time(),
            "started_at": self.started_at,
            "relay": self.stream.state(),
            "controls": self.controls,
            "pairs": self.pairs,
            "pair_last_quote_at": dict(self.pair_seen),
            "silent_pairs": self.silent,
            "counters": dict(self.counters),
            "skips": dict(self.skips),
            "last_quote": self.last_quote,
            "last_command": self.last_command,
            "last_status": self.last_status,
            "in_flight": self.in_flight,
            "deciding": self.deciding,
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "n": len(latencies)},
        }

    async def run(self, stop: asyncio.Event) -> None:
        recovered = await self.db(loop.restart_recover)
        if recovered:
            logger.warning(
                "commands without a recorded answer are unknown now",
                extra={"venue": "near_intents", "event": "restart_recover", "count": recovered},
            )
        await self.db(self._controls_read)
        await self.db(loop.caches_refresh, fair_rates=False)
        long_lived_freeze()  # a full collection would otherwise stall every quote ~90 ms (config/gc_freeze.py)
        streaming = asyncio.create_task(self.stream.run(stop, may_connect=self.may_connect))
        warming = asyncio.create_task(self._warm(stop))
        try:
            while not stop.is_set():
                try:
                    await self.db(self._housekeeping)
                except Exception:
                    logger.exception(
                        "solver housekeeping failed", extra={"venue": "near_intents", "event": "housekeeping_failed"}
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=settings.NEAR_SOLVER_HOUSEKEEPING_SECONDS)
        finally:
            await streaming
            await warming
            try:
                await self.db(state_write, {**self.state(), "stopped": True})
            except Exception:
                logger.warning(
                    "solver state not written at stop", extra={"venue": "near_intents", "event": "state_write_failed"}
                )
            self.pool.shutdown(wait=True)
            self.decide_pool.shutdown(wait=True)
            self.after.shutdown(wait=True)


def dumps(state: dict) -> str:
    return json.dumps(state, default=str)
