import re
import uuid

from config.context import correlation_id_var, request_id_var

_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID` or generate one; expose it to logs and echo it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = rid
        token = request_id_var.set(rid)
        ctoken = correlation_id_var.set(request.headers.get("X-Correlation-ID") or None)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
            correlation_id_var.reset(ctoken)
        response["X-Request-ID"] = rid
        return response


class OutageMiddleware:
    """A view outside DRF (the signer service, the admin, health pages) that fails because Redis
    or PostgreSQL is down answers 503 `SERVICE_UNAVAILABLE` (retryable), as the API does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from config.errors import OUTAGE_RETRY_AFTER, error_response, outage_error

        outage = outage_error(exception)
        if outage is None:
            return None
        response = error_response(request, outage)
        response["Retry-After"] = str(OUTAGE_RETRY_AFTER)
        return response
