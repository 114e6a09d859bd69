"""Ostium failures → `providers.interface.VenueError` (normalised code + retryable).

Sources: our client's own exceptions (WriteTimeout, WriteReverted, SignerBusy), web3/requests/
aiohttp transport errors, the SDK's re-raised `Exception(reason text)`, decoded custom
errors of the Ostium contracts, and cancel reasons of market orders. Raw exceptions never
cross the adapter: `error_from_exception` turns anything into a VenueError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from providers.interface import ErrorCode, VenueError

C = ErrorCode

# custom errors of the Ostium contracts (and ERC20 reasons) → code
REVERT_CODES: dict[str, ErrorCode] = {
    "PairNotListed": C.INVALID_MARKET,
    "NoTradeFound": C.POSITION_NOT_FOUND,
    "AlreadyMarketClosed": C.POSITION_NOT_FOUND,
    "NoLimitFound": C.ORDER_NOT_FOUND,
    "NoOpenLimitOrder": C.ORDER_NOT_FOUND,
    "UnknownOrder": C.ORDER_NOT_FOUND,
    "NoDelegate": C.DELEGATE_NOT_SET,
    "NotDelegate": C.DELEGATE_NOT_SET,
    "WrongLeverage": C.LEVERAGE_OUT_OF_RANGE,
    "BelowMinLevPos": C.INVALID_REQUEST,
    "AboveMaxAllowedCollateral": C.INVALID_REQUEST,
    "WrongTP": C.INVALID_REQUEST,
    "WrongSL": C.INVALID_REQUEST,
    "WrongParams": C.INVALID_REQUEST,
    "IsPaused": C.MARKET_CLOSED,
    "ExposureLimits": C.INVALID_REQUEST,
    "MaxTradesPerPairReached": C.INVALID_REQUEST,
    "MaxPendingMarketOrdersReached": C.INVALID_REQUEST,
    "TriggerPending": C.INVALID_REQUEST,
}
# cancel reasons of market orders (subgraph names; on-chain enum values)
CANCEL_REASONS = {
    "0": "None",
    "1": "MarketClosed",
    "2": "SlippageExceeded",
    "3": "TpReached",
    "4": "SlReached",
    "5": "MaxTradesReached",
    "6": "NoTrade",
    "7": "NotHit",
    "8": "NoLimit",
    "9": "ClosePending",
    "10": "BadPrice",
    "100": "Timeout",
}
CANCEL_CODES = {
    "MarketClosed": C.MARKET_CLOSED,
    "SlippageExceeded": C.SLIPPAGE_EXCEEDED,
    "NoTrade": C.POSITION_NOT_FOUND,
    "BadPrice": C.PRICE_UNAVAILABLE,
    "Timeout": C.ORDER_TIMEOUT,
    "LimitCancelled": C.VENUE_CANCELLED,
}
CANCEL_MESSAGES = {
    "Timeout": "Ostium's keeper did not execute the order in time; it was timed out at the venue",
    "LimitCancelled": "the resting order was cancelled at the venue",
}
# substrings of SDK / node messages → (code, retryable); first match wins
MESSAGE_CODES: list[tuple[str, ErrorCode, bool]] = [
    ("sufficient allowance", C.INSUFFICIENT_ALLOWANCE, False),
    ("exceeds allowance", C.INSUFFICIENT_ALLOWANCE, False),
    ("insufficient allowance", C.INSUFFICIENT_ALLOWANCE, False),
    ("insufficient funds for gas", C.INSUFFICIENT_GAS, False),
    ("insufficient funds", C.INSUFFICIENT_GAS, False),
    ("gas required exceeds", C.INSUFFICIENT_GAS, False),
    ("out of gas", C.INSUFFICIENT_GAS, False),
    ("exceeds balance", C.INSUFFICIENT_BALANCE, False),
    ("insufficient balance", C.INSUFFICIENT_BALANCE, False),
    ("slippage", C.SLIPPAGE_EXCEEDED, False),
    ("market closed", C.MARKET_CLOSED, False),
    ("market is closed", C.MARKET_CLOSED, False),
    ("no trade found", C.POSITION_NOT_FOUND, False),
    ("trade not found", C.POSITION_NOT_FOUND, False),
    ("no open trades", C.POSITION_NOT_FOUND, False),
    ("not delegate", C.DELEGATE_NOT_SET, False),
    ("no delegate", C.DELEGATE_NOT_SET, False),
    ("no price found", C.PRICE_UNAVAILABLE, True),
    ("error fetching prices", C.PRICE_UNAVAILABLE, True),
    ("failed to fetch prices", C.PRICE_UNAVAILABLE, True),
    ("nonce too low", C.RPC_UNAVAILABLE, True),
    ("replacement transaction underpriced", C.RPC_UNAVAILABLE, True),
    ("timed out", C.RPC_TIMEOUT, True),
    ("timeout", C.RPC_TIMEOUT, True),
    ("connection refused", C.RPC_UNAVAILABLE, True),
    ("connection aborted", C.RPC_UNAVAILABLE, True),
    ("max retries exceeded", C.RPC_UNAVAILABLE, True),
    ("cannot connect", C.RPC_UNAVAILABLE, True),
    ("name or service not known", C.RPC_UNAVAILABLE, True),
    ("502", C.RPC_UNAVAILABLE, True),
    ("503", C.RPC_UNAVAILABLE, True),
    ("chain id mismatch", C.INVALID_REQUEST, False),
]
# codes that mean the infrastructure (not the request) failed: they count for the breaker
INFRA_CODES = {C.RPC_TIMEOUT, C.RPC_UNAVAILABLE, C.SUBGRAPH_LAGGING, C.PRICE_UNAVAILABLE}


def error(code: ErrorCode, message: str, *, retryable: bool | None = None, **details) -> VenueError:
    if retryable is None:
        retryable = code in INFRA_CODES
    return VenueError(code=code, message=message[:500], retryable=retryable, details=details)


def error_from_revert(reason: str, args: dict | None = None, *, tx_hash: str = "") -> VenueError:
    args = dict(args or {})
    code = REVERT_CODES.get(reason)
    if code is None and reason == "Error":
        text = str(args.get("reason", "")).lower()
        code = next((c for needle, c, _ in MESSAGE_CODES if needle in text), None)
    code = code or C.REVERTED
    return VenueError(
        code=code,
        message=f"transaction reverted: {reason or 'unknown reason'}",
        retryable=False,
        details={"reason": reason, "args": args, "transaction_hash": tx_hash, "reverted": True},
    )


def error_from_cancel_reason(reason) -> VenueError:
    name = CANCEL_REASONS.get(str(reason), str(reason))
    code = CANCEL_CODES.get(name, C.REVERTED)
    message = CANCEL_MESSAGES.get(name, f"order cancelled by Ostium: {name}")
    return VenueError(code=code, message=message, details={"cancel_reason": name})


def _transport_class(exc: BaseException) -> ErrorCode | None:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | concurrent.futures.TimeoutError) or names & {
        "ReadTimeout",
        "ConnectTimeout",
        "Timeout",
        "TimeExhausted",
        "ServerTimeoutError",
        "PoolTimeout",
        "TimeoutException",
    }:
        return C.RPC_TIMEOUT
    if isinstance(exc, ConnectionError) or names & {
        "ConnectionError",
        "ClientConnectorError",
        "ConnectError",
        "RemoteProtocolError",
        "HTTPStatusError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "TransportServerError",
        "TransportProtocolError",
    }:
        return C.RPC_UNAVAILABLE
    return None


def error_from_exception(exc: BaseException, *, during: str = "") -> VenueError:
    """Any exception from the client/SDK → a VenueError. Never raises."""
    from providers.ostium.client import SignerBusy, WriteReverted, WriteTimeout

    if isinstance(exc, WriteTimeout):
        return VenueError(
            code=C.UNKNOWN_OUTCOME,
            message=str(exc)[:500],
            retryable=False,
            details={"signer": exc.signer, "nonce": exc.nonce, "from_block": exc.from_block, "during": during},
        )
    if isinstance(exc, WriteReverted):
        return error_from_revert(exc.reason, exc.reason_args, tx_hash=exc.tx_hash)
    if isinstance(exc, SignerBusy):
        return error(C.RPC_UNAVAILABLE, str(exc), retryable=True, during=during)
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        from providers.ostium.client import decode_revert_data

        reason, args = decode_revert_data(data)
        if reason:
            return error_from_revert(reason, args)
    code = _transport_class(exc)
    if code is not None and during == "prices":
        return error(C.PRICE_UNAVAILABLE, f"price API: {type(exc).__name__}: {exc}", during=during)
    if code is not None:
        return error(code, f"{type(exc).__name__}: {exc}", during=during)
    text = str(exc).lower()
    for needle, mapped, retryable in MESSAGE_CODES:
        if needle in text:
            return error(mapped, f"{type(exc).__name__}: {exc}", retryable=retryable, during=during)
    for name, mapped in REVERT_CODES.items():
        if name.lower() in text:
            return error(mapped, f"{type(exc).__name__}: {exc}", retryable=False, during=during)
    return error(C.INTERNAL, f"{type(exc).__name__}: {exc}", retryable=False, during=during)
