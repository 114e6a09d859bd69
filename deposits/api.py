"""Deposit API (`/api/v1/deposits`, seed 003 §4.4): thin doors onto `deposits.services`.
Owner-only (another user's deposit is a 404); nothing here accepts or returns a private key."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from delegations.api import SignatureRequest, refuse_secrets
from deposits import relay, services
from deposits.models import Deposit, TokenSwap
from trading.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from trading.permissions import HasScope
from trading.throttling import ScopedUserAndIpThrottle

SEED_STATUSES = ("pending", "processing", "completed", "failed")

ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}
THROTTLED = {"description": "over the rate limit: the error envelope (code `throttled`) and `Retry-After`"}


class CreateRequest(serializers.Serializer):
    token_address = serializers.CharField(
        max_length=42, required=False, allow_blank=True, default="", help_text="the token on `chain`; 0x0… for native"
    )
    token_symbol = serializers.CharField(max_length=20)
    chain = serializers.CharField(max_length=32, help_text="ethereum, arbitrum, optimism, base, polygon, bsc")
    amount = serializers.CharField(
        max_length=60,
        trim_whitespace=False,
        help_text='in the token\'s units, e.g. "1.5": ASCII digits and an optional point, as for trades',
    )
    transaction_hash = serializers.CharField(
        max_length=66,
        required=False,
        allow_blank=True,
        default="",
        help_text="only for USDC already on the target chain: the transfer to your trading address",
    )
    source = serializers.ChoiceField(
        choices=Deposit.Source.choices,
        required=False,
        allow_null=True,
        default=None,
        help_text="who sends: `safe` (your Safe's owners sign a SafeTx) or `wallet`; default your Safe in "
        "delegated mode, else your wallet",
    )


class SubmittedRequest(serializers.Serializer):
    tx_hash = serializers.CharField(max_length=66, help_text="the hash of the transaction you sent")


class QuoteOut(serializers.Serializer):
    route_id = serializers.CharField()
    tool = serializers.CharField()
    from_amount = serializers.CharField(help_text="base units")
    to_amount = serializers.CharField(help_text="USDC base units (6 decimals)")
    to_amount_min = serializers.CharField(help_text="USDC base units; less is never credited")
    estimated_output = serializers.CharField()
    min_output = serializers.CharField()
    approval_address = serializers.CharField()
    quoted_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="sign and report before this, else POST .../quote")
    expired = serializers.BooleanField()


class TxOut(serializers.Serializer):
    to = serializers.CharField()
    data = serializers.CharField()
    value = serializers.CharField(help_text="hex wei")
    chainId = serializers.IntegerField()


class DepositOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=SEED_STATUSES, help_text="seed 003: pending, processing, completed or failed (see status_detail)"
    )
    status_detail = serializers.ChoiceField(choices=Deposit.Status.choices, help_text="the detailed status")
    token_symbol = serializers.CharField()
    token_address = serializers.CharField()
    chain = serializers.CharField()
    amount = serializers.CharField()
    source = serializers.CharField()
    from_address = serializers.CharField()
    target_token = serializers.CharField()
    target_chain = serializers.CharField()
    target_address = serializers.CharField(help_text="your Safe in delegated mode, else your wallet")
    target_token_address = serializers.CharField()
    swap_needed = serializers.BooleanField()
    swap_provider = serializers.CharField(allow_null=True)
    swap_status = serializers.CharField(allow_null=True, help_text="seed 003: pending, processing, completed or failed")
    swap_status_detail = serializers.CharField(allow_null=True, help_text="adds partial and refunded")
    swap_substatus = serializers.CharField(allow_null=True)
    swap_progress = serializers.FloatField()
    transaction_hash = serializers.CharField()
    credited_amount = serializers.CharField(allow_null=True)
    credit_transaction_hash = serializers.CharField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    delayed = serializers.BooleanField(help_text="pending longer than DEPOSIT_DELAY_ALERT_MINUTES")
    quote = QuoteOut(allow_null=True)
    approval = TxOut(allow_null=True, help_text="wallet: the ERC-20 approve to send first (null for native)")
    transaction = serializers.DictField(allow_null=True, help_text="wallet: LI.FI's transactionRequest to sign")
    safe = serializers.DictField(allow_null=True, help_text="Safe: the SafeTx for the owners to sign and execute")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class SwapOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=SEED_STATUSES, help_text="seed 003 (see status_detail)")
    status_detail = serializers.ChoiceField(choices=TokenSwap.Status.choices)
    from_token = serializers.CharField()
    to_token = serializers.CharField()
    from_chain = serializers.CharField()
    to_chain = serializers.CharField()
    amount = serializers.CharField()
    estimated_output = serializers.CharField(allow_null=True)
    min_output = serializers.CharField(allow_null=True)
    actual_output = serializers.CharField(allow_null=True)
    swap_provider = serializers.CharField()
    lifi_status = serializers.CharField()
    substatus = serializers.CharField()
    substatus_message = serializers.CharField()
    swap_transaction_hash = serializers.CharField()
    receiving_transaction_hash = serializers.CharField()
    route_id = serializers.CharField()
    error_message = serializers.CharField()
    completed_at = serializers.DateTimeField(allow_null=True)


class SwapStatusOut(serializers.Serializer):
    deposit_id = serializers.IntegerField()
    swap_needed = serializers.BooleanField()
    swaps = SwapOut(many=True)


def _text(value):
    return None if value is None else str(value)


def _usdc(value):
    return None if value is None else format(Decimal(value).quantize(Decimal("0.000001")), "f")


def deposit_data(d: Deposit) -> dict:
    from django.utils import timezone

    swap = d.swap
    approval, request = services.wallet_transactions(d)
    quote = None
    if swap is not None:
        quote = {
            "route_id": swap.route_id,
            "tool": swap.tool,
            "from_amount": str(swap.from_amount_raw),
            "to_amount": _text(swap.to_amount_raw),
            "to_amount_min": _text(swap.to_amount_min_raw),
            "estimated_output": _text(swap.estimated_output),
            "min_output": _text(swap.min_output),
            "approval_address": swap.approval_address,
            "quoted_at": swap.quoted_at,
            "expires_at": swap.quote_expires_at,
            "expired": swap.quote_expires_at <= timezone.now(),
        }
    signable = d.status in (Deposit.Status.QUOTED, Deposit.Status.AWAITING_SIGNATURE)
    return {
        "id": d.pk,
        "status": d.seed_status,
        "status_detail": d.status,
        "token_symbol": d.token_symbol,
        "token_address": d.token_address,
        "chain": d.chain,
        "amount": format(d.amount.normalize(), "f"),
        "source": d.source,
        "from_address": d.from_address,
        "target_token": d.target_token,
        "target_chain": d.target_chain,
        "target_address": d.target_address,
        "target_token_address": d.target_token_address,
        "swap_needed": d.swap_needed,
        "swap_provider": swap.swap_provider if swap else None,
        "swap_status": swap.seed_status if swap else None,
        "swap_status_detail": swap.swap_status if swap else None,
        "swap_substatus": (swap.substatus or None) if swap else None,
        "swap_progress": services.swap_progress(d, swap),
        "transaction_hash": d.transaction_hash,
        "credited_amount": _usdc(d.credited_amount),
        "credit_transaction_hash": d.credit_transaction_hash,
        "error_code": d.error_code,
        "error_message": d.error_message,
        "delayed": d.delayed_at is not None,
        "quote": quote,
        "approval": approval,
        "transaction": request,
        "safe": {**services.safe_tx_out(d), "signers": relay.signers(d)} if signable and d.safe_tx else None,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "submitted_at": d.submitted_at,
        "completed_at": d.completed_at,
    }


def swap_data(w) -> dict:
    return {
        "id": w.pk,
        "status": w.seed_status,
        "status_detail": w.swap_status,
        "from_token": w.from_token,
        "to_token": w.to_token,
        "from_chain": w.from_chain,
        "to_chain": w.to_chain,
        "amount": format(w.amount.normalize(), "f"),
        "estimated_output": _text(w.estimated_output),
        "min_output": _text(w.min_output),
        "actual_output": _text(w.actual_output),
        "swap_provider": w.swap_provider,
        "lifi_status": w.lifi_status,
        "substatus": w.substatus,
        "substatus_message": w.substatus_message,
        "swap_transaction_hash": w.swap_transaction_hash,
        "receiving_transaction_hash": w.receiving_transaction_hash,
        "route_id": w.route_id,
        "error_message": w.error_message,
        "completed_at": w.completed_at,
    }


def _out(d: Deposit, code=status.HTTP_200_OK) -> Response:
    return Response(DepositOut(deposit_data(d)).data, status=code)


class _Base(APIView):
    """Reads need `read`, writes `trade`; creating a deposit counts against the `deposit` limit
    (5/min per user and per IP), everything else against `api`."""

    permission_classes = [HasScope("trade")]
    throttle_classes = [ScopedUserAndIpThrottle]
    create_methods: tuple[str, ...] = ()

    def get_throttle_scope(self, request) -> str:
        return "deposit" if request.method in self.create_methods else "api"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            request.body  # noqa: B018 (kept for the Idempotency-Key digest before the stream is parsed)
            refuse_secrets(request.data)


class DepositListCreate(_Base):
    create_methods = ("POST",)

    @extend_schema(
        operation_id="deposit_create",
        request=CreateRequest,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: DepositOut, 400: ERROR, 409: ERROR, 422: ERROR, 429: THROTTLED, 503: ERROR},
        description=(
            "Quote a deposit into USDC on Arbitrum at your trading address (your Safe in delegated mode, else your "
            "wallet) through LI.FI and answer what to sign: a wallet gets `approval` (ERC-20 approve to LI.FI's "
            "`approvalAddress`, null for native tokens) and `transaction` (LI.FI's `transactionRequest`); a Safe gets "
            "`safe` (the SafeTx, its hash and EIP-712 typed data) for its owners. Send it, then POST the hash to "
            "`/deposits/{id}/submitted`. A token, chain or amount LI.FI cannot route is 422 (NO_ROUTE, "
            "TOKEN_UNSUPPORTED, CHAIN_UNSUPPORTED), and so is a token_address that is another token than token_symbol "
            "(TOKEN_MISMATCH); a quote with slippage beyond DEPOSIT_MAX_SLIPPAGE is 422 "
            "SLIPPAGE_TOO_HIGH; LI.FI down or rate limiting is 503. USDC already on Arbitrum needs no swap."
        ),
    )
    @idempotent
    def post(self, request):
        body = CreateRequest(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        d = services.deposit_create(
            user=request.user,
            token_address=v["token_address"],
            token_symbol=v["token_symbol"],
            chain_name=v["chain"],
            amount=v["amount"],
            transaction_hash=v["transaction_hash"],
            source=v["source"],
        )
        return _out(d, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="deposit_list", responses={200: DepositOut(many=True)}, description="Your deposits, newest first."
    )
    def get(self, request):
        rows = Deposit.objects.filter(user=request.user).exclude(source=Deposit.Source.DESK).order_by("-id")[:100]
        return Response([DepositOut(deposit_data(d)).data for d in rows])


class DepositDetail(_Base):
    @extend_schema(operation_id="deposit_get", responses={200: DepositOut, 404: ERROR}, description="One deposit.")
    def get(self, request, pk: int):
        return _out(services.owned(request.user, pk))


class DepositSwapStatus(_Base):
    @extend_schema(
        operation_id="deposit_swap_status",
        responses={200: SwapStatusOut, 404: ERROR},
        description="The deposit's swaps through LI.FI (seed 003 §4.4.2).",
    )
    def get(self, request, pk: int):
        d = services.owned(request.user, pk)
        return Response(
            SwapStatusOut(
                {"deposit_id": d.pk, "swap_needed": d.swap_needed, "swaps": [swap_data(w) for w in d.swaps.all()]}
            ).data
        )


class DepositSubmitted(_Base):
    @extend_schema(
        operation_id="deposit_submitted",
        request=SubmittedRequest,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: DepositOut, 400: ERROR, 404: ERROR, 409: ERROR, 422: ERROR},
        description=(
            "Report the transaction you sent for this deposit. The same hash again answers the deposit unchanged; "
            "another hash is 409 DEPOSIT_ALREADY_SUBMITTED; a hash another deposit reported is 409 "
            "TRANSACTION_ALREADY_USED; a quote past `quote.expires_at` is 409 QUOTE_EXPIRED (POST .../quote); a "
            "transaction the target chain shows on the wrong chain or from someone else is 422 (WRONG_CHAIN, "
            "TRANSACTION_NOT_FROM_SENDER)."
        ),
    )
    @idempotent
    def post(self, request, pk: int):
        body = SubmittedRequest(data=request.data)
        body.is_valid(raise_exception=True)
        return _out(
            services.deposit_submitted(user=request.user, deposit_id=pk, tx_hash=body.validated_data["tx_hash"])
        )


class DepositRequote(_Base):
    @extend_schema(
        operation_id="deposit_requote",
        request=None,
        responses={200: DepositOut, 404: ERROR, 409: ERROR, 422: ERROR, 503: ERROR},
        description="A fresh LI.FI quote (and transaction or SafeTx) for a deposit still awaiting its signature.",
    )
    def post(self, request, pk: int):
        return _out(services.deposit_requote(user=request.user, deposit_id=pk))


class DepositSignatures(_Base):
    @extend_schema(
        operation_id="deposit_sign",
        request=SignatureRequest,
        responses={200: DepositOut, 400: ERROR, 404: ERROR, 409: ERROR, 502: ERROR, 503: ERROR},
        description=(
            "Add one Safe owner's signature of the deposit's SafeTx hash, as for a delegation. Refused: a signature "
            "that does not recover to an owner (SIGNATURE_NOT_FROM_OWNER), a second one of the same owner "
            "(SIGNATURE_DUPLICATE), any once the Safe's nonce moved (SAFE_NONCE_MOVED: quote again)."
        ),
    )
    def post(self, request, pk: int):
        body = SignatureRequest(data=request.data)
        body.is_valid(raise_exception=True)
        return _out(relay.signature_add(user=request.user, deposit_id=pk, signature=body.validated_data["signature"]))


class DepositExecute(_Base):
    @extend_schema(
        operation_id="deposit_execute",
        request=None,
        responses={200: DepositOut, 404: ERROR, 409: ERROR, 502: ERROR, 503: ERROR},
        description=(
            "Relay the Safe's `execTransaction` with the owners' signatures (the desk's relayer pays gas) and follow "
            "it as a reported hash. Only while the `deposits:relay` component is armed (503 VENUE_DISARMED "
            "otherwise; the signatures stay). The owners may instead execute it themselves and POST the hash to "
            "`/submitted`."
        ),
    )
    def post(self, request, pk: int):
        return _out(relay.execute(user=request.user, deposit_id=pk))
