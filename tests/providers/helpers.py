"""Small builders for the paper venue tests."""

from __future__ import annotations

import itertools
from decimal import Decimal

from providers.interface import CloseTradeRequest, OpenTradeRequest, Side, VenueOrderKind
from providers.models import PaperMarket

_keys = itertools.count(1)

ACCOUNT = "user:1"


def key(prefix: str = "cmd") -> str:
    return f"{prefix}-{next(_keys)}"


def open_request(
    *,
    symbol: str = "BTC-USD",
    side: Side = Side.LONG,
    collateral: str = "1000",
    leverage: str = "10",
    account: str = ACCOUNT,
    idempotency_key: str | None = None,
    kind: VenueOrderKind = VenueOrderKind.MARKET,
    **extra,
) -> OpenTradeRequest:
    return OpenTradeRequest(
        idempotency_key=idempotency_key or key("open"),
        account=account,
        symbol=symbol,
        side=side,
        collateral=Decimal(collateral),
        leverage=Decimal(leverage),
        kind=kind,
        **extra,
    )


def close_request(
    *,
    trade_index: str,
    fraction: str = "1",
    symbol: str = "BTC-USD",
    account: str = ACCOUNT,
    idempotency_key: str | None = None,
    **extra,
) -> CloseTradeRequest:
    return CloseTradeRequest(
        idempotency_key=idempotency_key or key("close"),
        account=account,
        symbol=symbol,
        pair_id=symbol,
        trade_index=trade_index,
        fraction=Decimal(fraction),
        **extra,
    )


def frictionless(symbol: str = "BTC-USD") -> None:
    """No spread and no size impact on `symbol`, so fills happen exactly at mid."""
    PaperMarket.objects.filter(symbol=symbol).update(spread=Decimal("0"), impact_coefficient=Decimal("0"))
