"""Django's ASGI handler, with every sync request served in one go on a reused thread.

Under ASGI, Django runs a sync view's request in several steps: the request_started signal,
then the middleware chain and view, then response.close() (request_finished), each handed
from the event loop to a thread and back, with a task listening for the client's disconnect
beside them; and asgiref makes a new single-thread executor for each request, and on exit a
second thread to join it. That cost about as much CPU as a simple view itself.

Here a request for a sync view (the admin, most of the API, a 404, static files) is served as
a threaded WSGI server serves it: in one call on a thread borrowed from the process's pool,
through the sync middleware chain (`BaseHandler.load_middleware(is_async=False)`); the
response, read whole in that thread (a streaming one too), is then sent from the event loop.
A request for an async view goes through Django's own async path, in a thread-sensitive
context backed by a borrowed thread as well (asgiref's `ThreadSensitiveContext(executor=...)`):
while it awaits, it runs nothing on any thread, so requests waiting on an event do not hold
threads. Threads are reused; Django's per-thread state (database connections) stays between
requests; idle threads beyond WEB_IDLE_THREADS are shut down.

A sync view may leave work to await before its response is sent: a coroutine function on
`response.deferred` (a trade open / close waiting for the venue's outcome,
`trading/api/outcome.py`). The handler gives the thread back first, awaits it on the event loop
(it may change the response's status and content), then sends the response. Middleware has
seen the response as the view returned it (metrics count that status). Django's other
handlers (WSGI, the test client) ignore `deferred` and send the response as the view returned it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi, base
from django.urls import Resolver404, get_resolver, set_script_prefix

logger = logging.getLogger("tradedesk.web")


@lru_cache(maxsize=2048)
def _sync_view(path_info: str) -> bool:
    """Whether the view at `path_info` is sync (no view: the 404 handler, static files: sync)."""
    try:
        match = get_resolver().resolve(path_info)
    except Resolver404:
        return True
    return not iscoroutinefunction(match.func)


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self):
        super().__init__()  # the async middleware chain, for async views
        self._sync = base.BaseHandler()
        self._sync.load_middleware(is_async=False)  # the sync one, as under WSGI
        self._idle: list[ThreadPoolExecutor] = []  # touched only from the event loop's thread

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="django")
        deferred = None
        try:
            root = asgi.get_script_prefix(scope)
            path_info = scope["path"].removeprefix(root) or "/"
            if _sync_view(path_info):
                deferred = await self._handle_sync(scope, receive, send, executor, root)
            else:
                async with ThreadSensitiveContext(executor=executor):
                    await self.handle(scope, receive, send)
        finally:
            # A call still running (its request was cancelled) only delays the next request
            # that borrows this executor: it runs one call at a time, in order.
            if len(self._idle) < settings.WEB_IDLE_THREADS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)
        if deferred is not None:  # the thread is back in the pool; wait on the loop alone
            await deferred()

    async def _handle_sync(self, scope, receive, send, executor, root: str):
        """Serve the request; returns a coroutine function finishing it when the response has
        work deferred (`response.deferred`), else None (sent)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return None
        try:
            serve = sync_to_async(self._serve_sync, thread_sensitive=False, executor=executor)
            response, body = await serve(scope, body_file, root)
        finally:
            body_file.close()
        deferred = getattr(response, "deferred", None)
        if deferred is None:
            await self._send(send, response, body)
            return None

        async def finish() -> None:
            try:
                await deferred()
            except Exception:  # (Redis gone, say) the response goes as the view returned it
                logger.exception("deferred work of a response failed; sending it as the view returned it")
            await self._send(send, response, response.content)

        return finish

    async def _send(self, send, response, body: bytes) -> None:
        headers = [
            (name.encode("ascii") if isinstance(name, str) else bytes(name),
             value.encode("latin1") if isinstance(value, str) else bytes(value))
            for name, value in response.items()
        ]  # fmt: skip
        headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _serve_sync(self, scope, body_file, root: str):
        """The whole request in this thread, as a WSGI server runs it; returns the response
        (closed: request_finished has been sent) and its body."""
        set_script_prefix(root)
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self._sync.get_response(request)
        response._handler_class = self.__class__
        try:
            body = b"".join(response) if response.streaming else response.content
        finally:
            response.close()
        return response, body
