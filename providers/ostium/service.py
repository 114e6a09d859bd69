"""The internal Ostium signer service: the narrow, authenticated boundary that alone holds
signing keys. Served under `/internal/ostium/v1/` by the same ASGI app, or by its own
process (point the trading core at it with OSTIUM_SERVICE_BASE_URL). It speaks the contract of
the Ostium service specification (docs/ostium.md, "The signer service contract"):

    GET  health, ready                      (no auth)
    POST markets/list, accounts/balance, positions/list, positions/open, positions/close,
         positions/update-sl, positions/update-tp, prices/get       (the specification's)
         orders/status, orders/cancel, orders/sync                  (ours)
                                            (HMAC: x-timestamp + x-signature)

Every body carries `network` (testnet | mainnet | localnet): a network the service is not
configured for is refused (NETWORK_NOT_CONFIGURED). Fields are the specification's camelCase
(`traderAddress`, `pairId`, `tradeIndex`, `slPrice`, `tpPrice`, `idempotencyKey`, `direction`,
`orderType`, `price`, `slippage`, `delegation: {enabled, delegateAddress?}`, ...); the earlier
snake_case names are accepted as aliases.

Envelope: {success: true, data, meta: {timestamp, requestId}} or
{success: false, error: {code, message, details?, retryable?}, meta}. A write the venue refused
is a failure (its code, the matching HTTP status); a write whose outcome is unknown answers 202
with `data.status: "unknown"` and the keys to ask `orders/status` with. Open/close are
idempotent on `idempotencyKey` (body, or an `Idempotency-Key` header the signature covers): a
replay returns the stored answer (same key, other body → 422). Every write checks the kill
switch, then `signer:ostium` and the trading states at the moment it would be sent. Payloads
carrying anything like a private key are refused (SECRET_REFUSED).
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
from config.secret_guard import REFUSED_CODE, secret_found
from configuration.runtime import provider_enabled
from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    OpenTradeRequest,
    Side,
    VenueException,
    VenueOrderKind,
)
from providers.ostium.wire import signature, signed_message, to_json

PREFIX = "/internal/ostium/v1/"
SIGNER = "signer:ostium"


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


def invalid(name: str, message: str) -> ServiceError:
    return ServiceError("INVALID_REQUEST", f"{name}: {message}", details={name: [message]})


# --- authentication ---------------------------------------------------------------------------------


def verify(request) -> None:
    """HMAC check: window, constant-time comparison against every active secret, replay. The
    replay guard keys on the whole signed request (method, path, time, body, idempotency key):
    two requests alike but for their idempotency keys are two requests."""
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
    key = request.headers.get("idempotency-key", "")
    matched = False
    for secret in secrets:  # compare against all: no early exit that leaks which one matched
        expected = signature(secret, request.method, request.path, stamp, body, key)
        matched = hmac.compare_digest(expected, given) or matched
    if not matched:
        raise ServiceError("UNAUTHENTICATED", "bad signature", status=401)
    signed = hashlib.sha256(signed_message(request.method, request.path, stamp, body, key)).hexdigest()
    if not cache.add(f"ostium:svc:request:{signed}", 1, timeout=2 * settings.OSTIUM_SERVICE_MAX_SKEW + 5):
        raise ServiceError("REPLAYED", "this signed request was already received", status=401)


def _payload(request) -> dict:
    try:
        data = json_loads(request.body or b"{}")  # depth and control characters bounded
    except InputRejected as exc:
        raise ServiceError(exc.code, exc.message, details=exc.details) from None
    except ValueError:
        raise ServiceError("INVALID_REQUEST", "body is not JSON") from None
    if not isinstance(data, dict):
        raise ServiceError("INVALID_REQUEST", "body must be a JSON object")
    found = secret_found(data)
    if found:
        where, message = found
        raise ServiceError(REFUSED_CODE, message, details={where: [message]})
    header_key = request.headers.get("idempotency-key", "")
    if header_key:
        body_key = data.get("idempotencyKey", data.get("idempotency_key"))
        if body_key not in (None, header_key):
            raise invalid("idempotencyKey", "differs from the Idempotency-Key header")
        data = {**data, "idempotencyKey": header_key}
    _network(data)
    return data


def _network(data: dict) -> None:
    """The request's network must be the one this service is configured for."""
    given = data.get("network")
    if not isinstance(given, str) or not given.strip():
        raise invalid("network", "required: testnet | mainnet | localnet")
    configured = str(settings.OSTIUM_NETWORK).strip().lower()
    if given.strip().lower() != configured:
        raise ServiceError(
            "NETWORK_NOT_CONFIGURED",
            f"this service is configured for {configured}, not {given.strip()!r}",
            details={"network": [f"not configured here (this service serves {configured})"]},
        )


# --- fields ---------------------------------------------------------------------------------------------


def _present(data: dict, names: tuple[str, ...]):
    """(name, value) of the first of `names` (the specification's, then its aliases) in `data`."""
    for name in names:
        if name in data:
            return name, data[name]
    return names[0], None


def _field(data: dict, *names: str, kind=str, required: bool = True, default=None, nullable: bool = False):
    """The value of the first of `names` present. `nullable`: the field must be present but may
    be null (null then means "remove")."""
    name, value = _present(data, names)
    if value is None:
        if nullable and any(n in data for n in names):
            return None
        if required:
            raise invalid(names[0], "required")
        return default
    try:
        if kind is Decimal:
            if isinstance(value, bool):
                raise ValueError
            result = Decimal(str(value))
            if not result.is_finite():
                raise InvalidOperation
            return result
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind is str and not isinstance(value, str | int):
            raise ValueError
        return kind(value)
    except (InvalidOperation, ValueError, TypeError):
        raise invalid(name, f"not a valid {kind.__name__}") from None


def _delegation(data: dict) -> tuple[bool, str]:
    """(delegated, delegateAddress) from `delegation: {enabled, delegateAddress?}` (alias `delegated`)."""
    context = data.get("delegation")
    if context is None:
        return _field(data, "delegated", kind=bool, required=False, default=False), ""
    if not isinstance(context, dict):
        raise invalid("delegation", "must be an object {enabled, delegateAddress?}")
    enabled = _field(context, "enabled", kind=bool, required=False, default=False)
    return enabled, _field(context, "delegateAddress", required=False, default="")


def _trader(data: dict, *names: str, required: bool = False) -> str:
    return _field(data, *(names or ("traderAddress", "account")), required=required, default="")


def _symbol(data: dict) -> str:
    """The market: `pairId` (the specification's) or `symbol`; both given must agree."""
    pair_id = _field(data, "pairId", "pair_id", required=False)
    symbol = _field(data, "symbol", required=False, default="").strip().upper()
    if pair_id is None:
        if not symbol:
            raise invalid("pairId", "required (or symbol)")
        return symbol
    found = _venue().symbol_of(str(pair_id))
    if symbol and found and symbol != found:
        raise invalid("pairId", f"is {found}, not {symbol}")
    if not found:
        raise ServiceError(ErrorCode.INVALID_MARKET, f"no Ostium market with pairId {pair_id}", status=404)
    return found


def _slippage(data: dict) -> Decimal:
    """Maximum slippage as a fraction: `slippage` in percent (the SDK's unit), or `max_slippage`."""
    percent = _field(data, "slippage", kind=Decimal, required=False)
    if percent is not None:
        fraction = percent / 100
    else:
        fraction = _field(data, "max_slippage", kind=Decimal, required=False, default=Decimal("0.05"))
    if not (0 < fraction < 1):
        raise invalid("slippage", "must be a percentage above 0 and below 100")
    return fraction


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


# --- the gates at side-effect time -------------------------------------------------------------------


def _writes_enabled() -> None:
    if not provider_enabled("ostium"):
        raise ServiceError(ErrorCode.VENUE_DISABLED, "Ostium writes are disabled (OSTIUM_ENABLED=false)", status=503)


def _armed(*, asset: str = "", reduces_exposure: bool = True, trading_states: bool = True) -> None:
    """`signer:ostium` must be armed (and the trading states allow it) now, as the executor checks
    its own component; opens and closes apply the trading states, level updates and cancels
    only the arm state (as the executor's commands do)."""
    from providers.ostium.write_gate import write_refusal

    refusal = write_refusal(SIGNER, asset=asset, reduces_exposure=reduces_exposure, trading_states=trading_states)
    if refusal is not None:
        code, message = refusal
        raise ServiceError(code, message, status=409, details={"component": SIGNER})


def _delegate_matches(trader: str, delegated: bool, delegate_address: str) -> None:
    """A delegateAddress given must be the delegate this service acts through for `trader`."""
    if not (delegated and delegate_address and trader):
        return
    acting = _venue().delegate_address(trader)
    if acting.lower() != delegate_address.lower():
        raise ServiceError(
            ErrorCode.DELEGATE_NOT_SET,
            f"this service acts for {trader} through delegate {acting}, not {delegate_address}",
            status=422,
            details={"delegateAddress": [f"this service's delegate is {acting}"]},
        )


def _idempotent(endpoint: str, data: dict, produce):
    key = _field(data, "idempotencyKey", "idempotency_key")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    from django.db import IntegrityError

    from providers.models import OstiumServiceResponse

    stored = OstiumServiceResponse.objects.filter(endpoint=endpoint, idempotency_key=key).first()
    if stored is not None:
        if stored.request_digest != digest:
            raise ServiceError("IDEMPOTENCY_MISMATCH", "same idempotencyKey, different body", status=422)
        return Written(stored.response, replayed=True)
    result = to_json(produce())  # the adapter dedupes on the key too: never sent twice
    try:
        OstiumServiceResponse.objects.create(
            endpoint=endpoint, idempotency_key=key, request_digest=digest, response=result
        )
    except IntegrityError:  # a concurrent duplicate stored first: answer what it stored
        stored = OstiumServiceResponse.objects.get(endpoint=endpoint, idempotency_key=key)
        return Written(stored.response, replayed=True)
    return Written(result)


def _send_once(endpoint: str, data: dict, request, delegate_address: str, *, reduces_exposure: bool, call):
    """An open or close behind its idempotency key: the gates when it would be sent (not on a
    replay), then the venue."""

    def send():
        _armed(asset=request.symbol, reduces_exposure=reduces_exposure)
        _delegate_matches(request.account, request.delegated, delegate_address)
        return call(request)

    return _idempotent(endpoint, data, send)


def signer_activity():
    """`signer:ostium`'s last write: the newest open or close this service answered (the panel's
    "last activity"; a replay is not a new one)."""
    from django.db.models import Max

    from providers.models import OstiumServiceResponse

    return OstiumServiceResponse.objects.aggregate(at=Max("created_at"))["at"], "open or close answered"


class Written:
    """The outcome of a write (an ExecutionResult as JSON): answered as success, failure or unknown."""

    def __init__(self, result: dict, *, replayed: bool = False):
        self.result, self.replayed = result, replayed


# --- handlers -------------------------------------------------------------------------------------------


def _markets(data):
    out = []
    for market in _venue().get_pairs():
        out.append(
            {
                "symbol": market.symbol,
                "pairId": market.pair_id,
                "status": "open" if market.is_open else "closed",
                **to_json(market),
            }
        )
    return out


def _balance(data):
    address = _field(data, "address", "account", "traderAddress")
    balances = _venue().get_balances(account=address)
    return {"address": address, "usdc": balances["USDC"], "native": balances["ETH"]}


def _positions(data):
    out = []
    for position in _venue().get_positions(account=_field(data, "traderAddress", "account", "address")):
        out.append(
            {
                "traderAddress": position.account,
                "pairId": position.pair_id,
                "tradeIndex": position.trade_index,
                "direction": position.side == Side.LONG,
                **to_json(position),
            }
        )
    return out


def _prices(data):
    if "symbols" in data:  # ours: several at once, {symbol: tick}
        symbols = data["symbols"]
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            raise invalid("symbols", "must be a non-empty list of strings")
        return _venue().get_prices(symbols)
    base = _field(data, "base").strip().upper()
    quote = _field(data, "quote", required=False, default="USD").strip().upper()
    tick, is_open = _venue().quote(f"{base}-{quote}")
    return {
        "symbol": tick.symbol,
        "base": base,
        "quote": quote,
        "price": tick.price,
        "bid": tick.bid,
        "ask": tick.ask,
        "isMarketOpen": is_open,
        "timestamp": tick.timestamp,
        "source": tick.source,
        "venue": tick.venue,
    }


_KINDS = {"market": VenueOrderKind.MARKET, "limit": VenueOrderKind.LIMIT, "stop": VenueOrderKind.STOP}


def _direction(data) -> Side:
    name, value = _present(data, ("direction", "side"))
    if isinstance(value, bool):
        return Side.LONG if value else Side.SHORT
    if value in ("long", "short"):
        return Side(value)
    if value is None:
        raise invalid("direction", "required: true (long) or false (short)")
    raise invalid(name, "must be true (long) or false (short)")


def _open(data):
    _writes_enabled()
    kind_name = str(_field(data, "orderType", "kind", required=False, default="market")).lower()
    if kind_name not in _KINDS:
        raise invalid("orderType", "must be MARKET, LIMIT or STOP")
    kind = _KINDS[kind_name]
    price = _field(data, "price", "limit_price", "stop_price", kind=Decimal, required=kind != VenueOrderKind.MARKET)
    delegated, delegate_address = _delegation(data)
    request = OpenTradeRequest(
        idempotency_key=_field(data, "idempotencyKey", "idempotency_key"),
        account=_trader(data),
        symbol=_symbol(data),
        side=_direction(data),
        collateral=_field(data, "collateral", kind=Decimal),
        leverage=_field(data, "leverage", kind=Decimal),
        kind=kind,
        limit_price=price if kind == VenueOrderKind.LIMIT else None,
        stop_price=price if kind == VenueOrderKind.STOP else None,
        stop_loss=_field(data, "slPrice", "stop_loss", kind=Decimal, required=False),
        take_profit=_field(data, "tpPrice", "take_profit", kind=Decimal, required=False),
        max_slippage=_slippage(data),
        reference_price=_field(data, "referencePrice", "reference_price", kind=Decimal, required=False),
        delegated=delegated,
    )
    if request.collateral <= 0 or request.leverage <= 0:
        raise invalid("collateral", "collateral and leverage must be positive")
    if price is not None and price <= 0:
        raise invalid("price", "must be positive")
    return _send_once("open", data, request, delegate_address, reduces_exposure=False, call=_venue().open_trade)


def _close(data):
    _writes_enabled()
    delegated, delegate_address = _delegation(data)
    symbol = _symbol(data) if ("pairId" in data or "pair_id" in data or "symbol" in data) else ""
    request = CloseTradeRequest(
        idempotency_key=_field(data, "idempotencyKey", "idempotency_key"),
        account=_trader(data),
        symbol=symbol,
        pair_id=str(_field(data, "pairId", "pair_id")),
        trade_index=str(_field(data, "tradeIndex", "trade_index")),
        fraction=_field(data, "fraction", kind=Decimal, required=False, default=Decimal(1)),
        max_slippage=_slippage(data),
        delegated=delegated,
    )
    if not (0 < request.fraction <= 1):
        raise invalid("fraction", "must be in (0, 1]")
    return _send_once("close", data, request, delegate_address, reduces_exposure=True, call=_venue().close_trade)


def _update(which):
    level_names = ("slPrice", "price") if which == "sl" else ("tpPrice", "price")

    def handler(data):
        _writes_enabled()
        delegated, delegate_address = _delegation(data)
        account = _trader(data)
        pair_id = str(_field(data, "pairId", "pair_id"))
        trade_index = str(_field(data, "tradeIndex", "trade_index"))
        level = _field(data, *level_names, kind=Decimal, nullable=True)  # null removes it
        _armed(trading_states=False)
        _delegate_matches(account, delegated, delegate_address)
        method = _venue().update_sl if which == "sl" else _venue().update_tp
        return Written(
            to_json(method(account=account, pair_id=pair_id, trade_index=trade_index, price=level, delegated=delegated))
        )

    return handler


def _status(data):
    return _venue().get_order_status(idempotency_key=_field(data, "idempotencyKey", "idempotency_key"))


def _cancel(data):
    _writes_enabled()
    delegated, _ = _delegation(data)
    account = _trader(data)
    order_id = _field(data, "orderId", "venue_order_id")
    _armed(trading_states=False)
    return Written(to_json(_venue().cancel_order(account=account, venue_order_id=order_id, delegated=delegated)))


def _sync(data):
    """One round of the poller in this (the key-holding) process: see providers.ostium.sync.
    Reads always; the market-order timeouts it sends only while `signer:ostium` is armed."""
    from providers.ostium.sync import ostium_sync
    from providers.ostium.write_gate import write_refusal

    writes = provider_enabled("ostium") and write_refusal(SIGNER, trading_states=False) is None
    return ostium_sync(timeouts=writes)


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
# HTTP status of each failure code (anything else: 422 for a refused write, 502 for a failed read)
STATUS_BY_CODE = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.LEVERAGE_OUT_OF_RANGE: 400,
    ErrorCode.INVALID_MARKET: 404,
    ErrorCode.POSITION_NOT_FOUND: 404,
    ErrorCode.ORDER_NOT_FOUND: 404,
    ErrorCode.MARKET_CLOSED: 409,
    ErrorCode.ORDER_TIMEOUT: 409,
    ErrorCode.INSUFFICIENT_BALANCE: 422,
    ErrorCode.INSUFFICIENT_ALLOWANCE: 422,
    ErrorCode.INSUFFICIENT_GAS: 422,
    ErrorCode.DELEGATE_NOT_SET: 422,
    ErrorCode.SLIPPAGE_EXCEEDED: 422,
    ErrorCode.REVERTED: 422,
    ErrorCode.INTERNAL: 500,
    ErrorCode.RPC_TIMEOUT: 504,
    ErrorCode.RPC_UNAVAILABLE: 503,
    ErrorCode.SUBGRAPH_LAGGING: 503,
    ErrorCode.PRICE_UNAVAILABLE: 503,
    ErrorCode.PRICE_STALE: 503,
    ErrorCode.CIRCUIT_OPEN: 503,
    ErrorCode.VENUE_DISABLED: 503,
    ErrorCode.NETWORK_NOT_CONFIGURED: 503,
}


def _answer(written: Written) -> JsonResponse:
    """A write's answer: a refusal is a failure with its code and status; an unknown outcome is
    202 with the keys to ask orders/status with; anything else (pending, filled, cancelled) 200."""
    result = written.result
    status = result.get("status")
    if status == ExecStatus.REJECTED:
        error = result.get("error") or {}
        code = error.get("code") or ErrorCode.REVERTED
        details = dict(error.get("details") or {})
        for name, key in (("pairId", "pair_id"), ("txHash", "transaction_hash")):
            if result.get(key):
                details.setdefault(name, result[key])
        response = fail(
            ServiceError(
                code,
                error.get("message") or "refused by the venue",
                status=STATUS_BY_CODE.get(code, 422),
                details=details,
                retryable=bool(error.get("retryable")),
            )
        )
    else:
        data = {
            **result,
            "orderId": result.get("venue_order_id", ""),
            "txHash": result.get("transaction_hash", ""),
            "pairId": result.get("pair_id", ""),
            "tradeIndex": result.get("trade_index", ""),
        }
        response = ok(data, status=202 if status == ExecStatus.UNKNOWN else 200)
    if written.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _dispatch(name):
    handler = HANDLERS[name]

    @csrf_exempt
    def view(request):
        try:
            if request.method != "POST":
                raise ServiceError("METHOD_NOT_ALLOWED", "POST only", status=405)
            verify(request)
            value = handler(_payload(request))
            return _answer(value) if isinstance(value, Written) else ok(value)
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
    """The network's config is current and its RPC is that network (chain id, and contract code
    at the Trading address: a stale localnet file or a localnet named testnet is not ready); the
    SDK boots; the subgraph and the price API answer."""
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.client import http_latest_prices, http_pairs
    from providers.ostium.config import ostium_check

    checks = {}
    check = ostium_check()
    checks["chain"] = {"ok": check["ok"], "chain_id": check.get("chain_id"), "problems": check["problems"]}
    if check["ok"]:
        venue = OstiumVenue()  # the network as configured now, not as first read by this process
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
