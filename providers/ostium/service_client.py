"""`VenueAdapter` for Ostium that speaks HTTP to the internal signer service
(`OSTIUM_SERVICE_BASE_URL`) in the service's contract (network and camelCase fields, see
docs/ostium.md), signing every request with the first OSTIUM_SERVICE_HMAC_SECRETS entry. Holds
no key. A write the service refused comes back REJECTED with its code; a 202 (outcome unknown)
or a transport failure on a write is UNKNOWN (the service may have sent it); reads fail as
VenueException with the service's normalised code."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
from django.conf import settings

from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    ExecutionResult,
    Market,
    OpenTradeRequest,
    PriceTick,
    Side,
    VenueError,
    VenueException,
    VenueOrderKind,
    VenuePosition,
)
from providers.ostium import wire

PREFIX = "/internal/ostium/v1/"


class OstiumServiceVenue:
    name = "ostium"

    def __init__(self, base_url: str | None = None, secret: str | None = None):
        self.base_url = (base_url or settings.OSTIUM_SERVICE_BASE_URL).rstrip("/")
        self._secret = secret

    def _sign_secret(self) -> str:
        secret = self._secret or next((s for s in settings.OSTIUM_SERVICE_HMAC_SECRETS if s), "")
        if not secret:
            raise VenueException(VenueError(ErrorCode.INVALID_REQUEST, "OSTIUM_SERVICE_HMAC_SECRETS is empty"))
        return secret

    def _post(self, endpoint: str, payload: dict, *, write: bool = False):
        """The service's `data`; VenueException with its error otherwise."""
        path = PREFIX + endpoint
        body = json.dumps(wire.to_json(payload)).encode()
        stamp = str(time.time_ns() // 1_000_000)  # milliseconds: two calls in one second sign differently
        headers = {
            "content-type": "application/json",
            "x-timestamp": stamp,
            "x-signature": wire.signature(self._sign_secret(), "POST", path, stamp, body),
        }
        try:
            response = httpx.post(
                self.base_url + path, content=body, headers=headers, timeout=settings.OSTIUM_SERVICE_TIMEOUT
            )
        except httpx.TimeoutException as exc:
            code = ErrorCode.UNKNOWN_OUTCOME if write else ErrorCode.RPC_TIMEOUT
            raise VenueException(
                VenueError(code, f"Ostium service: {type(exc).__name__}", retryable=not write)
            ) from None
        except httpx.HTTPError as exc:
            code = ErrorCode.UNKNOWN_OUTCOME if write else ErrorCode.RPC_UNAVAILABLE
            raise VenueException(
                VenueError(code, f"Ostium service: {type(exc).__name__}: {exc}", retryable=not write)
            ) from None
        try:
            envelope = response.json()
        except ValueError:
            raise VenueException(
                VenueError(
                    ErrorCode.RPC_UNAVAILABLE,
                    f"Ostium service answered {response.status_code} without JSON",
                    retryable=True,
                )
            ) from None
        if envelope.get("success"):
            return envelope["data"]
        error = envelope.get("error") or {}
        details = dict(error.get("details") or {})
        try:
            code = ErrorCode(error.get("code"))
        except ValueError:  # the service's own codes (VENUE_DISARMED, SECRET_REFUSED, ...) stay in the details
            code = ErrorCode.INVALID_REQUEST if response.status_code < 500 else ErrorCode.INTERNAL
            details["service_code"] = error.get("code")
        raise VenueException(
            VenueError(code, error.get("message", ""), retryable=bool(error.get("retryable")), details=details)
        )

    def _write(self, endpoint: str, payload: dict) -> ExecutionResult:
        try:
            return wire.result_from_json(self._post(endpoint, payload, write=True))
        except VenueException as exc:
            if exc.error.code == ErrorCode.UNKNOWN_OUTCOME:
                return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error)
            details = exc.error.details
            return ExecutionResult(
                status=ExecStatus.REJECTED,
                error=exc.error,
                pair_id=str(details.get("pairId", "")),
                transaction_hash=str(details.get("txHash", "")),
            )

    # interface: the service's contract (docs/ostium.md), network and camelCase fields
    def _body(self, **fields) -> dict:
        return {"network": str(settings.OSTIUM_NETWORK).lower(), **{k: v for k, v in fields.items() if v is not None}}

    @staticmethod
    def _trader(account: str) -> str | None:
        """The spec's traderAddress: an address; the desk's own account ("user:<id>") is the
        service's own trader, sent as no traderAddress."""
        return None if not account or account.startswith("user:") else account

    def get_pairs(self) -> list[Market]:
        return [wire.market_from_json(m) for m in self._post("markets/list", self._body())]

    def get_price(self, symbol: str) -> PriceTick:
        ticks = self.get_prices([symbol])
        if symbol.upper() not in ticks:
            raise VenueException(VenueError(ErrorCode.PRICE_UNAVAILABLE, f"no Ostium price for {symbol}"))
        return ticks[symbol.upper()]

    def get_prices(self, symbols: list[str]) -> dict[str, PriceTick]:
        data = self._post("prices/get", self._body(symbols=list(symbols)))
        return {k: wire.tick_from_json(v) for k, v in data.items()}

    def get_balances(self, *, account: str) -> dict[str, Decimal]:
        data = self._post("accounts/balance", self._body(address=account))
        return {"USDC": Decimal(data["usdc"]), "ETH": Decimal(data["native"])}

    def get_positions(self, *, account: str) -> list[VenuePosition]:
        return [wire.position_from_json(p) for p in self._post("positions/list", self._body(traderAddress=account))]

    def open_trade(self, request: OpenTradeRequest) -> ExecutionResult:
        kind = VenueOrderKind(request.kind)
        body = self._body(
            idempotencyKey=request.idempotency_key,
            traderAddress=self._trader(request.account),
            symbol=request.symbol,
            direction=Side(request.side) == Side.LONG,
            collateral=request.collateral,
            leverage=request.leverage,
            orderType=kind.value.upper(),
            price=request.limit_price if kind == VenueOrderKind.LIMIT else request.stop_price,
            slPrice=request.stop_loss,
            tpPrice=request.take_profit,
            slippage=request.max_slippage * 100,
            referencePrice=request.reference_price,
            delegation={"enabled": request.delegated},
        )
        return self._write("positions/open", body)

    def close_trade(self, request: CloseTradeRequest) -> ExecutionResult:
        body = self._body(
            idempotencyKey=request.idempotency_key,
            traderAddress=self._trader(request.account),
            symbol=request.symbol or None,
            pairId=request.pair_id,
            tradeIndex=request.trade_index,
            fraction=request.fraction,
            slippage=request.max_slippage * 100,
            delegation={"enabled": request.delegated},
        )
        return self._write("positions/close", body)

    def _update(self, endpoint: str, level: str, *, account, pair_id, trade_index, price, delegated):
        body = self._body(
            traderAddress=self._trader(account),
            pairId=pair_id,
            tradeIndex=trade_index,
            delegation={"enabled": delegated},
        )
        return self._write(endpoint, {**body, level: price})  # null: remove the level

    def update_sl(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        return self._update(
            "positions/update-sl",
            "slPrice",
            account=account,
            pair_id=pair_id,
            trade_index=trade_index,
            price=price,
            delegated=delegated,
        )

    def update_tp(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        return self._update(
            "positions/update-tp",
            "tpPrice",
            account=account,
            pair_id=pair_id,
            trade_index=trade_index,
            price=price,
            delegated=delegated,
        )

    def cancel_order(self, *, account: str, venue_order_id: str, delegated: bool = False) -> ExecutionResult:
        body = self._body(
            traderAddress=self._trader(account), orderId=venue_order_id, delegation={"enabled": delegated}
        )
        return self._write("orders/cancel", body)

    def get_order_status(self, *, idempotency_key: str) -> ExecutionResult:
        return wire.result_from_json(self._post("orders/status", self._body(idempotencyKey=idempotency_key)))

    def sync(self) -> dict[str, int]:
        """One round of the Ostium poller, run by the service (where the keys are)."""
        return {k: int(v) for k, v in self._post("orders/sync", self._body()).items()}


def ostium_venue():
    """The registry's factory for "ostium": the HTTP client when OSTIUM_SERVICE_BASE_URL is
    set, the in-process adapter otherwise."""
    if settings.OSTIUM_SERVICE_BASE_URL:
        return OstiumServiceVenue()
    from providers.ostium.adapter import OstiumVenue

    return OstiumVenue()
