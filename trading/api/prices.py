"""`GET /api/v1/prices/{pair}` and `GET /api/v1/prices?pairs=A,B`: each pair's price at the venue
it routes to (cached; `venue` says whose price it is, `source` where it came from). A pair is
named as the client likes: our market name (BTC-USD) or an alias (BTCUSD, BTCUSDT, BTC/USD,
EURUSD; `providers.markets.market_resolve`); an unknown one is a 404 INVALID_MARKET, or is
listed in `unknown` by the bulk read. Open to anyone, as seed 003 §4.3 shows them: market
data, no user's."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
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
    # market data, open as seed 003 §4.3 shows it (no Authorization); throttled per IP
    permission_classes = [AllowAny]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "prices"  # 100/min per user and per IP by default (THROTTLE_RATES)


class PriceDetail(_PriceView):
    @extend_schema(
        operation_id="price_get",
        parameters=[s.PriceQuery],
        responses={200: s.PriceSerializer},
        description="One pair's price. `pair`: our market name (BTC-USD) or an alias (BTCUSD, BTCUSDT, "
        "BTC/USD); unknown: 404 INVALID_MARKET.",
    )
    def get(self, request, pair: str):
        from providers.markets import market_resolve
        from providers.prices import price_get

        q = s.PriceQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        try:
            tick = price_get(market_resolve(pair), use_cache=q.validated_data["use_cache"])
        except VenueException as exc:
            raise _error(exc) from exc
        return Response(s.PriceSerializer(s.price_data(tick, pair=pair)).data)


class PriceList(_PriceView):
    @extend_schema(
        operation_id="prices_get",
        parameters=[s.PricesQuery],
        responses={200: s.PricesResponse},
        description="Prices of the named pairs (1 to 50, our names or aliases; each answer's `pair` is the "
        "name asked for, `symbol` our market), or of every market without `pairs`. Names that are no "
        "market are listed in `unknown`, markets without a price now in `unavailable`.",
    )
    def get(self, request):
        from providers.markets import market_resolve, markets_list
        from providers.prices import price_get_many

        q = s.PricesQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        raw = q.validated_data.get("pairs")
        unknown: list[str] = []
        if raw is None:
            try:
                wanted = {m.symbol: m.symbol for m in markets_list()}
            except VenueException as exc:
                raise _error(exc) from exc
        else:
            names = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
            if not names or len(names) > 50:
                raise ApplicationError("Give 1 to 50 pairs.", code="VALIDATION_ERROR", details={"pairs": ["1 to 50"]})
            wanted = {}
            for name in names:
                try:
                    wanted[name] = market_resolve(name)
                except VenueException as exc:
                    if str(exc.error.code) != "INVALID_MARKET":
                        raise _error(exc) from exc
                    unknown.append(name)
        try:
            ticks = price_get_many(sorted(set(wanted.values())), use_cache=q.validated_data["use_cache"])
        except VenueException as exc:
            raise _error(exc) from exc
        data = [s.price_data(ticks[symbol], pair=name) for name, symbol in wanted.items() if symbol in ticks]
        unavailable = [name for name, symbol in wanted.items() if symbol not in ticks]
        return Response(
            {"prices": s.PriceSerializer(data, many=True).data, "unknown": unknown, "unavailable": unavailable}
        )
