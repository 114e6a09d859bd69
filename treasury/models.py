"""Treasury: what the desk can spend, where, and what is on its way.

- `InventoryBalance`: one row per venue, account and asset: credited (spendable at the venue),
  reserved (promised to in-flight quotes, orders, withdrawals), pending in and out, locked in
  open positions, the last sync and its source, and the reconciliation status. Consumers read
  `credited − reserved`, and only of a balance that is not stale.
- `InventorySnapshot`: every sync writes one per balance (append-only): the inventory that
  existed at any moment.
- `Reservation`: a hold on a balance, taken and released in the consumer's own transaction.
- `InventorySync`: each venue's sync heartbeat.
- `LiquidityAction`: deposit addresses, fundings, withdrawals and rebalances, one state machine.
- `DepositAddress`, `AllowlistEntry`: funding handles, and where withdrawals may go.
Change them only through `treasury.services`: every change writes its ledger event."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.clock import seconds_since
from trading.admin_panel.formatting import number

# Token units: as many decimals as the verifier's tokens have (wNEAR: 24).
AMOUNT = {"max_digits": 64, "decimal_places": 24}
ZERO = Decimal(0)


def amount_text(value: Decimal | None) -> str | None:
    """An amount as plain text without trailing zeros ("70", "0.0015"), None for None."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


class Venue(models.TextChoices):
    NEAR_INTENTS = "near_intents", "NEAR Intents"
    OSTIUM = "ostium", "Ostium"
    PAPER = "paper", "Paper"


class InventoryBalance(models.Model):
    class Status(models.TextChoices):
        OK = "ok"
        DRIFT = "drift"
        STALE = "stale"

    venue = models.CharField(max_length=16, choices=Venue.choices)
    account = models.CharField(max_length=100)
    asset = models.CharField(max_length=200, help_text="the venue's asset id (NEAR Intents: the verifier token id)")
    symbol = models.CharField(max_length=32, blank=True, default="")
    decimals = models.PositiveSmallIntegerField(default=0)
    credited = models.DecimalField(default=ZERO, help_text="spendable at the venue (last sync)", **AMOUNT)
    reserved = models.DecimalField(default=ZERO, help_text="held for in-flight quotes, orders, withdrawals", **AMOUNT)
    pending_in = models.DecimalField(default=ZERO, help_text="on its way in, not spendable", **AMOUNT)
    pending_out = models.DecimalField(default=ZERO, help_text="on its way out", **AMOUNT)
    locked = models.DecimalField(default=ZERO, help_text="held in open positions (collateral)", **AMOUNT)
    drift = models.DecimalField(default=ZERO, help_text="credited less than expected by this much", **AMOUNT)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.STALE)
    stale_reason = models.CharField(max_length=300, blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_source = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["venue", "account", "symbol", "asset"]
        constraints = [
            models.UniqueConstraint(fields=["venue", "account", "asset"], name="inventory_balance_unique"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="inventory_reserved_non_negative"),
        ]
        permissions = [("refresh_inventory", "Can refresh inventory and acknowledge drift")]

    def __str__(self):
        return f"{self.venue}:{self.account}:{self.symbol or self.asset}"

    @property
    def spendable(self) -> Decimal:
        return max(self.credited - self.reserved, ZERO)

    def age_seconds(self, now=None) -> float | None:
        return seconds_since(self.synced_at, now)

    def effective_status(self, now=None) -> str:
        """stale when never synced, marked stale by a failed sync, or older than INVENTORY_MAX_AGE_SECONDS."""
        age = self.age_seconds(now)
        if self.status == self.Status.STALE or age is None or age > settings.INVENTORY_MAX_AGE_SECONDS:
            return self.Status.STALE
        return self.status

    def why_stale(self, now=None) -> str:
        age = self.age_seconds(now)
        if age is None:
            return "never synced"
        if self.status == self.Status.STALE:
            return self.stale_reason or "the last sync failed"
        return f"last synced {age:.0f} s ago (limit {settings.INVENTORY_MAX_AGE_SECONDS:.0f} s)"


class InventorySnapshot(models.Model):
    """Append-only: a balance as one sync (or a reservation change) left it."""

    balance = models.ForeignKey(InventoryBalance, on_delete=models.PROTECT, related_name="snapshots")
    venue = models.CharField(max_length=16)
    account = models.CharField(max_length=100)
    asset = models.CharField(max_length=200)
    credited = models.DecimalField(**AMOUNT)
    reserved = models.DecimalField(**AMOUNT)
    pending_in = models.DecimalField(**AMOUNT)
    pending_out = models.DecimalField(**AMOUNT)
    locked = models.DecimalField(**AMOUNT)
    status = models.CharField(max_length=8)
    source = models.CharField(max_length=200, blank=True, default="")
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["balance", "taken_at"], name="inventory_snapshot_balance"),
            models.Index(fields=["venue", "asset", "taken_at"], name="inventory_snapshot_asset"),
        ]

    def __str__(self):
        return f"{self.venue}:{self.account}:{self.asset} @ {self.taken_at:%Y-%m-%d %H:%M:%S}"


class InventorySync(models.Model):
    """The sync heartbeat of one venue."""

    venue = models.CharField(max_length=16, choices=Venue.choices, unique=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    assets = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=200, blank=True, default="")
    notes = models.TextField(blank=True, default="", help_text="what the last run could not read (not fatal)")

    class Meta:
        ordering = ["venue"]

    def __str__(self):
        return f"sync {self.venue}"


class Reservation(models.Model):
    class Status(models.TextChoices):
        HELD = "held"
        RELEASED = "released"
        CONSUMED = "consumed"

    balance = models.ForeignKey(InventoryBalance, on_delete=models.PROTECT, related_name="reservations")
    amount = models.DecimalField(**AMOUNT)
    ref = models.CharField(max_length=120, help_text="what holds it: quote:<id>, order:<id>, liquidity:<id>")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD)
    actor = models.CharField(max_length=150, default="system")
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["ref"], condition=Q(status="held"), name="reservation_ref_held_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="reservation_amount_positive"),
        ]

    def __str__(self):
        return f"{self.ref} {number(self.amount)} ({self.status})"


class IllegalLiquidityTransition(Exception):
    def __init__(self, action_id, src: str, dst: str):
        super().__init__(f"liquidity action {action_id}: illegal transition {src} -> {dst}")
        self.src, self.dst = src, dst


class LiquidityAction(models.Model):
    class Kind(models.TextChoices):
        DEPOSIT_ADDRESS = "deposit_address", "Deposit address"
        FUNDING = "funding", "Funding (external wallet → venue)"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        REBALANCE = "rebalance", "Rebalance (venue → venue)"

    class Status(models.TextChoices):
        REQUESTED = "requested"
        SUBMITTED = "submitted"
        SEEN = "seen"
        CREDITED = "credited"
        DELAYED = "delayed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Origin(models.TextChoices):
        OPERATOR = "operator", "Requested by an operator"
        BRIDGE = "bridge", "Seen by the bridge service"

    S = Status
    TERMINAL = frozenset({S.CREDITED, S.FAILED, S.CANCELLED})
    OPEN = (S.REQUESTED, S.SUBMITTED, S.SEEN, S.DELAYED)
    TRANSITIONS: dict[str, frozenset] = {
        S.REQUESTED: frozenset({S.SUBMITTED, S.SEEN, S.CREDITED, S.DELAYED, S.FAILED, S.CANCELLED}),
        S.SUBMITTED: frozenset({S.SEEN, S.CREDITED, S.DELAYED, S.FAILED, S.CANCELLED}),
        S.SEEN: frozenset({S.CREDITED, S.DELAYED, S.FAILED}),
        S.DELAYED: frozenset({S.SUBMITTED, S.SEEN, S.CREDITED, S.FAILED, S.CANCELLED}),
        S.CREDITED: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
    }
    del S

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.OPERATOR)
    venue = models.CharField(max_length=16, choices=Venue.choices)
    account = models.CharField(max_length=100)
    asset = models.CharField(max_length=200, blank=True, default="")
    symbol = models.CharField(max_length=32, blank=True, default="")
    amount = models.DecimalField(null=True, blank=True, help_text="expected (funding) or sent (withdrawal)", **AMOUNT)
    amount_credited = models.DecimalField(null=True, blank=True, help_text="what actually arrived", **AMOUNT)
    drift = models.DecimalField(default=ZERO, help_text="expected − credited, when positive", **AMOUNT)
    chain = models.CharField(max_length=64, blank=True, default="", help_text="e.g. eth:42161, btc:mainnet, near")
    address = models.CharField(max_length=200, blank=True, default="", help_text="deposit or destination address")
    memo = models.CharField(max_length=200, blank=True, default="")
    tx_hash = models.CharField(max_length=200, blank=True, default="", help_text="the external transaction")
    transfer_tx_hash = models.CharField(max_length=200, blank=True, default="", help_text="destination-chain tx")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    dest_venue = models.CharField(max_length=16, blank=True, default="", help_text="rebalance destination")
    dest_account = models.CharField(max_length=100, blank=True, default="")
    dest_asset = models.CharField(max_length=200, blank=True, default="")
    reservation = models.ForeignKey(Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    intent_hash = models.CharField(max_length=64, blank=True, default="", help_text="of the signed withdrawal intent")
    signed_intent = models.JSONField(null=True, blank=True, help_text="the published NEP-413 payload (no secret)")
    intent_deadline = models.DateTimeField(null=True, blank=True)
    relay_response = models.JSONField(null=True, blank=True)
    needs_approval = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=150, default="system")
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.CharField(max_length=150, blank=True, default="")
    approved_at = models.DateTimeField(null=True, blank=True)
    delayed_from = models.CharField(max_length=10, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "kind", "tx_hash"],
                condition=Q(duplicate_of__isnull=True) & ~Q(tx_hash=""),
                name="liquidity_tx_hash_once",
            )
        ]
        indexes = [models.Index(fields=["venue", "account", "asset", "status"], name="liquidity_balance_status")]
        permissions = [
            ("approve_liquidityaction", "Can approve another operator's withdrawal (four eyes)"),
            ("freeze_withdrawals", "Can freeze withdrawals"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.kind} {number(self.amount)} {self.symbol or self.asset} ({self.status})".replace(
            "  ", " "
        )

    @property
    def correlation_id(self) -> str:
        return f"liquidity-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    def overdue(self, now=None) -> bool:
        limit = timedelta(minutes=settings.FUNDING_DELAY_ALERT_MINUTES)
        return self.is_open and (now or timezone.now()) - self.created_at > limit

    def can_move(self, dst: str) -> bool:
        return dst in self.TRANSITIONS[self.status]


class DepositAddress(models.Model):
    """A funding handle the bridge service gave for one account and chain."""

    venue = models.CharField(max_length=16, choices=Venue.choices)
    account = models.CharField(max_length=100)
    chain = models.CharField(max_length=64)
    address = models.CharField(max_length=200)
    memo = models.CharField(max_length=200, blank=True, default="")
    action = models.ForeignKey(LiquidityAction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["venue", "chain"]
        verbose_name_plural = "deposit addresses"
        constraints = [
            models.UniqueConstraint(fields=["venue", "account", "chain", "address"], name="deposit_address_unique")
        ]

    def __str__(self):
        return f"{self.chain} {self.address}"


class AllowlistEntry(models.Model):
    """A destination withdrawals may go to: a chain and an address (NEAR account for chain
    `near`), for one asset or (empty) any."""

    chain = models.CharField(max_length=64)
    address = models.CharField(max_length=200)
    asset = models.CharField(max_length=200, blank=True, default="", help_text="empty: any asset")
    label = models.CharField(max_length=100, blank=True, default="")
    active = models.BooleanField(default=True)
    added_by = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["chain", "address"]
        verbose_name_plural = "allowlist entries"
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "address", "asset"], condition=Q(active=True), name="allowlist_active_unique"
            )
        ]

    def __str__(self):
        return f"{self.label or self.address} ({self.chain}{' ' + self.asset if self.asset else ''})"
