"""The project's ASGI application behind a per-process concurrency limit for the benchmark,
and the same behind Django's own ASGI handler (the stack before config/handler.py), so one
run measures both.

Django runs each request of a sync view in a thread; with 32 clients and a few CPUs, 16
requests at once in one process only contend for the GIL and the connection pool. Like
gunicorn's sync workers, this lets BENCH_SERVER_CONCURRENCY requests into Django per process
and queues the rest in the event loop (the queueing shows in client-side latency, not in the
Server-Timing header)."""

import asyncio
import os

from config.asgi import application as project_application

LIMIT = int(os.environ.get("BENCH_SERVER_CONCURRENCY", "1"))


def _limited(app):
    semaphore: asyncio.Semaphore | None = None

    async def limited(scope, receive, send):
        nonlocal semaphore
        if scope["type"] != "http":
            return await app(scope, receive, send)
        if semaphore is None:
            semaphore = asyncio.Semaphore(LIMIT)
        async with semaphore:
            return await app(scope, receive, send)

    return limited


def _stock():
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()  # Django's: a new thread (and another to join it) per request


application = _limited(project_application)
stock_application = _limited(_stock())
