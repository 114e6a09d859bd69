"""Models owned by `providers`: the provider router and the paper venue's state.

The paper venue is a simulated external system: its accounts, positions, orders and fills
live here (PostgreSQL, so a restart loses nothing) and the trading core sees them only
through `providers.interface` (ExecutionResult, VenuePosition, VenueEvent).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from trading.admin_panel.formatting import number

# Money, prices and sizes: 38 digits, 18 after the point (sizes of small-priced assets need them).
MONEY = {"max_digits": 38, "decimal_places": 18}
RATE = {"max_digits": 20, "decimal_places": 12}


class ProviderRoute(models.Model):
    """Which venue trades a symbol. Precedence: an enabled symbol route, then an enabled
    category route (highest priority first within each), then settings.DEFAULT_VENUE."""

    class MatchType(models.TextChoices):
        SYMBOL = "symbol", "Symbol"
        CATEGORY = "category", "Category"

    match_type = models.CharField(max_length=10, choices=MatchType.choices)
    value = models.CharField(max_length=40, help_text="A symbol (BTC-USD) or a category (crypto, forex, …).")
    venue = models.CharField(max_length=40, help_text="Venue name, e.g. paper, ostium.")
    priority = models.IntegerField(default=0, help_text="Higher wins among routes of the same match type.")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["match_type", "-priority", "value"]
        indexes = [models.Index(fields=["match_type", "value", "enabled"], name="route_lookup")]

    def __str__(self):
        return f"{self.match_type}:{self.value} → {self.venue} (p{self.priority}{'' if self.enabled else ', off'})"

    def save(self, *args, **kwargs):
        if self.match_type == self.MatchType.SYMBOL:
            self.value = self.value.strip().upper()
        else:
            self.value = self.value.strip().lower()
        self.venue = self.venue.strip().lower()
        super().save(*args, **kwargs)


class PaperMarket(models.Model):
    """A market of the paper venue, with its trading and simulation parameters."""

    class Category(models.TextChoices):
        CRYPTO = "crypto"
        FOREX = "forex"
        COMMODITY = "commodity"
        INDEX = "index"
        STOCK = "stock"

    symbol = models.CharField(max_length=20, unique=True)
    pair_id = models.PositiveIntegerField(
        unique=True,
        blank=True,
        help_text="The venue's number for the pair, as trades and the API show it (the next free one when empty).",
    )
    category = models.CharField(max_length=12, choices=Category.choices)
    min_leverage = models.DecimalField(default=Decimal("1"), **RATE)
    max_leverage = models.DecimalField(**RATE)
    taker_fee_rate = models.DecimalField(help_text="Fraction of notional, e.g. 0.0005 = 5 bp.", **RATE)
    maker_fee_rate = models.DecimalField(help_text="Fraction of notional for resting limit fills.", **RATE)
    maintenance_margin_rate = models.DecimalField(help_text="Fraction of notional.", **RATE)
    min_collateral = models.DecimalField(default=Decimal("0"), **MONEY)
    spread = models.DecimalField(help_text="Full bid/ask spread as a fraction of mid; fills pay half.", **RATE)
    impact_coefficient = models.DecimalField(
        help_text="Slippage = impact_coefficient × notional / depth (capped).", **RATE
    )
    depth = models.DecimalField(help_text="Notional (USD) the book absorbs for the coefficient.", **MONEY)
    max_slippage = models.DecimalField(help_text="Cap on the size-dependent slippage (fraction).", **RATE)
    funding_rate_hourly = models.DecimalField(
        default=Decimal("0"), help_text="Per hour, fraction of notional; positive: longs pay shorts.", **RATE
    )
    price_decimals = models.PositiveSmallIntegerField(default=2, help_text="Decimals of the simulated price.")
    initial_price = models.DecimalField(help_text="Where the paper price walk starts.", **MONEY)
    annual_volatility = models.DecimalField(help_text="GBM sigma (annualised), e.g. 0.60.", **RATE)
    is_open = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self):
        return self.symbol

    def save(self, *args, **kwargs):
        self.symbol = self.symbol.strip().upper()
        if self.pair_id is None:
            highest = PaperMarket.objects.aggregate(highest=models.Max("pair_id"))["highest"]
            self.pair_id = (highest or 0) + 1
        super().save(*args, **kwargs)
        from providers.markets import markets_cache_clear

        markets_cache_clear()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        from providers.markets import markets_cache_clear

        markets_cache_clear()
        return result

    def clean(self):
        if self.min_leverage is not None and self.max_leverage is not None and self.min_leverage > self.max_leverage:
            raise ValidationError("min_leverage must not exceed max_leverage")
        for name in ("depth", "initial_price"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValidationError({name: "must be positive"})


class PaperPriceState(models.Model):
    """The last price of the paper random walk per symbol, so a restart continues it."""

    symbol = models.CharField(max_length=20, primary_key=True)
    price = models.DecimalField(**MONEY)
    step = models.BigIntegerField(default=0, help_text="Walk steps taken (seeds the next step).")
    source = models.CharField(max_length=20, default="paper")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.symbol} {number(self.price)} (step {self.step})"


class PaperAccount(models.Model):
    """A paper venue account: an opaque name (the trading core passes "user:<id>") and a USD balance."""

    name = models.CharField(max_length=100, unique=True)
    balance = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=models.Q(balance__gte=0), name="paper_balance_non_negative")]

    def __str__(self):
        return f"{self.name} ({number(self.balance)} USD)"


class PaperPosition(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        LIQUIDATED = "liquidated"

    account = models.ForeignKey(PaperAccount, on_delete=models.PROTECT, related_name="positions")
    market = models.ForeignKey(PaperMarket, on_delete=models.PROTECT, related_name="positions")
    side = models.CharField(max_length=5, choices=[("long", "long"), ("short", "short")])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    size = models.DecimalField(help_text="Open size in base units.", **MONEY)
    entry_price = models.DecimalField(**MONEY)
    collateral = models.DecimalField(help_text="Margin still in the position (USD).", **MONEY)
    leverage = models.DecimalField(**RATE)
    stop_loss = models.DecimalField(null=True, blank=True, **MONEY)
    take_profit = models.DecimalField(null=True, blank=True, **MONEY)
    liquidation_price = models.DecimalField(
        null=True, blank=True, help_text="Price at or beyond which the position is liquidated.", **MONEY
    )
    funding_accrued = models.DecimalField(
        default=Decimal("0"), help_text="Funding owed and not yet settled (positive: owed by us).", **MONEY
    )
    funding_paid = models.DecimalField(default=Decimal("0"), help_text="All funding ever charged.", **MONEY)
    fees_paid = models.DecimalField(default=Decimal("0"), **MONEY)
    realized_pnl = models.DecimalField(default=Decimal("0"), help_text="Before fees and funding.", **MONEY)
    opened_at = models.DateTimeField(default=timezone.now)
    funding_at = models.DateTimeField(default=timezone.now, help_text="Funding charged up to here.")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["market", "status"], name="paper_position_market_status"),
            models.Index(fields=["account", "status"], name="paper_position_account_status"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.account.name} {self.side} {number(self.size)} {self.market.symbol} ({self.status})"

    @property
    def trade_index(self) -> str:
        return str(self.pk)


class PaperOrder(models.Model):
    """Every command the paper venue received, keyed by its idempotency key (opens, resting
    entries and closes). `result` is the ExecutionResult first returned, returned again for a
    repeated key."""

    class Action(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"

    class Status(models.TextChoices):
        PENDING = "pending"
        FILLED = "filled"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    idempotency_key = models.CharField(max_length=200, unique=True)
    action = models.CharField(max_length=5, choices=Action.choices)
    account = models.ForeignKey(PaperAccount, on_delete=models.PROTECT, related_name="orders", null=True)
    market = models.ForeignKey(PaperMarket, on_delete=models.PROTECT, related_name="orders", null=True)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=5, blank=True, default="")
    kind = models.CharField(max_length=6, default="market")
    status = models.CharField(max_length=10, choices=Status.choices)
    collateral = models.DecimalField(null=True, blank=True, **MONEY)
    leverage = models.DecimalField(null=True, blank=True, **RATE)
    limit_price = models.DecimalField(null=True, blank=True, **MONEY)
    stop_price = models.DecimalField(null=True, blank=True, **MONEY)
    stop_loss = models.DecimalField(null=True, blank=True, **MONEY)
    take_profit = models.DecimalField(null=True, blank=True, **MONEY)
    fraction = models.DecimalField(null=True, blank=True, **RATE)
    reserved = models.DecimalField(
        default=Decimal("0"), help_text="Collateral + fee locked by a resting order.", **MONEY
    )
    position = models.ForeignKey(PaperPosition, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.CharField(max_length=300, blank=True, default="")
    result = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["symbol", "status"], name="paper_order_resting", condition=models.Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.idempotency_key} {self.action} {self.symbol} ({self.status})"


class PaperFill(models.Model):
    """One execution on the paper venue, with everything that priced it. Append-only."""

    class Reason(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"
        LIQUIDATION = "liquidation"

    order = models.ForeignKey(PaperOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="fills")
    position = models.ForeignKey(PaperPosition, on_delete=models.PROTECT, related_name="fills")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    direction = models.CharField(max_length=4, choices=[("buy", "buy"), ("sell", "sell")])
    price = models.DecimalField(**MONEY)
    size = models.DecimalField(**MONEY)
    notional = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    fee_rate = models.DecimalField(**RATE)
    is_maker = models.BooleanField(default=False)
    reference_mid = models.DecimalField(**MONEY)
    half_spread = models.DecimalField(**RATE)
    impact = models.DecimalField(help_text="Size-dependent slippage applied (fraction).", **RATE)
    slippage = models.DecimalField(help_text="Total deviation from the reference mid (fraction).", **RATE)
    price_source = models.CharField(max_length=20)
    price_timestamp = models.DateTimeField()
    realized_pnl = models.DecimalField(null=True, blank=True, **MONEY)
    funding_settled = models.DecimalField(default=Decimal("0"), **MONEY)
    balance_change = models.DecimalField(help_text="What this fill did to the account balance.", **MONEY)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"fill #{self.pk} {self.reason} {self.direction} {number(self.size)} @ {number(self.price)}"


class PaperFundingCharge(models.Model):
    """One funding accrual on one position (append-only)."""

    position = models.ForeignKey(PaperPosition, on_delete=models.PROTECT, related_name="funding_charges")
    hours = models.PositiveIntegerField()
    rate_hourly = models.DecimalField(**RATE)
    price = models.DecimalField(**MONEY)
    amount = models.DecimalField(help_text="Positive: paid by the position; negative: received.", **MONEY)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["position", "period_start"], name="paper_funding_once_per_period")
        ]

    def __str__(self):
        return f"funding #{self.pk} position {self.position_id}: {number(self.amount)}"


class OstiumOrder(models.Model):
    """The Ostium adapter's record of one command it sent (before sending: the row exists
    with its idempotency key, signer nonce and start block, so an unknown outcome can be
    resolved against the chain without sending twice)."""

    class Status(models.TextChoices):
        SENDING = "sending"  # written before the transaction; outcome not yet known
        PENDING = "pending"  # on chain, waiting for the keeper (market) or a price (limit)
        EXECUTED = "executed"
        CANCELLED = "cancelled"
        FAILED = "failed"  # reverted or refused; nothing happened
        UNKNOWN = "unknown"  # timed out; reconcile
        NOT_SENT = "not_sent"

    idempotency_key = models.CharField(max_length=120, unique=True)
    network = models.CharField(max_length=12)
    action = models.CharField(max_length=12)  # open | close
    account = models.CharField(max_length=42, db_index=True)  # the trader address
    signer = models.CharField(max_length=42)
    delegated = models.BooleanField(default=False)
    symbol = models.CharField(max_length=20)
    pair_id = models.CharField(max_length=10, blank=True, default="")
    trade_index = models.CharField(max_length=10, blank=True, default="")
    order_type = models.CharField(max_length=10, default="market")
    side = models.CharField(max_length=5, blank=True, default="")
    collateral = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal("0"))
    leverage = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal("0"))
    fraction = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal("1"))
    size = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal("0"))
    reference_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    venue_order_id = models.CharField(max_length=80, blank=True, default="", db_index=True)
    trade_id = models.CharField(max_length=80, blank=True, default="")
    trade_open = models.BooleanField(default=False)  # opens: the trade is open at the venue
    tx_hash = models.CharField(max_length=66, blank=True, default="")
    nonce = models.BigIntegerField(null=True, blank=True)
    from_block = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING, db_index=True)
    error_code = models.CharField(max_length=40, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    # a resting limit open: how far its slot's chain logs were read, what they held and when
    # ({"to": block, "events": [...], "read_at": epoch seconds}), so each poll reads only the
    # blocks since the last read and the poller reads it at most every OSTIUM_LIMIT_POLL_SECONDS
    limit_scan = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "action"])]

    def __str__(self) -> str:
        return f"{self.action} {self.symbol} {self.idempotency_key} ({self.status})"


class OstiumServiceResponse(models.Model):
    """A stored response of the signer service's idempotent writes (open/close): the same
    idempotency key replays it."""

    endpoint = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=120)
    request_digest = models.CharField(max_length=64)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "idempotency_key"], name="ostium_service_response_unique")
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.idempotency_key}"


# --- reference prices (providers/reference) ------------------------------------------------------
class ReferenceSource(models.Model):
    """An external reference price source (kraken, coingecko) and whether an operator paused it.

    Its live state (prices, health, counters) is in Redis (`providers.reference.store`); this row
    holds only what an operator decides. Pausing and resuming go through
    `trading.services.reference` (permission check and ledger event in the same transaction)."""

    name = models.CharField(max_length=20, primary_key=True)
    paused = models.BooleanField(default=False)
    reason = models.CharField(max_length=500, blank=True, default="")
    changed_by = models.CharField(max_length=150, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}{' (paused)' if self.paused else ''}"


class ReferenceBasis(models.Model):
    """An explicit basis for crosses: 1 `asset` = `rate` `equals` (EURE = 1 EUR, "assumed peg").

    A pair naming `asset` (BTC/EURE) is derived from the pair naming `equals` (BTC/EUR) through
    this row, and every rate so derived records it. `sanity_coingecko_id` (optional) names a
    CoinGecko coin whose price in `equals` checks the basis. Changed through
    `trading.services.reference.reference_basis_set` (who, when, ledger event)."""

    asset = models.CharField(max_length=12, unique=True, help_text="The asset priced through the basis, e.g. EURE.")
    equals = models.CharField(max_length=12, help_text="The asset it is worth `rate` of, e.g. EUR.")
    rate = models.DecimalField(help_text="1 asset = rate × equals.", **MONEY)
    source = models.CharField(max_length=200, default="assumed peg", help_text="Where the rate comes from.")
    sanity_coingecko_id = models.CharField(
        max_length=80, blank=True, default="", help_text="Optional CoinGecko coin id whose price checks the rate."
    )
    note = models.CharField(max_length=500, blank=True, default="")
    set_by = models.CharField(max_length=150, default="")
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["asset"]
        verbose_name_plural = "reference bases"
        constraints = [models.CheckConstraint(condition=models.Q(rate__gt=0), name="reference_basis_rate_positive")]

    def __str__(self) -> str:
        return f"1 {self.asset} = {self.rate.normalize():f} {self.equals} ({self.source})"

    def save(self, *args, **kwargs):
        self.asset = self.asset.strip().upper()
        self.equals = self.equals.strip().upper()
        super().save(*args, **kwargs)

    def snapshot(self) -> dict:
        """What a derived rate records about the basis it went through."""
        return {
            "id": self.pk,
            "asset": self.asset,
            "equals": self.equals,
            "rate": format(self.rate.normalize(), "f"),
            "source": self.source,
            "sanity_coingecko_id": self.sanity_coingecko_id,
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(),
        }


class ReferenceSample(models.Model):
    """A stored fair rate of one pair: the source prices and ages, the policy outcome and the basis.

    Written when the rate moves REFERENCE_SAMPLE_BPS from the pair's last sample, when the outcome
    or the source changes, or every REFERENCE_SAMPLE_SECONDS; every fair rate the desk uses points
    to one (`pinned_at` marks those a decision or a risk check used: retention keeps them)."""

    pair = models.CharField(max_length=25)
    taken_at = models.DateTimeField()
    outcome = models.CharField(max_length=12)  # ok | fallback | conflicted | unhealthy
    rate = models.DecimalField(null=True, blank=True, **MONEY)  # quote per base; null when unusable
    inverse = models.DecimalField(null=True, blank=True, **MONEY)  # base per quote
    source = models.CharField(max_length=12, blank=True, default="")  # the source the rate came from
    cross_check = models.CharField(max_length=12, blank=True, default="")  # agrees | conflict | unavailable
    divergence_bps = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    underlying = models.CharField(max_length=25, blank=True, default="")  # the sourced pair of a cross
    kraken_price = models.DecimalField(null=True, blank=True, **MONEY)
    kraken_bid = models.DecimalField(null=True, blank=True, **MONEY)
    kraken_ask = models.DecimalField(null=True, blank=True, **MONEY)
    kraken_observed_at = models.DateTimeField(null=True, blank=True)
    kraken_age_ms = models.BigIntegerField(null=True, blank=True)
    kraken_status = models.CharField(max_length=16, blank=True, default="")
    coingecko_price = models.DecimalField(null=True, blank=True, **MONEY)
    coingecko_observed_at = models.DateTimeField(null=True, blank=True)
    coingecko_age_ms = models.BigIntegerField(null=True, blank=True)
    coingecko_status = models.CharField(max_length=16, blank=True, default="")
    basis = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)  # ReferenceBasis.snapshot() + check
    pinned_at = models.DateTimeField(null=True, blank=True)
    pinned_for = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [
            models.Index(fields=["pair", "-taken_at", "-id"], name="reference_sample_pair_time"),
            models.Index(fields=["taken_at"], name="reference_sample_time"),
        ]

    def __str__(self) -> str:
        rate = "—" if self.rate is None else format(self.rate.normalize(), "f")
        return f"{self.pair} {rate} {self.outcome} @ {self.taken_at:%Y-%m-%d %H:%M:%S}"

    @property
    def usable(self) -> bool:
        return self.outcome in ("ok", "fallback") and self.rate is not None
