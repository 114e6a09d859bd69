"""Synchronous trade open / close: the answer waits for the venue's outcome (docs/api.md).

`@outcome_waited(kind)` sits on a view that places an order and answers 202 with
`order_placed_data` (status "pending"). Unless the request says `Prefer: respond-async`
(RFC 7240), it hangs a `deferred` coroutine on that response. The ASGI handler
(`config/handler.py`) gives the request's thread back, awaits `deferred` on the event loop
(`trading.realtime.waits`: the order's events, no polling, no thread) for up to
TRADE_SYNC_WAIT_SECONDS (or the client's `Prefer: wait=N`, if shorter), and sends what it made
of the response:

    filled              open 201 {status: "success", transaction_hash, pair_id, trade_index, ...}
                        close 200 {status: "closed", transaction_hash, ...}
    rejected/cancelled  502 TRADE_EXECUTION_FAILED (details: the venue's code)
    unknown             504 VENUE_TIMEOUT (the venue did not answer; reconciliation settles it)
    still pending       202 {status: "pending", order_status, ...} as the order stands

A server without that handler (WSGI, Django's test client) sends the 202 as it stands.

Idempotent replays: the stored answer is the 202 of the placement. A replay goes through the
same wait, so it answers the order's outcome (at once when the order is settled), or the
stored 202 with `Prefer: respond-async`.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework.renderers import JSONRenderer

from config.errors import envelope
from trading.models import Order, venue_ref

PREFER_PARAMETER = OpenApiParameter(
    name="Prefer",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    examples=[OpenApiExample("async", value="respond-async"), OpenApiExample("wait", value="wait=5")],
    description=(
        "RFC 7240. Without it the request waits for the venue's outcome up to TRADE_SYNC_WAIT_SECONDS "
        "(default 10): 201/200 with the outcome, 502/504 on a failure, 202 `pending` when it takes longer. "
        "`respond-async` answers 202 `pending` at once (with `Preference-Applied: respond-async`); "
        "`wait=N` waits at most N seconds (if shorter than the server's bound; `Preference-Applied: wait=N`); "
        "follow the order through GET /orders/{id}, the websocket or webhooks."
    ),
)

PENDING = "pending"
FILLED = frozenset({Order.Status.FILLED})
FAILED = frozenset({Order.Status.REJECTED, Order.Status.CANCELLED, Order.Status.EXPIRED})
RESTING = frozenset({Order.Status.SUBMITTED, Order.Status.PENDING_TRIGGER})  # a LIMIT or protective order


def _preferences(request) -> dict[str, str]:
    """The request's Prefer header(s) (RFC 7240) as {name: value}, names lower-cased."""
    out = {}
    for item in request.headers.get("Prefer", "").replace("\n", ",").split(","):
        name, _, value = item.split(";", 1)[0].strip().partition("=")
        if name:
            out.setdefault(name.lower(), value.strip().strip('"'))
    return out


def respond_async(request) -> bool:
    """Whether the request's Prefer header(s) hold the `respond-async` preference."""
    return "respond-async" in _preferences(request)


def wait_preferred(request) -> int | None:
    """The `wait=N` preference in seconds (RFC 7240 §4.3), or None when absent or not a number."""
    value = _preferences(request).get("wait", "")
    return int(value) if value.isascii() and value.isdigit() else None


def settled(order: Order) -> bool:
    """Whether the waiting is over: an outcome, or a LIMIT/protective order now resting (its
    execution waits for the price, not for the venue)."""
    if order.status in FILLED or order.status in FAILED or order.status == Order.Status.UNKNOWN:
        return True
    return order.order_type != Order.Type.MARKET and order.status in RESTING


def outcome_answer(order: Order, *, kind: str, placed: dict, request_id: str) -> tuple[int, dict]:
    """The (status, body) of the answer for `order` as it stands."""
    if order.status in FILLED:
        body = {**placed, **_order_fields(order)}
        if kind == "close":
            return 200, {**body, "status": "closed"}
        return 201, {**body, "status": "success"}
    if order.status in FAILED or order.status == Order.Status.UNKNOWN:
        details = {
            "order_id": order.pk,
            "order_status": order.status,
            "venue_code": order.error_code,
            "venue_message": order.error_message,
        }
        if order.status == Order.Status.UNKNOWN:
            error = envelope("VENUE_TIMEOUT", "The venue did not confirm the order in time.", details)
            status = 504
        else:
            error = envelope("TRADE_EXECUTION_FAILED", "The venue did not execute the order.", details)
            status = 502
        error["error"]["request_id"] = request_id
        return status, error
    return 202, {**placed, **_order_fields(order)}  # still pending (or resting): as it stands now


def _order_fields(order: Order) -> dict:
    return {
        "order_status": order.status,
        "pair_id": venue_ref(order.pair_id),
        "trade_index": venue_ref(order.trade_index),
        "transaction_hash": order.transaction_hash,
    }


def outcome_waited(kind: str):
    """Decorate a DRF view method (outside `@idempotent`) that answers an order's 202."""

    def decorate(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            response = view_method(self, request, *args, **kwargs)
            body = getattr(response, "data", None)
            if response.status_code != 202 or not isinstance(body, dict) or "order_id" not in body:
                return response
            if respond_async(request):
                response["Preference-Applied"] = "respond-async"
                return response
            if body.get("order_type") != Order.Type.MARKET and body.get("order_status") in RESTING:
                return response  # resting or held at once: nothing to wait for
            timeout = settings.TRADE_SYNC_WAIT_SECONDS
            wait = wait_preferred(request)
            if wait is not None:  # the client's own bound, never longer than the server's
                timeout = min(wait, timeout)
                response["Preference-Applied"] = f"wait={wait}"
            response.deferred = functools.partial(
                _deferred,
                response,
                kind=kind,
                user_id=request.user.pk,
                request_id=getattr(request, "request_id", ""),
                timeout=timeout,
            )
            return response

        return wrapper

    return decorate


async def _deferred(response, *, kind: str, user_id: int, request_id: str, timeout: float) -> None:
    """Wait for the order, then turn `response` (rendered, 202) into its outcome's answer."""
    from trading.realtime.waits import order_settled_wait

    placed = json.loads(response.content)
    order = await order_settled_wait(order_id=placed["order_id"], user_id=user_id, settled=settled, timeout=timeout)
    answer = None if order is None else outcome_answer(order, kind=kind, placed=placed, request_id=request_id)
    if answer is None:
        return
    response.status_code, data = answer
    response.content = JSONRenderer().render(data)
    response["Content-Length"] = str(len(response.content))
