"""The only module speaking to LI.FI (`https://li.quest/v1`): `GET /quote`, `GET /status`,
`GET /chains`, `GET /tokens`.

The root, the API key and the timeout are runtime configuration (the `lifi` provider:
LIFI_API_URL, LIFI_API_KEY, LIFI_TIMEOUT, LIFI_ENABLED). The key, when configured, goes in
`x-lifi-api-key` and is never logged. Amounts on the wire
are base units as decimal strings. A 429 raises `LifiError(rate_limited=True)` with the seconds
`ratelimit-reset` gave; a transport failure or a 5xx raises `LifiError(unavailable=True)`; a
route LI.FI cannot find (404 / 400 / 422 with its error body) raises `LifiNoRoute`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from django.conf import settings

from config.inputs import wire_json
from configuration.runtime import config_value, provider_enabled
from providers.sandbox_config import project_path

API_KEY_HEADER = "x-lifi-api-key"

# /v1/status `status` and `substatus` values (lifinance/types src/api.ts)
STATUSES = ("NOT_FOUND", "INVALID", "PENDING", "DONE", "FAILED")
PENDING_SUBSTATUSES = (
    "WAIT_SOURCE_CONFIRMATIONS",
    "WAIT_DESTINATION_TRANSACTION",
    "BRIDGE_NOT_AVAILABLE",
    "CHAIN_NOT_AVAILABLE",
    "REFUND_IN_PROGRESS",
    "UNKNOWN_ERROR",
)
DONE_SUBSTATUSES = ("COMPLETED", "PARTIAL", "REFUNDED")
FAILED_SUBSTATUSES = (
    "INSUFFICIENT_ALLOWANCE",
    "INSUFFICIENT_BALANCE",
    "OUT_OF_GAS",
    "EXPIRED",
    "SLIPPAGE_EXCEEDED",
    "UNKNOWN_FAILED_ERROR",
)


class LifiError(Exception):
    def __init__(
        self,
        message: str,
        *,
        unavailable: bool = False,
        rate_limited: bool = False,
        disabled: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable
        self.rate_limited = rate_limited
        self.disabled = disabled
        self.retry_after = retry_after
        self.status_code = status_code
        self.body = body or {}


class LifiNoRoute(LifiError):
    """LI.FI found no route for this amount, token or chain (its error `code` and `message`)."""


@dataclass(frozen=True)
class Quote:
    id: str
    tool: str
    from_chain_id: int
    to_chain_id: int
    from_token: dict
    to_token: dict
    from_amount: int
    to_amount: int
    to_amount_min: int
    approval_address: str
    execution_duration: float
    transaction_request: dict
    raw: dict = field(repr=False)


@dataclass(frozen=True)
class Status:
    status: str
    substatus: str
    substatus_message: str
    sending: dict
    receiving: dict
    transaction_id: str
    explorer_link: str
    raw: dict = field(repr=False)

    @property
    def receiving_amount(self) -> int | None:
        amount = (self.receiving or {}).get("amount")
        return int(amount) if amount not in (None, "") else None

    @property
    def receiving_token(self) -> dict:
        return (self.receiving or {}).get("token") or {}


def base_url() -> str:
    """LI.FI's root: LIFI_API_URL (runtime configuration) with LIFI_ENDPOINTS=live, or the
    double's address from LIFI_SANDBOX_CONFIG with LIFI_ENDPOINTS=sandbox."""
    if settings.LIFI_ENDPOINTS != "sandbox":
        return str(config_value("LIFI_API_URL")).rstrip("/")
    path = project_path(settings.LIFI_SANDBOX_CONFIG)
    try:
        return str(json.loads(path.read_text())["url"]).rstrip("/")
    except (OSError, ValueError, KeyError) as exc:
        raise LifiError(f"the LI.FI sandbox is not running ({path} unreadable)", unavailable=True) from exc


def _headers() -> dict:
    headers = {"Accept": "application/json", "User-Agent": "tradedesk"}
    key = config_value("LIFI_API_KEY")
    if key:
        headers[API_KEY_HEADER] = key
    return headers


def _reset_seconds(value: str | None) -> float | None:
    """`ratelimit-reset`: seconds until the window resets."""
    try:
        return max(0.0, float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _get(path: str, params: dict) -> dict:
    if not provider_enabled("lifi"):
        raise LifiError("LI.FI is disabled (LIFI_ENABLED)", unavailable=True, disabled=True)
    timeout = float(config_value("LIFI_TIMEOUT"))
    try:
        response = httpx.get(f"{base_url()}{path}", params=params, headers=_headers(), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise LifiError(f"timeout after {timeout:g} s", unavailable=True) from exc
    except httpx.HTTPError as exc:
        raise LifiError(f"{type(exc).__name__}", unavailable=True) from exc
    try:
        body = wire_json(response.content) if response.content else {}
    except ValueError:
        body = {}
    if response.status_code == 429:
        raise LifiError(
            "HTTP 429 rate limited",
            rate_limited=True,
            retry_after=_reset_seconds(response.headers.get("ratelimit-reset")),
            status_code=429,
        )
    if response.status_code >= 500:
        raise LifiError(f"HTTP {response.status_code}", unavailable=True, status_code=response.status_code)
    if response.status_code != 200:
        message = body.get("message") if isinstance(body, dict) else None
        cls = LifiNoRoute if path == "/quote" and response.status_code in (400, 404, 422) else LifiError
        raise cls(
            str(message or f"HTTP {response.status_code}")[:300],
            status_code=response.status_code,
            body=body if isinstance(body, dict) else {},
        )
    if not isinstance(body, dict):
        raise LifiError("answer is not a JSON object", unavailable=True)
    return body


def quote(
    *,
    from_chain: int,
    to_chain: int,
    from_token: str,
    to_token: str,
    from_address: str,
    from_amount: int,
    to_address: str,
    slippage: Decimal | float | None = None,
) -> Quote:
    """`GET /v1/quote`: the best route as one Step, with its `transactionRequest`."""
    params = {
        "fromChain": str(from_chain),
        "toChain": str(to_chain),
        "fromToken": from_token,
        "toToken": to_token,
        "fromAddress": from_address,
        "toAddress": to_address,
        "fromAmount": str(int(from_amount)),
        "integrator": settings.LIFI_INTEGRATOR,
    }
    if slippage is not None:
        params["slippage"] = str(slippage)
    body = _get("/quote", params)
    try:
        action, estimate = body["action"], body["estimate"]
        return Quote(
            id=str(body["id"]),
            tool=str(body.get("tool", "")),
            from_chain_id=int(action["fromChainId"]),
            to_chain_id=int(action["toChainId"]),
            from_token=dict(action["fromToken"]),
            to_token=dict(action["toToken"]),
            from_amount=int(estimate.get("fromAmount") or action["fromAmount"]),
            to_amount=int(estimate["toAmount"]),
            to_amount_min=int(estimate["toAmountMin"]),
            approval_address=str(estimate.get("approvalAddress") or ""),
            execution_duration=float(estimate.get("executionDuration") or 0),
            transaction_request=dict(body["transactionRequest"]),
            raw=body,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LifiError(f"quote answer malformed: {type(exc).__name__} {exc}"[:300], unavailable=True) from exc


def status(*, tx_hash: str, from_chain: int | None = None, to_chain: int | None = None) -> Status:
    """`GET /v1/status?txHash=`: where a transfer stands (NOT_FOUND until LI.FI has seen it)."""
    params = {"txHash": tx_hash}
    if from_chain is not None:
        params["fromChain"] = str(from_chain)
    if to_chain is not None:
        params["toChain"] = str(to_chain)
    try:
        body = _get("/status", params)
    except LifiError as exc:
        if exc.status_code == 404:  # older API versions answer NOT_FOUND with a 404
            body = {"status": "NOT_FOUND", **(exc.body or {})}
        else:
            raise
    found = str(body.get("status") or "NOT_FOUND")
    if found not in STATUSES:
        raise LifiError(f"unknown status {found!r}", unavailable=True)
    return Status(
        status=found,
        substatus=str(body.get("substatus") or ""),
        substatus_message=str(body.get("substatusMessage") or ""),
        sending=body.get("sending") or {},
        receiving=body.get("receiving") or {},
        transaction_id=str(body.get("transactionId") or ""),
        explorer_link=str(body.get("lifiExplorerLink") or ""),
        raw=body,
    )


def chains() -> list[dict]:
    """`GET /v1/chains`: [{id, key, name, ...}]."""
    return list(_get("/chains", {}).get("chains") or [])


def tokens(chain_ids: list[int]) -> dict[str, list[dict]]:
    """`GET /v1/tokens?chains=`: {chain id: [{address, symbol, decimals, ...}]}."""
    return dict(_get("/tokens", {"chains": ",".join(str(c) for c in chain_ids)}).get("tokens") or {})
