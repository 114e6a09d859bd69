"""`/api/v1/webhooks`: a user's own endpoints and their delivery log. Another user's
endpoint is a 404. The signing secret appears only in the create and rotate responses."""

from django.db.models import Max, Q, Sum
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.inputs import QueryParams
from config.pagination import LimitOffsetPagination
from webhooks import services
from webhooks.models import SUBSCRIBABLE, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer):
    last_delivery_at = serializers.SerializerMethodField(help_text="when a delivery last reached the endpoint")
    retry_count = serializers.SerializerMethodField(
        help_text="failed attempts of the deliveries still to be retried (0 when nothing is failing)"
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "last_delivery_at",
            "retry_count",
            "secret_fingerprint",
            "previous_secret_expires_at",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]

    def _stats(self, endpoint) -> dict:
        """The list annotates each row (DELIVERY_STATS); one endpoint is read here."""
        if hasattr(endpoint, "retry_count"):
            return {"last_delivery_at": endpoint.last_delivery_at, "retry_count": endpoint.retry_count}
        stats = WebhookEndpoint.objects.filter(pk=endpoint.pk).aggregate(**DELIVERY_STATS)
        endpoint.last_delivery_at, endpoint.retry_count = stats["last_delivery_at"], stats["retry_count"]
        return stats

    def get_last_delivery_at(self, endpoint) -> str | None:
        value = self._stats(endpoint)["last_delivery_at"]
        return serializers.DateTimeField().to_representation(value) if value else None

    def get_retry_count(self, endpoint) -> int:
        return int(self._stats(endpoint)["retry_count"] or 0)


DELIVERY_STATS = {
    "last_delivery_at": Max("deliveries__delivered_at"),
    "retry_count": Sum("deliveries__attempts", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING)),
}


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret (whsec_...). Shown only in this response.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


def _event_types(**kwargs) -> serializers.ListField:
    """The subscribed types; a wrong one is answered with the list to choose from."""
    choice = serializers.ChoiceField(
        choices=SUBSCRIBABLE,
        error_messages={"invalid_choice": '"{input}" is not an event type: give ' + ", ".join(SUBSCRIBABLE) + "."},
    )
    return serializers.ListField(
        child=choice, min_length=1, error_messages={"min_length": "Give at least one event type."}, **kwargs
    )


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = _event_types()
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    secret = serializers.CharField(
        max_length=256,
        required=False,
        trim_whitespace=False,
        write_only=True,
        help_text="your own signing secret, at least 24 bytes (400 WEAK_SECRET otherwise); without it one is "
        "generated (whsec_...). Either way the answer shows it once.",
    )


class EndpointReplaceSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = _event_types()
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, required=False)
    event_types = _event_types(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "response_code", "response_body", "error"]


class DeliverySerializer(serializers.ModelSerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_response_code",
            "last_error",
            "created_at",
            "updated_at",
            "delivered_at",
            "attempt_log",
        ]


class DeliveryFilterSerializer(QueryParams):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)


def _own(request, pk) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, pk=pk, user=request.user)


def _actor(request) -> str:
    return f"user:{request.user.pk}"


class EndpointList(APIView):
    @extend_schema(
        responses=inline_serializer("WebhookList", {"webhooks": EndpointSerializer(many=True)}),
        summary="List my webhook endpoints: {webhooks: [...]}",
        operation_id="v1_webhooks_list",
    )
    def get(self, request):
        qs = WebhookEndpoint.objects.filter(user=request.user).annotate(**DELIVERY_STATS).order_by("id")
        return Response({"webhooks": EndpointSerializer(qs, many=True).data})

    @extend_schema(
        request=EndpointCreateSerializer,
        responses={201: EndpointWithSecretSerializer},
        summary="Create a webhook endpoint (the signing secret is shown once)",
    )
    def post(self, request):
        s = EndpointCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(user=request.user, **s.validated_data)
        data = EndpointSerializer(endpoint).data | {"secret": secret}
        return Response(data, status=status.HTTP_201_CREATED)


class EndpointDetail(APIView):
    @extend_schema(responses=EndpointSerializer, summary="One of my webhook endpoints")
    def get(self, request, pk: int):
        return Response(EndpointSerializer(_own(request, pk)).data)

    @extend_schema(
        request=EndpointReplaceSerializer,
        responses=EndpointSerializer,
        summary="Replace an endpoint's url and event types (is_active, description: unchanged when left out)",
    )
    def put(self, request, pk: int):
        endpoint = _own(request, pk)
        s = EndpointReplaceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, actor=_actor(request), **s.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(request=EndpointUpdateSerializer, responses=EndpointSerializer, summary="Update an endpoint")
    def patch(self, request, pk: int):
        endpoint = _own(request, pk)
        s = EndpointUpdateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, actor=_actor(request), **s.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None}, summary="Delete an endpoint (and its delivery log)")
    def delete(self, request, pk: int):
        services.endpoint_delete(endpoint=_own(request, pk), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecret(APIView):
    @extend_schema(
        request=None,
        responses=EndpointWithSecretSerializer,
        summary="Rotate the signing secret; the old one keeps signing during the grace period",
    )
    def post(self, request, pk: int):
        endpoint = _own(request, pk)
        secret = services.endpoint_rotate_secret(endpoint=endpoint, actor=_actor(request))
        endpoint.refresh_from_db()
        return Response(EndpointSerializer(endpoint).data | {"secret": secret})


class EndpointTest(APIView):
    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "WebhookPingQueued", {"delivery_id": serializers.IntegerField(), "webhook_id": serializers.CharField()}
            )
        },
        summary="Send a ping event to the endpoint",
    )
    def post(self, request, pk: int):
        delivery = services.endpoint_ping(endpoint=_own(request, pk), actor=_actor(request))
        return Response(
            {"delivery_id": delivery.pk, "webhook_id": delivery.webhook_id}, status=status.HTTP_202_ACCEPTED
        )


class EndpointDeliveries(APIView):
    pagination_class = LimitOffsetPagination  # (also what the schema documents: a page, not an array)

    @extend_schema(
        parameters=[DeliveryFilterSerializer],
        responses=DeliverySerializer(many=True),
        summary="The endpoint's deliveries, newest first, with their attempts (a page: limit, offset)",
    )
    def get(self, request, pk: int):
        endpoint = _own(request, pk)
        f = DeliveryFilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        qs = endpoint.deliveries.prefetch_related("attempt_log").order_by("-id")
        if "status" in f.validated_data:
            qs = qs.filter(status=f.validated_data["status"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)
