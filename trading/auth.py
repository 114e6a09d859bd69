"""DRF authentication: `Authorization: Bearer <access JWT>` and `Authorization: Api-Key tdk_...`.

Both load the user on every request and refuse inactive users. `request.auth` is a
`trading.tokens.AccessToken` (Bearer) or a `trading.models.ApiKey` (service key); the
permission classes in `trading.permissions` read scopes from either."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from trading import tokens
from trading.models import User


class TokenRejected(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # token_invalid | token_expired | user_inactive


@dataclass(frozen=True)
class TokenIdentity:
    user: object
    claims: dict

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.claims["exp"]), UTC)


def user_from_token(token: str) -> TokenIdentity:
    """An access token's active user: the one place a token becomes a user, for the REST API and
    the websockets alike (`trading.tokens` checks signature, issuer, expiry and type)."""
    try:
        claims = tokens.decode(token, expected_type=tokens.ACCESS)
    except tokens.TokenExpired as exc:
        raise TokenRejected("token_expired", "The access token has expired.") from exc
    except tokens.TokenError as exc:
        raise TokenRejected("token_invalid", "The access token is not valid.") from exc
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenRejected("token_invalid", "The access token has no valid subject.") from exc
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        raise TokenRejected("user_inactive", "The user does not exist or is inactive.")
    return TokenIdentity(user=user, claims=claims)


def refused(request, message: str, reason: str) -> exceptions.AuthenticationFailed:
    """A 401 that says why, for a client to act on: `details.reason` in the envelope (the
    websockets' words: `token_expired` — refresh; `token_invalid`, `api_key_invalid`,
    `user_inactive`, `header_invalid` — sign in again or fix the request) and RFC 6750's `error`
    in WWW-Authenticate."""
    request.auth_refusal = reason
    failed = exceptions.AuthenticationFailed(message)
    failed.reason = reason
    return failed


def _credentials(request, keyword: bytes) -> str | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != keyword.lower():
        return None
    if len(parts) != 2:
        raise refused(request, "Invalid Authorization header.", "header_invalid")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise refused(request, "Invalid Authorization header.", "header_invalid") from None


class JWTAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw = _credentials(request, b"Bearer")
        if raw is None:
            return None
        try:
            identity = user_from_token(raw)
        except TokenRejected as exc:
            raise refused(request, str(exc), exc.code) from None
        return identity.user, tokens.AccessToken(claims=identity.claims)

    def authenticate_header(self, request):
        reason = getattr(request, "auth_refusal", None)
        if reason is None:
            return 'Bearer realm="api"'
        error = "invalid_request" if reason == "header_invalid" else "invalid_token"
        return f'Bearer realm="api", error="{error}"'


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        raw = _credentials(request, b"Api-Key")
        if raw is None:
            return None
        from trading.services.accounts import api_key_authenticate

        key = api_key_authenticate(raw)
        if key is None:
            raise refused(request, "Invalid, expired or revoked API key.", "api_key_invalid")
        if not key.user.is_active:
            raise refused(request, "User is inactive or does not exist.", "user_inactive")
        return key.user, key

    def authenticate_header(self, request):
        return 'Api-Key realm="api"'
