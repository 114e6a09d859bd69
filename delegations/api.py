"""Ostium delegation API (`/api/v1/ostium/delegations`): thin doors onto
`delegations.services`. Owner-only; nothing here accepts a private key."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError
from config.secret_guard import REFUSED_CODE, secret_found
from delegations import services
from delegations.models import OstiumDelegation
from trading.permissions import HasScope

ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}


def refuse_secrets(data) -> None:
    """400 SECRET_REFUSED for anything that looks like a private key (`config.secret_guard`).
    Tradedesk never takes a key over the API."""
    found = secret_found(data)
    if found:
        where, message = found
        raise ApplicationError(message, code=REFUSED_CODE, details={where: [message]})


class PrepareRequest(serializers.Serializer):
    network = serializers.CharField(max_length=32, default="localnet")
    safe_address = serializers.CharField(max_length=42)
    usdc_allowance = serializers.IntegerField(
        required=False, min_value=1, help_text="raw USDC units (6 decimals) to approve; default unlimited"
    )


class SignatureRequest(serializers.Serializer):
    signature = serializers.CharField(
        max_length=132,
        help_text="65-byte owner signature (0x r|s|v) of the safeTxHash: eth_signTypedData_v4 of `typed_data` "
        "(v 27/28), or eth_sign / personal_sign of the hash (v 31/32)",
    )


class SafeTxOut(serializers.Serializer):
    to = serializers.CharField()
    value = serializers.CharField()
    data = serializers.CharField()
    operation = serializers.IntegerField()
    safeTxGas = serializers.CharField()
    baseGas = serializers.CharField()
    gasPrice = serializers.CharField()
    gasToken = serializers.CharField()
    refundReceiver = serializers.CharField()
    nonce = serializers.CharField()


class DelegationOut(serializers.Serializer):
    id = serializers.IntegerField()
    network = serializers.CharField()
    safe_address = serializers.CharField()
    delegate_address = serializers.CharField()
    status = serializers.ChoiceField(choices=OstiumDelegation.Status.choices)
    action = serializers.ChoiceField(choices=OstiumDelegation.Action.choices)
    threshold = serializers.IntegerField()
    signers = serializers.ListField(child=serializers.CharField(), help_text="owners whose signature is stored")
    safe_tx = SafeTxOut(help_text="the SafeTx to sign (Safe 1.4.1 EIP-712 `SafeTx`)")
    safe_tx_hash = serializers.CharField()
    typed_data = serializers.DictField(help_text="EIP-712 typed data for eth_signTypedData_v4")
    calls = serializers.ListField(child=serializers.DictField(), help_text="what the SafeTx does, call by call")
    usdc_allowance = serializers.CharField(allow_null=True)
    transaction_hash = serializers.CharField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True, help_text="when the last execution was claimed")
    activated_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)


def _calls(d: OstiumDelegation) -> list[dict]:
    if d.action == OstiumDelegation.Action.REVOKE:
        return [
            {"contract": "Ostium Trading", "call": "removeDelegate()", "via": "MultiSendCallOnly 1.4.1 (DELEGATECALL)"},
            {"contract": "USDC", "call": "approve(TradingStorage, 0)"},
        ]
    return [
        {
            "contract": "USDC",
            "call": "approve(TradingStorage, usdc_allowance)",
            "via": "MultiSendCallOnly 1.4.1 (DELEGATECALL)",
        },
        {"contract": "Ostium Trading", "call": f"setDelegate({d.delegate_address})"},
    ]


def delegation_data(d: OstiumDelegation) -> dict:
    fields = d.safe_tx_fields()
    return {
        "id": d.pk,
        "network": d.network,
        "safe_address": d.safe_address,
        "delegate_address": d.delegate_address,
        "status": d.status,
        "action": d.action,
        "threshold": d.threshold,
        "signers": services.delegation_signers(d),
        "safe_tx": {k: (str(v) if isinstance(v, int) and k != "operation" else v) for k, v in fields.items()},
        "safe_tx_hash": d.safe_tx_hash,
        "typed_data": services.delegation_typed_data(d),
        "calls": _calls(d),
        "usdc_allowance": None if d.usdc_allowance is None else str(d.usdc_allowance),
        "transaction_hash": "" if d.transaction_hash == "pending" else d.transaction_hash,
        "error_code": d.error_code,
        "error_message": d.error_message,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "submitted_at": d.submitted_at,
        "activated_at": d.activated_at,
        "revoked_at": d.revoked_at,
        "checked_at": d.checked_at,
    }


def _out(d: OstiumDelegation, code=status.HTTP_200_OK) -> Response:
    return Response(DelegationOut(delegation_data(d)).data, status=code)


class _Base(APIView):
    permission_classes = [HasScope("trade")]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            refuse_secrets(request.data)


class DelegationPrepare(_Base):
    @extend_schema(
        operation_id="ostium_delegation_prepare",
        request=PrepareRequest,
        responses={201: DelegationOut, 400: ERROR, 403: ERROR, 409: ERROR, 502: ERROR},
        description=(
            "Prepare the SafeTx that delegates Ostium trading of your Safe to Tradedesk's delegate: one SafeTx "
            "DELEGATECALLing MultiSendCallOnly 1.4.1 with two calls, `USDC.approve(TradingStorage, usdc_allowance)` "
            "and `Trading.setDelegate(delegate)`. One of your verified wallets must be an owner of the Safe (checked "
            "on chain). Owners sign `typed_data` (or `safe_tx_hash`) and POST the signatures."
        ),
    )
    def post(self, request):
        body = PrepareRequest(data=request.data)
        body.is_valid(raise_exception=True)
        d = services.delegation_prepare(
            user=request.user,
            network=body.validated_data["network"],
            safe_address=body.validated_data["safe_address"],
            usdc_allowance=body.validated_data.get("usdc_allowance"),
        )
        return _out(d, status.HTTP_201_CREATED)


class DelegationList(_Base):
    @extend_schema(
        operation_id="ostium_delegation_list",
        parameters=[
            OpenApiParameter("safe", str, description="only this Safe"),
            OpenApiParameter("network", str, description="only this network"),
        ],
        responses={200: DelegationOut(many=True)},
        description="Your delegations, newest first; live ones reconciled with the chain on read (as GET .../{id}).",
    )
    def get(self, request):
        qs = OstiumDelegation.objects.filter(user=request.user).order_by("-id")
        if request.query_params.get("safe"):
            qs = qs.filter(safe_address__iexact=request.query_params["safe"])
        if request.query_params.get("network"):
            qs = qs.filter(network=request.query_params["network"])
        rows = [services.delegation_reconcile(delegation=d) for d in qs[:100]]
        return Response([DelegationOut(delegation_data(d)).data for d in rows])


class DelegationDetail(_Base):
    @extend_schema(
        operation_id="ostium_delegation_get",
        responses={200: DelegationOut, 404: ERROR},
        description=(
            "One delegation, reconciled with the chain: a revocation made elsewhere shows as revoked; an execution "
            "interrupted before it reached the chain is recovered once older than DELEGATION_RECOVERY_AFTER_SECONDS."
        ),
    )
    def get(self, request, pk: int):
        d = services.delegation_reconcile(delegation=services._owned(request.user, pk))
        return _out(d)


class DelegationSignatures(_Base):
    @extend_schema(
        operation_id="ostium_delegation_sign",
        request=SignatureRequest,
        responses={200: DelegationOut, 400: ERROR, 404: ERROR, 409: ERROR},
        description=(
            "Add one owner's signature of the current safeTxHash. Refused: non-owners, a signature over another "
            "hash (SIGNATURE_NOT_FROM_OWNER), a second signature of the same owner (SIGNATURE_DUPLICATE), any "
            "signature once the Safe has run another transaction at the SafeTx's nonce (SAFE_NONCE_MOVED)."
        ),
    )
    def post(self, request, pk: int):
        body = SignatureRequest(data=request.data)
        body.is_valid(raise_exception=True)
        d = services.delegation_signature_add(
            user=request.user, delegation_id=pk, signature=body.validated_data["signature"]
        )
        return _out(d)


class DelegationExecute(_Base):
    @extend_schema(
        operation_id="ostium_delegation_execute",
        request=None,
        responses={200: DelegationOut, 404: ERROR, 409: ERROR, 502: ERROR, 503: ERROR},
        description=(
            "Relay `execTransaction` (Tradedesk's relayer pays gas) once the threshold is met, wait for the receipt "
            "and confirm `delegations(safe)` on chain. Only while the `delegations:relay` component is armed (503 "
            "VENUE_DISARMED otherwise: nothing is claimed, the signatures stay; the owners may also execute the "
            "SafeTx from their Safe, and the next read sees it). A second execute is refused "
            "(DELEGATION_NOT_EXECUTABLE). An execution interrupted before it reached the chain is recovered after "
            "DELEGATION_RECOVERY_AFTER_SECONDS (Beat, or the next read): an activation goes back to "
            "pending_signature (error_code EXECUTION_INTERRUPTED) with its signatures, ready to execute again."
        ),
    )
    def post(self, request, pk: int):
        return _out(services.delegation_execute(user=request.user, delegation_id=pk))


class DelegationRevoke(_Base):
    @extend_schema(
        operation_id="ostium_delegation_revoke",
        request=None,
        responses={200: DelegationOut, 404: ERROR, 409: ERROR},
        description=(
            "Prepare the revoking SafeTx (status revoking): one SafeTx DELEGATECALLing MultiSendCallOnly 1.4.1 with "
            "two calls, `Trading.removeDelegate()` and `USDC.approve(TradingStorage, 0)` — revoking also takes back "
            "the USDC allowance. Sign and execute it like the delegation; executed → revoked. A revocation whose "
            "execution never reached the chain (crash, dropped transaction, Safe nonce taken) goes back to active "
            "and can be revoked again."
        ),
    )
    def post(self, request, pk: int):
        return _out(services.delegation_revoke(user=request.user, delegation_id=pk))


@extend_schema_view(get=extend_schema(exclude=True))
class DelegationListSlash(DelegationList):
    """`GET .../delegations/?safe=` (the same list, spelled with a trailing slash)."""
