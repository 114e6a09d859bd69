"""The internal Ostium signer service: the narrow, authenticated boundary that alone holds
signing keys. Served under `/internal/ostium/v1/` by the same ASGI app, or by its own
process (point the trading core at it with OSTIUM_SERVICE_BASE_URL).

    GET  health, ready                      (no auth)
    POST markets/list, accounts/balance, positions/list, positions/open, positions/close,
         positions/update-sl, positions/update-tp, prices/get, orders/status, orders/cancel,
         orders/sync                        (HMAC: x-timestamp + x-signature)

Envelope: {success: true, data, meta: {timestamp, requestId}} or
{success: false, error: {code, message, details?, retryable?}, meta}.
Open/close take `idempotency_key`; a replay returns the stored response (same key, other
body → 422). Payloads that carry anything looking like a private key are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.context import request_id_var
from config.inputs import InputRejected, json_loads
from providers.interface import CloseTradeRequest, ErrorCode, OpenTradeRequest, Side, VenueException, VenueOrderKind
from providers.ostium.wire import signature, to_json

PREFIX = "/internal/ostium/v1/"
_KEYLIKE_NAME = re.compile(r"(private|secret|mnemonic|seed|passphrase|signing_?key)", re.I)
_KEYLIKE_VALUE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class ServiceError(Exception):
    def __init__(self, code: str, message: str, *, status: int = 400, details=None, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.status, self.details, self.retryable = code, message, status, details, retryable


def _meta() -> dict:
    return {"timestamp": datetime.now(UTC).isoformat(), "requestId": request_id_var.get() or ""}


def ok(data, status: int = 200) -> JsonResponse:
    return JsonResponse({"success": True, "data": to_json(data), "meta": _meta()}, status=status)


def fail(error: ServiceError) -> JsonResponse:
    body = {"code": error.code, "message": error.message, "retryable": error.retryable}
    if error.details:
        body["details"] = to_json(error.details)
    return JsonResponse({"success": False, "error": body, "meta": _meta()}, status=error.status)


# --- authentication ---------------------------------------------------------------------------------


def verify(request) -> None:
    """HMAC check: window, constant-time comparison against every active secret, replay."""
    secrets = [s for s in settings.OSTIUM_SERVICE_HMAC_SECRETS if s]
    if not secrets:
        raise ServiceError("UNAUTHENTICATED", "the service has no HMAC secret configured", status=401)
    stamp = request.headers.get("x-timestamp", "")
    given = request.headers.get("x-signature", "").lower()
    if not stamp or not given:
        raise ServiceError("UNAUTHENTICATED", "x-timestamp and x-signature are required", status=401)
    try:
        when = int(stamp)
    except ValueError:
        raise ServiceError("UNAUTHENTICATED", "x-timestamp must be unix seconds or milliseconds", status=401) from None
    seconds = when / 1000 if when > 10**12 else when  # unix seconds or milliseconds
    if abs(time.time() - seconds) > settings.OSTIUM_SERVICE_MAX_SKEW:
        raise ServiceError("UNAUTHENTICATED", "timestamp outside the allowed window", status=401)
    body = request.body or b""
    matched = False
    for secret in secrets:  # compare against all: no early exit that leaks which one matched
        expected = signature(secret, request.method, request.path, stamp, body)
        matched = hmac.compare_digest(expected, given) or matched
    if not matched:
        raise ServiceError("UNAUTHENTICATED", "bad signature", status=401)
    replay_key = f"ostium:svc:sig:{hashlib.sha256(given.encode()).hexdigest()}"
    if not cache.add(replay_key, 1, timeout=2 * settings.OSTIUM_SERVICE_MAX_SKEW + 5):
        raise ServiceError("REPLAYED", "this signature was already used", status=401)


def _payload(request) -> dict:
    try:
        data = json_loads(request.body or b"{}")  # depth and control characters bounded
    except InputRejected as exc:
        raise ServiceError(exc.code, exc.message, details=exc.details) from None
    except ValueError:
        raise ServiceError("INVALID_REQUEST", "body is not JSON") from None
    if not isinstance(data, dict):
        raise ServiceError("INVALID_REQUEST", "body must be a JSON object")
    _refuse_keys(data)
    return data


def _refuse_keys(value, where: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if _KEYLIKE_NAME.search(str(key)):
                raise ServiceError("INVALID_REQUEST", "private keys are never accepted", details={"field": where + key})
            _refuse_keys(item, f"{where}{key}.")
    elif isinstance(value, list):
        for item in value:
            _refuse_keys(item, where)
    elif isinstance(value, str) and _KEYLIKE_VALUE.match(value.strip()):
        raise ServiceError("INVALID_REQUEST", "private keys are never accepted", details={"field": where.rstrip(".")})


def _field(data: dict, name: str, kind=str, *, required: bool = True, default=None):
    if name not in data or data[name] is None:
        if required:
            raise ServiceError("INVALID_REQUEST", f"{name} is required", details={"field": name})
        return default
    value = data[name]
    try:
        if kind is Decimal:
            result = Decimal(str(value))
            if not result.is_finite():
                raise InvalidOperation
            return result
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError
            return value
        return kind(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ServiceError(
            "INVALID_REQUEST", f"{name} is not a valid {kind.__name__}", details={"field": name}
        ) from None


_instance = None


def _venue():
    """The in-process adapter this service fronts (never the HTTP client: no loops)."""
    global _instance
    if _instance is None:
        from providers.ostium.adapter import OstiumVenue

        _instance = OstiumVenue()
    return _instance


def service_reset() -> None:
    global _instance
    _instance = None


def _writes_enabled() -> None:
    if not settings.VENUE_ENABLED.get("ostium", True):
        raise ServiceError(ErrorCode.VENUE_DISABLED, "Ostium writes are disabled (OSTIUM_ENABLED=false)", status=503)


def _idempotent(endpoint: str, data: dict, produce):
    key = _field(data, "idempotency_key")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    from django.db import IntegrityError

    from providers.models import OstiumServiceResponse

    stored = OstiumServiceResponse.objects.filter(endpoint=endpoint, idempotency_key=key).first()
    if stored is not None:
        if stored.request_digest != digest:
            raise ServiceError("IDEMPOTENCY_MISMATCH", "same idempotency_key, different body", status=422)
        return stored.response, True
    result = to_json(produce())  # the adapter dedupes on the key too: never sent twice
    try:
        OstiumServiceResponse.objects.create(
            endpoint=endpoint, idempotency_key=key, request_digest=digest, response=result
        )
    except IntegrityError:  # a concurrent duplicate stored first: answer what it stored
        stored = OstiumServiceResponse.objects.get(endpoint=endpoint, idempotency_key=key)
        return stored.response, True
    return result, False


# --- handlers -------------------------------------------------------------------------------------------


def _markets(data):
    return _venue().get_pairs()


def _balance(data):
    return _venue().get_balances(account=_field(data, "account"))


def _positions(data):
    return _venue().get_positions(account=_field(data, "account"))


def _prices(data):
    symbols = data.get("symbols")
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise ServiceError(
            "INVALID_REQUEST", "symbols must be a non-empty list of strings", details={"field": "symbols"}
        )
    return _venue().get_prices(symbols)


def _open(data):
    _writes_enabled()
    kind = _field(data, "kind", required=False, default="market")
    side = _field(data, "side")
    if side not in ("long", "short") or kind not in ("market", "limit", "stop"):
        raise ServiceError("INVALID_REQUEST", "side must be long|short, kind market|limit|stop")
    request = OpenTradeRequest(
        idempotency_key=_field(data, "idempotency_key"),
        account=_field(data, "account"),
        symbol=_field(data, "symbol").upper(),
        side=Side(side),
        collateral=_field(data, "collateral", Decimal),
        leverage=_field(data, "leverage", Decimal),
        kind=VenueOrderKind(kind),
        limit_price=_field(data, "limit_price", Decimal, required=False),
        stop_price=_field(data, "stop_price", Decimal, required=False),
        stop_loss=_field(data, "stop_loss", Decimal, required=False),
        take_profit=_field(data, "take_profit", Decimal, required=False),
        max_slippage=_field(data, "max_slippage", Decimal, required=False, default=Decimal("0.05")),
        reference_price=_field(data, "reference_price", Decimal, required=False),
        delegated=_field(data, "delegated", bool, required=False, default=False),
    )
    if request.collateral <= 0 or request.leverage <= 0:
        raise ServiceError("INVALID_REQUEST", "collateral and leverage must be positive")
    return _idempotent("open", data, lambda: _venue().open_trade(request))


def _close(data):
    _writes_enabled()
    request = CloseTradeRequest(
        idempotency_key=_field(data, "idempotency_key"),
        account=_field(data, "account"),
        symbol=_field(data, "symbol", required=False, default=""),
        pair_id=_field(data, "pair_id"),
        trade_index=_field(data, "trade_index"),
        fraction=_field(data, "fraction", Decimal, required=False, default=Decimal(1)),
        max_slippage=_field(data, "max_slippage", Decimal, required=False, default=Decimal("0.05")),
        delegated=_field(data, "delegated", bool, required=False, default=False),
    )
    if not (0 < request.fraction <= 1):
        raise ServiceError("INVALID_REQUEST", "fraction must be in (0, 1]", details={"field": "fraction"})
    return _idempotent("close", data, lambda: _venue().close_trade(request))


def _update(which):
    def handler(data):
        _writes_enabled()
        method = _venue().update_sl if which == "sl" else _venue().update_tp
        return method(
            account=_field(data, "account"),
            pair_id=_field(data, "pair_id"),
            trade_index=_field(data, "trade_index"),
            price=_field(data, "price", Decimal, required=False),
            delegated=_field(data, "delegated", bool, required=False, default=False),
        )

    return handler


def _status(data):
    return _venue().get_order_status(idempotency_key=_field(data, "idempotency_key"))


def _cancel(data):
    _writes_enabled()
    return _venue().cancel_order(
        account=_field(data, "account"),
        venue_order_id=_field(data, "venue_order_id"),
        delegated=_field(data, "delegated", bool, required=False, default=False),
    )


def _sync(data):
    """One round of the poller in this (the key-holding) process: see providers.ostium.sync."""
    from providers.ostium.sync import ostium_sync

    return ostium_sync()


HANDLERS = {
    "markets/list": _markets,
    "accounts/balance": _balance,
    "positions/list": _positions,
    "positions/open": _open,
    "positions/close": _close,
    "positions/update-sl": _update("sl"),
    "positions/update-tp": _update("tp"),
    "prices/get": _prices,
    "orders/status": _status,
    "orders/cancel": _cancel,
    "orders/sync": _sync,
}
STATUS_BY_CODE = {
    ErrorCode.RPC_TIMEOUT: 504,
    ErrorCode.RPC_UNAVAILABLE: 503,
    ErrorCode.SUBGRAPH_LAGGING: 503,
    ErrorCode.PRICE_UNAVAILABLE: 503,
    ErrorCode.CIRCUIT_OPEN: 503,
    ErrorCode.VENUE_DISABLED: 503,
    ErrorCode.INVALID_MARKET: 404,
    ErrorCode.POSITION_NOT_FOUND: 404,
    ErrorCode.ORDER_NOT_FOUND: 404,
}


def _dispatch(name):
    handler = HANDLERS[name]

    @csrf_exempt
    def view(request):
        try:
            if request.method != "POST":
                raise ServiceError("METHOD_NOT_ALLOWED", "POST only", status=405)
            verify(request)
            data = _payload(request)
            value = handler(data)
            if isinstance(value, tuple):  # idempotent writes: (data, replayed)
                response = ok(value[0])
                if value[1]:
                    response["Idempotent-Replayed"] = "true"
                return response
            return ok(value)
        except ServiceError as exc:
            return fail(exc)
        except VenueException as exc:
            error = exc.error
            return fail(
                ServiceError(
                    str(error.code),
                    error.message,
                    status=STATUS_BY_CODE.get(error.code, 502),
                    details=error.details,
                    retryable=error.retryable,
                )
            )

    return view


def health(request):
    return ok({"status": "ok"})


def ready(request):
    """SDK boots and the chain id is right; subgraph and price API reachable."""
    from providers.ostium.client import http_latest_prices, http_pairs
    from providers.ostium.config import ostium_check

    checks = {}
    check = ostium_check()
    checks["chain"] = {"ok": check["ok"], "chain_id": check.get("chain_id"), "problems": check["problems"]}
    if check["ok"]:
        venue = _venue()
        for name, fn in (
            ("sdk", lambda: venue._client().sdk),
            ("subgraph", lambda: http_pairs(venue.net)),
            ("prices", lambda: http_latest_prices(venue.net)),
        ):
            try:
                fn()
                checks[name] = {"ok": True}
            except Exception as exc:
                checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ready_ = all(c["ok"] for c in checks.values()) and len(checks) == 4
    if not ready_:
        return fail(ServiceError("NOT_READY", "Ostium service not ready", status=503, details={"checks": checks}))
    return ok({"status": "ready", "checks": checks})


urlpatterns = [path("health", health), path("ready", ready)] + [
    path(name, _dispatch(name), name=f"ostium-{name.replace('/', '-')}") for name in HANDLERS
]
