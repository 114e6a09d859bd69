"""The metrics middleware's cost per request (config/middleware.py `MetricsMiddleware`: a request
counted and timed into the process's in-memory tally, written into prometheus_client's multiprocess
files once a second, as the desk runs it), beside
the same endpoint without it, in one run.

Two Django WSGI handlers are built in this process from the project's middleware list: one as
configured, one with `MetricsMiddleware` removed. Each serves `GET /health` (the cheapest endpoint:
the middleware's share of it is the largest any endpoint sees) and `GET /api/v1/trading/orders/1`
without credentials (DRF, 401: a resolved route template with a parameter), BENCH_REQUESTS x
BENCH_ROUNDS times each, in blocks of 20 requests taken in turn (without, with, without, ...), so
a drift in the shared machine's state touches both alike. Reported: CPU per request (process time) for each, the
difference, and the difference as a share of the endpoint's CPU without the middleware; beside
it the difference between two handlers both without it (the run's noise floor). Also
the middleware's own bookkeeping alone (`_observe`: the tally), per call, and the write of a
second's tally into the multiprocess files (`http_flush`, in the flush thread), per route.

Goal: under 5 % of the baseline endpoint's CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
BLOCK = 20
PATHS = ["/health", "/api/v1/trading/orders/1"]


def _handler(middleware: list[str]):
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware, ALLOWED_HOSTS=["*"]):
        return WSGIHandler()  # the middleware chain is built now, from these settings


def _serve(handler, path: str, n: int) -> float:
    """CPU seconds spent on `n` requests of `path`."""
    from django.test import RequestFactory

    environ = RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD="GET")
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    started = time.process_time()
    for _ in range(n):
        for _chunk in handler(dict(environ), start_response):
            pass
    spent = time.process_time() - started
    assert len(statuses) == n
    return spent


def main() -> None:
    # before Django and prometheus_client are imported: the desk's multiprocess mode
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tradedesk-bench-metrics-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)  # the 401s would log a warning each
    from django.conf import settings

    from config import middleware as mw

    full = list(settings.MIDDLEWARE)
    bare = [m for m in full if m != "config.middleware.MetricsMiddleware"]
    assert len(bare) == len(full) - 1, "MetricsMiddleware is not in MIDDLEWARE"
    # a second handler without the middleware: the A/A difference is the run's noise floor
    handlers = {"without": _handler(bare), "with": _handler(full), "without-again": _handler(bare)}

    print(f"{REQUESTS} requests x {ROUNDS} rounds per endpoint and variant (CPU time per request, µs)")
    print(f"{'endpoint':<28} {'without':>10} {'with':>10} {'cost':>8} {'share':>8}")
    for path in PATHS:
        for handler in handlers.values():
            _serve(handler, path, 200)  # warm up
        # small blocks taken in turn: the shared machine's drift touches both variants alike
        spent = dict.fromkeys(handlers, 0.0)
        for _ in range(ROUNDS * REQUESTS // BLOCK):
            for name in handlers:
                spent[name] += _serve(handlers[name], path, BLOCK)
        total = ROUNDS * REQUESTS // BLOCK * BLOCK
        without, with_, again = (spent[name] / total * 1e6 for name in ("without", "with", "without-again"))
        cost = with_ - without
        print(
            f"{path:<28} {without:>10.1f} {with_:>10.1f} {cost:>8.1f} {cost / without:>7.1%}"
            f"   (A/A noise: {again - without:+.1f} µs, {(again - without) / without:+.1%})"
        )

    # the bookkeeping alone, per request
    from django.test import RequestFactory

    request = RequestFactory().get("/health")
    request.resolver_match = None
    n = 50_000
    started = time.process_time()
    for _ in range(n):
        mw._observe(request, 200, 0.001)
    alone = (time.process_time() - started) / n * 1e6
    print(f"_observe alone (the in-memory tally): {alone:.2f} µs per request")
    from config.metrics import http_flush

    http_flush()
    started = time.process_time()
    for _ in range(n // 10):
        mw._observe(request, 200, 0.001)
        http_flush()  # a flush of one route (the flush thread: once a second per process)
    flush = (time.process_time() - started) / (n // 10) * 1e6 - alone
    print(f"http_flush (counter + histogram into the multiprocess files): {flush:.1f} µs per route per second")
    sys.stdout.flush()
