"""JSON shapes shared by the internal signer service and its client: dataclasses of the
venue interface ↔ JSON (Decimals as strings, datetimes as ISO 8601), and request signing.

Signature: hex HMAC-SHA256(secret, "METHOD\\nPATH\\nTIMESTAMP\\nsha256_hex(body)"), sent as
`x-signature` with `x-timestamp` (unix seconds or milliseconds). A request that carries its
idempotency key in an `Idempotency-Key` header signs it too: "\\nKEY" is appended to the message."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import datetime
from decimal import Decimal

from providers.interface import (
    ErrorCode,
    ExecStatus,
    ExecutionResult,
    Fill,
    Market,
    PriceTick,
    Side,
    VenueError,
    VenuePosition,
)


def signed_message(method: str, path: str, timestamp: str, body: bytes, idempotency_key: str = "") -> bytes:
    """What a request's signature covers: the whole request (method, path, time, body, and an
    idempotency key sent as a header)."""
    message = f"{method.upper()}\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}"
    if idempotency_key:
        message += f"\n{idempotency_key}"
    return message.encode()


def signature(secret: str, method: str, path: str, timestamp: str, body: bytes, idempotency_key: str = "") -> str:
    message = signed_message(method, path, timestamp, body, idempotency_key)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def to_json(value):
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):  # StrEnum
        return value.value
    return value


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _dt(value) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)


def error_from_json(data: dict | None) -> VenueError | None:
    if not data:
        return None
    return VenueError(
        code=ErrorCode(data["code"]),
        message=data.get("message", ""),
        retryable=bool(data.get("retryable", False)),
        details=data.get("details") or {},
    )


def fill_from_json(data: dict | None) -> Fill | None:
    if not data:
        return None
    return Fill(
        price=_dec(data["price"]),
        size=_dec(data["size"]),
        notional=_dec(data["notional"]),
        fee=_dec(data["fee"]),
        slippage=_dec(data["slippage"]),
        price_source=data["price_source"],
        timestamp=_dt(data["timestamp"]),
        realized_pnl=_dec(data.get("realized_pnl")),
        is_maker=bool(data.get("is_maker", False)),
    )


def result_from_json(data: dict) -> ExecutionResult:
    return ExecutionResult(
        status=ExecStatus(data["status"]),
        venue_order_id=data.get("venue_order_id", ""),
        pair_id=data.get("pair_id", ""),
        trade_index=data.get("trade_index", ""),
        transaction_hash=data.get("transaction_hash", ""),
        fill=fill_from_json(data.get("fill")),
        error=error_from_json(data.get("error")),
        raw_request=data.get("raw_request") or {},
        raw_response=data.get("raw_response") or {},
    )


def market_from_json(data: dict) -> Market:
    return Market(
        symbol=data["symbol"],
        pair_id=data["pair_id"],
        category=data["category"],
        max_leverage=_dec(data["max_leverage"]),
        min_leverage=_dec(data["min_leverage"]),
        taker_fee_rate=_dec(data["taker_fee_rate"]),
        maker_fee_rate=_dec(data["maker_fee_rate"]),
        maintenance_margin_rate=_dec(data["maintenance_margin_rate"]),
        min_collateral=_dec(data["min_collateral"]),
        is_open=bool(data["is_open"]),
    )


def tick_from_json(data: dict) -> PriceTick:
    return PriceTick(
        symbol=data["symbol"],
        price=_dec(data["price"]),
        timestamp=_dt(data["timestamp"]),
        source=data["source"],
        bid=_dec(data.get("bid")),
        ask=_dec(data.get("ask")),
        venue=data.get("venue") or "ostium",
    )


def position_from_json(data: dict) -> VenuePosition:
    return VenuePosition(
        account=data["account"],
        symbol=data["symbol"],
        pair_id=data["pair_id"],
        trade_index=data["trade_index"],
        side=Side(data["side"]),
        collateral=_dec(data["collateral"]),
        leverage=_dec(data["leverage"]),
        size=_dec(data["size"]),
        entry_price=_dec(data["entry_price"]),
        opened_at=_dt(data["opened_at"]),
        stop_loss=_dec(data.get("stop_loss")),
        take_profit=_dec(data.get("take_profit")),
        liquidation_price=_dec(data.get("liquidation_price")),
        funding_paid=_dec(data.get("funding_paid") or "0"),
        fees_paid=_dec(data.get("fees_paid") or "0"),
    )
