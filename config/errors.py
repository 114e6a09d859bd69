"""One domain error base and one HTTP error envelope:
``{"error": {"code", "message", "details", "timestamp", "request_id"}}``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from config.context import request_id_var

logger = logging.getLogger("tradedesk.errors")


class ApplicationError(Exception):
    """A domain error with a stable code. Services raise it; the API maps it to the envelope."""

    status_code = 400
    code = "APPLICATION_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details=None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.details = details or {}


class NotFoundError(ApplicationError):
    status_code = 404
    code = "NOT_FOUND"


class ConflictError(ApplicationError):
    status_code = 409
    code = "CONFLICT"


def envelope(code: str, message: str, details=None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details if details is not None else {},
            "timestamp": datetime.now(UTC).isoformat(),
            "request_id": request_id_var.get(),
        }
    }


OUTAGE_RETRY_AFTER = 2  # seconds, in the Retry-After of a 503 SERVICE_UNAVAILABLE


def outage_error(exc) -> ApplicationError | None:
    """A service the request needed (Redis: cache, throttles, broker; PostgreSQL) being down is
    the server's temporary state, not a fault in the request: 503 `SERVICE_UNAVAILABLE` with
    `details.retryable`. Nothing was written (a write that fails this way rolls back), so the
    same request may be sent again (with its Idempotency-Key)."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    from config.cache import REDIS_ERRORS

    if not isinstance(exc, REDIS_ERRORS + (BrokerError, OperationalError, InterfaceError)):
        return None
    if _pool_timeout(exc):
        from config.metrics import DB_POOL_TIMEOUTS

        DB_POOL_TIMEOUTS.inc()
    logger.warning("a service this request needs is unavailable: %s: %s", type(exc).__name__, str(exc)[:300])
    return ApplicationError(
        "A service this request needs is unavailable; retry shortly.",
        code="SERVICE_UNAVAILABLE",
        details={"retryable": True, "retry_after_seconds": OUTAGE_RETRY_AFTER},
        status_code=503,
    )


def _pool_timeout(exc) -> bool:
    """The database pool had no connection to give within its timeout (psycopg_pool.PoolTimeout,
    raised as or under Django's OperationalError)."""
    seen = 0
    while exc is not None and seen < 5:
        if type(exc).__name__ == "PoolTimeout":
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


_DRF_CODES = {
    drf.ValidationError: ("VALIDATION_ERROR", "Invalid input."),
    drf.ParseError: ("PARSE_ERROR", None),
    drf.AuthenticationFailed: ("AUTHENTICATION_FAILED", None),
    drf.NotAuthenticated: ("NOT_AUTHENTICATED", None),
    drf.PermissionDenied: ("PERMISSION_DENIED", None),
    drf.NotFound: ("NOT_FOUND", None),
    drf.MethodNotAllowed: ("METHOD_NOT_ALLOWED", None),
    drf.NotAcceptable: ("NOT_ACCEPTABLE", None),
    drf.UnsupportedMediaType: ("UNSUPPORTED_MEDIA_TYPE", None),
    drf.Throttled: ("THROTTLED", None),
}


def exception_handler(exc, context):
    """DRF exception handler: every error leaves as the envelope; internals never leak."""
    if isinstance(exc, RequestDataTooBig):  # request.body over DATA_UPLOAD_MAX_MEMORY_SIZE
        from config.inputs import payload_too_large

        exc = payload_too_large()
    if isinstance(exc, ApplicationError):
        return Response(envelope(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    if isinstance(exc, drf.APIException):
        code, message = "API_ERROR", None
        for cls, (c, m) in _DRF_CODES.items():
            if isinstance(exc, cls):
                code, message = c, m
                break
        details = {}
        if isinstance(exc, drf.ValidationError):
            details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        elif getattr(exc, "reason", None):  # a refused credential says why (trading/auth.py)
            details = {"reason": exc.reason}
        if message is None and not isinstance(exc, drf.ValidationError):
            message = str(exc.detail)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + (0 if exc.wait == int(exc.wait) else 1))
            details = {"retry_after_seconds": int(headers["Retry-After"])}
        return Response(envelope(code, message or str(exc.detail), details), status=exc.status_code, headers=headers)

    outage = outage_error(exc)
    if outage is not None:
        return Response(
            envelope(outage.code, outage.message, outage.details),
            status=outage.status_code,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        )
    logger.exception("unhandled error in API view", extra={"view": context.get("view").__class__.__name__})
    return Response(envelope("INTERNAL_ERROR", "An internal error occurred."), status=500)


def _wants_envelope(request) -> bool:
    return request.path.startswith(("/api/", "/internal/", "/health", "/ready"))


def error_response(request, error: ApplicationError):
    """`error` as a response outside DRF (middleware, Django's handlers): the envelope for the
    API's paths, plain text for the admin's."""
    if _wants_envelope(request):
        return JsonResponse(envelope(error.code, error.message, error.details), status=error.status_code)
    from django.http import HttpResponse

    return HttpResponse(error.message, status=error.status_code, content_type="text/plain; charset=utf-8")


def handler400(request, exception=None):
    """Django's own 400s (a body over DATA_UPLOAD_MAX_MEMORY_SIZE read through request.body,
    too many form fields, a bad Host header)."""
    if isinstance(exception, RequestDataTooBig):
        from config.inputs import payload_too_large

        error = payload_too_large()
    else:
        error = ApplicationError("Bad request.", code="BAD_REQUEST")
    return error_response(request, error)


def handler404(request, exception=None):
    if _wants_envelope(request):
        return JsonResponse(envelope("NOT_FOUND", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_envelope(request):
        return JsonResponse(envelope("INTERNAL_ERROR", "An internal error occurred."), status=500)
    from django.views.defaults import server_error

    return server_error(request)
