"""Staff-only read access to the ledger: `GET /api/v1/ledger/events` and `/events/{id}`."""

from rest_framework import generics, serializers

from config.inputs import QueryParams
from trading.models import Event
from trading.permissions import IsStaff
from trading.throttling import ScopedUserAndIpThrottle


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "occurred_at",
            "topic",
            "aggregate_type",
            "aggregate_id",
            "correlation_id",
            "causation_id",
            "actor",
            "payload",
            "version",
        ]


class EventFilterSerializer(QueryParams):
    topic = serializers.CharField(required=False, max_length=100)
    correlation_id = serializers.CharField(required=False, max_length=100)
    aggregate_type = serializers.CharField(required=False, max_length=50)
    aggregate_id = serializers.CharField(required=False, max_length=64)
    after = serializers.RegexField(r"^[0-9A-HJKMNP-TV-Z]{26}$", required=False, help_text="only events after this id")


class EventList(generics.ListAPIView):
    serializer_class = EventSerializer
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"

    def get_queryset(self):
        f = EventFilterSerializer(data=self.request.query_params)
        f.is_valid(raise_exception=True)
        qs = Event.objects.order_by("id")
        for key in ("topic", "correlation_id", "aggregate_type", "aggregate_id"):
            if key in f.validated_data:
                qs = qs.filter(**{key: f.validated_data[key]})
        if "after" in f.validated_data:
            qs = qs.filter(id__gt=f.validated_data["after"])
        return qs


class EventDetail(generics.RetrieveAPIView):
    serializer_class = EventSerializer
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"
    queryset = Event.objects.all()
