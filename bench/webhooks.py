"""Webhook delivery throughput and latency, beside raw httpx POSTs to the same receiver.

Setup: a throwaway database, a real Celery worker (its own process, prefork pool with 2
processes) on the real Redis broker, one endpoint on a loopback receiver (sandbox double) that
answers 200 at once. The endpoint's concurrency cap is the default (WEBHOOK_ENDPOINT_CONCURRENCY).
- burst: N ledger events committed as a liquidation cascade commits them: several producers at
  once (BENCH_WEBHOOK_PRODUCERS threads, as several executor processes close positions), each
  committing groups of BENCH_WEBHOOK_BATCH events per transaction (a protective tick closes the
  positions it triggered together). Deliveries/second from the first commit to the last
  delivery recorded, beside the producers' own commit rate (the burst rate cannot exceed it:
  when the two are close, the producers bound the figure, not the delivery path), and commit →
  first-attempt latency (p50/p99). BENCH_WEBHOOK_PRODUCERS=1 BENCH_WEBHOOK_BATCH=1 is the
  earlier burst (one producer, one event per commit);
- paced: events committed at a steady rate under capacity; commit → first attempt;
- baseline: the same number of raw httpx POSTs (signed the same way) from 2 threads (as many
  as the cap lets a delivery path have in flight to the endpoint).
The goals are printed beside the figures: burst rate >= 50 % of raw POSTs, burst commit → first
attempt p99 < 1 s, paced latency no worse than before (p50 ~20 ms, p99 ~30 ms when one Celery
task made each attempt: docs/benchmarks.md).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.trading import _cpu_seconds, _process_tree, _store_cpu

N_BURST = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "400"))
N_PACED = int(os.environ.get("BENCH_WEBHOOK_PACED_EVENTS", "100"))
PACED_RATE = float(os.environ.get("BENCH_WEBHOOK_PACED_RATE", "5"))
PRODUCERS = int(os.environ.get("BENCH_WEBHOOK_PRODUCERS", "4"))
BATCH = int(os.environ.get("BENCH_WEBHOOK_BATCH", "10"))
WORKERS = 2


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_QUEUE", "tradedesk-bench")  # never a running worker's queue
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import logging

    import django

    django.setup()
    for name in ("celery", "httpx", "tradedesk"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _record(user_id: int, ns) -> float:
    """Commit one event per number in `ns`, in one transaction; returns when it committed."""
    from django.db import transaction

    from trading.services.ledger import event_record

    with transaction.atomic():
        for n in ns:
            event_record(
                topic="trade.closed", aggregate_type="bench", aggregate_id=n, payload={"user_id": user_id, "n": n}
            )
    return time.time()


def _run_events(user_id: int, count: int, start: int, rate: float | None) -> dict[int, float]:
    committed = {}
    t0 = time.monotonic()
    for i in range(count):
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        committed[start + i] = _record(user_id, [start + i])
    return committed


def _run_burst(user_id: int, count: int) -> tuple[dict[int, float], float]:
    """`count` events from PRODUCERS threads at once, BATCH events per transaction, as fast as
    they commit. Each thread connects before the start so that the burst measures commits.
    Returns the commit times and the producers' CPU seconds (their threads only)."""
    from django.db import connection

    groups = [list(range(i, min(i + BATCH, count))) for i in range(0, count, BATCH)]
    start = threading.Barrier(PRODUCERS)
    committed: dict[int, float] = {}
    cpu: list[float] = []

    def produce(mine: list[list[int]]) -> None:
        try:
            connection.ensure_connection()
            start.wait()
            began = time.thread_time()
            for ns in mine:
                at = _record(user_id, ns)
                committed.update(dict.fromkeys(ns, at))
            cpu.append(time.thread_time() - began)
        finally:
            connection.close()

    threads = [threading.Thread(target=produce, args=(groups[i::PRODUCERS],)) for i in range(PRODUCERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(committed) != count:
        raise RuntimeError(f"the producers committed {len(committed)} of {count} events")
    return committed, sum(cpu)


def _wait_delivered(count: int, timeout: float = 300, marks: dict | None = None) -> float:
    """Wait until `count` deliveries are delivered; `marks["created"]` = when all existed."""
    from webhooks.models import WebhookDelivery

    deadline = time.monotonic() + timeout
    while WebhookDelivery.objects.filter(status="delivered").count() < count:
        if marks is not None and "created" not in marks and WebhookDelivery.objects.count() >= count:
            marks["created"] = time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {count} deliveries were delivered in {timeout}s")
        time.sleep(0.02)
    return time.time()


def _latencies(committed: dict[int, float]) -> list[float]:
    from webhooks.models import WebhookAttempt

    first = {
        a.delivery.payload["data"]["n"]: a.started_at.timestamp()
        for a in WebhookAttempt.objects.filter(number=1).select_related("delivery")
    }
    return [first[n] - t for n, t in committed.items() if n in first]


def _stages(committed: dict[int, float]) -> str:
    """Where commit → first attempt went: commit → delivery row written by the outbox
    dispatcher, then delivery row → first attempt (the delivery run), p50/p99 of each."""
    from webhooks.models import WebhookAttempt

    to_row, to_attempt = [], []
    for a in WebhookAttempt.objects.filter(number=1).select_related("delivery"):
        n = a.delivery.payload["data"]["n"]
        if n in committed:
            to_row.append(a.delivery.created_at.timestamp() - committed[n])
            to_attempt.append(a.started_at.timestamp() - a.delivery.created_at.timestamp())
    return (
        f"commit → delivery row {_ms(statistics.median(to_row)).strip()} / {_ms(_pct(to_row, 99)).strip()}, "
        f"row → first attempt {_ms(statistics.median(to_attempt)).strip()} / {_ms(_pct(to_attempt, 99)).strip()} "
        "(p50 / p99)"
    )


def _baseline(url: str, count: int, secret: str) -> tuple[float, list[float]]:
    import httpx

    from webhooks import signing

    local = threading.local()
    body = b'{"data":{"n":0},"event_type":"trade.closed","id":"msg_x","timestamp":"2026-01-01T00:00:00+00:00"}'

    def post(i: int) -> float:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        started = time.time()
        headers = signing.signed_headers(
            secrets_newest_first=[secret],
            msg_id=f"msg_{i}",
            delivery_id=f"msg_{i}",
            event_type="trade.closed",
            timestamp=int(started),
            body=body,
        )
        client.post(url, content=body, headers=headers).raise_for_status()
        return time.time() - started

    t0 = time.time()
    with ThreadPoolExecutor(WORKERS) as pool:
        durations = list(pool.map(post, range(count)))
    return count / (time.time() - t0), durations


def _worker_process():
    """`celery worker` in its own process (2 prefork children) against the throwaway database."""
    import subprocess
    import sys
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    if (db.get("HOST") or "").startswith("/"):
        url = f"postgres://{auth}@/{db['NAME']}?host={quote(db['HOST'])}"
    else:
        url = f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    queue = settings.CELERY_TASK_DEFAULT_QUEUE  # the worker publishes (deliveries) where it consumes
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL, "LOG_LEVEL": "WARNING"}
    env["CELERY_QUEUE"] = queue
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "-c", str(WORKERS), "-Q", queue]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        env=env,
        cwd=str(settings.BASE_DIR),
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    from config.celery import app
    from trading.outbox import kick_mark_clear
    from webhooks import services
    from webhooks.models import WebhookAllowlist, WebhookAttempt, WebhookDelivery
    from webhooks.sandbox import Receiver

    old = setup_databases(verbosity=0, interactive=False)
    try:
        with Receiver() as rx:
            WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True)
            user = get_user_model().objects.create_user(username="bench")
            _, secret = services.endpoint_create(user=user, url=rx.url(), event_types=["*"])

            base_rate, base_durations = _baseline(rx.url("/baseline"), N_BURST, secret)

            app.control.purge()
            kick_mark_clear()  # a purged dispatch no longer stands for later kicks (no Beat here)
            services.run_mark_clear()  # nor a purged delivery run
            worker = _worker_process()
            try:
                _record(user.pk, [-1])  # warm up: the worker starting, imports, connections
                _wait_delivered(1, timeout=120)
                WebhookAttempt.objects.all().delete()
                WebhookDelivery.objects.all().delete()

                worker_pids = _process_tree(worker.pid)
                cpu_before = (_cpu_seconds(worker_pids), _store_cpu())
                burst_started = time.time()
                committed, producer_cpu = _run_burst(user.pk, N_BURST)
                first_commit = min(committed.values())
                commit_rate = N_BURST / (max(committed.values()) - burst_started)
                marks: dict = {}
                done = _wait_delivered(N_BURST, marks=marks)
                worker_cpu = _cpu_seconds(worker_pids) - cpu_before[0]
                store_after = _store_cpu()
                store_cpu = sum(store_after[p] - c for p, c in cpu_before[1].items() if p in store_after)
                burst_rate = N_BURST / (done - first_commit)
                last_commit = max(committed.values())
                created_after = marks.get("created", done) - first_commit
                burst_lat = _latencies(committed)
                burst_stages = _stages(committed)

                WebhookAttempt.objects.all().delete()
                WebhookDelivery.objects.all().delete()
                paced = _run_events(user.pk, N_PACED, 100_000, PACED_RATE)
                _wait_delivered(N_PACED)
                paced_lat = _latencies(paced)
                paced_stages = _stages(paced)
            finally:
                worker.terminate()
                worker.wait(60)

        ratio = burst_rate / base_rate
        burst_p99 = _pct(burst_lat, 99)
        print(f"workers: 1 Celery worker process, {WORKERS} prefork children; receiver: loopback, answers 200 at once")
        print(f"{'':38}{'rate':>14}{'p50':>12}{'p99':>12}")
        print(
            f"{'baseline: raw httpx POSTs (signed)':38}{base_rate:10.0f} /s  "
            f"{_ms(statistics.median(base_durations))}  {_ms(_pct(base_durations, 99))}   (request time)"
        )
        print(
            f"{f'webhooks, burst of {N_BURST} events':38}{burst_rate:10.0f} /s  "
            f"{_ms(statistics.median(burst_lat))}  {_ms(burst_p99)}   (commit → first attempt)"
        )
        print(
            f"{f'  producers: {PRODUCERS} threads, {BATCH}/commit':38}{commit_rate:10.0f} /s"
            "                            (events committed; bounds the burst rate)"
        )
        print(
            f"  (burst: events committed in {last_commit - first_commit:.2f} s; all deliveries created by the outbox "
            f"after {created_after:.2f} s; all delivered after {done - first_commit:.2f} s)"
        )
        print(f"  (burst: {burst_stages})")
        print(
            f"{f'webhooks, paced {PACED_RATE:.0f} events/s':38}{'':14}"
            f"{_ms(statistics.median(paced_lat))}  {_ms(_pct(paced_lat, 99))}   (commit → first attempt)"
        )
        print(f"  (paced: {paced_stages})")
        print(
            f"  (burst CPU per delivery: worker {worker_cpu * 1000 / N_BURST:.2f} ms, PostgreSQL + Redis "
            f"{store_cpu * 1000 / N_BURST:.2f} ms (whole burst, polling included), producer commit "
            f"{producer_cpu * 1000 / N_BURST:.2f} ms; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
        )
        print(
            f"\nburst rate / raw POSTs: {ratio:.0%} (goal >= 50%; the producers committed at "
            f"{commit_rate / base_rate:.0%} of raw)"
        )
        print(f"burst commit → first attempt p99: {burst_p99 * 1000:.0f} ms (goal < 1000 ms)")
        print(
            f"paced commit → first attempt p50/p99: {statistics.median(paced_lat) * 1000:.1f}/"
            f"{_pct(paced_lat, 99) * 1000:.1f} ms (goal: not above the per-task path's ~20/30 ms)"
        )
    finally:
        with connection.cursor() as cur:  # worker threads may still hold connections
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
