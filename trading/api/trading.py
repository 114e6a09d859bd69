"""Trading API (`/api/v1/trading/...`): thin doors onto `trading.services.orders`."""

import json
from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFoundError
from config.pagination import NamedLimitOffsetPagination
from trading.api import serializers as s
from trading.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from trading.api.outcome import PREFER_PARAMETER, outcome_waited
from trading.models import Order, Position
from trading.selectors import orders_for_user, positions_for_user, trade_open_for_user
from trading.services import orders as order_services
from trading.throttling import ScopedUserAndIpThrottle

ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}
THROTTLED = {"description": "over the rate limit: the error envelope (code `throttled`) and `Retry-After`"}
PENDING = (
    'accepted, not executed yet (`status: "pending"`): the wait ran out, the order rests (LIMIT, protective), '
    "or `Prefer: respond-async` (answered with `Preference-Applied: respond-async`)"
)
FILLED_OPEN = 'executed while the request waited: `status: "success"`, transaction_hash, pair_id, trade_index'
FILLED_CLOSE = 'closed at the venue while the request waited: `status: "closed"`, transaction_hash'
FAILED = {
    "description": "the venue refused the order while the request waited: the envelope, code "
    "`TRADE_EXECUTION_FAILED`, the venue's code in `details.venue_code`"
}
TIMED_OUT = {
    "description": "the venue did not confirm the order (its state is unknown until reconciled): the envelope, "
    "code `VENUE_TIMEOUT`"
}


class _Throttled:
    """Executing a trade (open, close) counts against the `trade` limit (THROTTLE_RATES, 10/min
    per user and per IP by default); every other trading call against the general `api` one."""

    throttle_classes = [ScopedUserAndIpThrottle]
    trade_methods: tuple[str, ...] = ()

    def get_throttle_scope(self, request) -> str:
        return "trade" if request.method in self.trade_methods else "api"


def _placed(order: Order) -> tuple[int, dict]:
    """The answer to a placed order (before `outcome_waited` waits for its outcome)."""
    return status.HTTP_202_ACCEPTED, s.order_placed_data(order)


class TradeOpen(_Throttled, APIView):
    trade_methods = ("POST",)

    def throttle_prefetch(self, request) -> list[str]:
        """The new order's price, read in the rate limit's Redis round trip (a plain open: a
        protective order or a close of a trade is priced at the trade's venue, read as usual)."""
        try:  # the body as it came (request.data would swallow a parse error the view must answer)
            data = json.loads(request.body or b"null")
        except Exception:  # not JSON, or a stream already read: the view reads it as usual
            return []
        if not isinstance(data, dict) or data.get("pair_id") or data.get("trade_index"):
            return []
        asset, asset_type = data.get("asset"), data.get("asset_type") or ""
        if not isinstance(asset, str) or not asset or not isinstance(asset_type, str):
            return []
        return order_services.order_price_keys(asset=asset, asset_type=asset_type)

    @extend_schema(
        operation_id="trading_trade_open",
        request=s.TradeOpenRequest,
        responses={
            201: OpenApiResponse(s.OrderPlacedResponse, description=FILLED_OPEN),
            202: OpenApiResponse(s.OrderPlacedResponse, description=PENDING),
            400: ERROR,
            404: ERROR,
            409: ERROR,
            422: ERROR,
            429: THROTTLED,
            502: FAILED,
            504: TIMED_OUT,
        },
        parameters=[IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER],
        description=(
            "Open a trade (MARKET, LIMIT) or place a protective order (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, "
            "OCO; give pair_id + trade_index of the open trade). Passes the risk engine (422 RISK_* codes), "
            "then executes. Synchronous by default: the answer waits for the venue's outcome up to "
            "TRADE_SYNC_WAIT_SECONDS (201 `success` with transaction_hash, pair_id, trade_index; 502/504 on a "
            "failure); 202 `pending` when it takes longer, for a LIMIT or protective order that rests, or at once "
            "with `Prefer: respond-async` (then follow GET /orders/{id})."
        ),
    )
    @outcome_waited("open")
    @idempotent(claim_with_read=True)  # claimed by the risk snapshot's read (order_place)
    def post(self, request):
        body = s.TradeOpenRequest(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        trade = None
        if d.get("pair_id") or d.get("trade_index"):
            trade = trade_open_for_user(
                user=request.user, pair_id=str(d.get("pair_id", "")), trade_index=str(d.get("trade_index", ""))
            )
            if trade is None:
                raise NotFoundError("No such open trade.", code="TRADE_NOT_FOUND")
        slippage = d.get("slippage_percentage")
        asset_type = d.get("asset_type", "")
        order = order_services.order_place(
            user=request.user,
            asset=order_services.asset_resolve(d["asset"], asset_type),
            asset_type=asset_type,
            side=d["direction"],
            order_type=d["order_type"],
            collateral=d.get("collateral"),
            leverage=d.get("leverage"),
            price=d.get("price"),
            stop_price=d.get("stop_price"),
            take_profit_price=d.get("take_profit_price"),
            trailing_stop_distance=d.get("trailing_stop_distance"),
            trailing_stop_percentage=d.get("trailing_stop_percentage"),
            oco_stop_price=d.get("oco_stop_price"),
            oco_take_profit_price=d.get("oco_take_profit_price"),
            reduce_only=d.get("reduce_only", False),
            trade=trade,
            max_slippage=None if slippage is None else slippage / Decimal(100),
            client_order_id=d.get("client_order_id") or None,
            cache_prefetched=getattr(request, "cache_prefetched", None),
            placed_response=_placed,
        )
        return Response(s.order_placed_data(order), status=status.HTTP_202_ACCEPTED)


class TradeDetail(_Throttled, APIView):
    trade_methods = ("DELETE",)

    @extend_schema(
        operation_id="trading_trade_close",
        request=s.TradeCloseRequest,
        parameters=[
            IDEMPOTENCY_KEY_PARAMETER,
            PREFER_PARAMETER,
            OpenApiParameter("percentage", float, description="share to close, percent (also accepted in the body)"),
        ],
        responses={
            200: OpenApiResponse(s.OrderPlacedResponse, description=FILLED_CLOSE),
            202: OpenApiResponse(s.OrderPlacedResponse, description=PENDING),
            404: ERROR,
            409: ERROR,
            422: ERROR,
            429: THROTTLED,
            502: FAILED,
            504: TIMED_OUT,
        },
        description=(
            "Close an open trade (or `percentage` of it) through the executor; `pair_id` and `index` as the "
            "trade shows them. Synchronous by default like the open: 200 `closed` with the transaction_hash, "
            "502/504 on a failure, 202 `pending` after TRADE_SYNC_WAIT_SECONDS or with `Prefer: respond-async`."
        ),
    )
    @outcome_waited("close")
    @idempotent
    def delete(self, request, pair_id: str, index: str):
        data = request.data if isinstance(request.data, dict) and request.data else request.query_params
        body = s.TradeCloseRequest(data=data)
        body.is_valid(raise_exception=True)
        order = order_services.trade_close(
            user=request.user,
            pair_id=pair_id,
            trade_index=index,
            percentage=body.validated_data.get("percentage"),
            client_order_id=body.validated_data.get("client_order_id") or None,
        )
        return Response(s.order_placed_data(order), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="trading_trade_protection_update",
        request=s.TradeProtectionRequest,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: s.TradeSerializer, 400: ERROR, 404: ERROR, 422: ERROR},
        description="Set or remove (null) the stop-loss / take-profit of an open trade.",
    )
    @idempotent
    def patch(self, request, pair_id: str, index: str):
        body = s.TradeProtectionRequest(data=request.data)
        body.is_valid(raise_exception=True)
        trade = order_services.trade_protection_update(
            user=request.user, pair_id=pair_id, trade_index=index, **body.validated_data
        )
        from trading.services.marks import marks_latest

        marks = marks_latest([(trade.provider, trade.asset)])
        return Response(s.TradeSerializer(trade, context={"marks": marks}).data)


class PositionsPage(NamedLimitOffsetPagination):
    results_key = "positions"


class PositionList(_Throttled, generics.ListAPIView):
    serializer_class = s.PositionSerializer
    pagination_class = PositionsPage

    @extend_schema(
        operation_id="trading_positions",
        parameters=[s.PositionFilter],
        description="The caller's positions (open by default): `{positions: [...], count, limit, offset, next, "
        "previous}`. Each carries the seed API's `id, asset, side, size, entry_price, current_price, "
        "unrealized_pnl, leverage` next to ours.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        f = s.PositionFilter(data=self.request.query_params)
        f.is_valid(raise_exception=True)
        wanted = f.validated_data["status"]
        return positions_for_user(user=self.request.user, status=None if wanted == "all" else wanted)

    def get_serializer_context(self):
        """Open positions are marked at their venue's latest cached price of the asset (no
        price, or no Redis: as stored)."""
        from trading.services.marks import marks_latest

        context = super().get_serializer_context()
        held = Position.objects.filter(user=self.request.user, status=Position.Status.OPEN)
        context["marks"] = marks_latest(held.values_list("provider", "asset"))
        return context


class OrderList(_Throttled, generics.ListAPIView):
    serializer_class = s.OrderSerializer

    @extend_schema(operation_id="trading_orders", parameters=[s.OrderFilter])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        f = s.OrderFilter(data=self.request.query_params)
        f.is_valid(raise_exception=True)
        d = f.validated_data
        return orders_for_user(
            user=self.request.user,
            status=d.get("status"),
            asset=d.get("asset"),
            order_type=d.get("type"),
            origin=d.get("origin"),
        )


class OrderDetail(_Throttled, generics.RetrieveAPIView):
    serializer_class = s.OrderDetailSerializer

    @extend_schema(operation_id="trading_order", description="One order with its event timeline.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return Order.objects.filter(user=self.request.user)


class OrderCancel(_Throttled, APIView):
    @extend_schema(
        operation_id="trading_order_cancel",
        request=None,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={202: s.OrderSerializer, 404: ERROR, 409: ERROR},
        description="Cancel an order. Not yet at the venue: CANCELLED at once; resting at the venue: "
        "cancelled there by the executor (the order stays SUBMITTED until the venue answers).",
    )
    @idempotent
    def post(self, request, pk: int):
        order = order_services.order_cancel(user=request.user, order_id=pk)
        return Response(s.OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)
