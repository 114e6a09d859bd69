"""The caller's own account: `GET /api/v1/me`, `/api/v1/wallets`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.api.auth import SignedMessageSerializer
from trading.models import User, Wallet
from trading.permissions import HasScope, OwnedQuerysetMixin
from trading.services import accounts
from trading.throttling import ScopedUserAndIpThrottle


class WalletSerializer(serializers.ModelSerializer):
    verified = serializers.SerializerMethodField()

    class Meta:
        model = Wallet
        fields = [
            "id",
            "wallet_address",
            "wallet_type",
            "provider",
            "provider_wallet_id",
            "is_active",
            "verified",
            "verified_at",
            "created_at",
            "updated_at",
        ]

    def get_verified(self, obj) -> bool:
        return obj.verified_at is not None


class MeSerializer(serializers.ModelSerializer):
    wallets = WalletSerializer(many=True, read_only=True)
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "auth_method",
            "wallet_address",
            "feature_access_level",
            "email_verified",
            "is_staff",
            "date_joined",
            "last_login_at",
            "permissions",
            "wallets",
        ]

    def get_permissions(self, obj) -> list[str]:
        from trading.permissions import request_scopes

        return sorted(request_scopes(self.context["request"]))


class _AccountView:
    # reads need `read`; changing the account needs `account`, which people hold and service
    # keys never do
    permission_classes = [HasScope("account")]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "api"


class MeView(_AccountView, APIView):
    @extend_schema(tags=["account"], summary="The caller's profile and wallets", responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user, context={"request": request}).data)


class WalletAddSerializer(SignedMessageSerializer):
    wallet_type = serializers.ChoiceField(choices=Wallet.WalletType.choices, default=Wallet.WalletType.EOA)


class WalletList(_AccountView, OwnedQuerysetMixin, generics.ListCreateAPIView):
    queryset = Wallet.objects.all().order_by("id")
    serializer_class = WalletSerializer

    @extend_schema(tags=["account"], summary="The caller's wallets")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["account"],
        summary="Link an external wallet, proven by a signed Sign-In with Ethereum message",
        description="Get a nonce for the address from `POST /api/v1/auth/wallet/nonce`, sign the "
        "returned message with the wallet and post it here.",
        request=WalletAddSerializer,
        responses={
            201: WalletSerializer,
            401: OpenApiResponse(description="signature or message invalid"),
            409: OpenApiResponse(description="already linked"),
        },
    )
    def post(self, request, *args, **kwargs):
        s = WalletAddSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        wallet = accounts.wallet_add_signed(user=request.user, **s.validated_data)
        return Response(WalletSerializer(wallet).data, status=201)


class WalletDeactivate(_AccountView, OwnedQuerysetMixin, generics.GenericAPIView):
    queryset = Wallet.objects.all()
    serializer_class = WalletSerializer

    @extend_schema(tags=["account"], summary="Deactivate one of the caller's wallets", request=None)
    def post(self, request, pk):
        wallet = accounts.wallet_deactivate(wallet=self.get_object(), actor=request.user)
        return Response(WalletSerializer(wallet).data)
