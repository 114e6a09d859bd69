"""The paper venue as a `VenueAdapter`: a thin door over `providers.paper.engine`."""

from __future__ import annotations

from decimal import Decimal

from providers.interface import (
    CloseTradeRequest,
    ExecutionResult,
    Market,
    OpenTradeRequest,
    VenuePosition,
)
from providers.paper import engine


class PaperVenue:
    name = "paper"

    def get_pairs(self) -> list[Market]:
        return engine.paper_markets()

    def open_trade(self, request: OpenTradeRequest) -> ExecutionResult:
        return engine.paper_trade_open(request=request)

    def close_trade(self, request: CloseTradeRequest) -> ExecutionResult:
        return engine.paper_trade_close(request=request)

    def update_sl(
        self, *, account: str, pair_id: str, trade_index: str, price: Decimal | None, delegated: bool = False
    ) -> ExecutionResult:
        return engine.paper_position_set_level(
            account=account, pair_id=pair_id, trade_index=trade_index, field="stop_loss", price=price
        )

    def update_tp(
        self, *, account: str, pair_id: str, trade_index: str, price: Decimal | None, delegated: bool = False
    ) -> ExecutionResult:
        return engine.paper_position_set_level(
            account=account, pair_id=pair_id, trade_index=trade_index, field="take_profit", price=price
        )

    def cancel_order(self, *, account: str, venue_order_id: str, delegated: bool = False) -> ExecutionResult:
        return engine.paper_order_cancel(account=account, venue_order_id=venue_order_id)

    def get_positions(self, *, account: str) -> list[VenuePosition]:
        return engine.paper_positions(account=account)

    def get_order_status(self, *, idempotency_key: str) -> ExecutionResult:
        return engine.paper_order_status(idempotency_key=idempotency_key)
