"""Outbound webhooks: endpoints (per user), deliveries (one per event and endpoint), attempts,
the operator's SSRF allowlist and notices about disabled endpoints."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from trading.ulid import new_ulid


class EventType(models.TextChoices):
    TRADE_EXECUTED = "trade.executed"
    TRADE_CLOSED = "trade.closed"
    ORDER_TRIGGERED = "order.triggered"
    ORDER_REJECTED = "order.rejected"
    POSITION_UPDATED = "position.updated"
    POSITION_LIQUIDATED = "position.liquidated"
    DEPOSIT_COMPLETED = "deposit.completed"
    SWAP_COMPLETED = "swap.completed"
    DELEGATION_UPDATED = "delegation.updated"


ALL_EVENTS = "*"
PING = "ping"
SUBSCRIBABLE = [*EventType.values, ALL_EVENTS]


class WebhookEndpoint(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True, default="")
    event_types = models.JSONField(default=list, help_text='Subscribed event types; "*" for all.')
    is_active = models.BooleanField(default=True)
    # Secrets: Fernet tokens (config/crypto.py); never rendered. The fingerprint identifies them.
    secret_encrypted = models.TextField(editable=False)
    secret_fingerprint = models.CharField(max_length=12, editable=False)
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_fingerprint = models.CharField(max_length=12, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Health: the start of the current unbroken run of failed attempts, and why it was disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "is_active"], name="webhook_endpoint_user_active")]

    def __str__(self):
        return f"#{self.pk} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One message (one event to one endpoint). `webhook_id` is the Standard Webhooks message
    id: the same on every attempt and redelivery, so receivers can deduplicate on it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERING = "delivering"
        DELIVERED = "delivered"
        FAILED = "failed"

    webhook_id = models.CharField(max_length=40, unique=True, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=26, db_index=True, help_text="The ledger event this delivers.")
    event_type = models.CharField(max_length=40)
    payload = models.JSONField(help_text="The JSON body sent, identical on every attempt.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts in the current round (redelivery resets).")
    total_attempts = models.PositiveIntegerField(default=0, help_text="Attempts in all rounds.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due", condition=models.Q(status="pending")),
            models.Index(fields=["endpoint", "status"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self):
        return f"{self.webhook_id} {self.event_type} → #{self.endpoint_id} ({self.status})"

    @staticmethod
    def new_webhook_id() -> str:
        return f"msg_{new_ulid()}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="First 2 KB of the response body.")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number")]

    def __str__(self):
        return f"{self.delivery_id} #{self.number} → {self.response_code or self.error}"


class WebhookAllowlist(models.Model):
    """Operator-approved targets that would otherwise be refused (private, loopback, ...)."""

    host = models.CharField(max_length=253, blank=True, default="", help_text="Exact host name, e.g. hooks.internal")
    cidr = models.CharField(
        max_length=64, blank=True, default="", help_text="Network, e.g. 10.1.2.0/24 or 127.0.0.1/32"
    )
    allow_http = models.BooleanField(default=False, help_text="Allow plain http:// for this target.")
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "webhook allowlist entry"
        verbose_name_plural = "webhook allowlist"

    def __str__(self):
        return self.host or self.cidr

    def clean(self):
        if bool(self.host) == bool(self.cidr):
            raise ValidationError("Give either a host or a CIDR.")
        if self.cidr:
            try:
                self.cidr = str(ipaddress.ip_network(self.cidr, strict=False))
            except ValueError as exc:
                raise ValidationError({"cidr": str(exc)}) from exc
        self.host = self.host.strip().lower().rstrip(".")


class WebhookNotice(models.Model):
    """Something an operator should know (an endpoint was disabled); `text` is a plain-text
    notice ready to be emailed to the endpoint's owner."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.SET_NULL, null=True, related_name="notices")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    subject = models.CharField(max_length=200)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.subject
