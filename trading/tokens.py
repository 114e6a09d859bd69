"""JSON Web Tokens (HS256, PyJWT): short-lived access tokens and rotating refresh tokens.

The signing key is `JWT_SIGNING_KEY`, or derived from `SECRET_KEY` (HMAC with a fixed label, so
the raw Django secret is never the JWT key). Pure functions: no database access here; the
refresh-token bookkeeping lives in `trading.services.accounts`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


class TokenError(Exception):
    """The token is malformed, badly signed, expired or of the wrong type."""


class TokenExpired(TokenError):
    """The token was valid but its `exp` has passed."""


def signing_key() -> bytes:
    if settings.JWT_SIGNING_KEY:
        return settings.JWT_SIGNING_KEY.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"tradedesk.jwt.v1", hashlib.sha256).digest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_jti() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AccessToken:
    """What `request.auth` holds for a Bearer-authenticated request."""

    claims: dict = field(repr=False)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.claims.get("permissions") or ())

    @property
    def jti(self) -> str:
        return self.claims["jti"]


def user_permissions(user) -> list[str]:
    """Scopes a person signed in holds: read, trade and account management on their own
    account; staff also `admin`. Service API keys hold only `read` and/or `trade`."""
    perms = ["read", "trade", "account"]
    if user.is_staff:
        perms.append("admin")
    return perms


def access_encode(*, user, now: datetime | None = None) -> tuple[str, dict]:
    now = now or datetime.now(UTC)
    claims = {
        "iss": settings.JWT_ISSUER,
        "sub": str(user.pk),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.JWT_ACCESS_TTL)).timestamp()),
        "jti": new_jti(),
        "type": ACCESS,
        "email": user.email,
        "auth_method": user.auth_method,
        "permissions": user_permissions(user),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM), claims


def refresh_encode(*, user, family: str, jti: str, now: datetime) -> tuple[str, datetime]:
    expires_at = now + timedelta(seconds=settings.JWT_REFRESH_TTL)
    claims = {
        "iss": settings.JWT_ISSUER,
        "sub": str(user.pk),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": jti,
        "fam": family,
        "type": REFRESH,
        # unguessable even to someone who knows the claims and the key derivation inputs
        "rnd": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM), expires_at


def decode(token: str, *, expected_type: str, verify_exp: bool = True) -> dict:
    try:
        claims = jwt.decode(
            token,
            signing_key(),
            algorithms=[ALGORITHM],
            issuer=settings.JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "type"], "verify_exp": verify_exp},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("Token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("Token is invalid.") from exc
    if claims.get("type") != expected_type:
        raise TokenError("Token is invalid.")
    return claims
