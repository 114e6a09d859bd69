"""`GET /api/v1/prices/{pair}` and `GET /api/v1/prices?pairs=A,B`: each pair's price at the venue
it routes to (cached; `venue` says whose price it is, `source` where it came from)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError
from providers.interface import VenueException
from trading.api import serializers as s
from trading.throttling import ScopedUserAndIpThrottle


def _error(exc: VenueException) -> ApplicationError:
    status = 404 if str(exc.error.code) == "INVALID_MARKET" else 503
    return ApplicationError(exc.error.message, code=str(exc.error.code), details=exc.error.details, status_code=status)


class _PriceView(APIView):
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "prices"  # 100/min per user and per IP by default (THROTTLE_RATES)


class PriceDetail(_PriceView):
    @extend_schema(operation_id="price_get", parameters=[s.PriceQuery], responses={200: s.PriceSerializer})
    def get(self, request, pair: str):
        from providers.prices import price_get

        q = s.PriceQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        try:
            tick = price_get(pair.upper(), use_cache=q.validated_data["use_cache"])
        except VenueException as exc:
            raise _error(exc) from exc
        return Response(s.PriceSerializer(s.price_data(tick)).data)


class PriceList(_PriceView):
    @extend_schema(operation_id="prices_get", parameters=[s.PricesQuery], responses={200: s.PricesResponse})
    def get(self, request):
        from providers.prices import price_get_many

        q = s.PricesQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        pairs = [p.strip().upper() for p in q.validated_data["pairs"].split(",") if p.strip()]
        if not pairs or len(pairs) > 50:
            raise ApplicationError("Give 1 to 50 pairs.", code="validation_error", details={"pairs": "1 to 50"})
        try:
            ticks = price_get_many(pairs, use_cache=q.validated_data["use_cache"])
        except VenueException as exc:
            raise _error(exc) from exc
        data = [s.price_data(ticks[p]) for p in pairs if p in ticks]
        return Response({"prices": s.PriceSerializer(data, many=True).data})
