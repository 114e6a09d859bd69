"""OpenAPI that works when you press "Try it out" (a drf-spectacular postprocessing hook, after
`config.schema.document_errors`): a tag per area, a summary on every operation, one curated
example for every request body (Swagger pre-fills it: valid as it stands on the demo desk) and
for the main answers, and a bearer scheme that says how to get a token."""

from __future__ import annotations

TAGS = [  # (path prefix, tag), the first that matches
    ("/api/v1/auth/", "auth"),
    ("/api/v1/me", "account"),
    ("/api/v1/wallets", "account"),
    ("/api/v1/trading/", "trading"),
    ("/api/v1/prices", "prices"),
    ("/api/v1/ledger/", "ledger"),
    ("/api/v1/webhooks", "webhooks"),
    ("/api/v1/ostium/delegations", "delegations"),
    ("/api/v1/deposits", "deposits"),
    ("/api/v1/ops/reference-prices", "reference prices (staff)"),
    ("/api/v1/treasury/", "treasury (staff)"),
    ("/api/v1/admin/config", "configuration (staff)"),
    ("/api/v1/ops/near-intents", "NEAR Intents solver (staff)"),
]

SUMMARIES = {
    "v1_ledger_events_list": "List ledger events",
    "v1_ledger_events_retrieve": "One ledger event",
    "ops_reference_prices": "Reference rates and source health",
    "ops_reference_prices_pause": "Pause a reference source",
    "ops_reference_prices_refresh": "Refresh the reference rates now",
    "ops_reference_prices_resume": "Resume a reference source",
    "ops_reference_prices_sample_at": "The reference sample in force at a time",
    "ops_reference_prices_sample": "One reference sample",
    "ostium_delegation_list": "List your Ostium delegations",
    "ostium_delegation_get": "One Ostium delegation",
    "ostium_delegation_execute": "Execute a signed delegation on chain",
    "ostium_delegation_revoke": "Revoke a delegation",
    "ostium_delegation_sign": "Add a Safe owner's signature",
    "ostium_delegation_prepare": "Prepare a delegation of a Safe to the desk",
    "prices_get": "Prices of several pairs",
    "price_get": "Price of one pair",
    "trading_orders": "List your orders",
    "trading_order": "One order with its timeline",
    "trading_order_cancel": "Cancel an order",
    "trading_positions": "List your positions, marked to market",
    "trading_trade_open": "Open a trade or place a protective order",
    "trading_trade_protection_update": "Set or remove a trade's stop-loss / take-profit",
    "trading_trade_close": "Close a trade (all or a percentage)",
    "treasury_inventory": "The desk's inventory per venue",
    "treasury_liquidity_actions": "List liquidity actions",
    "treasury_liquidity_action_create": "Request a liquidity action",
    "treasury_liquidity_action": "One liquidity action",
    "treasury_liquidity_action_approve": "Approve a withdrawal (four eyes)",
    "treasury_liquidity_action_cancel": "Cancel a liquidity action",
}

# One example per request body schema: valid on the demo desk (`make run`) as it stands.
REQUEST_EXAMPLES = {
    "Register": {"email": "ada@example.com", "username": "ada", "password": "correct horse battery 42"},
    "Login": {"email": "ada@example.com", "password": "correct horse battery 42"},
    "Refresh": {"refresh_token": "<the refresh_token of the login answer>"},
    "NonceRequest": {"wallet_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "chain_id": 421614},
    "SignedMessage": {"message": "<the SIWE message of the nonce answer>", "signature": "0x<65-byte signature>"},
    "WalletAdd": {"message": "<a SIWE message>", "signature": "0x<65-byte signature>", "wallet_type": "eoa"},
    "TradeOpenRequest": {
        "asset": "BTC-USD",
        "direction": "long",
        "order_type": "MARKET",
        "collateral": "100",
        "leverage": "5",
    },
    "PatchedTradeProtectionRequest": {"stop_loss_price": "57000", "take_profit_price": "63000"},
    "EndpointCreate": {
        "url": "https://hooks.example.com/tradedesk",
        "event_types": ["trade.executed", "trade.closed"],
        "description": "fills to our CRM",
    },
    "PatchedEndpointUpdate": {"is_active": False},
    "SourceActionRequest": {"source": "kraken", "reason": "feed flapping after their maintenance"},
    "RefreshRequest": {"source": "coingecko"},
    "PrepareRequest": {"network": "localnet", "safe_address": "0x<your Safe>", "usdc_allowance": 1000000000},
    "SignatureRequest": {"signature": "0x<owner signature of safeTxHash>"},
    "ActionRequest": {"kind": "deposit_address", "venue": "near_intents", "asset": "USDC", "chain": "eth"},
    "ReasonRequest": {"reason": "checked with the counterparty"},
    "ActionReasonRequest": {"reason": "checked with the counterparty"},
    "AppConfigCreate": {"config_key": "PRICE_CACHE_TTL", "config_value": 20, "reason": "fresher prices for the demo"},
    "AppConfigUpdate": {"config_value": 30, "reason": "back to the default"},
    "ControlRequest": {"reason": "relay maintenance window"},
    "RollbackIn": {"version": 1, "reason": "the change made fills slower"},
    "ProviderConfigUpdate": {"config_data": {"read_timeout": 10}, "reason": "the Ostium RPC answers slowly today"},
}

# Examples of the main answers (the shapes as the API returns them).
RESPONSE_EXAMPLES = {
    "TokenPair": {
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…",
        "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…",
        "token_type": "bearer",
        "expires_in": 900,
    },
    "OrderPlacedResponse": {
        "order_id": 42,
        "status": "pending",
        "order_status": "ACCEPTED",
        "order_type": "MARKET",
        "asset": "BTC-USD",
        "direction": "long",
        "pair_id": 1,
        "trade_index": None,
        "transaction_hash": "",
        "client_order_id": None,
        "created_at": "2026-12-06T22:34:31.120000+00:00",
    },
    "ErrorEnvelope": {
        "error": {
            "code": "INVALID_ORDER",
            "message": "Leverage out of range.",
            "details": {"leverage": ["must be between 1 and 50"]},
            "timestamp": "2026-12-06T22:34:31.120000+00:00",
            "request_id": "01JEXAMPLE0000000000000000",
        }
    },
}

_TX = "0x5f2c9b7e1d3a4c6b8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
_FILLED = RESPONSE_EXAMPLES["OrderPlacedResponse"] | {
    "status": "success",
    "order_status": "FILLED",
    "trade_index": 0,
    "transaction_hash": _TX,
}
_PENDING = {
    "summary": "pending (the wait ran out, or Prefer: respond-async)",
    "value": RESPONSE_EXAMPLES["OrderPlacedResponse"],
}
# Examples per answer of the trade open / close (the sync and the async shape, docs/api.md).
OPERATION_EXAMPLES = {
    ("trading_trade_open", "201"): {"filled": {"summary": "executed while waiting", "value": _FILLED}},
    ("trading_trade_open", "202"): {"pending": _PENDING},
    ("trading_trade_close", "200"): {
        "closed": {
            "summary": "closed while waiting",
            "value": _FILLED | {"order_id": 43, "status": "closed", "direction": "long"},
        }
    },
    ("trading_trade_close", "202"): {"pending": _PENDING},
}

BEARER = (
    "A JWT access token (15 minutes). Get one with `POST /api/v1/auth/login` (or `/auth/register`): "
    "copy its `access_token` here, without the word Bearer. Renew with `POST /api/v1/auth/refresh`."
)


def _sample(prop: dict, schemas: dict, name: str):
    """A plain value for a field a curated example does not cover."""
    if "$ref" in prop or prop.get("allOf"):
        ref = prop.get("$ref") or prop["allOf"][0].get("$ref", "")
        target = schemas.get(ref.rsplit("/", 1)[-1], {})
        return (target.get("enum") or [None])[0]
    kind, fmt = prop.get("type"), prop.get("format")
    if prop.get("enum"):
        return prop["enum"][0]
    if kind == "integer":
        return 1
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    if fmt == "decimal":
        return "1"
    if fmt == "date-time":
        return "2026-12-31T12:00:00Z"
    return "a short reason for the ledger" if name == "reason" else name


def _generated(schema: dict, schemas: dict) -> dict:
    """An example of a request body with no curated one: its required fields, plainly filled."""
    props = schema.get("properties", {})
    return {name: _sample(props[name], schemas, name) for name in schema.get("required", []) if name in props}


def curate(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, example in {**REQUEST_EXAMPLES, **RESPONSE_EXAMPLES}.items():
        if name in schemas:
            schemas[name]["example"] = example
    for item in result.get("paths", {}).values():
        for operation in item.values():
            body = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
                if isinstance(operation, dict)
                else {}
            )
            name = body.get("$ref", "").rsplit("/", 1)[-1]
            if name in schemas and "example" not in schemas[name]:
                schemas[name]["example"] = _generated(schemas[name], schemas)
            for status, answer in (operation.get("responses", {}) if isinstance(operation, dict) else {}).items():
                examples = OPERATION_EXAMPLES.get((operation.get("operationId"), status))
                if examples and "application/json" in answer.get("content", {}):
                    answer["content"]["application/json"]["examples"] = examples
    schemes = result["components"].setdefault("securitySchemes", {})
    if "bearerAuth" in schemes:
        schemes["bearerAuth"]["description"] = BEARER
    used = []
    for path, item in result.get("paths", {}).items():
        tag = next((t for prefix, t in TAGS if path.startswith(prefix)), None)
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if tag:
                operation["tags"] = [tag]
                if tag not in used:
                    used.append(tag)
            if not operation.get("summary"):
                summary = SUMMARIES.get(operation.get("operationId", ""))
                if summary is None:
                    first = (operation.get("description") or "").split(". ")[0].strip()
                    summary = first[:80] or operation.get("operationId", "").replace("_", " ")
                operation["summary"] = summary
    order = list(dict.fromkeys(t for _, t in TAGS))
    result["tags"] = [{"name": t} for t in sorted(used, key=order.index)]
    return result
