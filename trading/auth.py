"""DRF authentication: `Authorization: Bearer <access JWT>` and `Authorization: Api-Key tdk_...`.

Both load the user on every request and refuse inactive users. `request.auth` is a
`trading.tokens.AccessToken` (Bearer) or a `trading.models.ApiKey` (service key); the
permission classes in `trading.permissions` read scopes from either."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from trading import tokens
from trading.models import User


def _credentials(request, keyword: bytes) -> str | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != keyword.lower():
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Invalid Authorization header.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Invalid Authorization header.") from None


class JWTAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw = _credentials(request, b"Bearer")
        if raw is None:
            return None
        try:
            claims = tokens.decode(raw, expected_type=tokens.ACCESS)
        except tokens.TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        sub = str(claims["sub"])
        user = User.objects.filter(pk=int(sub)).first() if sub.isdigit() else None
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive or does not exist.")
        return user, tokens.AccessToken(claims=claims)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        raw = _credentials(request, b"Api-Key")
        if raw is None:
            return None
        from trading.services.accounts import api_key_authenticate

        key = api_key_authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        if not key.user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive or does not exist.")
        return key.user, key

    def authenticate_header(self, request):
        return 'Api-Key realm="api"'
