"""Ostium delegations from Safe smart accounts, and the custody of the keys Tradedesk holds
(delegate keys that trade for a Safe, and the relayer that pays gas for `execTransaction`)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

NULL_ADDRESS = "0x0000000000000000000000000000000000000000"


class OstiumDelegation(models.Model):
    """One Safe's delegation of Ostium trading to our delegate key. The row carries the SafeTx
    currently being signed (first the `setDelegate` batch, later the `removeDelegate` one) and
    the owner signatures collected for it."""

    class Status(models.TextChoices):
        PENDING_SIGNATURE = "pending_signature", "Pending signature"
        SUBMITTED = "submitted", "Submitted"
        ACTIVE = "active", "Active"
        REVOKING = "revoking", "Revoking (removeDelegate pending)"
        REVOKED = "revoked", "Revoked"
        FAILED = "failed", "Failed"

    class Action(models.TextChoices):
        DELEGATE = "delegate", "setDelegate (+ USDC approval)"
        REVOKE = "revoke", "removeDelegate"

    LIVE = (Status.PENDING_SIGNATURE, Status.SUBMITTED, Status.ACTIVE, Status.REVOKING)
    # statuses in which the prepared SafeTx is still waiting for signatures / execution
    SIGNABLE = (Status.PENDING_SIGNATURE, Status.REVOKING)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ostium_delegations")
    network = models.CharField(max_length=32)
    safe_address = models.CharField(max_length=42)
    delegate_address = models.CharField(max_length=42)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_SIGNATURE, db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.DELEGATE)
    threshold = models.PositiveSmallIntegerField(default=1, help_text="the Safe's threshold when prepared")
    # the prepared SafeTx (Safe 1.4.1 EIP-712 `SafeTx` fields)
    tx_to = models.CharField(max_length=42)
    tx_value = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    tx_data = models.TextField(help_text="0x-hex calldata")
    tx_operation = models.PositiveSmallIntegerField(default=0, help_text="0 CALL, 1 DELEGATECALL")
    safe_tx_gas = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    base_gas = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    gas_price = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    gas_token = models.CharField(max_length=42, default=NULL_ADDRESS)
    refund_receiver = models.CharField(max_length=42, default=NULL_ADDRESS)
    safe_nonce = models.DecimalField(max_digits=78, decimal_places=0)
    safe_tx_hash = models.CharField(max_length=66, db_index=True)
    usdc_allowance = models.DecimalField(
        max_digits=78, decimal_places=0, null=True, blank=True, help_text="raw USDC units approved (delegate action)"
    )
    transaction_hash = models.CharField(max_length=66, blank=True, default="", help_text="last execTransaction")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(
        null=True, blank=True, help_text="when the last execution was claimed (before execTransaction is sent)"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True, help_text="last reconciliation with the chain")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "network", "safe_address", "delegate_address"],
                condition=Q(status__in=["pending_signature", "submitted", "active", "revoking"]),
                name="ostium_delegation_live_unique",
            )
        ]

    def __str__(self):
        return f"delegation {self.pk} {self.safe_address} → {self.delegate_address} ({self.status})"

    @property
    def correlation_id(self) -> str:
        return f"delegation-{self.pk}"

    @property
    def signable(self) -> bool:
        return self.status in self.SIGNABLE

    def safe_tx_fields(self) -> dict:
        return {
            "to": self.tx_to,
            "value": int(self.tx_value),
            "data": self.tx_data,
            "operation": self.tx_operation,
            "safeTxGas": int(self.safe_tx_gas),
            "baseGas": int(self.base_gas),
            "gasPrice": int(self.gas_price),
            "gasToken": self.gas_token,
            "refundReceiver": self.refund_receiver,
            "nonce": int(self.safe_nonce),
        }


class DelegationSignature(models.Model):
    """One owner's signature over one SafeTx hash of a delegation (verified when stored)."""

    delegation = models.ForeignKey(OstiumDelegation, on_delete=models.CASCADE, related_name="signatures")
    safe_tx_hash = models.CharField(max_length=66)
    owner = models.CharField(max_length=42)
    signature = models.CharField(max_length=132, help_text="65 bytes r|s|v, 0x-hex")
    verified_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["delegation", "safe_tx_hash", "owner"], name="delegation_signature_unique")
        ]

    def __str__(self):
        return f"{self.owner} on {self.safe_tx_hash[:10]}…"


class CustodyKey(models.Model):
    """A private key Tradedesk holds, encrypted at rest (MultiFernet, `delegations.crypto`).
    `delegate`: the key a Safe delegates Ostium trading to (per network, or per user when
    `OSTIUM_DELEGATE_KEY_SCOPE=user`). `relayer`: pays gas for `execTransaction`. `near_solver`:
    the ed25519 key of the desk's NEAR Intents solver account (signs its intents; `address` holds
    its public key, `ed25519:<base58>`). The plaintext is read only by
    `delegations.keys.delegate_key_load` / `relayer_key_load` / `solver_key_for_network`."""

    class Purpose(models.TextChoices):
        DELEGATE = "delegate", "Delegate (trades for Safes)"
        RELAYER = "relayer", "Relayer (pays gas)"
        NEAR_SOLVER = "near_solver", "NEAR Intents solver (signs intents)"

    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    network = models.CharField(max_length=32)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="custody_keys"
    )
    address = models.CharField(max_length=64, help_text="EVM address, or the NEAR public key of a solver key")
    encrypted_key = models.BinaryField(editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True, help_text="last re-encryption")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "network"],
                condition=Q(is_active=True, user__isnull=True),
                name="custody_key_active_network_unique",
            ),
            models.UniqueConstraint(
                fields=["purpose", "network", "user"],
                condition=Q(is_active=True, user__isnull=False),
                name="custody_key_active_user_unique",
            ),
        ]

    def __str__(self):
        return f"{self.purpose} {self.network} {self.fingerprint}"

    @property
    def fingerprint(self) -> str:
        """Address + a short hash of the address: identifies the key, reveals nothing of it."""
        digest = hashlib.sha256(self.address.lower().encode()).hexdigest()[:8]
        return f"{self.address} #{digest}"
