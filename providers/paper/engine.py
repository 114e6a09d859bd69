"""The paper perps venue: pricing, commands, the resting book, funding and liquidation.

Formulas (all Decimal; docs/trading.md "Paper venue and prices" documents the same):

- Quote for a taker fill of `notional` USD at mid `M` in direction d (+1 buy, −1 sell):
  half_spread = spread / 2; impact = min(impact_coefficient × notional / depth, max_slippage);
  price = M × (1 + d × (half_spread + impact)). `slippage` recorded = half_spread + impact.
- Open: notional = collateral × leverage, size = notional / price (rounded down to 1e-18),
  fee = notional × taker_fee_rate (maker_fee_rate for a resting limit, which fills at its
  limit price with no spread or impact). The account pays collateral + fee.
- Close of fraction f: closed = size × f; exit quote on closed × M; pnl = side × closed ×
  (exit − entry); fee = closed × exit × taker_fee_rate; the account gets
  max(0, collateral × f + pnl − fee − funding_accrued × f).
- Funding (per whole hour since `funding_at`): amount = side × size × M × rate_hourly × hours;
  positive = paid. It accrues on the position and is settled from the margin on close.
- Liquidation: equity = collateral + side × size × (P − entry) − funding_accrued;
  maintenance = size × P × mmr; liquidated when equity ≤ maintenance, at the tick price P,
  collateral forfeited. Closed form: long P_liq = (size × entry − collateral + funding) /
  (size × (1 − mmr)); short P_liq = (size × entry + collateral − funding) / (size × (1 + mmr)).

Every state change happens in one transaction with row locks (order → account → position),
and VenueEvents go to listeners after it commits.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from enum import Enum

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.events import venue_events_emit_on_commit
from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    ExecutionResult,
    Fill,
    InventoryReading,
    Market,
    OpenTradeRequest,
    PriceTick,
    Side,
    VenueError,
    VenueEvent,
    VenueEventKind,
    VenueException,
    VenueOrderKind,
    VenuePosition,
)
from providers.models import PaperAccount, PaperFill, PaperFundingCharge, PaperMarket, PaperOrder, PaperPosition

logger = logging.getLogger("tradedesk.providers.paper")

VENUE = "paper"
Q18 = Decimal("1e-18")
ZERO = Decimal("0")
ONE = Decimal("1")
HOUR = timedelta(hours=1)


def _precise(fn):
    """Run with 60 significant digits so 18-decimal money never loses precision mid-way."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with localcontext() as ctx:
            ctx.prec = 60
            return fn(*args, **kwargs)

    return wrapper


def q(value: Decimal, rounding=ROUND_HALF_EVEN) -> Decimal:
    return Decimal(value).quantize(Q18, rounding=rounding)


# --- markets ------------------------------------------------------------------------------------
def market_to_dataclass(m: PaperMarket) -> Market:
    return Market(
        symbol=m.symbol,
        pair_id=str(m.pair_id),
        category=m.category,
        max_leverage=m.max_leverage,
        min_leverage=m.min_leverage,
        taker_fee_rate=m.taker_fee_rate,
        maker_fee_rate=m.maker_fee_rate,
        maintenance_margin_rate=m.maintenance_margin_rate,
        min_collateral=m.min_collateral,
        is_open=m.is_open,
    )


def paper_markets() -> list[Market]:
    return [market_to_dataclass(m) for m in PaperMarket.objects.order_by("symbol")]


# --- pricing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quote:
    price: Decimal
    reference_mid: Decimal
    half_spread: Decimal
    impact: Decimal
    slippage: Decimal  # half_spread + impact, the deviation from mid
    source: str
    timestamp: datetime

    def fill_fields(self) -> dict:
        """The price columns every PaperFill records: what was paid, against which mid, why."""
        return {
            "price": self.price,
            "reference_mid": self.reference_mid,
            "half_spread": self.half_spread,
            "impact": self.impact,
            "slippage": self.slippage,
            "price_source": self.source,
            "price_timestamp": self.timestamp,
        }


@_precise
def quote_taker(*, market: PaperMarket, tick: PriceTick, direction: int, notional: Decimal) -> Quote:
    """The price a taker gets for `notional` USD (see the module docstring)."""
    half = market.spread / 2
    impact = min(market.impact_coefficient * notional / market.depth, market.max_slippage)
    total = half + impact
    price = q(tick.price * (1 + direction * total))
    return Quote(
        price=price,
        reference_mid=tick.price,
        half_spread=q(half),
        impact=q(impact),
        slippage=q(total),
        source=tick.source,
        timestamp=tick.timestamp,
    )


def quote_maker(*, price: Decimal, tick: PriceTick) -> Quote:
    """A resting limit fills at its own price: no spread, no impact."""
    return Quote(
        price=price,
        reference_mid=tick.price,
        half_spread=ZERO,
        impact=ZERO,
        slippage=ZERO,
        source=tick.source,
        timestamp=tick.timestamp,
    )


@_precise
def liquidation_price(
    *, side: Side, size: Decimal, entry: Decimal, collateral: Decimal, funding: Decimal, mmr: Decimal
) -> Decimal | None:
    """The price at which equity equals maintenance margin (None when it is not positive)."""
    if size <= 0:
        return None
    if side is Side.LONG:
        value = (size * entry - collateral + funding) / (size * (1 - mmr))
        value = q(value, ROUND_FLOOR)
    else:
        value = (size * entry + collateral - funding) / (size * (1 + mmr))
        value = q(value, ROUND_CEILING)
    return value if value > 0 else None


@_precise
def position_equity(position: PaperPosition, price: Decimal) -> tuple[Decimal, Decimal]:
    """(equity, maintenance) of an open position at `price`."""
    sign = Side(position.side).sign
    equity = position.collateral + sign * position.size * (price - position.entry_price) - position.funding_accrued
    maintenance = position.size * price * position.market.maintenance_margin_rate
    return equity, maintenance


def _liq_price_of(position: PaperPosition) -> Decimal | None:
    return liquidation_price(
        side=Side(position.side),
        size=position.size,
        entry=position.entry_price,
        collateral=position.collateral,
        funding=position.funding_accrued,
        mmr=position.market.maintenance_margin_rate,
    )


# --- results (stored as JSON on PaperOrder.result so a repeated key returns the same answer) --------
def _jsonable(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def result_to_json(result: ExecutionResult) -> dict:
    return _jsonable(asdict(result))


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(value)


def result_from_json(data: dict) -> ExecutionResult:
    fill = None
    if data.get("fill"):
        f = data["fill"]
        fill = Fill(
            price=Decimal(f["price"]),
            size=Decimal(f["size"]),
            notional=Decimal(f["notional"]),
            fee=Decimal(f["fee"]),
            slippage=Decimal(f["slippage"]),
            price_source=f["price_source"],
            timestamp=datetime.fromisoformat(f["timestamp"]),
            realized_pnl=_dec(f.get("realized_pnl")),
            is_maker=bool(f.get("is_maker")),
        )
    error = None
    if data.get("error"):
        e = data["error"]
        error = VenueError(
            code=ErrorCode(e["code"]), message=e["message"], retryable=e["retryable"], details=e["details"]
        )
    return ExecutionResult(
        status=ExecStatus(data["status"]),
        venue_order_id=data.get("venue_order_id", ""),
        pair_id=data.get("pair_id", ""),
        trade_index=data.get("trade_index", ""),
        transaction_hash=data.get("transaction_hash", ""),
        fill=fill,
        error=error,
        raw_request=data.get("raw_request") or {},
        raw_response=data.get("raw_response") or {},
    )


def _rejected(code: ErrorCode, message: str, *, retryable=False, details=None, raw_request=None) -> ExecutionResult:
    return ExecutionResult(
        status=ExecStatus.REJECTED,
        error=VenueError(code=code, message=message, retryable=retryable, details=_jsonable(details or {})),
        raw_request=raw_request or {},
    )


def _fill_of(row: PaperFill) -> Fill:
    return Fill(
        price=row.price,
        size=row.size,
        notional=row.notional,
        fee=row.fee,
        slippage=row.slippage,
        price_source=row.price_source,
        timestamp=row.created_at,
        realized_pnl=row.realized_pnl,
        is_maker=row.is_maker,
    )


def _fill_response(row: PaperFill, *, balance: Decimal | None = None) -> dict:
    data = {
        "fill_id": row.pk,
        "reason": row.reason,
        "direction": row.direction,
        "reference_mid": row.reference_mid,
        "half_spread": row.half_spread,
        "impact": row.impact,
        "fee_rate": row.fee_rate,
        "price_timestamp": row.price_timestamp,
        "funding_settled": row.funding_settled,
        "balance_change": row.balance_change,
    }
    if balance is not None:
        data["balance"] = balance
    return _jsonable(data)


# --- accounts -----------------------------------------------------------------------------------
def _account_locked(name: str) -> PaperAccount:
    """The account row `name`, created with PAPER_STARTING_BALANCE on first use, locked."""
    account, _ = PaperAccount.objects.get_or_create(
        name=name, defaults={"balance": Decimal(str(settings.PAPER_STARTING_BALANCE))}
    )
    return PaperAccount.objects.select_for_update().get(pk=account.pk)


def paper_account_get(*, name: str) -> PaperAccount:
    """The account `name` (created with the starting balance on first use)."""
    with transaction.atomic():
        return _account_locked(name)


@transaction.atomic
def paper_account_set_balance(*, name: str, balance: Decimal) -> PaperAccount:
    """Set an account's balance (seed, admin, tests)."""
    if balance < 0:
        raise VenueException(VenueError(code=ErrorCode.INVALID_REQUEST, message="balance must not be negative"))
    account = _account_locked(name)
    account.balance = balance
    account.save(update_fields=["balance", "updated_at"])
    return account


def paper_inventory() -> list[InventoryReading]:
    """Every paper account's cash (credited) and the collateral of its open positions (locked), USD."""
    from django.db.models import Sum

    locked = dict(
        PaperPosition.objects.filter(status=PaperPosition.Status.OPEN)
        .values("account_id")
        .annotate(total=Sum("collateral"))
        .values_list("account_id", "total")
    )
    return [
        InventoryReading(
            venue="paper",
            account=account.name,
            asset="USD",
            symbol="USD",
            decimals=2,
            credited=account.balance,
            locked=locked.get(account.pk) or Decimal(0),
        )
        for account in PaperAccount.objects.order_by("name")
    ]


# --- idempotency --------------------------------------------------------------------------------
def _claim(key: str, **fields) -> tuple[PaperOrder, bool]:
    """Insert the command row for `key` (inside the caller's transaction), or return the
    existing one. A concurrent duplicate waits on the unique index until the first commits."""
    try:
        with transaction.atomic():
            return PaperOrder.objects.create(idempotency_key=key, **fields), True
    except IntegrityError:
        return PaperOrder.objects.get(idempotency_key=key), False


def _stored(order: PaperOrder) -> ExecutionResult:
    return result_from_json(order.result)


def _request_json(request) -> dict:
    return _jsonable(asdict(request))


def paper_transaction_hash(order: PaperOrder) -> str:
    """The paper venue's reference for the execution of `order`, shaped like a chain
    transaction hash (0x + 64 hex) as clients of the seed API expect one; no chain is involved."""
    return "0x" + hashlib.sha256(f"paper-order:{order.pk}".encode()).hexdigest()


def _finish(order: PaperOrder, result: ExecutionResult, *, status: str) -> ExecutionResult:
    if result.fill is not None and not result.transaction_hash:
        result = dataclasses.replace(result, transaction_hash=paper_transaction_hash(order))
    order.status = status
    order.result = result_to_json(result)
    if result.error:
        order.error_code = result.error.code.value
        order.error_message = result.error.message[:300]
    order.save()
    return result


# --- open ---------------------------------------------------------------------------------------
def _validate_open(request: OpenTradeRequest, market: PaperMarket | None) -> ExecutionResult | None:
    raw = _request_json(request)
    if market is None:
        return _rejected(ErrorCode.INVALID_MARKET, f"no paper market {request.symbol}", raw_request=raw)
    if not market.is_open:
        return _rejected(ErrorCode.MARKET_CLOSED, f"{market.symbol} is closed", raw_request=raw)
    if not (market.min_leverage <= request.leverage <= market.max_leverage):
        return _rejected(
            ErrorCode.LEVERAGE_OUT_OF_RANGE,
            f"leverage {request.leverage} outside [{market.min_leverage}, {market.max_leverage}]",
            details={"min": market.min_leverage, "max": market.max_leverage, "leverage": request.leverage},
            raw_request=raw,
        )
    if request.collateral <= 0 or request.collateral < market.min_collateral:
        return _rejected(
            ErrorCode.INVALID_REQUEST,
            f"collateral must be positive and at least {market.min_collateral}",
            details={"collateral": request.collateral, "min_collateral": market.min_collateral},
            raw_request=raw,
        )
    if request.kind == VenueOrderKind.LIMIT and not (request.limit_price and request.limit_price > 0):
        return _rejected(ErrorCode.INVALID_REQUEST, "a limit order needs a positive limit_price", raw_request=raw)
    if request.kind == VenueOrderKind.STOP and not (request.stop_price and request.stop_price > 0):
        return _rejected(ErrorCode.INVALID_REQUEST, "a stop entry needs a positive stop_price", raw_request=raw)
    return None


def _fresh_tick(symbol: str) -> PriceTick:
    from providers.prices import price_get_fresh

    return price_get_fresh(symbol, venue="paper")


def _price_rejection(exc: VenueException, raw: dict) -> ExecutionResult:
    return ExecutionResult(status=ExecStatus.REJECTED, error=exc.error, raw_request=raw)


@_precise
def paper_trade_open(*, request: OpenTradeRequest) -> ExecutionResult:
    """Open a position now (MARKET), or rest a LIMIT/STOP entry in the book. Same key twice →
    the first result. Rejections that may pass on retry (no price) are not remembered."""
    existing = PaperOrder.objects.filter(idempotency_key=request.idempotency_key).first()
    if existing is not None and existing.result:
        return _stored(existing)
    symbol = request.symbol.strip().upper()
    raw = _request_json(request)
    try:
        tick = _fresh_tick(symbol)
    except VenueException as exc:
        if PaperMarket.objects.filter(symbol=symbol).exists():
            return _price_rejection(exc, raw)
        tick = None  # unknown market: rejected (and remembered) below

    with transaction.atomic():
        market = PaperMarket.objects.filter(symbol=symbol).first()
        order, created = _claim(
            request.idempotency_key,
            action=PaperOrder.Action.OPEN,
            symbol=symbol,
            market=market,
            side=request.side.value,
            kind=request.kind.value,
            status=PaperOrder.Status.PENDING,
            collateral=request.collateral,
            leverage=request.leverage,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
        )
        if not created:
            return _stored(order)
        rejection = _validate_open(request, market)
        if rejection is not None:
            return _finish(order, rejection, status=PaperOrder.Status.REJECTED)
        if tick is None:
            return _finish(
                order,
                _rejected(ErrorCode.PRICE_UNAVAILABLE, f"no price for {symbol}", retryable=True, raw_request=raw),
                status=PaperOrder.Status.REJECTED,
            )
        account = _account_locked(request.account)
        order.account = account
        if request.kind == VenueOrderKind.MARKET or _marketable_now(request, market, tick):
            return _open_market(order=order, account=account, market=market, request=request, tick=tick, raw=raw)
        return _rest(order=order, account=account, market=market, request=request, raw=raw)


def _marketable_now(request: OpenTradeRequest, market: PaperMarket, tick: PriceTick) -> bool:
    """A LIMIT whose taker price is already at or better than its limit, or a STOP already
    triggered, executes now as a taker."""
    sign = request.side.sign
    if request.kind == VenueOrderKind.LIMIT:
        notional = request.collateral * request.leverage
        price = quote_taker(market=market, tick=tick, direction=sign, notional=notional).price
        return price <= request.limit_price if sign > 0 else price >= request.limit_price
    if request.kind == VenueOrderKind.STOP:
        return tick.price >= request.stop_price if sign > 0 else tick.price <= request.stop_price
    return True


def _open_market(*, order, account, market, request, tick, raw) -> ExecutionResult:
    sign = request.side.sign
    notional = q(request.collateral * request.leverage)
    quote = quote_taker(market=market, tick=tick, direction=sign, notional=notional)
    reference = request.reference_price or tick.price
    deviation = abs(quote.price - reference) / reference
    if deviation > request.max_slippage:
        return _finish(
            order,
            _rejected(
                ErrorCode.SLIPPAGE_EXCEEDED,
                f"fill {quote.price} is {deviation:.6f} from {reference}, above max {request.max_slippage}",
                details={"price": quote.price, "reference": reference, "max_slippage": request.max_slippage},
                raw_request=raw,
            ),
            status=PaperOrder.Status.REJECTED,
        )
    fee = q(notional * market.taker_fee_rate)
    cost = request.collateral + fee
    refused = _debit_or_reject(order=order, account=account, amount=cost, raw=raw)
    if refused:
        return refused
    position, fill_row = _position_create(
        order=order,
        account=account,
        market=market,
        request=request,
        quote=quote,
        notional=notional,
        fee=fee,
        fee_rate=market.taker_fee_rate,
        is_maker=False,
        balance_change=-cost,
    )
    result = ExecutionResult(
        status=ExecStatus.FILLED,
        venue_order_id=str(order.pk),
        pair_id=str(market.pair_id),
        trade_index=position.trade_index,
        fill=_fill_of(fill_row),
        raw_request=raw,
        raw_response=_fill_response(fill_row, balance=account.balance),
    )
    return _finish(order, result, status=PaperOrder.Status.FILLED)


def _position_create(
    *, order, account, market, request, quote, notional, fee, fee_rate, is_maker, balance_change
) -> tuple[PaperPosition, PaperFill]:
    size = q(notional / quote.price, ROUND_DOWN)
    now = timezone.now()
    position = PaperPosition(
        account=account,
        market=market,
        side=request.side.value,
        size=size,
        entry_price=quote.price,
        collateral=request.collateral,
        leverage=request.leverage,
        stop_loss=request.stop_loss,
        take_profit=request.take_profit,
        fees_paid=fee,
        opened_at=now,
        funding_at=now,
    )
    position.liquidation_price = _liq_price_of(position)
    position.save()
    order.position = position
    fill_row = PaperFill.objects.create(
        order=order,
        position=position,
        reason=PaperFill.Reason.OPEN,
        direction="buy" if request.side is Side.LONG else "sell",
        size=size,
        notional=notional,
        fee=fee,
        fee_rate=fee_rate,
        is_maker=is_maker,
        balance_change=balance_change,
        **quote.fill_fields(),
        created_at=now,
    )
    return position, fill_row


def _debit_or_reject(*, order, account, amount: Decimal, raw) -> ExecutionResult | None:
    """Take collateral + fee from the (locked) account, or reject the order when short."""
    if account.balance < amount:
        return _finish(
            order,
            _rejected(
                ErrorCode.INSUFFICIENT_BALANCE,
                f"needs {amount} USD (collateral + fee), balance {account.balance}",
                details={"required": amount, "balance": account.balance},
                raw_request=raw,
            ),
            status=PaperOrder.Status.REJECTED,
        )
    account.balance -= amount
    account.save(update_fields=["balance", "updated_at"])
    return None


def _rest(*, order, account, market, request, raw) -> ExecutionResult:
    notional = q(request.collateral * request.leverage)
    rate = market.maker_fee_rate if request.kind == VenueOrderKind.LIMIT else market.taker_fee_rate
    reserved = request.collateral + q(notional * rate)
    refused = _debit_or_reject(order=order, account=account, amount=reserved, raw=raw)
    if refused:
        return refused
    order.reserved = reserved
    result = ExecutionResult(
        status=ExecStatus.PENDING,
        venue_order_id=str(order.pk),
        pair_id=str(market.pair_id),
        raw_request=raw,
        raw_response={"reserved": str(reserved), "balance": str(account.balance)},
    )
    return _finish(order, result, status=PaperOrder.Status.PENDING)


# --- close --------------------------------------------------------------------------------------
def _position_for(account_name: str, trade_index: str, *, lock: bool) -> PaperPosition | None:
    if not str(trade_index).isdigit():
        return None
    qs = PaperPosition.objects.select_related("market", "account")
    if lock:
        qs = qs.select_for_update(of=("self",))
    return qs.filter(pk=int(trade_index), account__name=account_name).first()


@_precise
def paper_trade_close(*, request: CloseTradeRequest) -> ExecutionResult:
    """Close `fraction` of a position at the taker price. Same key twice → the first result."""
    existing = PaperOrder.objects.filter(idempotency_key=request.idempotency_key).first()
    if existing is not None and existing.result:
        return _stored(existing)
    raw = _request_json(request)
    symbol = request.symbol.strip().upper()
    try:
        tick = _fresh_tick(symbol)
    except VenueException as exc:
        if PaperMarket.objects.filter(symbol=symbol).exists():
            return _price_rejection(exc, raw)
        tick = None

    with transaction.atomic():
        market = PaperMarket.objects.filter(symbol=symbol).first()
        order, created = _claim(
            request.idempotency_key,
            action=PaperOrder.Action.CLOSE,
            symbol=symbol,
            market=market,
            status=PaperOrder.Status.PENDING,
            fraction=request.fraction,
        )
        if not created:
            return _stored(order)
        if not (ZERO < request.fraction <= ONE):
            return _finish(
                order,
                _rejected(ErrorCode.INVALID_REQUEST, "fraction must be in (0, 1]", raw_request=raw),
                status=PaperOrder.Status.REJECTED,
            )
        account = PaperAccount.objects.select_for_update().filter(name=request.account).first()
        position = _position_for(request.account, request.trade_index, lock=True) if account else None
        if position is None or position.status != PaperPosition.Status.OPEN or position.market.symbol != symbol:
            return _finish(
                order,
                _rejected(
                    ErrorCode.POSITION_NOT_FOUND,
                    f"no open paper position {request.trade_index} of {request.account} on {symbol}",
                    details={"status": position.status if position else None},
                    raw_request=raw,
                ),
                status=PaperOrder.Status.REJECTED,
            )
        order.account = account
        order.position = position
        market = position.market
        sign = Side(position.side).sign
        full = request.fraction == ONE
        closed = position.size if full else q(position.size * request.fraction, ROUND_DOWN)
        if closed <= 0:
            return _finish(
                order,
                _rejected(ErrorCode.INVALID_REQUEST, "fraction closes nothing of this size", raw_request=raw),
                status=PaperOrder.Status.REJECTED,
            )
        quote = quote_taker(market=market, tick=tick, direction=-sign, notional=closed * tick.price)
        if quote.slippage > request.max_slippage:
            return _finish(
                order,
                _rejected(
                    ErrorCode.SLIPPAGE_EXCEEDED,
                    f"slippage {quote.slippage} above max {request.max_slippage}",
                    details={"slippage": quote.slippage, "max_slippage": request.max_slippage},
                    raw_request=raw,
                ),
                status=PaperOrder.Status.REJECTED,
            )
        pnl = q(sign * closed * (quote.price - position.entry_price))
        notional = q(closed * quote.price)
        fee = q(notional * market.taker_fee_rate)
        funding = position.funding_accrued if full else q(position.funding_accrued * request.fraction)
        released = position.collateral if full else q(position.collateral * request.fraction)
        payout = max(ZERO, released + pnl - fee - funding)
        account.balance += payout
        account.save(update_fields=["balance", "updated_at"])
        now = timezone.now()
        position.size -= closed
        position.collateral -= released
        position.funding_accrued -= funding
        position.fees_paid += fee
        position.realized_pnl += pnl
        if full:
            position.status = PaperPosition.Status.CLOSED
            position.closed_at = now
            position.liquidation_price = None
        else:
            position.liquidation_price = _liq_price_of(position)
        position.save()
        fill_row = PaperFill.objects.create(
            order=order,
            position=position,
            reason=PaperFill.Reason.CLOSE,
            direction="sell" if sign > 0 else "buy",
            size=closed,
            notional=notional,
            fee=fee,
            fee_rate=market.taker_fee_rate,
            realized_pnl=pnl,
            funding_settled=funding,
            balance_change=payout,
            created_at=now,
            **quote.fill_fields(),
        )
        result = ExecutionResult(
            status=ExecStatus.FILLED,
            venue_order_id=str(order.pk),
            pair_id=str(market.pair_id),
            trade_index=position.trade_index,
            fill=_fill_of(fill_row),
            raw_request=raw,
            raw_response=_fill_response(fill_row, balance=account.balance)
            | {"remaining_size": str(position.size), "position_status": position.status},
        )
        return _finish(order, result, status=PaperOrder.Status.FILLED)


# --- levels, cancels, reads ---------------------------------------------------------------------
@transaction.atomic
def paper_position_set_level(
    *, account: str, pair_id: str, trade_index: str, field: str, price: Decimal | None
) -> ExecutionResult:
    """Record a stop-loss / take-profit level on the position (the paper venue does not act on
    it: the trading core's protective engine does)."""
    assert field in ("stop_loss", "take_profit")
    position = _position_for(account, trade_index, lock=True)
    if position is None or position.status != PaperPosition.Status.OPEN or str(position.market.pair_id) != str(pair_id):
        return _rejected(ErrorCode.POSITION_NOT_FOUND, f"no open paper position {trade_index} of {account}")
    if price is not None and price <= 0:
        return _rejected(ErrorCode.INVALID_REQUEST, f"{field} must be positive")
    setattr(position, field, price)
    position.save(update_fields=[field])
    return ExecutionResult(
        status=ExecStatus.FILLED,
        pair_id=str(position.market.pair_id),
        trade_index=position.trade_index,
        raw_response={field: None if price is None else str(price)},
    )


@transaction.atomic
def paper_order_cancel(*, account: str, venue_order_id: str) -> ExecutionResult:
    """Cancel a resting entry and release what it reserved. Cancelling twice → CANCELLED again."""
    order = None
    if str(venue_order_id).isdigit():
        order = (
            PaperOrder.objects.select_for_update()
            .filter(pk=int(venue_order_id), account__name=account, action=PaperOrder.Action.OPEN)
            .first()
        )
    if order is None:
        return _rejected(ErrorCode.ORDER_NOT_FOUND, f"no paper order {venue_order_id} of {account}")
    if order.status == PaperOrder.Status.CANCELLED:
        return _stored(order)
    if order.status != PaperOrder.Status.PENDING:
        return _rejected(
            ErrorCode.INVALID_REQUEST, f"order {venue_order_id} is {order.status}", details={"status": order.status}
        )
    acct = PaperAccount.objects.select_for_update().get(pk=order.account_id)
    acct.balance += order.reserved
    acct.save(update_fields=["balance", "updated_at"])
    released = order.reserved
    order.reserved = ZERO
    result = ExecutionResult(
        status=ExecStatus.CANCELLED,
        venue_order_id=str(order.pk),
        pair_id=str(order.market.pair_id) if order.market_id else "",
        raw_request=order.result.get("raw_request", {}),
        raw_response={"released": str(released), "balance": str(acct.balance)},
    )
    return _finish(order, result, status=PaperOrder.Status.CANCELLED)


def position_to_dataclass(p: PaperPosition) -> VenuePosition:
    return VenuePosition(
        account=p.account.name,
        symbol=p.market.symbol,
        pair_id=str(p.market.pair_id),
        trade_index=p.trade_index,
        side=Side(p.side),
        collateral=p.collateral,
        leverage=p.leverage,
        size=p.size,
        entry_price=p.entry_price,
        opened_at=p.opened_at,
        stop_loss=p.stop_loss,
        take_profit=p.take_profit,
        liquidation_price=p.liquidation_price,
        funding_paid=p.funding_paid,
        fees_paid=p.fees_paid,
    )


def paper_positions(*, account: str) -> list[VenuePosition]:
    """Open positions of `account` (oldest first)."""
    rows = (
        PaperPosition.objects.select_related("market", "account")
        .filter(account__name=account, status=PaperPosition.Status.OPEN)
        .order_by("id")
    )
    return [position_to_dataclass(p) for p in rows]


def paper_order_status(*, idempotency_key: str) -> ExecutionResult:
    """What became of the command with this key: its stored result, or NOT_FOUND."""
    order = PaperOrder.objects.filter(idempotency_key=idempotency_key).first()
    if order is None or not order.result:
        return ExecutionResult(status=ExecStatus.NOT_FOUND)
    return _stored(order)


# --- the book: resting entries and liquidations, on every tick -------------------------------------
def _crosses(order: PaperOrder, mid: Decimal) -> bool:
    long = order.side == Side.LONG.value
    if order.kind == VenueOrderKind.LIMIT.value:
        return mid <= order.limit_price if long else mid >= order.limit_price
    if order.kind == VenueOrderKind.STOP.value:
        return mid >= order.stop_price if long else mid <= order.stop_price
    return False


@_precise
def paper_book_process_tick(*, tick: PriceTick) -> dict:
    """Fill resting entries the tick crosses, then liquidate positions it puts under water.
    Safe to run concurrently: rows are locked and re-checked, so nothing fills or liquidates twice."""
    filled = _fill_resting(tick)
    liquidated = _liquidate(tick)
    return {"filled": filled, "liquidated": liquidated}


def _fill_resting(tick: PriceTick) -> list[int]:
    from django.db.models import Q

    price, long, short = tick.price, Side.LONG.value, Side.SHORT.value
    limit, stop = VenueOrderKind.LIMIT.value, VenueOrderKind.STOP.value
    crossing = (
        Q(kind=limit, side=long, limit_price__gte=price)
        | Q(kind=limit, side=short, limit_price__lte=price)
        | Q(kind=stop, side=long, stop_price__lte=price)
        | Q(kind=stop, side=short, stop_price__gte=price)
    )
    candidates = list(
        PaperOrder.objects.filter(symbol=tick.symbol, status=PaperOrder.Status.PENDING, action=PaperOrder.Action.OPEN)
        .filter(crossing)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    done = []
    for pk in candidates:
        try:
            filled = _fill_one(pk, tick)
        except Exception:
            logger.exception("paper resting order failed to fill", extra={"order": pk})
            continue
        if filled:
            done.append(filled)
    return done


def _fill_one(pk: int, tick: PriceTick) -> int | None:
    with transaction.atomic():
        order = (
            PaperOrder.objects.select_for_update(of=("self",))
            .select_related("market")
            .filter(pk=pk, status=PaperOrder.Status.PENDING)
            .first()
        )
        if order is None or not _crosses(order, tick.price):
            return None
        account = PaperAccount.objects.select_for_update().get(pk=order.account_id)
        market = order.market
        request = OpenTradeRequest(
            idempotency_key=order.idempotency_key,
            account=account.name,
            symbol=order.symbol,
            side=Side(order.side),
            collateral=order.collateral,
            leverage=order.leverage,
            kind=VenueOrderKind(order.kind),
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
        )
        notional = q(order.collateral * order.leverage)
        if order.kind == VenueOrderKind.LIMIT.value:
            quote, rate, maker = quote_maker(price=order.limit_price, tick=tick), market.maker_fee_rate, True
        else:
            quote = quote_taker(market=market, tick=tick, direction=request.side.sign, notional=notional)
            rate, maker = market.taker_fee_rate, False
        fee = q(notional * rate)
        cost = order.collateral + fee
        # The order reserved collateral + fee when it was placed; settle the difference.
        account.balance += order.reserved - cost
        account.save(update_fields=["balance", "updated_at"])
        order.reserved = ZERO
        position, fill_row = _position_create(
            order=order,
            account=account,
            market=market,
            request=request,
            quote=quote,
            notional=notional,
            fee=fee,
            fee_rate=rate,
            is_maker=maker,
            balance_change=-cost,
        )
        fill = _fill_of(fill_row)
        result = ExecutionResult(
            status=ExecStatus.FILLED,
            venue_order_id=str(order.pk),
            pair_id=str(market.pair_id),
            trade_index=position.trade_index,
            fill=fill,
            raw_request=order.result.get("raw_request", {}),
            raw_response=_fill_response(fill_row, balance=account.balance),
        )
        _finish(order, result, status=PaperOrder.Status.FILLED)
        venue_events_emit_on_commit(
            [
                VenueEvent(
                    venue=VENUE,
                    kind=VenueEventKind.ORDER_FILLED,
                    account=account.name,
                    symbol=market.symbol,
                    pair_id=str(market.pair_id),
                    trade_index=position.trade_index,
                    idempotency_key=order.idempotency_key,
                    venue_order_id=str(order.pk),
                    fill=fill,
                    details={"kind": order.kind, "side": order.side, "fee_rate": str(rate)},
                    occurred_at=fill_row.created_at,
                )
            ]
        )
        return order.pk


def _liquidate(tick: PriceTick) -> list[int]:
    from django.db.models import Q

    price = tick.price
    candidates = list(
        PaperPosition.objects.filter(market__symbol=tick.symbol, status=PaperPosition.Status.OPEN)
        .filter(
            Q(side=Side.LONG.value, liquidation_price__gte=price)
            | Q(side=Side.SHORT.value, liquidation_price__lte=price)
        )
        .order_by("id")
        .values_list("pk", flat=True)
    )
    done = []
    for pk in candidates:
        try:
            with transaction.atomic():
                position = (
                    PaperPosition.objects.select_for_update(of=("self",))
                    .select_related("market", "account")
                    .filter(pk=pk, status=PaperPosition.Status.OPEN)
                    .first()
                )
                if position is None:
                    continue  # closed or liquidated by someone else meanwhile
                equity, maintenance = position_equity(position, price)
                if equity > maintenance:
                    continue
                done.append(_liquidate_one(position, tick, equity=equity, maintenance=maintenance))
        except Exception:
            logger.exception("paper liquidation failed", extra={"position": pk})
    return done


def _liquidate_one(position: PaperPosition, tick: PriceTick, *, equity: Decimal, maintenance: Decimal) -> int:
    sign = Side(position.side).sign
    size = position.size
    pnl = q(sign * size * (tick.price - position.entry_price))
    now = timezone.now()
    lost = position.collateral
    funding = position.funding_accrued
    position.realized_pnl += pnl
    position.status = PaperPosition.Status.LIQUIDATED
    position.closed_at = now
    position.collateral = ZERO
    position.funding_accrued = ZERO
    position.save()
    fill_row = PaperFill.objects.create(
        position=position,
        reason=PaperFill.Reason.LIQUIDATION,
        direction="sell" if sign > 0 else "buy",
        size=size,
        notional=q(size * tick.price),
        fee=ZERO,
        fee_rate=ZERO,
        realized_pnl=pnl,
        funding_settled=funding,
        balance_change=ZERO,
        created_at=now,
        **quote_maker(price=tick.price, tick=tick).fill_fields(),  # at the tick, no spread or impact
    )
    logger.info(
        "paper position liquidated",
        extra={"position": position.pk, "symbol": tick.symbol, "price": str(tick.price)},
    )
    venue_events_emit_on_commit(
        [
            VenueEvent(
                venue=VENUE,
                kind=VenueEventKind.POSITION_LIQUIDATED,
                account=position.account.name,
                symbol=position.market.symbol,
                pair_id=str(position.market.pair_id),
                trade_index=position.trade_index,
                fill=_fill_of(fill_row),
                details={
                    "collateral_lost": lost,
                    "equity": q(equity),
                    "maintenance_margin": q(maintenance),
                    "funding_settled": funding,
                },
                occurred_at=now,
            )
        ]
    )
    return position.pk


# --- funding ------------------------------------------------------------------------------------
@_precise
def paper_funding_accrue(*, now: datetime | None = None) -> list[int]:
    """Charge funding for every whole hour since each open position's `funding_at`, at the
    current mid. Returns the ids of the charges written. Safe to run concurrently or twice."""
    from providers.prices import price_get

    now = now or timezone.now()
    open_positions = list(
        PaperPosition.objects.filter(status=PaperPosition.Status.OPEN, funding_at__lte=now - HOUR)
        .select_related("market")
        .order_by("id")
    )
    prices: dict[str, Decimal] = {}
    for symbol in {p.market.symbol for p in open_positions}:
        try:
            prices[symbol] = price_get(symbol, venue="paper").price
        except VenueException:
            logger.warning("no price for funding", extra={"symbol": symbol})
    charged = []
    for candidate in open_positions:
        price = prices.get(candidate.market.symbol)
        if price is None:
            continue
        with transaction.atomic():
            position = (
                PaperPosition.objects.select_for_update(of=("self",))
                .select_related("market", "account")
                .filter(pk=candidate.pk, status=PaperPosition.Status.OPEN)
                .first()
            )
            if position is None:
                continue
            hours = int((now - position.funding_at) // HOUR)
            if hours < 1:
                continue
            rate = position.market.funding_rate_hourly
            amount = q(Side(position.side).sign * position.size * price * rate * hours)
            start = position.funding_at
            end = start + hours * HOUR
            charge = PaperFundingCharge.objects.create(
                position=position,
                hours=hours,
                rate_hourly=rate,
                price=price,
                amount=amount,
                period_start=start,
                period_end=end,
            )
            position.funding_accrued += amount
            position.funding_paid += amount
            position.funding_at = end
            position.liquidation_price = _liq_price_of(position)
            position.save(update_fields=["funding_accrued", "funding_paid", "funding_at", "liquidation_price"])
            venue_events_emit_on_commit(
                [
                    VenueEvent(
                        venue=VENUE,
                        kind=VenueEventKind.FUNDING_CHARGED,
                        account=position.account.name,
                        symbol=position.market.symbol,
                        pair_id=str(position.market.pair_id),
                        trade_index=position.trade_index,
                        details={
                            "amount": amount,
                            "hours": hours,
                            "rate_hourly": rate,
                            "price": price,
                            "charge_id": charge.pk,
                            "period_start": start.isoformat(),
                            "period_end": end.isoformat(),
                        },
                        occurred_at=timezone.now(),
                    )
                ]
            )
            charged.append(charge.pk)
    return charged
