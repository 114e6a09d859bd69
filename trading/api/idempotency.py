"""`@idempotent`: the one implementation of `Idempotency-Key` for DRF write endpoints.

    class TradeOpen(APIView):
        @extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER], ...)
        @idempotent
        def post(self, request): ...

Without the header the view runs as usual. Errors the view raises are turned into their
envelope response first, so a replay returns exactly what the first request got."""

from __future__ import annotations

import functools
import logging

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from trading.models import IdempotencyRecord
from trading.services.idempotency import (
    ClaimTaken,
    idempotency_claim,
    idempotency_complete,
    idempotency_deferrable,
    idempotency_deferring,
    idempotency_holding,
    idempotency_release,
    request_hash,
)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

logger = logging.getLogger(__name__)

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


def idempotent(view_method=None, *, claim_with_read: bool = False):
    """`claim_with_read`: the key is claimed by the view's first read instead of a statement of
    its own before the view (`idempotency_deferring`; for a view that reads before it writes,
    through `risk_snapshot_load`, and whose reads before it are harmless to repeat)."""
    if view_method is None:
        return functools.partial(idempotent, claim_with_read=claim_with_read)

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None or not request.user or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        digest = request_hash(method=request.method, path=request.path, body=request.body)
        claiming = {"user": request.user, "key": key, "method": request.method, "path": request.path}
        if claim_with_read and idempotency_deferrable():
            answered = _deferred(self, view_method, request, args, kwargs, claiming, digest)
            if answered is not None:
                return answered
        claim = idempotency_claim(**claiming, digest=digest)
        if claim.replay:
            return _replay(claim.record)
        return _run_claimed(self, view_method, request, args, kwargs, claim.record)

    return wrapper


def _replay(record) -> Response:
    return Response(record.response_body, status=record.response_status, headers={REPLAY_HEADER: "true"})


def _run_claimed(self, view_method, request, args, kwargs, record):
    try:
        with idempotency_holding(record=record) as pending:
            try:
                response = view_method(self, request, *args, **kwargs)
            except Exception as exc:
                response = self.handle_exception(exc)  # the envelope, as DRF would send it
    except BaseException:
        idempotency_release(record=record)
        raise
    body = getattr(response, "data", None)
    if pending.stored != (response.status_code, body):  # not stored with the view's write, as answered
        idempotency_complete(record=record, status=response.status_code, body=body)
    return response


def _deferred(self, view_method, request, args, kwargs, claiming, digest):
    """The view run with its claim deferred to its first read. Returns its response, or None
    when the key was held (the caller claims the usual way and answers as it says). A view that
    failed before its claim was made is answered as if it had run after one: the claim is made
    then, and a replay answers the stored response instead of this run's error."""
    pending = None
    try:
        with idempotency_deferring(**claiming, digest=digest) as pending:
            try:
                response = view_method(self, request, *args, **kwargs)
            except ClaimTaken:
                return None
            except Exception as exc:
                if pending.record_pk is None:
                    return _unclaimed(self, claiming, digest, exc=exc)
                response = self.handle_exception(exc)
    except BaseException:
        if pending is not None and pending.record_pk is not None:
            idempotency_release(record=IdempotencyRecord(pk=pending.record_pk))
        raise
    if pending.record_pk is None:  # cannot happen for a view that places through order_place
        logger.error("%s answered before its Idempotency-Key was claimed", view_method.__qualname__)
        return _unclaimed(self, claiming, digest, response=response)
    body = getattr(response, "data", None)
    if pending.stored != (response.status_code, body):
        idempotency_complete(record=IdempotencyRecord(pk=pending.record_pk), status=response.status_code, body=body)
    return response


def _unclaimed(self, claiming, digest, *, exc=None, response=None):
    """The view answered (`response`) or failed (`exc`) before its first read claimed the key:
    claim now. A replay answers the stored response; a fresh claim stores this answer (a 5xx, or
    an exception DRF does not answer, releases it)."""
    claim = idempotency_claim(**claiming, digest=digest)  # 409 / 422 as usual
    if claim.replay:
        return _replay(claim.record)
    if response is None:
        try:
            response = self.handle_exception(exc)  # the envelope, as DRF would send it
        except BaseException:
            idempotency_release(record=claim.record)
            raise
    idempotency_complete(record=claim.record, status=response.status_code, body=getattr(response, "data", None))
    return response
