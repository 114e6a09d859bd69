"""`VenueAdapter` for Ostium that speaks HTTP to the internal signer service
(`OSTIUM_SERVICE_BASE_URL`), signing every request with the first OSTIUM_SERVICE_HMAC_SECRETS
entry. Holds no key. A transport failure on a write is an unknown outcome (the service may
have sent it); reads fail as VenueException with the service's normalised code."""

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
    VenueError,
    VenueException,
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
        try:
            code = ErrorCode(error.get("code"))
        except ValueError:
            code = ErrorCode.INVALID_REQUEST if response.status_code < 500 else ErrorCode.INTERNAL
        raise VenueException(
            VenueError(
                code,
                error.get("message", ""),
                retryable=bool(error.get("retryable")),
                details=error.get("details") or {},
            )
        )

    def _write(self, endpoint: str, payload: dict) -> ExecutionResult:
        try:
            return wire.result_from_json(self._post(endpoint, payload, write=True))
        except VenueException as exc:
            status = ExecStatus.UNKNOWN if exc.error.code == ErrorCode.UNKNOWN_OUTCOME else ExecStatus.REJECTED
            return ExecutionResult(status=status, error=exc.error)

    # interface
    def get_pairs(self) -> list[Market]:
        return [wire.market_from_json(m) for m in self._post("markets/list", {})]

    def get_price(self, symbol: str) -> PriceTick:
        ticks = self.get_prices([symbol])
        if symbol.upper() not in ticks:
            raise VenueException(VenueError(ErrorCode.PRICE_UNAVAILABLE, f"no Ostium price for {symbol}"))
        return ticks[symbol.upper()]

    def get_prices(self, symbols: list[str]) -> dict[str, PriceTick]:
        data = self._post("prices/get", {"symbols": list(symbols)})
        return {k: wire.tick_from_json(v) for k, v in data.items()}

    def get_balances(self, *, account: str) -> dict[str, Decimal]:
        return {k: Decimal(v) for k, v in self._post("accounts/balance", {"account": account}).items()}

    def get_positions(self, *, account: str) -> list[VenuePosition]:
        return [wire.position_from_json(p) for p in self._post("positions/list", {"account": account})]

    def open_trade(self, request: OpenTradeRequest) -> ExecutionResult:
        payload = {k: v for k, v in wire.to_json(request).items() if v is not None}
        payload["kind"] = request.kind.value if hasattr(request.kind, "value") else str(request.kind)
        return self._write("positions/open", payload)

    def close_trade(self, request: CloseTradeRequest) -> ExecutionResult:
        return self._write("positions/close", wire.to_json(request))

    def update_sl(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        payload = {
            "account": account,
            "pair_id": pair_id,
            "trade_index": trade_index,
            "price": price,
            "delegated": delegated,
        }
        return self._write("positions/update-sl", payload)

    def update_tp(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        payload = {
            "account": account,
            "pair_id": pair_id,
            "trade_index": trade_index,
            "price": price,
            "delegated": delegated,
        }
        return self._write("positions/update-tp", payload)

    def cancel_order(self, *, account: str, venue_order_id: str, delegated: bool = False) -> ExecutionResult:
        return self._write(
            "orders/cancel", {"account": account, "venue_order_id": venue_order_id, "delegated": delegated}
        )

    def get_order_status(self, *, idempotency_key: str) -> ExecutionResult:
        return wire.result_from_json(self._post("orders/status", {"idempotency_key": idempotency_key}))

    def sync(self) -> dict[str, int]:
        """One round of the Ostium poller, run by the service (where the keys are)."""
        return {k: int(v) for k, v in self._post("orders/sync", {}).items()}


def ostium_venue():
    """The registry's factory for "ostium": the HTTP client when OSTIUM_SERVICE_BASE_URL is
    set, the in-process adapter otherwise."""
    if settings.OSTIUM_SERVICE_BASE_URL:
        return OstiumServiceVenue()
    from providers.ostium.adapter import OstiumVenue

    return OstiumVenue()
