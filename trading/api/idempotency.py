"""`@idempotent`: the one implementation of `Idempotency-Key` for DRF write endpoints.

    class TradeOpen(APIView):
        @extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER], ...)
        @idempotent
        def post(self, request): ...

Without the header the view runs as usual. Errors the view raises are turned into their
envelope response first, so a replay returns exactly what the first request got."""

from __future__ import annotations

import functools

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from trading.services.idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_holding,
    idempotency_release,
    request_hash,
)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the write safe to retry for 24 h: the same key with the same body returns the stored "
        "response; with a different body 422 IDEMPOTENCY_KEY_REUSED; while the first is in flight "
        "409 IDEMPOTENCY_IN_PROGRESS."
    ),
)


def idempotent(view_method):
    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None or not request.user or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        digest = request_hash(method=request.method, path=request.path, body=request.body)
        claim = idempotency_claim(user=request.user, key=key, method=request.method, path=request.path, digest=digest)
        if claim.replay:
            return Response(
                claim.record.response_body, status=claim.record.response_status, headers={REPLAY_HEADER: "true"}
            )
        try:
            with idempotency_holding(record=claim.record) as pending:
                try:
                    response = view_method(self, request, *args, **kwargs)
                except Exception as exc:
                    response = self.handle_exception(exc)  # the envelope, as DRF would send it
        except BaseException:
            idempotency_release(record=claim.record)
            raise
        body = getattr(response, "data", None)
        if pending.stored != (response.status_code, body):  # not stored with the view's write, as answered
            idempotency_complete(record=claim.record, status=response.status_code, body=body)
        return response

    return wrapper
