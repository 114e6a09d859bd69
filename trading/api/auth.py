"""Sign-up, sign-in and tokens: `/api/v1/auth/...`. Thin doors over `trading.services.accounts`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.models import User, checksum_address
from trading.services import accounts
from trading.throttling import LoginFailureLimiter, ScopedUserAndIpThrottle


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="seconds until the access token expires")


def _tokens(pair: accounts.TokenPair, status_code: int = 200) -> Response:
    return Response(
        {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
        },
        status=status_code,
        headers={"Cache-Control": "no-store"},
    )


class _AuthView(APIView):
    """Open endpoints: no session (so no CSRF), limited per IP by the `auth` scope."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "auth"


_ERRORS = {400: OpenApiResponse(description="error envelope"), 429: OpenApiResponse(description="throttled")}


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(max_length=256, write_only=True, style={"input_type": "password"})


class RegisterView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Create an account with email and password",
        request=RegisterSerializer,
        responses={201: TokenPairSerializer, 409: OpenApiResponse(description="email or username taken"), **_ERRORS},
    )
    def post(self, request):
        s = RegisterSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        user = accounts.user_register(**s.validated_data)
        return _tokens(accounts.user_sign_in(user=user, auth_method=User.AuthMethod.PASSWORD), 201)


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, write_only=True, style={"input_type": "password"})


class LoginView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Sign in with email and password",
        description="Wrong email and wrong password answer the same 401. Failed attempts are "
        "also limited per email address (scope `login_failures`).",
        request=LoginSerializer,
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description="invalid credentials"), **_ERRORS},
    )
    def post(self, request):
        s = LoginSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        email, password = s.validated_data["email"], s.validated_data["password"]
        LoginFailureLimiter.check(email)
        try:
            user = accounts.user_authenticate_password(email=email, password=password)
        except accounts.AuthError:
            LoginFailureLimiter.record_failure(email)
            raise
        return _tokens(accounts.user_sign_in(user=user, auth_method=User.AuthMethod.PASSWORD))


class RefreshSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=2048)


class RefreshView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Exchange a refresh token for a new token pair (rotation)",
        description="The presented refresh token is revoked. Presenting an already rotated token "
        "again revokes every token of that sign-in (theft detection).",
        request=RefreshSerializer,
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description="invalid, expired or revoked")},
    )
    def post(self, request):
        s = RefreshSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _tokens(accounts.refresh_rotate(refresh_token=s.validated_data["refresh_token"]))


class LogoutView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Revoke a refresh token (and the rest of its sign-in)",
        request=RefreshSerializer,
        responses={204: None, 401: OpenApiResponse(description="invalid token")},
    )
    def post(self, request):
        s = RefreshSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        accounts.refresh_revoke(refresh_token=s.validated_data["refresh_token"])
        return Response(status=204)


# --- Sign-In with Ethereum -------------------------------------------------------------------------


class AddressField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return checksum_address(value)
        except Exception:
            raise serializers.ValidationError("Not an Ethereum address.") from None


class NonceRequestSerializer(serializers.Serializer):
    wallet_address = AddressField(max_length=42)
    chain_id = serializers.IntegerField(required=False, help_text="defaults to the first of SIWE_CHAIN_IDS")


class NonceSerializer(serializers.Serializer):
    nonce = serializers.CharField()
    wallet_address = serializers.CharField()
    domain = serializers.CharField()
    uri = serializers.CharField()
    chain_id = serializers.IntegerField()
    chain_ids = serializers.ListField(child=serializers.IntegerField())
    version = serializers.CharField()
    statement = serializers.CharField()
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    message = serializers.CharField(help_text="a ready-to-sign EIP-4361 message with these values")


class WalletNonceView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Get a single-use Sign-In with Ethereum nonce for an address",
        request=NonceRequestSerializer,
        responses={200: NonceSerializer, **_ERRORS},
    )
    def post(self, request):
        s = NonceRequestSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = accounts.siwe_nonce_issue(**s.validated_data)
        return Response(NonceSerializer(data).data, headers={"Cache-Control": "no-store"})


class SignedMessageSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=4096, trim_whitespace=False)
    signature = serializers.RegexField(
        r"^(0x)?[0-9a-fA-F]{130}$", help_text="EIP-191 personal_sign signature (65 bytes, hex)"
    )


class WalletConnectSerializer(SignedMessageSerializer):
    wallet_address = AddressField(
        max_length=42, required=False, help_text="optional (seed 003): must be the address that signed the message"
    )

    def validate_signature(self, value: str) -> str:
        return value if value.startswith("0x") else "0x" + value


_SIWE_EXAMPLE = OpenApiExample(
    "Signed message",
    value={
        "message": "localhost wants you to sign in with your Ethereum account:\n"
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\nSign in to Tradedesk.\n\n"
        "URI: https://localhost\nVersion: 1\nChain ID: 42161\nNonce: 8XqKs0cPdXy0oZ7aFm2wB4nT9eRu1LhV\n"
        "Issued At: 2026-01-01T00:00:00.000Z\nExpiration Time: 2026-01-01T00:05:00.000Z",
        "signature": "0x" + "00" * 65,
    },
    request_only=True,
)


class WalletConnectView(_AuthView):
    @extend_schema(
        tags=["auth"],
        summary="Sign in with a signed EIP-4361 message (creates the account on first sign-in)",
        description="Checks domain, chain id, nonce (single use, unexpired, issued for this "
        "address), issued-at / expiration / not-before and the signature. Failures are 401 "
        "with `details.reason`.",
        request=WalletConnectSerializer,
        examples=[_SIWE_EXAMPLE],
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description="verification failed")},
    )
    def post(self, request):
        s = WalletConnectSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        _user, pair, _created = accounts.siwe_sign_in(**s.validated_data)
        return _tokens(pair)
