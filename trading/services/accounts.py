"""Users, wallets, tokens, Sign-In with Ethereum and service API keys.

Secrets (passwords, tokens, nonces, API keys, signatures) never go into events or logs; only
their hashes are stored."""

from __future__ import annotations

import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, ConflictError
from trading import tokens
from trading.models import ApiKey, RefreshToken, SiweNonce, User, Wallet, checksum_address
from trading.services.ledger import event_record

logger = logging.getLogger("tradedesk.accounts")

INVALID_CREDENTIALS = "Invalid email or password."
API_KEY_PREFIX = "tdk_"


class AuthError(ApplicationError):
    status_code = 401
    code = "AUTHENTICATION_FAILED"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


def _actor(user) -> str:
    return f"user:{user.pk}"


def _address(value: str) -> str:
    try:
        return checksum_address(value)
    except DjangoValidationError:
        raise ApplicationError(
            "Not an Ethereum address.",
            code="VALIDATION_ERROR",
            details={"wallet_address": ["Not an Ethereum address."]},
        ) from None


# --- registration and password login --------------------------------------------------------------


@transaction.atomic
def user_register(*, email: str, username: str, password: str) -> User:
    email = email.strip().lower()
    username = username.strip()
    if username.lower().startswith("0x"):
        raise ApplicationError(
            "Usernames starting with 0x are reserved for wallet accounts.",
            code="VALIDATION_ERROR",
            details={"username": ["Usernames starting with 0x are reserved for wallet accounts."]},
        )
    user = User(email=email, username=username, auth_method=User.AuthMethod.PASSWORD)
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ApplicationError(
            "Password does not meet the requirements.",
            code="VALIDATION_ERROR",
            details={"password": list(exc.messages)},
        ) from None
    if User.objects.filter(email__iexact=email).exists():
        raise ConflictError("An account with this email already exists.", code="EMAIL_TAKEN")
    if User.objects.filter(username__iexact=user.username).exists():
        raise ConflictError("This username is taken.", code="USERNAME_TAKEN")
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ConflictError("An account with this email or username already exists.", code="ACCOUNT_EXISTS") from None
    event_record(
        topic="user.registered",
        aggregate_type="user",
        aggregate_id=user.pk,
        payload={"auth_method": user.auth_method, "username": user.username},
        actor=_actor(user),
    )
    logger.info("user registered", extra={"user_id": user.pk, "auth_method": user.auth_method})
    return user


def user_authenticate_password(*, email: str, password: str) -> User:
    """The user for these credentials, or AuthError with one message whatever went wrong.
    An unknown email still costs one password hash, so timing does not tell who is registered."""
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        make_password(password)  # equalise timing with the existing-user path
        raise AuthError(INVALID_CREDENTIALS, code="INVALID_CREDENTIALS")
    if not user.check_password(password) or not user.is_active:
        raise AuthError(INVALID_CREDENTIALS, code="INVALID_CREDENTIALS")
    return user


@transaction.atomic
def user_sign_in(*, user: User, auth_method: str) -> TokenPair:
    """Record a successful sign-in and issue a new token family."""
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(last_login_at=now, last_login=now)
    event_record(
        topic="user.signed_in",
        aggregate_type="user",
        aggregate_id=user.pk,
        payload={"auth_method": auth_method},
        actor=_actor(user),
    )
    logger.info("user signed in", extra={"user_id": user.pk, "auth_method": auth_method})
    return _token_pair_issue(user=user, family=tokens.new_jti(), now=now)


# --- tokens -----------------------------------------------------------------------------------------


def _token_pair_issue(*, user: User, family: str, now: datetime) -> TokenPair:
    access, _claims = tokens.access_encode(user=user, now=now)
    jti = tokens.new_jti()
    refresh, expires_at = tokens.refresh_encode(user=user, family=family, jti=jti, now=now)
    RefreshToken.objects.create(
        jti=jti,
        token_hash=tokens.sha256_hex(refresh),
        family=family,
        user=user,
        created_at=now,
        expires_at=expires_at,
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=settings.JWT_ACCESS_TTL)


def _refresh_row_for(token: str, *, verify_exp: bool = True) -> tuple[dict, RefreshToken]:
    """Decode and find the stored row (locked). Caller holds a transaction."""
    try:
        claims = tokens.decode(token, expected_type=tokens.REFRESH, verify_exp=verify_exp)
    except tokens.TokenError as exc:
        raise AuthError(str(exc), code="INVALID_TOKEN") from None
    row = RefreshToken.objects.select_for_update().filter(jti=claims["jti"]).first()
    if row is None or not secrets.compare_digest(row.token_hash, tokens.sha256_hex(token)):
        raise AuthError("Token is invalid.", code="INVALID_TOKEN")
    return claims, row


def _family_revoke(*, family: str, reason: str, now: datetime) -> int:
    return RefreshToken.objects.filter(family=family, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )


def refresh_rotate(*, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; the old one is revoked. Presenting a token that
    was already rotated or revoked revokes its whole family (reuse = theft) and fails."""
    now = timezone.now()
    reused = False
    with transaction.atomic():
        claims, row = _refresh_row_for(refresh_token)
        if row.revoked_at is not None:
            reused = row.revoked_reason == "rotated"
            if reused:
                n = _family_revoke(family=row.family, reason="reuse_detected", now=now)
                event_record(
                    topic="auth.refresh_reuse_detected",
                    aggregate_type="user",
                    aggregate_id=row.user_id,
                    payload={"family": row.family, "jti": row.jti, "revoked": n},
                    actor=f"user:{row.user_id}",
                )
        else:
            user = User.objects.filter(pk=row.user_id, is_active=True).first()
            if user is None:
                _family_revoke(family=row.family, reason="user_inactive", now=now)
            else:
                pair = _token_pair_issue(user=user, family=row.family, now=now)
                new_jti = tokens.decode(pair.refresh_token, expected_type=tokens.REFRESH)["jti"]
                row.revoked_at, row.revoked_reason, row.replaced_by = now, "rotated", new_jti
                row.save(update_fields=["revoked_at", "revoked_reason", "replaced_by"])
                return pair
    # the revocations above are committed; now refuse
    if reused:
        logger.warning("refresh token reuse detected; family revoked", extra={"user_id": claims["sub"]})
        raise AuthError("Token has been revoked.", code="TOKEN_REUSED")
    raise AuthError("Token has been revoked.", code="TOKEN_REVOKED")


@transaction.atomic
def refresh_revoke(*, refresh_token: str) -> None:
    """Log out: revoke this token's family (the whole sign-in session). Idempotent."""
    _claims, row = _refresh_row_for(refresh_token, verify_exp=False)
    _family_revoke(family=row.family, reason="logout", now=timezone.now())


@transaction.atomic
def user_tokens_revoke_all(*, user: User, reason: str = "revoked") -> int:
    return RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )


# --- Sign-In with Ethereum (EIP-4361) ------------------------------------------------------------

_NONCE_ALPHABET = string.ascii_letters + string.digits
# The EIP-4361 parser (siwe over abnf's pure-Python backend) takes time growing with the square
# of the text: 1 KB of anything took about a second, 4 KB ten — of the web process's one thread
# for synchronous work, for an unauthenticated request. A message is refused before parsing
# unless it is short and opens as EIP-4361 messages do (ours are about 300 characters).
SIWE_MAX_MESSAGE = 1024
_SIWE_OPENING = re.compile(r"[^\n]{1,253} wants you to sign in with your Ethereum account:\n0x[0-9a-fA-F]{40}\n")
SIWE_STATEMENT = "Sign in to Tradedesk."


def _siwe_time(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _siwe_fail(reason: str, message: str = "Sign-in message could not be verified.") -> AuthError:
    return AuthError(message, code="SIWE_INVALID", details={"reason": reason})


@transaction.atomic
def siwe_nonce_issue(*, wallet_address: str, chain_id: int | None = None) -> dict:
    """A single-use nonce bound to `wallet_address`, and a ready-to-sign EIP-4361 message."""
    from siwe import SiweMessage

    address = _address(wallet_address)
    chain_id = chain_id or settings.SIWE_CHAIN_IDS[0]
    if chain_id not in settings.SIWE_CHAIN_IDS:
        raise ApplicationError(
            "Unsupported chain id.",
            code="VALIDATION_ERROR",
            details={"chain_id": [f"one of {settings.SIWE_CHAIN_IDS}"]},
        )
    now = timezone.now()
    nonce = "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))
    expires_at = now + timedelta(seconds=settings.SIWE_NONCE_TTL)
    SiweNonce.objects.create(
        nonce_hash=tokens.sha256_hex(nonce), wallet_address=address, issued_at=now, expires_at=expires_at
    )
    message = SiweMessage(
        domain=settings.SIWE_DOMAIN,
        address=address,
        statement=SIWE_STATEMENT,
        uri=settings.SIWE_URI,
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=_siwe_time(now),
        expiration_time=_siwe_time(expires_at),
    ).prepare_message()
    return {
        "nonce": nonce,
        "wallet_address": address,
        "domain": settings.SIWE_DOMAIN,
        "uri": settings.SIWE_URI,
        "chain_id": chain_id,
        "chain_ids": list(settings.SIWE_CHAIN_IDS),
        "version": "1",
        "statement": SIWE_STATEMENT,
        "issued_at": now,
        "expires_at": expires_at,
        "message": message,
    }


def siwe_verify(*, message: str, signature: str, now: datetime | None = None):
    """Parse and check an EIP-4361 message and its EIP-191 signature (no database access).
    The signature is checked over the exact text that was signed. Returns the parsed message."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from siwe import SiweMessage

    now = now or timezone.now()
    skew = timedelta(seconds=settings.SIWE_CLOCK_SKEW)
    if len(message) > SIWE_MAX_MESSAGE or not _SIWE_OPENING.match(message):
        raise _siwe_fail("malformed", "Sign-in message is not a valid EIP-4361 message.")
    try:
        parsed = SiweMessage.from_message(message)
    except Exception:
        raise _siwe_fail("malformed", "Sign-in message is not a valid EIP-4361 message.") from None
    if parsed.domain != settings.SIWE_DOMAIN:
        raise _siwe_fail("domain_mismatch")
    if int(parsed.chain_id) not in settings.SIWE_CHAIN_IDS:
        raise _siwe_fail("chain_mismatch")
    if str(parsed.version) != "1":
        raise _siwe_fail("version_mismatch")
    issued_at = parsed.issued_at._datetime
    if issued_at > now + skew:
        raise _siwe_fail("issued_in_future")
    if issued_at < now - timedelta(seconds=settings.SIWE_NONCE_TTL) - skew:
        raise _siwe_fail("expired")
    if parsed.expiration_time is not None and now >= parsed.expiration_time._datetime:
        raise _siwe_fail("expired")
    if parsed.not_before is not None and now + skew < parsed.not_before._datetime:
        raise _siwe_fail("not_yet_valid")
    try:
        recovered = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:
        recovered = None
    if recovered != parsed.address:
        raise _siwe_fail("invalid_signature")
    return parsed


def _siwe_nonce_consume(*, parsed, now: datetime) -> None:
    row = SiweNonce.objects.select_for_update().filter(nonce_hash=tokens.sha256_hex(parsed.nonce)).first()
    if row is None or row.wallet_address != parsed.address:
        raise _siwe_fail("unknown_nonce")
    if row.used_at is not None:
        raise _siwe_fail("nonce_used")
    if row.expires_at <= now:
        raise _siwe_fail("expired")
    row.used_at = now
    row.save(update_fields=["used_at"])


def _address_lock(address: str) -> None:
    """Serialise first sign-ins of one address (no unique key exists to do it)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"siwe:{address}"])


def siwe_sign_in(*, message: str, signature: str, wallet_address: str | None = None) -> tuple[User, TokenPair, bool]:
    """Verify the message, consume its nonce, find or create the wallet's user and sign in.
    `wallet_address` (seed 003's field, optional) must be the message's address.
    Returns (user, tokens, created)."""
    parsed = siwe_verify(message=message, signature=signature)
    address = parsed.address
    if wallet_address is not None and wallet_address != address:
        raise _siwe_fail("address_mismatch", "wallet_address is not the address that signed the message.")
    now = timezone.now()
    with transaction.atomic():
        _siwe_nonce_consume(parsed=parsed, now=now)
        _address_lock(address)
        user = User.objects.filter(wallet_address=address, auth_method=User.AuthMethod.WALLET).first()
        created = False
        if user is None:
            owners = set(
                Wallet.objects.filter(wallet_address=address, is_active=True, verified_at__isnull=False).values_list(
                    "user_id", flat=True
                )
            )
            if len(owners) == 1:
                user = User.objects.get(pk=owners.pop())
        if user is None:
            username = address
            if User.objects.filter(username__iexact=username).exists():  # taken: never fail a sign-in over it
                username = f"{address}-{secrets.token_hex(3)}"
            user = User(username=username, auth_method=User.AuthMethod.WALLET, wallet_address=address, email=None)
            user.set_unusable_password()
            user.save()
            Wallet.objects.create(
                user=user,
                wallet_address=address,
                wallet_type=Wallet.WalletType.EOA,
                provider=Wallet.Provider.EXTERNAL,
                verified_at=now,
            )
            created = True
            event_record(
                topic="user.registered",
                aggregate_type="user",
                aggregate_id=user.pk,
                payload={"auth_method": user.auth_method, "wallet_address": address, "chain_id": parsed.chain_id},
                actor=_actor(user),
            )
        if not user.is_active:
            raise AuthError("This account is disabled.", code="ACCOUNT_DISABLED")  # rolls back: the nonce stays unused
        pair = user_sign_in(user=user, auth_method=User.AuthMethod.WALLET)
    return user, pair, created


# --- wallets ------------------------------------------------------------------------------------------


@transaction.atomic
def wallet_add(
    *,
    user: User,
    wallet_address: str,
    wallet_type: str = Wallet.WalletType.EOA,
    provider: str = Wallet.Provider.EXTERNAL,
    provider_wallet_id: str = "",
    verified: bool = False,
) -> Wallet:
    address = _address(wallet_address)
    existing = Wallet.objects.select_for_update().filter(user=user, wallet_address=address).first()
    if existing is not None:
        if existing.is_active:
            raise ConflictError("This wallet is already linked to your account.", code="WALLET_EXISTS")
        existing.is_active = True
        existing.wallet_type, existing.provider, existing.provider_wallet_id = wallet_type, provider, provider_wallet_id
        if verified:
            existing.verified_at = timezone.now()
        existing.save()
        wallet = existing
    else:
        wallet = Wallet.objects.create(
            user=user,
            wallet_address=address,
            wallet_type=wallet_type,
            provider=provider,
            provider_wallet_id=provider_wallet_id,
            verified_at=timezone.now() if verified else None,
        )
    event_record(
        topic="wallet.added",
        aggregate_type="wallet",
        aggregate_id=wallet.pk,
        payload={
            "user_id": user.pk,
            "wallet_address": address,
            "wallet_type": wallet_type,
            "provider": provider,
            "verified": verified,
        },
        actor=_actor(user),
    )
    return wallet


def wallet_for_order(*, user: User, address: str | None, safe: bool = False) -> Wallet | None:
    """The Wallet row an order trades from: the user's wallet with `address` (the address sent
    to the venue), whatever its state; None when the address is none of the user's wallets
    (the order keeps the address). `safe`: the address is the user's Safe in delegated mode,
    already proven theirs by the delegation; it is linked as a smart-account wallet the first
    time it trades (`wallet.added`)."""
    if not address:
        return None
    try:
        address = checksum_address(address)
    except DjangoValidationError:
        return None
    wallet = Wallet.objects.filter(user=user, wallet_address=address).first()
    if wallet is not None or not safe:
        return wallet
    try:
        with transaction.atomic():
            return wallet_add(
                user=user,
                wallet_address=address,
                wallet_type=Wallet.WalletType.SMART_ACCOUNT,
                provider=Wallet.Provider.SAFE,
                verified=True,
            )
    except (IntegrityError, ConflictError):  # a concurrent order of the same user linked it first
        return Wallet.objects.filter(user=user, wallet_address=address).first()


def wallet_add_signed(*, user: User, message: str, signature: str, wallet_type: str = Wallet.WalletType.EOA) -> Wallet:
    """Link an external wallet, proven by a signed Sign-In with Ethereum message (nonce from
    `siwe_nonce_issue` for that address)."""
    parsed = siwe_verify(message=message, signature=signature)
    with transaction.atomic():
        _siwe_nonce_consume(parsed=parsed, now=timezone.now())
        return wallet_add(
            user=user, wallet_address=parsed.address, wallet_type=wallet_type, provider="external", verified=True
        )


@transaction.atomic
def wallet_deactivate(*, wallet: Wallet, actor: User) -> Wallet:
    wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
    if not wallet.is_active:
        return wallet
    wallet.is_active = False
    wallet.save(update_fields=["is_active", "updated_at"])
    event_record(
        topic="wallet.deactivated",
        aggregate_type="wallet",
        aggregate_id=wallet.pk,
        payload={"user_id": wallet.user_id, "wallet_address": wallet.wallet_address},
        actor=_actor(actor),
    )
    return wallet


# --- service API keys -------------------------------------------------------------------------------


def api_key_generate() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def api_key_create(
    *,
    name: str,
    user: User,
    scopes: list[str],
    created_by: User | None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, raw key). The raw key is returned once and never stored."""
    valid = set(ApiKey.Scope.values)
    if not scopes or not set(scopes) <= valid:
        raise ApplicationError(
            "Invalid scopes.",
            code="VALIDATION_ERROR",
            details={"scopes": [f"each one of: {', '.join(sorted(valid))}"]},
        )
    raw = api_key_generate()
    key = ApiKey.objects.create(
        name=name,
        user=user,
        prefix=raw[:12],
        key_hash=tokens.sha256_hex(raw),
        scopes=sorted(set(scopes)),
        created_by=created_by,
        expires_at=expires_at,
    )
    event_record(
        topic="api_key.created",
        aggregate_type="api_key",
        aggregate_id=key.pk,
        payload={"name": name, "user_id": user.pk, "scopes": key.scopes, "prefix": key.prefix},
        actor=_actor(created_by) if created_by else "system",
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if key.revoked_at is not None:
        return key
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    event_record(
        topic="api_key.revoked",
        aggregate_type="api_key",
        aggregate_id=key.pk,
        payload={"name": key.name, "prefix": key.prefix},
        actor=_actor(actor) if actor else "system",
    )
    return key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The usable key for this raw value (its user loaded), or None. Tracks last use (at most
    one write a minute per key)."""
    if not raw.startswith(API_KEY_PREFIX):
        return None
    key = ApiKey.objects.select_related("user").filter(key_hash=tokens.sha256_hex(raw)).first()
    if key is None or not key.is_usable:
        return None
    now = timezone.now()
    if key.last_used_at is None or key.last_used_at < now - timedelta(seconds=60):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def auth_records_purge(*, older_than: timedelta = timedelta(days=1)) -> dict:
    """Delete SIWE nonces and refresh tokens that expired more than `older_than` ago (Beat)."""
    cutoff = timezone.now() - older_than
    nonces, _ = SiweNonce.objects.filter(expires_at__lt=cutoff).delete()
    refresh, _ = RefreshToken.objects.filter(expires_at__lt=cutoff).delete()
    return {"nonces": nonces, "refresh_tokens": refresh}
