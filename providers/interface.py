"""The boundary between the trading core and the outside world.

`trading` talks to venues, price feeds and swap providers only through these dataclasses
and protocols. Everything crossing the boundary is a frozen dataclass of Decimals, strings
and aware UTC datetimes — never a raw SDK object, dict of floats or HTTP response. Venue
failures cross as `VenueError` (a normalised code with `retryable`), never raw exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1


class VenueOrderKind(StrEnum):
    """What the venue itself is asked to do (protective logic may live above it)."""

    MARKET = "market"
    LIMIT = "limit"  # rests until the price is at or better than limit_price
    STOP = "stop"  # rests until the price crosses stop_price, then fills at market


class ExecStatus(StrEnum):
    FILLED = "filled"  # done, fill attached
    PARTIALLY_FILLED = "partially_filled"
    PENDING = "pending"  # accepted by the venue, not yet filled (resting limit, keeper pending)
    REJECTED = "rejected"  # the venue said no; nothing happened (error attached)
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # outcome not known (timeout, crash): reconcile, never resubmit blindly
    NOT_FOUND = "not_found"  # get_order_status: the venue never saw this idempotency key


class ErrorCode(StrEnum):
    INVALID_MARKET = "INVALID_MARKET"
    MARKET_CLOSED = "MARKET_CLOSED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INSUFFICIENT_ALLOWANCE = "INSUFFICIENT_ALLOWANCE"
    INSUFFICIENT_GAS = "INSUFFICIENT_GAS"
    POSITION_NOT_FOUND = "POSITION_NOT_FOUND"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    LEVERAGE_OUT_OF_RANGE = "LEVERAGE_OUT_OF_RANGE"
    INVALID_REQUEST = "INVALID_REQUEST"
    DELEGATE_NOT_SET = "DELEGATE_NOT_SET"
    RPC_TIMEOUT = "RPC_TIMEOUT"
    RPC_UNAVAILABLE = "RPC_UNAVAILABLE"
    SUBGRAPH_LAGGING = "SUBGRAPH_LAGGING"
    PRICE_UNAVAILABLE = "PRICE_UNAVAILABLE"
    PRICE_STALE = "PRICE_STALE"
    REVERTED = "REVERTED"
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
    ORDER_TIMEOUT = "ORDER_TIMEOUT"  # the venue never executed the order in time; it was cancelled
    VENUE_CANCELLED = "VENUE_CANCELLED"  # cancelled at the venue, not through us
    VENUE_DISABLED = "VENUE_DISABLED"
    NETWORK_NOT_CONFIGURED = "NETWORK_NOT_CONFIGURED"  # the venue's network is not set up here
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    KEY_MISSING = "KEY_MISSING"  # no signing key for this network (NEAR Intents solver key)
    INTENT_REJECTED = "INTENT_REJECTED"  # the relay/verifier refused a signed intent (details: reason)
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class VenueError:
    code: ErrorCode
    message: str
    retryable: bool = False
    details: dict = field(default_factory=dict)


class VenueException(Exception):
    """Raised by adapters/feeds for failures of reads; writes return ExecutionResult instead."""

    def __init__(self, error: VenueError):
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class Market:
    symbol: str  # "BTC-USD"
    pair_id: str  # the venue's number for the pair, as text ("0" on Ostium, "1" on paper)
    category: str  # crypto | forex | commodity | index | stock
    max_leverage: Decimal
    min_leverage: Decimal = Decimal("1")
    taker_fee_rate: Decimal = Decimal("0")  # fraction of notional, e.g. 0.0005
    maker_fee_rate: Decimal = Decimal("0")
    maintenance_margin_rate: Decimal = Decimal("0.005")  # fraction of notional
    min_collateral: Decimal = Decimal("0")
    is_open: bool = True


@dataclass(frozen=True)
class PriceTick:
    symbol: str
    price: Decimal  # mid
    timestamp: datetime  # aware UTC, when the source observed it
    source: str  # where it came from: "paper" (the walk), "manual", "admin", "ostium", ...
    bid: Decimal | None = None
    ask: Decimal | None = None
    venue: str = ""  # whose price it is: the venue that trades at it ("paper", "ostium")


@dataclass(frozen=True)
class OpenTradeRequest:
    idempotency_key: str  # deterministic per execution command; the venue dedupes on it
    account: str  # whose position: trader address on Ostium, "user:<id>" on paper
    symbol: str
    side: Side
    collateral: Decimal  # USD
    leverage: Decimal
    kind: VenueOrderKind = VenueOrderKind.MARKET
    limit_price: Decimal | None = None  # LIMIT
    stop_price: Decimal | None = None  # STOP entry
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    max_slippage: Decimal = Decimal("0.05")  # fraction
    reference_price: Decimal | None = None  # the price the risk engine checked against
    delegated: bool = False  # Ostium: act for `account` through a delegation


@dataclass(frozen=True)
class CloseTradeRequest:
    idempotency_key: str
    account: str
    symbol: str
    pair_id: str
    trade_index: str
    fraction: Decimal = Decimal("1")  # (0, 1]: partial closes close this share of the size
    max_slippage: Decimal = Decimal("0.05")
    delegated: bool = False


@dataclass(frozen=True)
class Fill:
    price: Decimal
    size: Decimal  # base units
    notional: Decimal  # USD = price * size
    fee: Decimal  # USD
    slippage: Decimal  # fraction applied vs the reference mid
    price_source: str
    timestamp: datetime
    realized_pnl: Decimal | None = None  # closes: PnL realised by this fill, before fees
    is_maker: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    status: ExecStatus
    venue_order_id: str = ""
    pair_id: str = ""
    trade_index: str = ""
    transaction_hash: str = ""
    fill: Fill | None = None
    error: VenueError | None = None
    raw_request: dict = field(default_factory=dict)  # for the timeline; secrets redacted by the adapter
    raw_response: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VenuePosition:
    account: str
    symbol: str
    pair_id: str
    trade_index: str
    side: Side
    collateral: Decimal
    leverage: Decimal
    size: Decimal
    entry_price: Decimal
    opened_at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    liquidation_price: Decimal | None = None
    funding_paid: Decimal = Decimal("0")
    fees_paid: Decimal = Decimal("0")


@runtime_checkable
class VenueAdapter(Protocol):
    name: str  # "paper" | "ostium" | ...

    def get_pairs(self) -> list[Market]: ...

    def open_trade(self, request: OpenTradeRequest) -> ExecutionResult: ...

    def close_trade(self, request: CloseTradeRequest) -> ExecutionResult: ...

    def update_sl(
        self, *, account: str, pair_id: str, trade_index: str, price: Decimal | None, delegated: bool = False
    ) -> ExecutionResult: ...

    def update_tp(
        self, *, account: str, pair_id: str, trade_index: str, price: Decimal | None, delegated: bool = False
    ) -> ExecutionResult: ...

    def cancel_order(self, *, account: str, venue_order_id: str, delegated: bool = False) -> ExecutionResult: ...

    def get_positions(self, *, account: str) -> list[VenuePosition]: ...

    def get_order_status(self, *, idempotency_key: str) -> ExecutionResult:
        """What became of the command with this key (reconciliation after an unknown outcome)."""
        ...


@runtime_checkable
class PriceFeed(Protocol):
    name: str

    def get_price(self, symbol: str) -> PriceTick: ...

    def get_prices(self, symbols: list[str]) -> dict[str, PriceTick]: ...


class VenueEventKind(StrEnum):
    """Things a venue does on its own after accepting a command (keeper fills, triggers)."""

    ORDER_FILLED = "order_filled"  # a resting/pending order filled (fill attached)
    ORDER_CANCELLED = "order_cancelled"  # the venue cancelled a pending order (e.g. slippage, timeout)
    POSITION_CLOSED = "position_closed"  # closed by the venue: native SL/TP hit (fill attached)
    POSITION_LIQUIDATED = "position_liquidated"  # fill attached; margin lost
    FUNDING_CHARGED = "funding_charged"  # details: {"amount": Decimal (positive = paid)}


@dataclass(frozen=True)
class VenueEvent:
    venue: str
    kind: VenueEventKind
    account: str
    symbol: str
    pair_id: str = ""
    trade_index: str = ""
    idempotency_key: str = ""  # of the command that created the order (closes: that opened the trade), when known
    venue_order_id: str = ""
    fill: Fill | None = None
    details: dict = field(default_factory=dict)
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class InventoryReading:
    """One balance a venue reported (treasury inventory sync): `credited` is what the venue
    lets the account spend now, `locked` what is held in open positions (collateral), both in
    the asset's units."""

    venue: str
    account: str
    asset: str  # the venue's asset id (NEAR Intents: the verifier token id; Ostium: USDC; paper: USD)
    symbol: str
    decimals: int
    credited: Decimal
    locked: Decimal = Decimal("0")
