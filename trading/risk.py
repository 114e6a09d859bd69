"""The pre-trade risk engine: pure and fast.

`risk_check(intent, snapshot)` runs no query and calls nothing external: the placing service
loads a `RiskSnapshot` (limits, trading states, the user's open positions, today's realised
loss, recent order count, reference price) and passes it in. The first failing check raises
`RiskDenied` with a stable code; the service records a `risk.rejected` event and the API
answers 422 with that code in the error envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from config.errors import ApplicationError

ACTIVE, REDUCE_ONLY, HALTED = "ACTIVE", "REDUCE_ONLY", "HALTED"


class RiskCode:
    TRADING_HALTED = "RISK_TRADING_HALTED"
    REDUCE_ONLY = "RISK_REDUCE_ONLY"
    MAX_NOTIONAL = "RISK_MAX_NOTIONAL"
    MAX_LEVERAGE = "RISK_MAX_LEVERAGE"
    MAX_OPEN_POSITIONS = "RISK_MAX_OPEN_POSITIONS"
    MAX_SLIPPAGE = "RISK_MAX_SLIPPAGE"
    PRICE_BAND = "RISK_PRICE_BAND"
    DAILY_LOSS_CAP = "RISK_DAILY_LOSS_CAP"
    ORDER_RATE = "RISK_ORDER_RATE"
    VENUE_DRAINING = "RISK_VENUE_DRAINING"
    VENUE_PAUSED = "RISK_VENUE_PAUSED"
    REFERENCE_BAND = "RISK_REFERENCE_BAND"
    REFERENCE_UNAVAILABLE = "RISK_REFERENCE_UNAVAILABLE"


class RiskDenied(ApplicationError):
    status_code = 422
    code = "RISK_DENIED"


@dataclass(frozen=True)
class RiskLimits:
    max_notional: Decimal
    max_leverage: Decimal | None  # None: the market's own maximum
    max_open_positions: int
    max_slippage: Decimal
    price_band: Decimal
    daily_loss_cap: Decimal
    max_orders_per_minute: int


@dataclass(frozen=True)
class ReferenceBand:
    """The reference fair rate a new order's venue price is checked against (RISK_REFERENCE_BAND_BPS).
    `rate` is None when the reference may not be used (conflicted, unhealthy): the order is refused."""

    pair: str
    band_bps: Decimal
    rate: Decimal | None
    sample_id: int | None
    outcome: str
    reason: str = ""

    def record(self) -> dict:
        """What the order's events keep about the check."""
        return {
            "pair": self.pair,
            "band_bps": _text(self.band_bps),
            "rate": _text(self.rate),
            "sample_id": self.sample_id,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class RiskSnapshot:
    limits: RiskLimits
    # effective trading state per scope label ("global", "venue:paper", "instrument:BTC-USD")
    trading_states: dict[str, str]
    market_max_leverage: Decimal
    open_positions: frozenset[tuple[str, str, str]]  # (venue, asset, side) of the user's open positions
    realized_loss_today: Decimal  # >= 0, USD net of fees and funding
    orders_last_minute: int  # counted up to limits.max_orders_per_minute (enough to decide)
    reference_price: Decimal
    venue_draining: bool = False
    venue_paused: bool = False  # paused: the venue takes no new work at all
    reference_band: ReferenceBand | None = None  # new exposure only; None: no reference check


@dataclass(frozen=True)
class OrderIntent:
    venue: str
    asset: str
    side: str
    order_type: str
    collateral: Decimal
    leverage: Decimal
    reduces_exposure: bool  # closes/protective/reduce-only: allowed under REDUCE_ONLY, not capped
    max_slippage: Decimal
    prices: dict[str, Decimal] = field(default_factory=dict)  # the limit/stop/tp levels to band-check

    @property
    def notional(self) -> Decimal:
        return self.collateral * self.leverage


def _text(value):
    return format(value.normalize(), "f") if isinstance(value, Decimal) else value


def _pct(fraction: Decimal) -> str:
    """A fraction limit as the percentage the API's fields speak (0.05 → "5")."""
    return _text(fraction * 100)


def _deny(code: str, message: str, **details) -> RiskDenied:
    return RiskDenied(message, code=code, details={k: _text(v) for k, v in details.items()})


def risk_check(intent: OrderIntent, snap: RiskSnapshot) -> None:
    """Raise `RiskDenied` for the first limit the intent breaks; return None when it passes."""
    limits = snap.limits
    for scope in ("global", f"venue:{intent.venue}", f"instrument:{intent.asset}"):
        state = snap.trading_states.get(scope, ACTIVE)
        if state == HALTED:
            raise _deny(RiskCode.TRADING_HALTED, f"Trading is halted ({scope}).", scope=scope)
        if state == REDUCE_ONLY and not intent.reduces_exposure:
            raise _deny(RiskCode.REDUCE_ONLY, f"Only exposure-reducing orders are accepted ({scope}).", scope=scope)
    if snap.venue_paused:
        raise _deny(RiskCode.VENUE_PAUSED, f"Venue {intent.venue} is paused: no new orders.", venue=intent.venue)
    if snap.venue_draining and not intent.reduces_exposure:
        raise _deny(RiskCode.VENUE_DRAINING, f"Venue {intent.venue} is draining: no new exposure.", venue=intent.venue)

    if snap.orders_last_minute >= limits.max_orders_per_minute:
        raise _deny(
            RiskCode.ORDER_RATE,
            "Too many orders in the last minute.",
            limit=limits.max_orders_per_minute,
            recent=snap.orders_last_minute,
        )
    if intent.max_slippage > limits.max_slippage:
        raise _deny(
            RiskCode.MAX_SLIPPAGE,
            f"Requested slippage tolerance {_pct(intent.max_slippage)} % exceeds the limit "
            f"{_pct(limits.max_slippage)} %.",
            requested=intent.max_slippage,
            limit=limits.max_slippage,
            requested_percentage=intent.max_slippage * 100,  # the API's slippage_percentage unit
            limit_percentage=limits.max_slippage * 100,
        )
    ref = snap.reference_price
    if ref > 0:
        for name, level in intent.prices.items():
            if level is None:
                continue
            distance = abs(level - ref) / ref
            if distance > limits.price_band:
                raise _deny(
                    RiskCode.PRICE_BAND,
                    f"{name} is too far from the reference price {_text(ref)}: more than "
                    f"{_pct(limits.price_band)} % away.",
                    field=name,
                    price=level,
                    reference_price=ref,
                    band=limits.price_band,
                    band_percentage=limits.price_band * 100,
                )
    if intent.reduces_exposure:
        return

    band = snap.reference_band
    if band is not None:
        if band.rate is None:
            raise _deny(
                RiskCode.REFERENCE_UNAVAILABLE,
                f"No usable reference price for {band.pair} ({band.outcome}): {band.reason}",
                pair=band.pair,
                outcome=band.outcome,
                reason=band.reason,
                sample_id=band.sample_id,
            )
        distance = (abs(snap.reference_price - band.rate) / band.rate * 10_000).quantize(Decimal("0.01"))
        if distance > band.band_bps:
            raise _deny(
                RiskCode.REFERENCE_BAND,
                f"The {intent.venue} price is too far from the reference price.",
                venue_price=snap.reference_price,
                reference_rate=band.rate,
                distance_bps=distance,
                band_bps=band.band_bps,
                pair=band.pair,
                sample_id=band.sample_id,
            )

    if intent.notional > limits.max_notional:
        raise _deny(
            RiskCode.MAX_NOTIONAL,
            "Order notional exceeds the limit.",
            notional=intent.notional,
            limit=limits.max_notional,
        )
    max_leverage = snap.market_max_leverage
    if limits.max_leverage is not None:
        max_leverage = min(max_leverage, limits.max_leverage)
    if intent.leverage > max_leverage:
        raise _deny(RiskCode.MAX_LEVERAGE, "Leverage exceeds the limit.", leverage=intent.leverage, limit=max_leverage)
    if (intent.venue, intent.asset, intent.side) not in snap.open_positions and len(
        snap.open_positions
    ) >= limits.max_open_positions:
        raise _deny(
            RiskCode.MAX_OPEN_POSITIONS,
            "Too many open positions.",
            open_positions=len(snap.open_positions),
            limit=limits.max_open_positions,
        )
    if snap.realized_loss_today >= limits.daily_loss_cap:
        raise _deny(
            RiskCode.DAILY_LOSS_CAP,
            "Daily realised loss cap reached.",
            realized_loss_today=snap.realized_loss_today,
            limit=limits.daily_loss_cap,
        )
