"""JSON-RPC to NEAR Intents: the NEAR RPC (`query` / `call_function` on the verifier), the
deposit/withdrawal bridge service and the solver relay. The only module here that speaks HTTP.

Every call has a timeout and goes through a circuit breaker per network and endpoint; reads retry
(bounded, jittered); `publish_intent` never retries: a timeout or a lost answer is
UNKNOWN_OUTCOME, and `get_status(intent_hash)` tells later what happened. Failures cross as
`VenueException(VenueError)` with a normalised code, never a raw httpx error."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from dataclasses import dataclass

import httpx
from django.conf import settings

from config.inputs import wire_json
from providers import resilience
from providers.interface import ErrorCode, VenueError, VenueException
from providers.near_intents.config import NearIntentsNetwork, network_config

PREFIX = "near_intents"
_ids = itertools.count(1)


@dataclass(frozen=True)
class BridgeToken:
    token_id: str  # the verifier's id, e.g. nep141:arb-0x...omft.near
    symbol: str
    decimals: int
    chain: str  # e.g. eth:42161 (from defuse_asset_identifier)
    min_deposit: str = "0"
    min_withdrawal: str = "0"
    withdrawal_fee: str = "0"


@dataclass(frozen=True)
class BridgeDeposit:
    tx_hash: str
    chain: str
    token_id: str
    decimals: int
    amount_raw: int
    account_id: str
    address: str
    status: str  # PENDING | CREDITED | COMPLETED | FAILED


@dataclass(frozen=True)
class BridgeDepositAddress:
    address: str
    chain: str
    memo: str = ""


@dataclass(frozen=True)
class BridgeWithdrawal:
    status: str  # PENDING | COMPLETED (| NOT_FOUND when the service has no record)
    tx_hash: str
    transfer_tx_hash: str


@dataclass(frozen=True)
class PublishResult:
    status: str  # OK | FAILED
    intent_hash: str
    reason: str = ""


@dataclass(frozen=True)
class IntentStatus:
    status: str  # PENDING | TX_BROADCASTED | SETTLED | NOT_FOUND_OR_NOT_VALID
    intent_hash: str
    tx_hash: str = ""


def _error(code: ErrorCode, message: str, *, retryable: bool = False, **details) -> VenueException:
    return VenueException(VenueError(code, message, retryable=retryable, details=details))


class JsonRpcEndpoint:
    """One JSON-RPC endpoint (`kind`: rpc, bridge or relay) of a network."""

    def __init__(self, net: NearIntentsNetwork, kind: str, url: str, headers: dict | None = None):
        self.net, self.kind, self.url = net, kind, url
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._http = httpx.Client(timeout=settings.NEAR_INTENTS_TIMEOUT)
        self.breaker = f"{net.name}:{kind}"

    def close(self) -> None:
        self._http.close()

    def _post(self, method: str, params, *, write: bool):
        label = f"NEAR Intents {self.kind} {method}"
        if not resilience.breaker_allow(PREFIX, self.breaker, cooldown=settings.NEAR_INTENTS_BREAKER_COOLDOWN):
            raise _error(ErrorCode.CIRCUIT_OPEN, f"{label}: circuit open", retryable=True, endpoint=self.kind)
        body = {"jsonrpc": "2.0", "id": str(next(_ids)), "method": method, "params": params}
        try:
            response = self._http.post(self.url, content=json.dumps(body), headers=self._headers)
        except httpx.TimeoutException:
            self._record(ok=False)
            code = ErrorCode.UNKNOWN_OUTCOME if write else ErrorCode.RPC_TIMEOUT
            raise _error(code, f"{label}: timed out", retryable=not write, endpoint=self.kind) from None
        except httpx.HTTPError as exc:
            self._record(ok=False)
            # a connection refused before anything was sent cannot have published
            sent = write and not isinstance(exc, httpx.ConnectError)
            code = ErrorCode.UNKNOWN_OUTCOME if sent else ErrorCode.RPC_UNAVAILABLE
            raise _error(code, f"{label}: {type(exc).__name__}", retryable=not sent, endpoint=self.kind) from None
        if response.status_code >= 500 or response.status_code == 429:
            self._record(ok=False)
            code = ErrorCode.UNKNOWN_OUTCOME if write and response.status_code != 503 else ErrorCode.RPC_UNAVAILABLE
            raise _error(code, f"{label}: HTTP {response.status_code}", retryable=True, endpoint=self.kind)
        try:
            data = wire_json(response.content)
        except ValueError:
            self._record(ok=False)
            raise _error(ErrorCode.RPC_UNAVAILABLE, f"{label}: answer is not JSON", retryable=True) from None
        self._record(ok=True)
        if not isinstance(data, dict):
            raise _error(ErrorCode.INTERNAL, f"{label}: answer is not a JSON-RPC object")
        if data.get("error") is not None:
            error = data["error"]
            message = error if isinstance(error, str) else error.get("message") or json.dumps(error)[:300]
            cause = error.get("cause", {}).get("name", "") if isinstance(error, dict) else ""
            if isinstance(error, dict) and isinstance(error.get("data"), str):
                message = f"{message}: {error['data']}"
            raise _error(ErrorCode.INVALID_REQUEST, f"{label}: {message}"[:500], endpoint=self.kind, cause=cause)
        return data.get("result")

    def _record(self, *, ok: bool) -> None:
        resilience.breaker_record(PREFIX, self.breaker, ok=ok, threshold=settings.NEAR_INTENTS_BREAKER_THRESHOLD)

    def read(self, method: str, params):
        def retryable(exc):
            return isinstance(exc, VenueException) and exc.error.retryable and exc.error.code != ErrorCode.CIRCUIT_OPEN

        return resilience.retry_read(
            lambda: self._post(method, params, write=False),
            is_retryable=retryable,
            attempts=settings.NEAR_INTENTS_READ_RETRIES,
        )

    def write(self, method: str, params):
        return self._post(method, params, write=True)


class NearIntentsClient:
    """The three endpoints of one network."""

    def __init__(self, net: NearIntentsNetwork):
        self.net = net
        relay_headers = {}
        if settings.NEAR_INTENTS_RELAY_API_KEY:
            relay_headers["authorization"] = f"Bearer {settings.NEAR_INTENTS_RELAY_API_KEY}"
        self.rpc = JsonRpcEndpoint(net, "rpc", net.rpc_url)
        self.bridge = JsonRpcEndpoint(net, "bridge", net.bridge_url)
        self.relay = JsonRpcEndpoint(net, "relay", net.relay_url, relay_headers)

    def close(self) -> None:
        for endpoint in (self.rpc, self.bridge, self.relay):
            endpoint.close()

    # --- NEAR RPC: view methods of the verifier --------------------------------------------------
    def view(self, method: str, args: dict, *, contract: str | None = None):
        """A view call (`query` / `call_function`, finality final); the decoded JSON it returns
        and the block height it was read at."""
        result = self.rpc.read(
            "query",
            {
                "request_type": "call_function",
                "finality": "final",
                "account_id": contract or self.net.verifier,
                "method_name": method,
                "args_base64": base64.b64encode(json.dumps(args).encode()).decode(),
            },
        )
        if not isinstance(result, dict):
            raise _error(ErrorCode.INTERNAL, f"NEAR RPC {method}: no result")
        if result.get("error"):  # older nodes report a contract failure inside the result
            raise _error(ErrorCode.INVALID_REQUEST, f"NEAR RPC {method}: {result['error']}"[:500], endpoint="rpc")
        try:
            return wire_json(bytes(result["result"]).decode()), int(result.get("block_height") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise _error(ErrorCode.INTERNAL, f"NEAR RPC {method}: undecodable result ({exc})") from None

    def mt_batch_balance_of(self, account_id: str, token_ids: list[str]) -> tuple[list[int], int]:
        """Balances (smallest units) of `account_id` for each token id, in order; and the block."""
        values, block = self.view("mt_batch_balance_of", {"account_id": account_id, "token_ids": token_ids})
        if not isinstance(values, list) or len(values) != len(token_ids):
            raise _error(ErrorCode.INTERNAL, "mt_batch_balance_of: one balance per token id expected")
        return [int(v) for v in values], block

    def current_salt(self) -> bytes:
        value, _ = self.view("current_salt", {})
        try:
            salt = bytes.fromhex(value)
        except (TypeError, ValueError):
            salt = b""
        if len(salt) != 4:
            raise _error(ErrorCode.INTERNAL, f"current_salt: {value!r} is not 4 hex bytes")
        return salt

    def has_public_key(self, account_id: str, public_key: str) -> bool:
        value, _ = self.view("has_public_key", {"account_id": account_id, "public_key": public_key})
        return bool(value)

    # --- the deposit/withdrawal bridge service -----------------------------------------------------
    def supported_tokens(self, chains: list[str] | None = None) -> list[BridgeToken]:
        result = self.bridge.read("supported_tokens", [{"chains": chains} if chains else {}])
        out = []
        for t in (result or {}).get("tokens", []):
            token_id = t.get("intents_token_id") or f"nep141:{t.get('near_token_id', '')}"
            asset = str(t.get("defuse_asset_identifier", ""))
            out.append(
                BridgeToken(
                    token_id=token_id,
                    symbol=str(t.get("asset_name", "")),
                    decimals=int(t.get("decimals", 0)),
                    chain=":".join(asset.split(":")[:2]),
                    min_deposit=str(t.get("min_deposit_amount", "0")),
                    min_withdrawal=str(t.get("min_withdrawal_amount", "0")),
                    withdrawal_fee=str(t.get("withdrawal_fee", "0")),
                )
            )
        return out

    def deposit_address(self, account_id: str, chain: str) -> BridgeDepositAddress:
        result = self.bridge.read("deposit_address", [{"account_id": account_id, "chain": chain}])
        if not isinstance(result, dict) or not result.get("address"):
            raise _error(ErrorCode.INTERNAL, "deposit_address: no address in the answer")
        return BridgeDepositAddress(
            address=result["address"], chain=result.get("chain", chain), memo=result.get("memo") or ""
        )

    def recent_deposits(self, account_id: str, chain: str | None = None) -> list[BridgeDeposit]:
        params = {"account_id": account_id}
        if chain:
            params["chain"] = chain
        result = self.bridge.read("recent_deposits", [params])
        out = []
        for d in (result or {}).get("deposits", []):
            out.append(
                BridgeDeposit(
                    tx_hash=str(d["tx_hash"]),
                    chain=str(d.get("chain", "")),
                    token_id=f"nep141:{d.get('near_token_id', '')}",
                    decimals=int(d.get("decimals", 0)),
                    amount_raw=int(d.get("amount", 0)),
                    account_id=str(d.get("account_id", "")),
                    address=str(d.get("address", "")),
                    status=str(d.get("status", "")).upper(),
                )
            )
        return out

    def withdrawal_status(self, withdrawal_hash: str) -> BridgeWithdrawal:
        result = self.bridge.read("withdrawal_status", [{"withdrawal_hash": withdrawal_hash}])
        withdrawals = (result or {}).get("withdrawals") or []
        if not withdrawals:
            return BridgeWithdrawal(status="NOT_FOUND", tx_hash=withdrawal_hash, transfer_tx_hash="")
        first = withdrawals[0]
        data = first.get("data") or {}
        return BridgeWithdrawal(
            status=str(first.get("status", "")).upper(),
            tx_hash=str(data.get("tx_hash") or withdrawal_hash),
            transfer_tx_hash=str(data.get("transfer_tx_hash") or ""),
        )

    # --- the solver relay ------------------------------------------------------------------------
    def publish_intent(self, signed_data: dict, quote_hashes: list[str] | None = None) -> PublishResult:
        """Publish one signed intent. Never retried: UNKNOWN_OUTCOME when the answer is lost."""
        result = self.relay.write("publish_intent", [{"quote_hashes": quote_hashes or [], "signed_data": signed_data}])
        if not isinstance(result, dict) or "status" not in result:
            raise _error(ErrorCode.UNKNOWN_OUTCOME, "publish_intent: answer without a status")
        return PublishResult(
            status=str(result["status"]),
            intent_hash=str(result.get("intent_hash", "")),
            reason=str(result.get("reason", "")),
        )

    def get_status(self, intent_hash: str) -> IntentStatus:
        result = self.relay.read("get_status", [{"intent_hash": intent_hash}])
        if not isinstance(result, dict) or "status" not in result:
            raise _error(ErrorCode.INTERNAL, "get_status: answer without a status")
        return IntentStatus(
            status=str(result["status"]),
            intent_hash=str(result.get("intent_hash") or intent_hash),
            tx_hash=str((result.get("data") or {}).get("hash") or ""),
        )


_clients: dict[tuple, NearIntentsClient] = {}
_lock = threading.Lock()


def near_intents_client(net: NearIntentsNetwork | None = None) -> NearIntentsClient:
    """The process-wide client of the configured network (or `net`)."""
    net = net or network_config()
    key = (net.fingerprint(), settings.NEAR_INTENTS_RELAY_API_KEY, settings.NEAR_INTENTS_TIMEOUT)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = NearIntentsClient(net)
        return client


def clients_reset() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def breaker_reset(net: NearIntentsNetwork) -> None:
    for kind in ("rpc", "bridge", "relay"):
        resilience.breaker_record(PREFIX, f"{net.name}:{kind}", ok=True, threshold=1)


def breaker_states(net: NearIntentsNetwork) -> dict[str, dict]:
    return {
        kind: resilience.breaker_state(PREFIX, f"{net.name}:{kind}", cooldown=settings.NEAR_INTENTS_BREAKER_COOLDOWN)
        for kind in ("rpc", "bridge", "relay")
    }
