"""Staff API of the reference prices (`/api/v1/ops/reference-prices...`): the state of the sources
and the fair rates, a forced refresh, pause / resume per source, and the stored samples."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFoundError
from providers.models import ReferenceSample
from providers.reference.config import SOURCES
from trading.permissions import IsStaff
from trading.services import reference as reference_services
from trading.throttling import ScopedUserAndIpThrottle

ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}


class SymbolSerializer(serializers.Serializer):
    pair = serializers.CharField()
    price = serializers.CharField(allow_null=True)
    bid = serializers.CharField(allow_null=True)
    ask = serializers.CharField(allow_null=True)
    observed_at = serializers.DateTimeField(allow_null=True, help_text="when the source observed the price")
    received_at = serializers.DateTimeField(allow_null=True)
    age_ms = serializers.IntegerField(allow_null=True)
    via = serializers.CharField(help_text="ws | rest | poll")
    health = serializers.CharField(help_text="ok | stale | down | paused")


class SourceSerializer(serializers.Serializer):
    name = serializers.CharField()
    health = serializers.CharField(help_text="ok | stale | down | rate_limited | paused")
    health_reason = serializers.CharField()
    paused = serializers.BooleanField()
    pause_reason = serializers.CharField()
    changed_by = serializers.CharField()
    changed_at = serializers.DateTimeField(allow_null=True)
    connected = serializers.BooleanField(allow_null=True, help_text="kraken: the stream is connected")
    last_frame_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True, help_text="coingecko: last successful poll")
    backoff_until = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    last_error_at = serializers.DateTimeField(allow_null=True)
    errors = serializers.IntegerField()
    reconnects = serializers.IntegerField()
    invalid_messages = serializers.IntegerField()
    rate_limited = serializers.IntegerField()
    symbols = SymbolSerializer(many=True)


class LegSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="fresh | stale | missing | paused | not_configured")
    price = serializers.CharField(allow_null=True)
    age_ms = serializers.IntegerField(allow_null=True)


class LastSampleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    taken_at = serializers.DateTimeField()
    outcome = serializers.CharField()


class PairSerializer(serializers.Serializer):
    pair = serializers.CharField()
    outcome = serializers.CharField(help_text="ok | fallback | conflicted | unhealthy")
    usable = serializers.BooleanField()
    rate = serializers.CharField(allow_null=True, help_text="quote per base")
    inverse = serializers.CharField(allow_null=True, help_text="base per quote")
    source = serializers.CharField()
    fallback = serializers.CharField(help_text="coingecko when the rate is the fallback")
    cross_check = serializers.CharField(help_text="agrees | conflict | unavailable")
    divergence_bps = serializers.CharField(allow_null=True)
    age_ms = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    underlying = serializers.CharField()
    basis = serializers.JSONField(allow_null=True)
    kraken = LegSerializer()
    coingecko = LegSerializer()
    last_sample = LastSampleSerializer(allow_null=True)


class StateSerializer(serializers.Serializer):
    now = serializers.DateTimeField()
    policy = serializers.JSONField()
    sources = SourceSerializer(many=True)
    pairs = PairSerializer(many=True)


class RefreshRequest(serializers.Serializer):
    source = serializers.ChoiceField(choices=SOURCES, required=False, help_text="default: both")


class RefreshResponse(serializers.Serializer):
    results = serializers.JSONField(help_text="per source: {source, ok, refreshed: [pairs], error?, skipped?}")
    state = StateSerializer()


class SourceActionRequest(serializers.Serializer):
    source = serializers.ChoiceField(choices=SOURCES)
    reason = serializers.CharField(max_length=500, trim_whitespace=True)


class SampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReferenceSample
        fields = "__all__"


class SampleQuery(serializers.Serializer):
    pair = serializers.CharField(max_length=25)
    at = serializers.DateTimeField(required=False, help_text="default: now")


class _Ops(APIView):
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"


def _state() -> dict:
    from providers.reference.service import reference_state

    return StateSerializer(reference_state()).data


class ReferencePrices(_Ops):
    @extend_schema(operation_id="ops_reference_prices", responses={200: StateSerializer, 403: ERROR})
    def get(self, request):
        """Each source's health, counters, prices and ages; each pair's fair rate and policy outcome."""
        return Response(_state())


class ReferenceRefresh(_Ops):
    @extend_schema(
        operation_id="ops_reference_prices_refresh",
        request=RefreshRequest,
        responses={200: RefreshResponse, 400: ERROR, 403: ERROR, 409: ERROR, 503: ERROR},
        description="Ask the source (default: both) for prices now: Kraken's REST Ticker, a CoinGecko poll.",
    )
    def post(self, request):
        body = RefreshRequest(data=request.data)
        body.is_valid(raise_exception=True)
        results = reference_services.reference_refresh(actor=request.user, source=body.validated_data.get("source"))
        return Response({"results": results, "state": _state()})


def _source_view(action: str, service, description: str) -> type[APIView]:
    """POST {source, reason}: `service` as the requesting operator; answers the new state."""

    class SourceAction(_Ops):
        @extend_schema(
            operation_id=f"ops_reference_prices_{action}",
            request=SourceActionRequest,
            responses={200: StateSerializer, 400: ERROR, 403: ERROR},
            description=description,
        )
        def post(self, request):
            body = SourceActionRequest(data=request.data)
            body.is_valid(raise_exception=True)
            service(actor=request.user, **body.validated_data)
            return Response(_state())

    SourceAction.__name__ = SourceAction.__qualname__ = f"Reference{action.title()}"
    return SourceAction


ReferencePause = _source_view(
    "pause",
    reference_services.reference_source_pause,
    "Stop using a source (ledger event reference.source_paused with the reason).",
)
ReferenceResume = _source_view(
    "resume",
    reference_services.reference_source_resume,
    "Use a paused source again (ledger event reference.source_resumed with the reason).",
)


class ReferenceSampleAt(_Ops):
    @extend_schema(
        operation_id="ops_reference_prices_sample_at",
        parameters=[SampleQuery],
        responses={200: SampleSerializer, 400: ERROR, 404: ERROR},
        description="The sample of a pair in force at a time: what price existed then (one row).",
    )
    def get(self, request):
        from django.utils import timezone

        from providers.reference.config import pair_normalise
        from providers.reference.service import sample_at

        q = SampleQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        try:
            pair = pair_normalise(q.validated_data["pair"])
        except ValueError as exc:
            raise serializers.ValidationError({"pair": [str(exc)]}) from exc
        sample = sample_at(pair, q.validated_data.get("at") or timezone.now())
        if sample is None:
            raise NotFoundError(f"No sample of {pair} at that time.", code="SAMPLE_NOT_FOUND")
        return Response(SampleSerializer(sample).data)


class ReferenceSampleDetail(_Ops):
    @extend_schema(operation_id="ops_reference_prices_sample", responses={200: SampleSerializer, 404: ERROR})
    def get(self, request, pk: int):
        sample = ReferenceSample.objects.filter(pk=pk).first()
        if sample is None:
            raise NotFoundError("No such sample.", code="SAMPLE_NOT_FOUND")
        return Response(SampleSerializer(sample).data)
