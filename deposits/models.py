"""A user's deposit (seed 003 §3.1.6) and the LI.FI swap that turns it into USDC on the target
chain (§3.1.7). Tradedesk never holds the user's keys: it quotes, builds what the user's wallet
(or their Safe's owners) sign, and follows what they sent."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from trading.admin_panel.formatting import number


class Deposit(models.Model):
    class Status(models.TextChoices):
        QUOTED = "quoted", "Quoted"
        AWAITING_SIGNATURE = "awaiting_signature", "Awaiting signature"
        SUBMITTED = "submitted", "Submitted (transaction sent by the user)"
        PENDING = "pending", "Pending (LI.FI transfer under way)"
        COMPLETED = "completed", "Completed (USDC credited on chain)"
        PARTIAL = "partial", "Partial (another token arrived; not credited)"
        REFUNDED = "refunded", "Refunded (not credited)"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        WALLET = "wallet", "The user's wallet signs"
        SAFE = "safe", "The Safe's owners sign a SafeTx"
        DESK = "desk", "The desk's own wallet (treasury swap; the desk signs)"

    # The seed's four statuses (§3.1.6: pending, processing, completed, failed), which the API
    # answers in `status`; the detailed status above is `status_detail`. Partial and refunded end
    # without a USDC credit, so to the seed they failed.
    SEED_STATUS = {
        Status.QUOTED: "pending",
        Status.AWAITING_SIGNATURE: "pending",
        Status.SUBMITTED: "processing",
        Status.PENDING: "processing",
        Status.COMPLETED: "completed",
        Status.PARTIAL: "failed",
        Status.REFUNDED: "failed",
        Status.FAILED: "failed",
    }

    OPEN = (Status.QUOTED, Status.AWAITING_SIGNATURE, Status.SUBMITTED, Status.PENDING)
    FOLLOWED = (Status.SUBMITTED, Status.PENDING)
    ENDED = (Status.COMPLETED, Status.PARTIAL, Status.REFUNDED, Status.FAILED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    token_address = models.CharField(max_length=42)
    token_symbol = models.CharField(max_length=20)
    token_decimals = models.PositiveSmallIntegerField()
    chain = models.CharField(max_length=32)
    chain_id = models.BigIntegerField()
    amount = models.DecimalField(max_digits=40, decimal_places=18)
    amount_raw = models.DecimalField(max_digits=78, decimal_places=0)
    provider = models.CharField(max_length=20, default="ostium", help_text="the venue the USDC funds")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUOTED, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.WALLET)
    from_address = models.CharField(max_length=42, help_text="who sends: the user's wallet or their Safe")
    target_address = models.CharField(max_length=42, help_text="who receives the USDC: their Safe or wallet")
    target_chain = models.CharField(max_length=32)
    target_chain_id = models.BigIntegerField()
    target_token = models.CharField(max_length=20, default="USDC")
    target_token_address = models.CharField(max_length=42)
    swap_needed = models.BooleanField(default=True)
    transaction_hash = models.CharField(max_length=66, blank=True, default="", help_text="the user's sent transaction")
    credited_amount = models.DecimalField(max_digits=40, decimal_places=6, null=True, blank=True)
    credit_transaction_hash = models.CharField(max_length=66, blank=True, default="")
    # a Safe source: the SafeTx its owners sign (Safe 1.4.1 EIP-712 `SafeTx` fields) and its hash
    safe_tx = models.JSONField(null=True, blank=True)
    safe_tx_hash = models.CharField(max_length=66, blank=True, default="")
    relay_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="when the desk's relayer started executing the SafeTx"
    )
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="when it ended, whichever way")
    delayed_at = models.DateTimeField(null=True, blank=True, help_text="flagged: pending past the alert delay")
    # status polling
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    poll_failures = models.PositiveIntegerField(default=0)
    poll_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "transaction_hash"],
                condition=~Q(transaction_hash=""),
                name="deposit_transaction_unique",
            )
        ]

    def __str__(self):
        return f"deposit {self.pk} {number(self.amount)} {self.token_symbol}@{self.chain} ({self.status})"

    @property
    def correlation_id(self) -> str:
        return f"deposit-{self.pk}"

    @property
    def seed_status(self) -> str:
        return self.SEED_STATUS[self.status]

    @property
    def swap(self) -> TokenSwap | None:
        return self.swaps.order_by("-id").first()


class TokenSwap(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending (not sent)"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        PARTIAL = "partial", "Partial"
        REFUNDED = "refunded", "Refunded"
        FAILED = "failed", "Failed"

    # the seed's four (§3.1.7 swap_status); the detailed one is `status_detail`
    SEED_STATUS = {
        Status.PENDING: "pending",
        Status.PROCESSING: "processing",
        Status.COMPLETED: "completed",
        Status.PARTIAL: "failed",
        Status.REFUNDED: "failed",
        Status.FAILED: "failed",
    }

    deposit = models.ForeignKey(Deposit, on_delete=models.CASCADE, related_name="swaps")
    from_token = models.CharField(max_length=20)
    from_token_address = models.CharField(max_length=42)
    to_token = models.CharField(max_length=20, default="USDC")
    to_token_address = models.CharField(max_length=42)
    from_chain = models.CharField(max_length=32)
    from_chain_id = models.BigIntegerField()
    to_chain = models.CharField(max_length=32)
    to_chain_id = models.BigIntegerField()
    amount = models.DecimalField(max_digits=40, decimal_places=18)
    from_amount_raw = models.DecimalField(max_digits=78, decimal_places=0)
    swap_provider = models.CharField(max_length=10, default="lifi")
    swap_status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    lifi_status = models.CharField(max_length=16, blank=True, default="", help_text="NOT_FOUND/PENDING/DONE/FAILED")
    substatus = models.CharField(max_length=40, blank=True, default="")
    substatus_message = models.CharField(max_length=300, blank=True, default="")
    route_id = models.CharField(max_length=80, help_text="LI.FI quote (step) id")
    tool = models.CharField(max_length=40, blank=True, default="")
    swap_transaction_hash = models.CharField(max_length=66, blank=True, default="")
    receiving_transaction_hash = models.CharField(max_length=66, blank=True, default="")
    explorer_link = models.CharField(max_length=200, blank=True, default="")
    estimated_output = models.DecimalField(max_digits=40, decimal_places=6, null=True, blank=True)
    min_output = models.DecimalField(max_digits=40, decimal_places=6, null=True, blank=True)
    to_amount_raw = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    to_amount_min_raw = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    actual_output = models.DecimalField(max_digits=40, decimal_places=6, null=True, blank=True)
    received_token = models.CharField(max_length=42, blank=True, default="")
    approval_address = models.CharField(max_length=42, blank=True, default="")
    transaction_request = models.JSONField(default=dict)
    quoted_at = models.DateTimeField(default=timezone.now)
    quote_expires_at = models.DateTimeField()
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["from_chain_id", "swap_transaction_hash"],
                condition=~Q(swap_transaction_hash=""),
                name="token_swap_transaction_unique",
            )
        ]

    def __str__(self):
        return f"swap {self.pk} {self.from_token}@{self.from_chain} → USDC ({self.swap_status})"

    @property
    def seed_status(self) -> str:
        return self.SEED_STATUS[self.swap_status]


class DepositSignature(models.Model):
    """One Safe owner's signature over a deposit's SafeTx hash (verified when stored)."""

    deposit = models.ForeignKey(Deposit, on_delete=models.CASCADE, related_name="signatures")
    safe_tx_hash = models.CharField(max_length=66)
    owner = models.CharField(max_length=42)
    signature = models.CharField(max_length=132, help_text="65 bytes r|s|v, 0x-hex")
    verified_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["deposit", "safe_tx_hash", "owner"], name="deposit_signature_unique")
        ]

    def __str__(self):
        return f"{self.owner} on {self.safe_tx_hash[:10]}…"
