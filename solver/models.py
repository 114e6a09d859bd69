"""The NEAR Intents solver loop's records: its runtime settings, every quote request the relay
sent (raw), the decision on each quote of a filtered pair, and the command (the signed
quote_response) with its relay answer and settlement. One chain per quote_id:
RelayQuote → QuoteDecision → QuoteCommand (→ the treasury's Reservation)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from trading.ulid import new_ulid

AMOUNT = {"max_digits": 64, "decimal_places": 24}
RATE = {"max_digits": 48, "decimal_places": 24}

INGEST, STRATEGY, EXECUTOR = "near_intents:ingest", "strategy:near_intents", "executor:near_intents"
COMPONENTS = (INGEST, STRATEGY, EXECUTOR)


class SolverConfig(models.Model):
    """The loop's runtime settings (one row; created from the NEAR_SOLVER_* defaults). Change it
    only through `solver.services.config` so every change is audited in the ledger."""

    pairs = models.JSONField(default=list, help_text='the pair filter: pairs quoted, e.g. ["BTC/EURE"]')
    threshold_pct = models.DecimalField(max_digits=12, decimal_places=6, help_text="minimum gross edge, %")
    spread_pct = models.DecimalField(
        max_digits=12, decimal_places=6, help_text="the desk's price under the fair rate, %"
    )
    max_notional_quote = models.DecimalField(help_text="per quote, in the pair's quote asset", **AMOUNT)
    max_notional_hour = models.DecimalField(help_text="answered per rolling hour, in the pair's quote asset", **AMOUNT)
    price_max_age_ms = models.PositiveIntegerField(help_text="an older fair rate is not quoted on")
    changed_by = models.CharField(max_length=150, default="default")
    changed_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        verbose_name = "solver settings"
        verbose_name_plural = "solver settings"

    def __str__(self):
        return f"solver: {', '.join(self.pairs) or 'no pair'}, edge ≥ {self.threshold_pct.normalize()} %"


class RelayQuote(models.Model):
    """One quote request as the relay sent it, and what ingest made of it."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted"  # a filtered pair: handed to the strategy
        FILTERED = "filtered"  # not a pair the desk quotes
        INVALID = "invalid"  # unreadable (unknown token, both or no exact amount, bad number)
        DROPPED = "dropped"  # ingest paused, draining or disarmed: stored, nothing done

    quote_id = models.CharField(max_length=100, unique=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    raw = models.JSONField(help_text="the event's data and metadata as received")
    asset_in = models.CharField(max_length=200, help_text="what the user gives (the desk receives)")
    asset_out = models.CharField(max_length=200, help_text="what the user gets (the desk gives)")
    exact_amount_in = models.CharField(max_length=80, blank=True, default="")
    exact_amount_out = models.CharField(max_length=80, blank=True, default="")
    min_deadline_ms = models.BigIntegerField(default=0)
    pair = models.CharField(max_length=40, blank=True, default="", db_index=True)
    direction = models.CharField(max_length=8, blank=True, default="", help_text="sell (the desk gives base) | buy")
    amount = models.DecimalField(null=True, blank=True, help_text="the exact amount, in token units", **AMOUNT)
    status = models.CharField(max_length=10, choices=Status.choices)
    note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"quote {self.quote_id}"


class QuoteDecision(models.Model):
    """The strategy's decision on one quote, with the fair rate and the inventory it saw."""

    class Decision(models.TextChoices):
        QUOTE = "quote"
        SKIP = "skip"

    decision_id = models.CharField(max_length=26, primary_key=True, default=new_ulid)
    relay_quote = models.OneToOneField(RelayQuote, on_delete=models.CASCADE, related_name="decision")
    quote_id = models.CharField(max_length=100, unique=True)
    pair = models.CharField(max_length=40)
    direction = models.CharField(max_length=8)
    implied_rate = models.DecimalField(
        null=True, blank=True, help_text="what the desk's answer gives, quote per base", **RATE
    )
    reference_rate = models.DecimalField(null=True, blank=True, help_text="the fair rate, quote per base", **RATE)
    gross_edge_pct = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    price_freshness_ms = models.BigIntegerField(null=True, blank=True)
    inventory_snapshot = models.JSONField(default=dict, help_text="the given asset's balance at decision time")
    decision = models.CharField(max_length=5, choices=Decision.choices)
    decision_reason = models.CharField(max_length=40, help_text="QUOTED or the skip reason (UPPER_SNAKE)")
    detail = models.CharField(max_length=500, blank=True, default="")
    reference_sample = models.ForeignKey(
        "providers.ReferenceSample", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    inventory_snapshot_row = models.ForeignKey(
        "treasury.InventorySnapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount_in = models.DecimalField(null=True, blank=True, help_text="the desk receives (token units)", **AMOUNT)
    amount_out = models.DecimalField(null=True, blank=True, help_text="the desk gives (token units)", **AMOUNT)
    notional = models.DecimalField(null=True, blank=True, help_text="in the pair's quote asset", **AMOUNT)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["decision_reason", "created_at"], name="solver_decision_reason_idx")]

    def __str__(self):
        return f"{self.decision} {self.quote_id} ({self.decision_reason})"


class QuoteCommand(models.Model):
    """A signed quote_response, written before it is sent (keyed by quote_id), and its outcome."""

    class Status(models.TextChoices):
        SIGNED = "signed"  # written and signed; the send follows
        SENT = "sent"  # the relay accepted the response: waiting for the winner
        REJECTED = "rejected"  # the relay refused it (final; reservation released)
        UNKNOWN = "unknown"  # no answer (timeout, restart): reconciled, never resent
        EXECUTED = "executed"  # quote_status arrived: checking get_status
        SETTLED = "settled"  # final; reservation consumed
        EXPIRED = "expired"  # the deadline passed unanswered (final; reservation released)

    FINAL = (Status.REJECTED, Status.SETTLED, Status.EXPIRED)
    OPEN = (Status.SIGNED, Status.SENT, Status.UNKNOWN, Status.EXECUTED)

    command_id = models.CharField(max_length=26, primary_key=True, default=new_ulid)
    quote_id = models.CharField(max_length=100, unique=True)
    decision = models.OneToOneField(QuoteDecision, on_delete=models.PROTECT, related_name="command")
    reservation = models.ForeignKey(
        "treasury.Reservation", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SIGNED)
    pair = models.CharField(max_length=40)
    give_asset = models.CharField(max_length=200)
    give_amount = models.DecimalField(**AMOUNT)
    receive_asset = models.CharField(max_length=200)
    receive_amount = models.DecimalField(**AMOUNT)
    notional = models.DecimalField(default=Decimal(0), **AMOUNT)
    deadline = models.DateTimeField()
    quote_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    intent_hash = models.CharField(max_length=64, blank=True, default="")
    tx_hash = models.CharField(max_length=100, blank=True, default="")
    response = models.JSONField(default=dict, help_text="the quote_response sent (signed_data included)")
    relay_answer = models.JSONField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    status_at = models.DateTimeField(null=True, blank=True, help_text="quote_status received")
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome_reason = models.CharField(max_length=300, blank=True, default="")
    checks = models.PositiveIntegerField(default=0, help_text="get_status asked")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "deadline"], name="solver_command_open_idx")]

    def __str__(self):
        return f"command {self.command_id} ({self.status})"
