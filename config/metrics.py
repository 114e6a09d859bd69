"""Prometheus metrics: the counters and histograms each process updates where the thing happens,
and `GET /metrics` (text format), aggregated across every process.

Every process of the desk (the web workers, the Celery worker and its children, Beat, the feeds)
writes its samples into `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode; the
directory is set and wiped by `manage.py run` before the processes start). `/metrics` reads them
all, then adds the state gauges read at scrape time from PostgreSQL and Redis
(`config/observability.py`, the same readings the control panel shows). Without the directory
(a single process: `manage.py runserver`, a shell) the process's own registry is served.

The endpoint is never open: without `METRICS_TOKEN` it answers 404; a request without the
bearer token, 401. Labels are bounded: route templates, venues, statuses, codes, task names; never
a user id, an order id or a raw path."""

from __future__ import annotations

import atexit
import contextlib
import hmac
import logging
import os
import threading
import time
from bisect import bisect_left

from django.db import connection, transaction
from prometheus_client import values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


def _process_id() -> int:
    """This process's id, kept up to date across forks (Celery's prefork children): the
    multiprocess store asks for it on every update, and os.getpid() is a system call each time."""
    return _pid


os.register_at_fork(after_in_child=_refresh_pid)

# prometheus_client picks its value store when it is first imported (a process that imported it
# before the directory was known, a test runner, switches here), before any metric exists here.
if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)  # the metrics below open their files now
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)

from prometheus_client import (  # noqa: E402  (after the value store is chosen)
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FILL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# --- HTTP --------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "tradedesk_http_requests_total", "HTTP requests by route template, method and status", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "tradedesk_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)

# --- orders ------------------------------------------------------------------------------------
ORDERS = Counter(
    "tradedesk_orders_total", "Order status changes (each order entering a status), by venue", ["status", "venue"]
)
RISK_REJECTIONS = Counter("tradedesk_risk_rejections_total", "Orders refused before they exist, by code", ["code"])
EXECUTOR_IN_FLIGHT = Gauge(
    "tradedesk_executor_in_flight", "Venue calls under way in the executor", ["venue"], multiprocess_mode="livesum"
)
SUBMIT_LATENCY = Histogram(
    "tradedesk_order_submit_duration_seconds",
    "The executor's venue call, by venue, action and outcome",
    ["venue", "action", "outcome"],
    buckets=LATENCY_BUCKETS,
)
FILL_LATENCY = Histogram(
    "tradedesk_order_fill_latency_seconds", "Order accepted to filled, by venue", ["venue"], buckets=FILL_BUCKETS
)

# --- fills -------------------------------------------------------------------------------------
FILLS = Counter("tradedesk_fills_total", "Fills applied, by venue and kind", ["venue", "kind"])
FILL_FEES = Counter("tradedesk_fill_fees_total", "Fees of the fills applied (quote currency), by venue", ["venue"])
FILL_NOTIONAL = Counter(
    "tradedesk_fill_notional_total", "Notional of the fills applied (quote currency), by venue", ["venue"]
)

# --- protective engine -------------------------------------------------------------------------
PROTECTIVE_EVALUATIONS = Counter(
    "tradedesk_protective_evaluations_total", "Protective engine runs, by door (beat / tick)", ["door"]
)
PROTECTIVE_TRIGGERS = Counter("tradedesk_protective_triggers_total", "Protective orders triggered, by door", ["door"])
PROTECTIVE_LATENCY = Histogram(
    "tradedesk_protective_evaluation_duration_seconds",
    "One protective engine run, by door",
    ["door"],
    buckets=LATENCY_BUCKETS,
)

# --- Celery ------------------------------------------------------------------------------------
TASK_LATENCY = Histogram(
    "tradedesk_task_duration_seconds", "Celery task run time, by task", ["task"], buckets=LATENCY_BUCKETS
)
TASK_RESULTS = Counter("tradedesk_tasks_total", "Celery tasks run, by task and outcome", ["task", "outcome"])
BEAT_SENT = Counter("tradedesk_beat_sent_total", "Tasks Beat sent, by task", ["task"])
BEAT_LAST_SENT = Gauge(
    "tradedesk_beat_last_sent_timestamp_seconds", "When Beat last sent a task", multiprocess_mode="max"
)

# --- providers ---------------------------------------------------------------------------------
PROVIDER_CALLS = Counter(
    "tradedesk_provider_calls_total",
    "Calls to a venue or provider, by venue, operation and outcome",
    ["venue", "operation", "outcome"],
)

# --- webhooks ----------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter("tradedesk_webhook_attempts_total", "Webhook delivery attempts, by outcome", ["outcome"])

# --- websockets --------------------------------------------------------------------------------
WS_CONNECTIONS = Gauge(
    "tradedesk_websocket_connections", "Open websocket connections, by path", ["path"], multiprocess_mode="livesum"
)
WS_DROPPED = Counter(
    "tradedesk_websocket_dropped_messages_total", "Websocket messages not delivered, by reason", ["reason"]
)

# --- NEAR Intents solver (solver/services/loop.py) -----------------------------------------------
NEAR_QUOTES = Counter(
    "tradedesk_near_quotes_total",
    "Relay quotes received, by pair (configured pairs; `other` for the rest) and status",
    ["pair", "status"],
)
NEAR_DECISIONS = Counter(
    "tradedesk_near_decisions_total", "Solver decisions, by outcome and skip reason", ["outcome", "reason"]
)
NEAR_RESPONSES = Counter("tradedesk_near_quote_responses_total", "Quote responses, by the relay's answer", ["status"])
NEAR_SETTLEMENTS = Counter("tradedesk_near_settlements_total", "Answered quotes closed, by outcome", ["outcome"])

# --- database ----------------------------------------------------------------------------------
DB_POOL_TIMEOUTS = Counter(
    "tradedesk_db_pool_timeouts_total", "Requests that waited for a database connection in vain (pool exhausted)"
)

# --- ledger ------------------------------------------------------------------------------------
LEDGER_MISMATCHES = Gauge(
    "tradedesk_ledger_mismatches", "Mismatches the last ledger replay check found", multiprocess_mode="mostrecent"
)
LEDGER_VERIFIED_AT = Gauge(
    "tradedesk_ledger_verify_last_run_timestamp_seconds",
    "When the ledger replay check last finished",
    multiprocess_mode="max",
)


# --- HTTP requests, tallied in memory between writes --------------------------------------------
# A write into the multiprocess files takes a lock and a struct write into a memory-mapped file;
# a request would make three (the counter, the histogram's sum and bucket), several microseconds
# in all, a tenth of the cheapest request (bench/metrics.py). So the middleware adds each request
# to a per-process tally (a dict look-up and three additions) and the tally is written into the
# metrics every HTTP_FLUSH_SECONDS by a daemon thread, before a scrape this process serves, and at
# exit. A scrape may so miss up to a second of another process's requests, never lose them.
HTTP_FLUSH_SECONDS = 1.0
_HTTP_SLOTS = len(LATENCY_BUCKETS) + 1  # the histogram's buckets, +Inf last

_http_lock = threading.Lock()
_http_tally: dict[tuple[str, str, int], list] = {}  # (route, method, status) -> [count, sum, bucket counts...]
_http_flusher_pid = 0  # the process whose flush thread runs (none yet in a new or forked process)

logger = logging.getLogger("tradedesk.metrics")


def http_observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count a request and its latency (written into the metrics by `http_flush`)."""
    slot = bisect_left(LATENCY_BUCKETS, seconds)  # the first bucket whose bound is >= seconds (as observe())
    key = (route, method, status)
    with _http_lock:
        row = _http_tally.get(key)
        if row is None:
            row = _http_tally[key] = [0, 0.0] + [0] * _HTTP_SLOTS
            if _http_flusher_pid != _pid:
                _http_flusher_start()
        row[0] += 1
        row[1] += seconds
        row[2 + slot] += 1


def http_flush() -> None:
    """Write the requests tallied since the last flush into the HTTP metrics."""
    global _http_tally
    with _http_lock:
        tally, _http_tally = _http_tally, {}
    for (route, method, status), row in tally.items():
        HTTP_REQUESTS.labels(route, method, str(status)).inc(row[0])
        latency = HTTP_LATENCY.labels(route, method)
        # prometheus_client has no observe-many: the values observe() writes, each once per flush
        latency._sum.inc(row[1])
        for bucket, n in zip(latency._buckets, row[2:], strict=True):
            if n:
                bucket.inc(n)


def _http_flush_loop() -> None:
    while True:
        time.sleep(HTTP_FLUSH_SECONDS)
        try:
            http_flush()
        except Exception:  # the thread outlives a failing write (a directory removed under it)
            logger.exception("writing the HTTP request counts failed")


def _http_flusher_start() -> None:
    """(called with the tally's lock held)"""
    global _http_flusher_pid
    _http_flusher_pid = _pid
    threading.Thread(target=_http_flush_loop, name="metrics-http-flush", daemon=True).start()


def _http_after_fork() -> None:
    """A forked child starts with an empty tally (the parent writes its own) and no thread yet."""
    global _http_lock, _http_tally
    _http_lock = threading.Lock()
    _http_tally = {}


os.register_at_fork(after_in_child=_http_after_fork)


class AfterCommitCount:
    """A count waiting for its transaction's commit (recognisable among the on-commit hooks)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        self.fn()


def after_commit(fn) -> None:
    """Count what a transaction did once it committed (a rolled-back change counts nothing)."""
    if connection.in_atomic_block:
        transaction.on_commit(AfterCommitCount(fn))
    else:
        fn()


_orders_by_labels: dict[tuple[str, str], object] = {}  # (status, venue) -> ORDERS' child


def order_status_count(*, status: str, venue: str) -> None:
    labels = (str(status), venue or "none")
    child = _orders_by_labels.get(labels)
    if child is None:  # `labels()` takes a lock and checks its arguments: about 20 µs, on every order
        child = _orders_by_labels[labels] = ORDERS.labels(status=labels[0], venue=labels[1])
    after_commit(child.inc)


def multiproc_dir() -> str:
    return os.environ.get(MULTIPROC_ENV, "")


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished process's live gauges (in-flight calls, websocket connections)."""
    if multiproc_dir():
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):  # the directory went first (a test's temporary one)
            multiprocess.mark_process_dead(pid or os.getpid())


if multiproc_dir():
    atexit.register(mark_process_dead)  # os.getpid() at exit: a forked child marks itself
atexit.register(http_flush)  # the last second's requests (registered last: runs first)


def wipe(directory: str) -> None:
    """Empty the multiprocess directory before the processes start (stale files of a previous run
    would be summed in)."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))


# --- the endpoint ------------------------------------------------------------------------------


def exposition() -> bytes:
    """Every process's samples, then the state gauges read now."""
    from config.observability import StateCollector

    http_flush()  # this process's requests so far
    if multiproc_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(StateCollector())
    return body + generate_latest(state)


def metrics_view(request):
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse

    from config.errors import envelope

    token = settings.METRICS_TOKEN
    if not token:  # never open: without a token the endpoint does not exist
        return JsonResponse(envelope("NOT_FOUND", "Not found."), status=404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = JsonResponse(envelope("NOT_AUTHENTICATED", "A bearer token is required."), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    started = time.monotonic()
    body = exposition()
    response = HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)  # every Prometheus 2.x and 3.x reads it
    response["X-Scrape-Seconds"] = f"{time.monotonic() - started:.4f}"
    return response
