from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from trading.ulid import new_ulid


def checksum_address(value: str) -> str:
    """EIP-55 checksum form of an address; raises ValidationError when it is not one."""
    from eth_utils import is_address, to_checksum_address

    if not value or not is_address(value):
        raise ValidationError(f"{value!r} is not an Ethereum address.", code="invalid_address")
    return to_checksum_address(value)


class User(AbstractUser):
    class AuthMethod(models.TextChoices):
        PASSWORD = "password", "Email and password"
        WALLET = "wallet", "Sign-In with Ethereum"
        PRIVY = "privy", "Privy"
        DYNAMIC = "dynamic", "Dynamic"

    class AccessLevel(models.TextChoices):
        BASIC = "basic", "Basic"
        TRADER = "trader", "Trader"
        PRO = "pro", "Pro"

    email = models.EmailField(unique=True, null=True, blank=True)
    auth_method = models.CharField(max_length=16, choices=AuthMethod.choices, default=AuthMethod.PASSWORD)
    wallet_address = models.CharField(max_length=42, blank=True, default="", db_index=True)
    feature_access_level = models.CharField(max_length=16, choices=AccessLevel.choices, default=AccessLevel.BASIC)
    email_verified = models.BooleanField(default=False)
    last_login_at = models.DateTimeField(null=True, blank=True)

    def clean(self):
        super().clean()
        if self.wallet_address:
            self.wallet_address = checksum_address(self.wallet_address)

    def save(self, *args, **kwargs):
        if self.wallet_address:
            self.wallet_address = checksum_address(self.wallet_address)
        if self.email == "":
            self.email = None
        super().save(*args, **kwargs)


class Event(models.Model):
    """One row of the append-only ledger. The database refuses UPDATE and DELETE on it."""

    id = models.CharField(max_length=26, primary_key=True, default=new_ulid, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now)
    topic = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=100, blank=True, default="")
    causation_id = models.CharField(max_length=100, blank=True, default="")
    actor = models.CharField(max_length=150, default="system")
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    version = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["topic", "occurred_at"], name="event_topic_time"),
            models.Index(fields=["correlation_id", "occurred_at"], name="event_correlation_time"),
            models.Index(fields=["aggregate_type", "aggregate_id", "id"], name="event_aggregate"),
        ]

    def __str__(self):
        return f"{self.id} {self.topic} {self.aggregate_type}:{self.aggregate_id}"


class OutboxMessage(models.Model):
    """One pending publication of one event to one registered handler (at least once)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead", "Dead (gave up)"

    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="outbox")
    handler = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "handler"], name="outbox_event_handler_unique")]
        indexes = [
            models.Index(
                fields=["handler", "event"],
                name="outbox_pending",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self):
        return f"{self.handler} ← {self.event_id} ({self.status})"


# --- accounts and API access ----------------------------------------------------------------------


class Wallet(models.Model):
    """A wallet a user controls. `verified_at` is set when ownership was proven by a signature."""

    class WalletType(models.TextChoices):
        EOA = "eoa", "Externally owned account"
        SMART_ACCOUNT = "smart_account", "Smart account"

    class Provider(models.TextChoices):
        PRIVY = "privy", "Privy"
        DYNAMIC = "dynamic", "Dynamic"
        EXTERNAL = "external", "External (own key)"
        SAFE = "safe", "Safe"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="wallets")
    wallet_address = models.CharField(max_length=42, db_index=True)
    wallet_type = models.CharField(max_length=16, choices=WalletType.choices, default=WalletType.EOA)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.EXTERNAL)
    provider_wallet_id = models.CharField(max_length=128, blank=True, default="")
    is_active = models.BooleanField(default=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["user", "wallet_address"], name="wallet_user_address_unique")]

    def __str__(self):
        return f"{self.wallet_address} ({self.provider})"

    def save(self, *args, **kwargs):
        self.wallet_address = checksum_address(self.wallet_address)
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        if self.wallet_address:
            self.wallet_address = checksum_address(self.wallet_address)


class RefreshToken(models.Model):
    """One issued refresh token, stored by jti with a SHA-256 of the token (never the token).
    Tokens of one sign-in form a family; rotating revokes the old one, and presenting a revoked
    one again revokes the whole family (the token was stolen or replayed)."""

    jti = models.CharField(max_length=64, unique=True)
    token_hash = models.CharField(max_length=64)
    family = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True, default="")
    replaced_by = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"refresh {self.jti[:8]}… user={self.user_id}"


class SiweNonce(models.Model):
    """A single-use Sign-In with Ethereum nonce, bound to the address it was issued for.
    Only its SHA-256 is stored."""

    nonce_hash = models.CharField(max_length=64, unique=True)
    wallet_address = models.CharField(max_length=42)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="siwe_nonce_expiry")]

    def __str__(self):
        return f"nonce for {self.wallet_address}"


class ApiKey(models.Model):
    """A service key for server-to-server callers, acting as `user` within `scopes`.
    The key is shown once at creation; only its prefix and SHA-256 are kept."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        TRADE = "trade", "Trade"

    name = models.CharField(max_length=100)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
