"""The project's ASGI application behind a per-process concurrency limit for the benchmark.

Django runs each request of a sync view in its own thread under ASGI; with 32 clients and a
few CPUs, 16 requests at once in one process only contend for the GIL and the connection
pool. Like gunicorn's sync workers, this lets BENCH_SERVER_CONCURRENCY requests into Django
per process and queues the rest in the event loop (the queueing shows in client-side latency,
not in the Server-Timing header)."""

import asyncio
import os

from config.asgi import application as project_application

LIMIT = int(os.environ.get("BENCH_SERVER_CONCURRENCY", "1"))
_semaphore: asyncio.Semaphore | None = None


async def application(scope, receive, send):
    global _semaphore
    if scope["type"] != "http":
        return await project_application(scope, receive, send)
    if _semaphore is None:
        _semaphore = asyncio.Semaphore(LIMIT)
    async with _semaphore:
        return await project_application(scope, receive, send)
