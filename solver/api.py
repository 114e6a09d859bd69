"""Staff API of the NEAR Intents solver loop (`/api/v1/ops/near-intents/...`): the components'
state and controls, the pair filter, the threshold and limits, skip reasons and the chain of one
quote. Errors are the usual envelope; every change records who and why in the ledger."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError
from solver.services import config as config_services
from solver.services import queries
from trading.api.serializers import Amount
from trading.permissions import IsStaff
from trading.services.operator import PERM_PAUSE, PERM_RISK_LIMIT, actor_label, control_state_change, permission_require
from trading.throttling import ScopedUserAndIpThrottle

ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}
ACTIONS = ("arm", "disarm", "pause", "resume", "drain")


class _Ops(APIView):
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"


class ReasonRequest(serializers.Serializer):
    reason = serializers.CharField(max_length=500, trim_whitespace=True)


class ControlRequest(ReasonRequest):
    expires_at = serializers.DateTimeField(required=False, help_text="arm / pause only: lapses then")


class PairFilterRequest(ReasonRequest):
    pairs = serializers.ListField(child=serializers.CharField(max_length=40), max_length=50)


class ThresholdRequest(ReasonRequest):
    threshold_pct = Amount(max_digits=12, decimal_places=6, min_value=0, max_value=99)


class LimitsRequest(ReasonRequest):
    spread_pct = Amount(max_digits=12, decimal_places=6, min_value=0, max_value=99, required=False)
    max_notional_quote = Amount(max_digits=30, decimal_places=8, min_value=0, required=False)
    max_notional_hour = Amount(max_digits=30, decimal_places=8, min_value=0, required=False)
    price_max_age_ms = serializers.IntegerField(min_value=1, max_value=3_600_000, required=False)


def _settings_view() -> dict:
    row = config_services.config_get()
    return {
        "pairs": row.pairs,
        "defaults": {"pairs": config_services.defaults()["pairs"]},
        "threshold_pct": queries._text(row.threshold_pct),
        "spread_pct": queries._text(row.spread_pct),
        "max_notional_quote": queries._text(row.max_notional_quote),
        "max_notional_hour": queries._text(row.max_notional_hour),
        "price_max_age_ms": row.price_max_age_ms,
        "changed_by": row.changed_by,
        "changed_at": row.changed_at,
        "reason": row.reason,
    }


class SolverState(_Ops):
    @extend_schema(operation_id="ops_near_intents_state", responses={200: dict, 403: ERROR})
    def get(self, request):
        """Each component (ingest, strategy, executor): control state, the last message and its
        age, counters; skip reasons over the last hour and day."""
        return Response({**queries.solver_state(), "settings": _settings_view()})


class ComponentAction(_Ops):
    @extend_schema(
        operation_id="ops_near_intents_component_action",
        request=ControlRequest,
        responses={200: dict, 400: ERROR, 403: ERROR, 404: ERROR},
        description="arm | disarm | pause | resume | drain one component (ingest, strategy, executor).",
    )
    def post(self, request, component: str, action: str):
        name = queries.COMPONENT_NAMES.get(component)
        if name is None or action not in ACTIONS:
            raise ApplicationError(
                f"No {component}/{action}: components {', '.join(queries.COMPONENT_NAMES)}; "
                f"actions {', '.join(ACTIONS)}.",
                code="NOT_FOUND",
                status_code=404,
            )
        body = ControlRequest(data=request.data)
        body.is_valid(raise_exception=True)
        control_state_change(actor=request.user, component=name, action=action, **body.validated_data)
        return Response(queries.solver_state()["components"][component])


class PairFilter(_Ops):
    @extend_schema(operation_id="ops_near_intents_pair_filter", responses={200: dict, 403: ERROR})
    def get(self, request):
        """The pairs quoted, and the default they reset to."""
        view = _settings_view()
        return Response({"pairs": view["pairs"], "defaults": view["defaults"]["pairs"]})

    @extend_schema(
        operation_id="ops_near_intents_pair_filter_set",
        request=PairFilterRequest,
        responses={200: dict, 400: ERROR, 403: ERROR},
    )
    def put(self, request):
        """Replace the pair filter (ledger near_intents.settings_changed, before and after)."""
        permission_require(actor=request.user, perm=PERM_PAUSE)
        body = PairFilterRequest(data=request.data)
        body.is_valid(raise_exception=True)
        config_services.config_set(
            actor=actor_label(request.user), reason=body.validated_data["reason"], pairs=body.validated_data["pairs"]
        )
        return self.get(request)


class PairFilterReset(_Ops):
    @extend_schema(
        operation_id="ops_near_intents_pair_filter_reset", request=ReasonRequest, responses={200: dict, 403: ERROR}
    )
    def post(self, request):
        """Back to NEAR_SOLVER_PAIRS."""
        permission_require(actor=request.user, perm=PERM_PAUSE)
        body = ReasonRequest(data=request.data)
        body.is_valid(raise_exception=True)
        config_services.pair_filter_reset(actor=actor_label(request.user), reason=body.validated_data["reason"])
        return PairFilter().get(request)


class Threshold(_Ops):
    @extend_schema(
        operation_id="ops_near_intents_threshold",
        request=ThresholdRequest,
        responses={200: dict, 400: ERROR, 403: ERROR},
    )
    def put(self, request):
        """The minimum gross edge (%) a quote must reach (risk_admin; audited)."""
        permission_require(actor=request.user, perm=PERM_RISK_LIMIT)
        body = ThresholdRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        config_services.config_set(actor=actor_label(request.user), reason=data.pop("reason"), **data)
        return Response(_settings_view())


class Limits(_Ops):
    @extend_schema(
        operation_id="ops_near_intents_limits", request=LimitsRequest, responses={200: dict, 400: ERROR, 403: ERROR}
    )
    def put(self, request):
        """The spread, notional caps and price age limit (risk_admin; audited)."""
        permission_require(actor=request.user, perm=PERM_RISK_LIMIT)
        body = LimitsRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        config_services.config_set(actor=actor_label(request.user), reason=data.pop("reason"), **data)
        return Response(_settings_view())


class SkipReasons(_Ops):
    @extend_schema(operation_id="ops_near_intents_skip_reasons", responses={200: dict, 403: ERROR})
    def get(self, request):
        """Skipped decisions per reason over the last hour and the last day."""
        return Response(queries.skip_reasons())


class QuoteChain(_Ops):
    @extend_schema(operation_id="ops_near_intents_quote", responses={200: dict, 403: ERROR, 404: ERROR})
    def get(self, request, quote_id: str):
        """The chain of one quote: the raw request, the decision with the reference sample and
        inventory snapshot it used (why it was skipped), the command, the relay's answer, the
        status and settlement, and every ledger event of it in order."""
        return Response(queries.quote_chain(quote_id))
