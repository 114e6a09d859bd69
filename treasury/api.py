"""Staff treasury API (`/api/v1/treasury/...`): thin doors onto `treasury.services`.

- `GET inventory`: every balance (credited, reserved, spendable, pending in/out, locked, drift,
  sync age and status) and each venue's sync heartbeat.
- `GET/POST liquidity-actions`, `GET liquidity-actions/{id}`, `POST .../{id}/approve|cancel`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import LimitOffsetPagination
from trading.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from trading.api.serializers import Amount as PlainAmount
from trading.permissions import IsStaff
from trading.throttling import ScopedUserAndIpThrottle
from treasury.models import AMOUNT, LiquidityAction, Venue, amount_text
from treasury.selectors import inventory_rows, sync_rows
from treasury.services import liquidity


class Amount(serializers.DecimalField):
    """An amount as a string without trailing zeros ("2.5", "60000"); the exact Decimal."""

    def __init__(self, **kwargs):
        super().__init__(**{**AMOUNT, **kwargs})

    def to_representation(self, value):
        return amount_text(value)


ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}


class _Staff(APIView):
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"


class BalanceOut(serializers.Serializer):
    id = serializers.IntegerField()
    venue = serializers.ChoiceField(choices=Venue.choices)
    account = serializers.CharField()
    asset = serializers.CharField(help_text="the venue's asset id (NEAR Intents: the verifier token id)")
    symbol = serializers.CharField()
    credited = Amount(help_text="spendable at the venue (last sync)")
    reserved = Amount()
    spendable = Amount(allow_null=True, help_text="credited − reserved; null while stale (refused)")
    pending_in = Amount()
    pending_out = Amount()
    locked = Amount(help_text="collateral in open positions")
    drift = Amount(help_text="credited less than expected by this much")
    status = serializers.ChoiceField(choices=["ok", "drift", "stale"])
    stale_reason = serializers.CharField()
    synced_at = serializers.DateTimeField(allow_null=True)
    sync_age_seconds = serializers.FloatField(allow_null=True)
    sync_source = serializers.CharField()


class SyncOut(serializers.Serializer):
    venue = serializers.CharField()
    badge = serializers.ChoiceField(choices=["ok", "warn", "down", "unknown"])
    age_seconds = serializers.FloatField(allow_null=True, help_text="since the last successful sync")
    assets = serializers.IntegerField()
    error = serializers.CharField()
    notes = serializers.CharField()


class InventoryOut(serializers.Serializer):
    inventory = BalanceOut(many=True)
    syncs = SyncOut(many=True)


class InventoryView(_Staff):
    @extend_schema(
        operation_id="treasury_inventory",
        parameters=[
            OpenApiParameter("venue", str, enum=Venue.values, description="only this venue"),
            OpenApiParameter("status", str, enum=["ok", "drift", "stale"], description="only this status"),
        ],
        responses={200: InventoryOut, 400: ERROR, 401: ERROR, 403: ERROR},
        description=(
            "Inventory per venue, account and asset. Only `spendable` (credited − reserved of a balance that is "
            "not stale) may be spent; pending inbound is never spendable."
        ),
    )
    def get(self, request):
        venue = request.query_params.get("venue")
        wanted = request.query_params.get("status")
        errors = {}
        if venue is not None and venue not in Venue.values:  # (`?venue=` too: empty is not one)
            errors["venue"] = [f"One of {', '.join(Venue.values)}."]
        if wanted is not None and wanted not in ("ok", "drift", "stale"):
            errors["status"] = ["One of ok, drift, stale."]
        if errors:
            raise serializers.ValidationError(errors)
        rows = [r for r in inventory_rows(venue=venue) if not wanted or r["status"] == wanted]
        return Response(InventoryOut({"inventory": rows, "syncs": sync_rows()}).data)


class ActionRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LiquidityAction.Kind.choices)
    venue = serializers.ChoiceField(choices=Venue.choices, default=Venue.NEAR_INTENTS)
    asset = serializers.CharField(max_length=200, required=False, default="", help_text="NEAR Intents: token id")
    amount = PlainAmount(**AMOUNT, required=False, allow_null=True, default=None)
    chain = serializers.CharField(
        max_length=64,
        required=False,
        default="",
        help_text="deposit chain, or withdrawal destination chain (near = a NEAR account)",
    )
    address = serializers.CharField(max_length=200, required=False, default="", help_text="destination (withdrawal)")
    tx_hash = serializers.CharField(max_length=200, required=False, default="", help_text="funding: the source tx")
    account = serializers.CharField(max_length=100, required=False, default="", help_text="funding on ostium/paper")
    dest_venue = serializers.ChoiceField(choices=Venue.choices, required=False, default="")
    dest_account = serializers.CharField(max_length=100, required=False, default="")
    dest_asset = serializers.CharField(max_length=200, required=False, default="")


class ActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LiquidityAction.Kind.choices)
    status = serializers.ChoiceField(choices=LiquidityAction.Status.choices)
    origin = serializers.CharField()
    venue = serializers.CharField()
    account = serializers.CharField()
    asset = serializers.CharField()
    symbol = serializers.CharField()
    amount = Amount(allow_null=True)
    amount_credited = Amount(allow_null=True)
    drift = Amount()
    chain = serializers.CharField()
    address = serializers.CharField()
    memo = serializers.CharField()
    tx_hash = serializers.CharField()
    transfer_tx_hash = serializers.CharField()
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", allow_null=True)
    dest_venue = serializers.CharField()
    dest_account = serializers.CharField()
    dest_asset = serializers.CharField()
    intent_hash = serializers.CharField()
    intent_deadline = serializers.DateTimeField(allow_null=True)
    needs_approval = serializers.BooleanField()
    requested_by = serializers.CharField()
    approved_by = serializers.CharField()
    approved_at = serializers.DateTimeField(allow_null=True)
    delayed_from = serializers.CharField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    seen_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)


class ActionReasonRequest(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="")


class ActionList(_Staff):
    pagination_class = LimitOffsetPagination  # (also what the schema documents: a page, not an array)

    @extend_schema(
        operation_id="treasury_liquidity_actions",
        parameters=[
            OpenApiParameter("status", str, enum=LiquidityAction.Status.values),
            OpenApiParameter("kind", str, enum=LiquidityAction.Kind.values),
            OpenApiParameter("venue", str, enum=Venue.values),
        ],
        responses={200: ActionOut(many=True), 400: ERROR, 401: ERROR, 403: ERROR},
        description="Liquidity actions, delayed ones first, then newest first (paginated: limit/offset).",
    )
    def get(self, request):
        qs = LiquidityAction.objects.all()
        for key, choices in (
            ("status", LiquidityAction.Status.values),
            ("kind", LiquidityAction.Kind.values),
            ("venue", Venue.values),
        ):
            value = request.query_params.get(key)
            if value is not None:
                if value not in choices:  # (`?status=` too: empty is not one)
                    raise serializers.ValidationError({key: [f"One of {', '.join(choices)}."]})
                qs = qs.filter(**{key: value})
        from django.db.models import Case, IntegerField, Value, When

        qs = qs.annotate(
            delayed_first=Case(When(status="delayed", then=Value(0)), default=Value(1), output_field=IntegerField())
        ).order_by("delayed_first", "-created_at", "-id")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ActionOut(page, many=True).data)

    @extend_schema(
        operation_id="treasury_liquidity_action_create",
        request=ActionRequest,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: ActionOut, 400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 502: ERROR, 503: ERROR},
        description=(
            "`deposit_address` (venue near_intents, `chain`): the bridge service's address for the solver account. "
            "`funding` (`asset`, `amount`, optional `tx_hash`): an external deposit to expect; pending until the "
            "venue credits it (DUPLICATE_TX_HASH for a known transaction). `withdrawal` (`asset`, `amount`, "
            "`chain`, `address`): reserved now, signed and published as an `ft_withdraw` intent while "
            "`treasury:withdrawals` is armed; the destination must be on the allowlist "
            "(WITHDRAWAL_DESTINATION_NOT_ALLOWED); above WITHDRAWAL_APPROVAL_THRESHOLD another operator approves "
            "it first. `rebalance`: a withdrawal to another venue's account (`dest_venue`, `dest_account`, "
            "`dest_asset`), pending inbound there. Refused: INVENTORY_STALE, INSUFFICIENT_INVENTORY."
        ),
    )
    @idempotent
    def post(self, request):
        body = ActionRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        action = liquidity.liquidity_action_request(actor=request.user, **data)
        return Response(ActionOut(action).data, status=status.HTTP_201_CREATED)


class ActionDetail(_Staff):
    @extend_schema(operation_id="treasury_liquidity_action", responses={200: ActionOut, 404: ERROR})
    def get(self, request, pk: int):
        return Response(ActionOut(get_object_or_404(LiquidityAction, pk=pk)).data)


class ActionApprove(_Staff):
    @extend_schema(
        operation_id="treasury_liquidity_action_approve",
        request=ActionReasonRequest,
        responses={200: ActionOut, 403: ERROR, 404: ERROR, 409: ERROR},
        description=(
            "Approve a withdrawal above the threshold (four eyes: FOUR_EYES_REQUIRED when the requester approves "
            "their own); it is submitted next."
        ),
    )
    def post(self, request, pk: int):
        body = ActionReasonRequest(data=request.data)
        body.is_valid(raise_exception=True)
        action = liquidity.liquidity_action_approve(
            actor=request.user, action_id=pk, reason=body.validated_data["reason"]
        )
        return Response(ActionOut(action).data)


class ActionCancel(_Staff):
    @extend_schema(
        operation_id="treasury_liquidity_action_cancel",
        request=ActionReasonRequest,
        responses={200: ActionOut, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Cancel an action not submitted yet (ACTION_NOT_CANCELLABLE otherwise); its hold is released.",
    )
    def post(self, request, pk: int):
        body = ActionReasonRequest(data=request.data)
        body.is_valid(raise_exception=True)
        action = liquidity.liquidity_action_cancel(
            actor=request.user, action_id=pk, reason=body.validated_data["reason"]
        )
        return Response(ActionOut(action).data)
