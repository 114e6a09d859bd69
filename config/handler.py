"""Django's ASGI handler, with every request's sync code run on a reused thread.

Under ASGI, Django runs the sync parts of a request (sync middleware, sync views, the ORM,
the request_started/finished signals) in a thread-sensitive context of its own: asgiref makes
a new single-thread executor for each request, and on exit a second thread to join it. Two
threads born and joined per request cost about as much CPU as a simple view itself. Here each
request borrows an idle single-thread executor instead (asgiref's `ThreadSensitiveContext(
executor=...)`, made for this) and gives it back when done: the same thread-sensitive
guarantee (one request's sync code runs on one thread, one call at a time), no thread made
in the steady state, and Django's per-thread state (database connections) kept between
requests, as under a threaded WSGI server.

Async views stay async: while one awaits, its thread is idle and it holds no executor's work;
the executor it borrowed is back in the pool only when it finishes, so the pool grows to the
number of requests in flight at once (idle executors beyond WEB_IDLE_THREADS are shut down).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers import asgi


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched only from the event loop's thread

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="django")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # A call still running (its request was cancelled) only delays the next request
            # that borrows this executor: it runs one call at a time, in order.
            if len(self._idle) < settings.WEB_IDLE_THREADS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)
