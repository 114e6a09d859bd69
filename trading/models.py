from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from trading.admin_panel.formatting import number
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
    stop_coverage_opt_out = models.BooleanField(
        default=False, help_text="do not raise risk.stop_missing for this user's positions without a stop"
    )
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

    # no index of its own: the unique (event, handler) index serves lookups by event
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="outbox", db_index=False)
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


# ================================================================================================
# Trading domain: orders, trades, positions, execution commands, control/trading states, risk
# limits and API idempotency records. Quantities are Decimal (NumericField), times aware UTC.
# ================================================================================================

MONEY = {"max_digits": 38, "decimal_places": 18}  # as precise as the venues report
MONEY_NULL = {**MONEY, "null": True, "blank": True}


class IllegalTransition(Exception):
    """An order was asked to move to a status its transition table does not allow."""

    def __init__(self, order_id, src: str, dst: str):
        super().__init__(f"order {order_id}: illegal transition {src} -> {dst}")
        self.src, self.dst = src, dst


class Side(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class Order(models.Model):
    """One order of a user. MARKET/LIMIT open exposure (or reduce it with `reduce_only` +
    `trade`); protective orders (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, OCO) are attached to
    an open `trade` and close it when triggered. Status moves only along `TRANSITIONS`
    (`trading.services.orders.order_transition`), each move writing its ledger event."""

    class Type(models.TextChoices):
        MARKET = "MARKET"
        LIMIT = "LIMIT"
        STOP_LOSS = "STOP_LOSS"
        TAKE_PROFIT = "TAKE_PROFIT"
        TRAILING_STOP = "TRAILING_STOP"
        OCO = "OCO"

    class Status(models.TextChoices):
        ACCEPTED = "ACCEPTED"
        PENDING_TRIGGER = "PENDING_TRIGGER"
        TRIGGERED = "TRIGGERED"
        SUBMITTING = "SUBMITTING"
        SUBMITTED = "SUBMITTED"
        PARTIALLY_FILLED = "PARTIALLY_FILLED"
        FILLED = "FILLED"
        REJECTED = "REJECTED"
        CANCELLED = "CANCELLED"
        EXPIRED = "EXPIRED"
        UNKNOWN = "UNKNOWN"

    class Origin(models.TextChoices):
        """Who or what made the order. Venue-initiated closes are recorded as FILLED reduce-only
        orders (`trading.services.closes`) so the order list shows what closed every trade."""

        USER = "user", "Placed by the user"
        PROTECTIVE = "protective", "Protective (SL/TP/trailing/OCO)"
        OPERATOR = "operator", "Operator force-close"
        LIQUIDATION = "liquidation", "Liquidated by the venue"
        VENUE = "venue", "Closed by the venue"
        RECONCILIATION = "reconciliation", "Closed by reconciliation"

    PROTECTIVE_TYPES = frozenset({Type.STOP_LOSS, Type.TAKE_PROFIT, Type.TRAILING_STOP, Type.OCO})
    TERMINAL = frozenset({Status.FILLED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED})
    S = Status
    # ACCEPTED → FILLED: a close the venue made on its own, recorded after the fact;
    # TRIGGERED → FILLED: a stop/take-profit the venue holds natively fired and filled there.
    TRANSITIONS: dict[str, frozenset] = {
        S.ACCEPTED: frozenset({S.SUBMITTING, S.PENDING_TRIGGER, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
        S.PENDING_TRIGGER: frozenset({S.TRIGGERED, S.SUBMITTING, S.CANCELLED, S.EXPIRED, S.REJECTED}),
        S.TRIGGERED: frozenset({S.SUBMITTING, S.FILLED, S.CANCELLED, S.REJECTED}),
        S.SUBMITTING: frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.UNKNOWN}),
        S.SUBMITTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}),
        S.PARTIALLY_FILLED: frozenset({S.FILLED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}),
        S.UNKNOWN: frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED}),
        S.FILLED: frozenset(),
        S.REJECTED: frozenset(),
        S.CANCELLED: frozenset(),
        S.EXPIRED: frozenset(),
    }
    del S

    # no index of its own: order_user_created and order_user_status start with the user
    user = models.ForeignKey("trading.User", on_delete=models.PROTECT, related_name="orders", db_index=False)
    # The wallet the order traded from: the user's Wallet row (PROTECT: a wallet with orders is
    # deactivated, never deleted) and the address itself, as sent to the venue; the address is
    # the record, and stays when it matches no Wallet row (e.g. orders from before wallets).
    wallet = models.ForeignKey("trading.Wallet", null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    wallet_address = models.CharField(max_length=64, null=True, blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.USER)
    provider = models.CharField(max_length=32, help_text="venue name, e.g. paper, ostium")
    asset = models.CharField(max_length=32, help_text="pair symbol, e.g. BTC-USD")
    asset_type = models.CharField(max_length=16, blank=True, default="")
    order_type = models.CharField(max_length=16, choices=Type.choices)
    side = models.CharField(max_length=5, choices=Side.choices)
    collateral = models.DecimalField(**MONEY, default=0)
    leverage = models.DecimalField(max_digits=12, decimal_places=4, default=1)
    quantity = models.DecimalField(**MONEY_NULL, help_text="base units; estimated at placing, actual once filled")
    price = models.DecimalField(**MONEY_NULL, help_text="LIMIT price")
    stop_price = models.DecimalField(**MONEY_NULL)
    take_profit_price = models.DecimalField(**MONEY_NULL)
    trailing_stop_distance = models.DecimalField(**MONEY_NULL)
    trailing_stop_percentage = models.DecimalField(**MONEY_NULL)
    oco_stop_price = models.DecimalField(**MONEY_NULL)
    oco_take_profit_price = models.DecimalField(**MONEY_NULL)
    close_fraction = models.DecimalField(
        max_digits=12, decimal_places=10, null=True, blank=True, help_text="share of the trade a close closes"
    )
    max_slippage = models.DecimalField(max_digits=8, decimal_places=6, default=0)
    reference_price = models.DecimalField(**MONEY_NULL, help_text="the price the risk engine checked against")
    reduce_only = models.BooleanField(default=False)
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACCEPTED)  # indexed in Meta
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # venue references
    pair_id = models.CharField(max_length=64, blank=True, default="")
    trade_index = models.CharField(max_length=64, blank=True, default="")
    transaction_hash = models.CharField(max_length=100, blank=True, default="")
    venue_order_id = models.CharField(max_length=100, blank=True, default="")
    # fill
    filled_quantity = models.DecimalField(**MONEY, default=0)
    filled_price = models.DecimalField(**MONEY_NULL)
    fee = models.DecimalField(**MONEY, default=0)
    realized_pnl = models.DecimalField(**MONEY_NULL)
    # links: the trade this order opened, protects or closes; the order it was attached by
    trade = models.ForeignKey("trading.Trade", null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="attached_orders")
    triggered_at = models.DateTimeField(null=True, blank=True)
    # protective engine (trading.protective): trailing activation, what fired, the level at the venue
    trailing_activation_price = models.DecimalField(
        **MONEY_NULL, help_text="TRAILING_STOP: trailing starts once the price reaches this"
    )
    trailing_activated_at = models.DateTimeField(null=True, blank=True)
    trigger_price = models.DecimalField(**MONEY_NULL, help_text="the tick price the order triggered at")
    triggered_leg = models.CharField(max_length=12, blank=True, default="", help_text="stop | take_profit | limit")
    venue_stop_price = models.DecimalField(**MONEY_NULL, help_text="the stop level last pushed to the venue")
    filled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"],
                name="order_client_order_id_unique",
                condition=models.Q(client_order_id__isnull=False),
            ),
            models.CheckConstraint(condition=models.Q(collateral__gte=0), name="order_collateral_nonneg"),
            models.CheckConstraint(condition=models.Q(leverage__gt=0), name="order_leverage_pos"),
        ]
        # Every index here is updated when a triggered order changes status (the protective engine
        # fires thousands per tick): a plain status index (not `db_index`, which adds a LIKE index
        # nothing uses), no index of the user alone.
        indexes = [
            models.Index(fields=["status"], name="order_status"),
            models.Index(fields=["user", "created_at"], name="order_user_created"),
            models.Index(fields=["user", "status"], name="order_user_status"),
            models.Index(
                fields=["status", "order_type"],
                name="order_waiting_trigger",
                condition=models.Q(status__in=["ACCEPTED", "PENDING_TRIGGER"]),
            ),
            # the protective engine's "is a close of this trade already under way?" (protective_sql.CLOSING)
            models.Index(
                fields=["trade"],
                name="order_trade_closing",
                condition=models.Q(
                    order_type__in=["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "OCO"],
                    status__in=["TRIGGERED", "SUBMITTING", "SUBMITTED", "PARTIALLY_FILLED", "UNKNOWN"],
                ),
            ),
        ]

    def __str__(self):
        return f"order {self.pk} {self.order_type} {self.side} {self.asset} {self.status}"

    CORRELATION_PREFIX = "order-"  # an order's events: correlation id `order-<id>`

    @property
    def correlation_id(self) -> str:
        return f"{self.CORRELATION_PREFIX}{self.pk}"

    @property
    def is_protective(self) -> bool:
        return self.order_type in self.PROTECTIVE_TYPES

    @property
    def is_close(self) -> bool:
        """Does executing this order close (part of) `trade` rather than open exposure?"""
        return self.is_protective or (self.reduce_only and self.trade_id is not None)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    def can_transition(self, to: str) -> bool:
        return to in self.TRANSITIONS.get(self.status, frozenset())

    def check_transition(self, to: str) -> None:
        if not self.can_transition(to):
            raise IllegalTransition(self.pk, self.status, to)


def venue_ref(value: str) -> int | str | None:
    """A venue's pair id / trade index (stored as text, whatever the venue) as the seed's integer,
    None while unknown: the shape of every API answer and event payload that names one."""
    if not value:
        return None
    return int(value) if value.isdigit() else value


class Trade(models.Model):
    """One venue position leg (Ostium "trade"): opened by one fill, closed in one or more parts."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    class CloseReason(models.TextChoices):
        USER = "user", "Closed by the user"
        STOP_LOSS = "stop_loss"
        TAKE_PROFIT = "take_profit"
        TRAILING_STOP = "trailing_stop"
        VENUE = "venue", "Closed by the venue"
        LIQUIDATION = "liquidation"

    user = models.ForeignKey("trading.User", on_delete=models.PROTECT, related_name="trades")
    position = models.ForeignKey("trading.Position", on_delete=models.PROTECT, related_name="trades")
    provider = models.CharField(max_length=32)
    asset = models.CharField(max_length=32)
    pair_id = models.CharField(max_length=64)
    trade_index = models.CharField(max_length=64)
    side = models.CharField(max_length=5, choices=Side.choices)
    collateral = models.DecimalField(**MONEY)
    leverage = models.DecimalField(max_digits=12, decimal_places=4)
    size = models.DecimalField(**MONEY, help_text="open size, base units")
    initial_size = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    current_price = models.DecimalField(**MONEY)
    unrealized_pnl = models.DecimalField(**MONEY, default=0)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    margin = models.DecimalField(**MONEY)
    liquidation_price = models.DecimalField(**MONEY_NULL)
    stop_loss_price = models.DecimalField(**MONEY_NULL)
    take_profit_price = models.DecimalField(**MONEY_NULL)
    fees_paid = models.DecimalField(**MONEY, default=0)
    funding_paid = models.DecimalField(**MONEY, default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=16, choices=CloseReason.choices, blank=True, default="")
    # When the SL/TP levels changed and are still to be sent to the venue (its native SL/TP):
    # set with the change, cleared by the sync task once it has written its commands.
    # Reconciliation sends the levels again for a trade still due after the grace period.
    protection_sync_due_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # venues reuse indices once a trade is closed (Ostium: per trader and pair)
            models.UniqueConstraint(
                fields=["user", "provider", "pair_id", "trade_index"],
                name="trade_open_venue_ref_unique",
                condition=models.Q(status="open"),
            ),
        ]
        indexes = [
            models.Index(fields=["user", "status"], name="trade_user_status"),
            models.Index(
                fields=["protection_sync_due_at"],
                name="trade_protection_sync_due",
                condition=models.Q(protection_sync_due_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"trade {self.provider}:{self.pair_id}/{self.trade_index} {self.side} {self.asset} {self.status}"

    @property
    def sign(self) -> int:
        return 1 if self.side == Side.LONG else -1


class Position(models.Model):
    """Per user + venue + asset + side aggregate of the open trades (MarqetFi-style)."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    user = models.ForeignKey("trading.User", on_delete=models.PROTECT, related_name="positions")
    provider = models.CharField(max_length=32)
    asset = models.CharField(max_length=32)
    side = models.CharField(max_length=5, choices=Side.choices)
    quantity = models.DecimalField(**MONEY, default=0)
    avg_entry_price = models.DecimalField(**MONEY, default=0)
    current_price = models.DecimalField(**MONEY, default=0)
    unrealized_pnl = models.DecimalField(**MONEY, default=0)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    margin = models.DecimalField(**MONEY, default=0)
    leverage = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    liquidation_price = models.DecimalField(**MONEY_NULL)
    fees_paid = models.DecimalField(**MONEY, default=0)
    funding_paid = models.DecimalField(**MONEY, default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider", "asset", "side"],
                name="position_one_open_per_side",
                condition=models.Q(status="open"),
            )
        ]
        indexes = [
            models.Index(fields=["user", "status"], name="position_user_status"),
            # the open positions of a ticked asset (live marks, on every price tick)
            models.Index(fields=["asset"], name="position_open_asset", condition=models.Q(status="open")),
        ]
        permissions = [("force_close_position", "Can force-close open positions and trades")]

    def __str__(self):
        return f"position {self.user_id} {self.provider}:{self.asset} {self.side} {self.status}"


class Fill(models.Model):
    """One execution applied to a trade (open, partial/full close, liquidation, funding).
    `dedupe_key` makes applying the same venue result or venue event twice a no-op."""

    class Kind(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"
        LIQUIDATION = "liquidation"
        FUNDING = "funding"

    dedupe_key = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey("trading.User", on_delete=models.PROTECT, related_name="fills")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="fills")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    price = models.DecimalField(**MONEY, default=0)
    size = models.DecimalField(**MONEY, default=0)
    notional = models.DecimalField(**MONEY, default=0)
    fee = models.DecimalField(**MONEY, default=0)
    realized_pnl = models.DecimalField(**MONEY, default=0, help_text="before fees")
    funding = models.DecimalField(**MONEY, default=0, help_text="positive = paid")
    price_source = models.CharField(max_length=32, blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "occurred_at"], name="fill_user_time")]

    def __str__(self):
        return f"fill {self.kind} {number(self.size)}@{number(self.price)} trade {self.trade_id}"


class ExecutionCommand(models.Model):
    """What the executor asked a venue to do, persisted (and committed) BEFORE the call.
    `idempotency_key` is deterministic (`order-<id>-<action>-<attempt>`); the venue dedupes on
    it and reconciliation asks the venue about it when the outcome was never recorded."""

    class Action(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"
        UPDATE_SL = "update_sl"
        UPDATE_TP = "update_tp"
        CANCEL = "cancel"

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        UNKNOWN = "unknown"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="commands")
    provider = models.CharField(max_length=32)
    action = models.CharField(max_length=12, choices=Action.choices)
    idempotency_key = models.CharField(max_length=120, unique=True)
    request = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error_code = models.CharField(max_length=64, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0, help_text="reconciliation look-ups")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.idempotency_key} ({self.status})"


class ControlState(models.Model):
    """Arm/disarm of one component that can cause side effects (`executor:paper`,
    `strategy:<name>`, `treasury:withdrawals`, `signer:ostium`). Starts disarmed. Change it
    only through `trading.services.control` so every change is in the ledger."""

    component = models.CharField(max_length=100, unique=True)
    armed = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    draining = models.BooleanField(default=False, help_text="finish in-flight work, accept nothing new")
    reason = models.TextField(blank=True, default="")
    changed_by = models.CharField(max_length=150, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="an armed state lapses to disarmed then")
    paused_until = models.DateTimeField(null=True, blank=True, help_text="a timed pause ends then (resumed)")

    class Meta:
        ordering = ["component"]
        permissions = [
            ("arm_controlstate", "Can arm and disarm components"),
            ("pause_controlstate", "Can pause, resume and drain components"),
        ]

    def __str__(self):
        return f"{self.component} ({'armed' if self.armed else 'disarmed'})"

    def armed_at(self, now=None) -> bool:
        """Armed, and a timed arming has not run out by `now`. A lapsed arming counts as
        disarmed at once; the expiry job (`trading.services.expiry`) makes it durable."""
        return self.armed and (self.expires_at is None or self.expires_at > (now or timezone.now()))


class TradingState(models.Model):
    """ACTIVE / REDUCE_ONLY / HALTED for one scope (global, a venue, an instrument, a strategy).
    An expired state falls back to `previous_state`."""

    class Scope(models.TextChoices):
        GLOBAL = "global"
        VENUE = "venue"
        INSTRUMENT = "instrument"
        STRATEGY = "strategy"

    class State(models.TextChoices):
        ACTIVE = "ACTIVE"
        REDUCE_ONLY = "REDUCE_ONLY"
        HALTED = "HALTED"

    scope_type = models.CharField(max_length=12, choices=Scope.choices)
    scope_key = models.CharField(max_length=100, blank=True, default="", help_text="empty for global")
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    previous_state = models.CharField(max_length=12, choices=State.choices, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    changed_by = models.CharField(max_length=150, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["scope_type", "scope_key"]
        constraints = [models.UniqueConstraint(fields=["scope_type", "scope_key"], name="trading_state_scope")]
        permissions = [("halt_all", "Can halt everything (global halt, every component disarmed)")]

    def __str__(self):
        return f"{self.scope_type}:{self.scope_key or '*'} {self.state}"

    def effective_state(self, now=None) -> str:
        if self.expires_at and self.expires_at <= (now or timezone.now()):
            return self.previous_state or self.State.ACTIVE
        return self.state


class RiskLimit(models.Model):
    """Risk limits: the row with an empty `instrument` is the global default; a row per
    instrument overrides the fields it sets. Unset fields fall back to settings (RISK_*)."""

    instrument = models.CharField(max_length=32, unique=True, blank=True, default="", help_text="empty = global")
    max_notional = models.DecimalField(**MONEY_NULL, help_text="USD per order")
    max_leverage = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    max_slippage = models.DecimalField(max_digits=8, decimal_places=6, null=True, blank=True, help_text="fraction")
    price_band = models.DecimalField(
        max_digits=8, decimal_places=6, null=True, blank=True, help_text="fraction from the reference price"
    )
    daily_loss_cap = models.DecimalField(**MONEY_NULL, help_text="USD realised loss per user per UTC day")
    max_orders_per_minute = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instrument"]

    def __str__(self):
        return f"risk limits {self.instrument or 'global'}"


class IdempotencyRecord(models.Model):
    """A client's `Idempotency-Key` for one write: the request's hash and, once done, the
    stored response (replayed for the same body). Kept `IDEMPOTENCY_TTL_HOURS`."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    # no index of its own: the unique (user, key) index leads with the user
    user = models.ForeignKey("trading.User", on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]

    def __str__(self):
        return f"{self.user_id}:{self.key} ({self.status})"


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


class ReconciliationBreak(models.Model):
    """A difference between our open trades and what a venue reports (Beat job
    `venue-reconcile`). An operator resolves it in the admin: adopt the venue's view,
    close ours, or ignore — each audited with a ledger event."""

    class Kind(models.TextChoices):
        MISSING_AT_VENUE = "missing_at_venue", "Open here, not at the venue"
        UNKNOWN_AT_VENUE = "unknown_at_venue", "Open at the venue, unknown here"
        SIZE_MISMATCH = "size_mismatch", "Sizes differ"

    class Status(models.TextChoices):
        OPEN = "open"
        ADOPTED = "adopted"
        CLOSED = "closed"
        IGNORED = "ignored"

    venue = models.CharField(max_length=32)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    account = models.CharField(max_length=64)
    pair_id = models.CharField(max_length=64, blank=True, default="")
    trade_index = models.CharField(max_length=64, blank=True, default="")
    trade = models.ForeignKey("trading.Trade", null=True, blank=True, on_delete=models.PROTECT, related_name="breaks")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    resolved_by = models.CharField(max_length=100, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, default="")
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "kind", "account", "pair_id", "trade_index"],
                condition=models.Q(status="open"),
                name="reconciliation_break_open_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.venue} {self.kind} {self.account} {self.pair_id}/{self.trade_index} ({self.status})"


# the protective-order engine's own state (heartbeat, per-asset staleness, per-position risk flags)
from trading.protective.models import EngineHeartbeat, PositionRiskState, ProtectiveAssetState  # noqa: E402, F401
