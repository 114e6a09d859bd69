import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from whitenoise.middleware import WhiteNoiseMiddleware

from config.context import correlation_id_var, request_id_var
from config.metrics import http_observe

_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class DualModeMiddleware:
    """A middleware usable in Django's sync chain and its async one (config/handler.py runs
    async views through the async chain, where a sync-only middleware would keep the request's
    thread blocked while the view awaits)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class RequestIdMiddleware(DualModeMiddleware):
    """Accept a sane `X-Request-ID` or generate one; expose it to logs and echo it back."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        tokens = self._enter(request)
        try:
            response = self.get_response(request)
        finally:
            self._exit(tokens)
        response["X-Request-ID"] = request.request_id
        return response

    async def __acall__(self, request):
        tokens = self._enter(request)
        try:
            response = await self.get_response(request)
        finally:
            self._exit(tokens)
        response["X-Request-ID"] = request.request_id
        return response

    @staticmethod
    def _enter(request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        return request_id_var.set(request.request_id), correlation_id_var.set(
            request.headers.get("X-Correlation-ID") or None
        )

    @staticmethod
    def _exit(tokens) -> None:
        request_id_var.reset(tokens[0])
        correlation_id_var.reset(tokens[1])


class StaticFilesMiddleware(DualModeMiddleware, WhiteNoiseMiddleware):
    """WhiteNoise (static files, served by the web process itself). In the async chain it
    passes every request on: that chain only serves resolved async views, never a static
    path (config/handler.py sends those through the sync chain, where WhiteNoise serves them)."""

    def __init__(self, get_response):
        WhiteNoiseMiddleware.__init__(self, get_response)
        DualModeMiddleware.__init__(self, get_response)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.get_response(request)  # a coroutine: the async chain awaits it
        return WhiteNoiseMiddleware.__call__(self, request)


class OutageMiddleware(DualModeMiddleware):
    """A view outside DRF (the signer service, the admin, health pages) that fails because Redis
    or PostgreSQL is down answers 503 `SERVICE_UNAVAILABLE` (retryable), as the API does."""

    def __call__(self, request):
        return self.get_response(request)  # in the async chain: the coroutine, awaited by the caller

    def process_exception(self, request, exception):
        from config.errors import OUTAGE_RETRY_AFTER, error_response, outage_error

        outage = outage_error(exception)
        if outage is None:
            return None
        response = error_response(request, outage)
        response["Retry-After"] = str(OUTAGE_RETRY_AFTER)
        return response


class MetricsMiddleware(DualModeMiddleware):
    """Count every request and time it (config/metrics.py), labelled by the route *template*
    the URL resolved to (`api/v1/orders/<int:pk>/`), never the raw path; `unmatched` when none."""

    def __init__(self, get_response):
        super().__init__(get_response)
        self._async = iscoroutinefunction(get_response)  # decided once, not per request

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            deferred = getattr(response, "deferred", None)
            if deferred is not None:  # counted once the deferred work has made the final answer
                response.deferred = _observed_after(deferred, request, response, started)
                status = None
            return response
        finally:
            if status is not None:
                _observe(request, status, time.perf_counter() - started)

    async def __acall__(self, request):
        started = time.perf_counter()
        status = 500
        try:
            response = await self.get_response(request)
            status = response.status_code
            return response
        finally:
            _observe(request, status, time.perf_counter() - started)


def _observed_after(deferred, request, response, started: float):
    async def observed() -> None:
        try:
            await deferred()
        finally:
            _observe(request, response.status_code, time.perf_counter() - started)

    return observed


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _observe(request, status: int, seconds: float) -> None:
    match = request.resolver_match  # (None until the URL resolves, and for a 404)
    route = "unmatched" if match is None else (match.route or match.view_name or "unmatched")
    method = request.method
    http_observe(route, method if method in _METHODS else "OTHER", status, seconds)
