"""The internal Ostium signer service: HMAC authentication, the envelope and every
endpoint's JSON schema, idempotent open/close, refusal of key-like payloads, the kill
switch; and one adapter contract run against both the in-process adapter and the HTTP
client talking to the service in a real uvicorn process. (The specification's own request
examples are replayed against a running service in test_service_contract.py.)"""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import jsonschema
import pytest

from providers.interface import CloseTradeRequest, ErrorCode, ExecStatus, OpenTradeRequest, Side
from providers.ostium.wire import signature
from tests.providers.ostium.helpers import approve_usdc

SECRET, OLD_SECRET = "s3cret-current", "s3cret-previous"
BASE = "/internal/ostium/v1/"

META = {
    "type": "object",
    "required": ["timestamp", "requestId"],
    "properties": {"timestamp": {"type": "string"}, "requestId": {"type": "string"}},
}
ERROR_ENVELOPE = {
    "type": "object",
    "required": ["success", "error", "meta"],
    "additionalProperties": False,
    "properties": {
        "success": {"const": False},
        "meta": META,
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
                "retryable": {"type": "boolean"},
            },
        },
    },
}
DEC = {"type": "string", "pattern": r"^-?\d+(\.\d+)?(E[-+]?\d+)?$"}
DEC_OR_NULL = {"anyOf": [DEC, {"type": "null"}]}
VENUE_ERROR = {
    "type": "object",
    "required": ["code", "message", "retryable", "details"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "retryable": {"type": "boolean"}},
}
RESULT = {
    "type": "object",
    "required": ["status", "venue_order_id", "pair_id", "trade_index", "transaction_hash", "fill", "error"],
    "properties": {
        "status": {"enum": [s.value for s in ExecStatus]},
        "venue_order_id": {"type": "string"},
        "pair_id": {"type": "string"},
        "trade_index": {"type": "string"},
        "transaction_hash": {"type": "string"},
        "fill": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["price", "size", "notional", "fee", "slippage", "price_source", "timestamp"],
                    "properties": {"price": DEC, "size": DEC, "fee": DEC, "realized_pnl": DEC_OR_NULL},
                },
            ]
        },
        "error": {"anyOf": [{"type": "null"}, VENUE_ERROR]},
    },
}
MARKET = {
    "type": "object",
    "required": ["symbol", "pairId", "status", "pair_id", "category", "max_leverage", "min_leverage", "is_open"],
    "properties": {
        "symbol": {"type": "string"},
        "pairId": {"type": "string"},
        "status": {"enum": ["open", "closed"]},
        "pair_id": {"type": "string"},
        "max_leverage": DEC,
        "is_open": {"type": "boolean"},
    },
}
POSITION = {
    "type": "object",
    "required": [
        "traderAddress",
        "pairId",
        "tradeIndex",
        "direction",
        "account",
        "symbol",
        "pair_id",
        "trade_index",
        "side",
        "collateral",
        "leverage",
        "size",
        "entry_price",
        "opened_at",
    ],
    "properties": {
        "direction": {"type": "boolean"},
        "side": {"enum": ["long", "short"]},
        "collateral": DEC,
        "size": DEC,
        "entry_price": DEC,
        "stop_loss": DEC_OR_NULL,
    },
}
TICK = {
    "type": "object",
    "required": ["symbol", "price", "timestamp", "source", "venue"],
    "properties": {
        "price": DEC,
        "bid": DEC_OR_NULL,
        "ask": DEC_OR_NULL,
        "source": {"const": "ostium"},
        "venue": {"const": "ostium"},
    },
}
WRITTEN = {
    "allOf": [
        RESULT,
        {
            "type": "object",
            "required": ["orderId", "txHash", "pairId", "tradeIndex"],
            "properties": {k: {"type": "string"} for k in ("orderId", "txHash", "pairId", "tradeIndex")},
        },
    ]
}


def ok_schema(data: dict) -> dict:
    return {
        "type": "object",
        "required": ["success", "data", "meta"],
        "additionalProperties": False,
        "properties": {"success": {"const": True}, "data": data, "meta": META},
    }


SCHEMAS = {
    "markets/list": ok_schema({"type": "array", "minItems": 1, "items": MARKET}),
    "accounts/balance": ok_schema(
        {
            "type": "object",
            "required": ["address", "usdc", "native"],
            "properties": {"address": {"type": "string"}, "usdc": DEC, "native": DEC},
        }
    ),
    "positions/list": ok_schema({"type": "array", "items": POSITION}),
    "positions/open": ok_schema(WRITTEN),
    "positions/close": ok_schema(WRITTEN),
    "positions/update-sl": ok_schema(WRITTEN),
    "positions/update-tp": ok_schema(WRITTEN),
    "prices/get": ok_schema({"type": "object", "additionalProperties": TICK}),
    "orders/status": ok_schema(RESULT),
    "orders/cancel": ERROR_ENVELOPE,
    "orders/sync": ok_schema(
        {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0},
            "properties": {k: {"type": "integer"} for k in ("filled", "cancelled", "closed", "timed_out", "errors")},
        }
    ),
}


@pytest.fixture
def hmac_secrets(settings):
    settings.OSTIUM_SERVICE_HMAC_SECRETS = [SECRET, OLD_SECRET]
    settings.OSTIUM_SERVICE_MAX_SKEW = 30


@pytest.fixture
def signer_armed(db):
    """The operator armed `signer:ostium`: the service may write."""
    from trading.services.control import control_arm

    control_arm(component="signer:ostium", actor="test", reason="service tests")


def signed(client, endpoint, payload, *, secret=SECRET, stamp=None, body=None, signed_body=None):
    path = BASE + endpoint
    payload = {"network": "localnet", **payload}
    raw = body if body is not None else json.dumps(payload).encode()
    stamp = str(time.time_ns() // 1_000_000 if stamp is None else stamp)  # milliseconds: each request its own
    sig = signature(secret, "POST", path, stamp, signed_body if signed_body is not None else raw)
    return client.post(path, data=raw, content_type="application/json", HTTP_X_TIMESTAMP=stamp, HTTP_X_SIGNATURE=sig)


# --- health / ready -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_needs_no_auth(client):
    response = client.get(BASE + "health")
    assert response.status_code == 200
    jsonschema.validate(response.json(), ok_schema({"type": "object", "required": ["status"]}))


@pytest.mark.django_db
def test_ready_checks_sdk_chain_subgraph_and_prices(client, ostium):
    response = client.get(BASE + "ready")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["data"]["checks"]) == {"chain", "sdk", "subgraph", "prices"}


@pytest.mark.django_db
def test_not_ready_when_the_chain_id_is_wrong(client, ostium, settings):
    settings.OSTIUM_NETWORK = "mainnet"
    settings.OSTIUM_RPC_URL = ostium.rpc_url  # a 421614 chain where 42161 is expected
    response = client.get(BASE + "ready")
    assert response.status_code == 503
    jsonschema.validate(response.json(), ERROR_ENVELOPE)
    assert any("chain id 421614" in p for p in response.json()["error"]["details"]["checks"]["chain"]["problems"])


@pytest.mark.django_db
def test_not_ready_on_a_stale_localnet_file_nor_with_the_localnet_named_testnet(client, ostium, settings, tmp_path):
    from providers.ostium.config import ostium_check

    # a config file left by an earlier localnet: this RPC answers, its contracts are elsewhere
    stale = ostium.config()
    stale["sdk_contracts"] = {name: "0x" + f"{i + 1:040x}" for i, name in enumerate(stale["sdk_contracts"])}
    path = tmp_path / "stale-localnet.json"
    path.write_text(json.dumps(stale))
    settings.OSTIUM_LOCALNET_CONFIG = str(path)
    response = client.get(BASE + "ready")
    assert response.status_code == 503, response.json()
    problems = response.json()["error"]["details"]["checks"]["chain"]["problems"]
    assert any("no contract at the localnet Trading address" in p for p in problems), problems
    # the localnet's RPC given as Arbitrum Sepolia: the chain id is the same, the Trading contract is not there
    settings.OSTIUM_NETWORK = "testnet"
    settings.OSTIUM_RPC_URL = ostium.rpc_url
    check = ostium_check()
    assert check["ok"] is False and check["chain_id"] == 421614
    assert any("no contract at the testnet Trading address" in p for p in check["problems"]), check


# --- HMAC -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unsigned_stale_future_tampered_replayed_and_wrong_secret_are_refused(client, hmac_secrets):
    payload = {"symbols": ["BTC-USD"]}
    path = BASE + "prices/get"
    unsigned = client.post(path, data=payload, content_type="application/json")
    stale = signed(client, "prices/get", payload, stamp=int(time.time()) - 31)
    future = signed(client, "prices/get", payload, stamp=int(time.time()) + 31)
    tampered = signed(
        client, "prices/get", payload, body=b'{"symbols": ["ETH-USD"]}', signed_body=json.dumps(payload).encode()
    )
    wrong = signed(client, "prices/get", payload, secret="not-the-secret")
    for response in (unsigned, stale, future, tampered, wrong):
        assert response.status_code == 401, response.content
        jsonschema.validate(response.json(), ERROR_ENVELOPE)
    assert wrong.json()["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.django_db
def test_a_replayed_signature_is_refused_and_a_rotated_secret_accepted(client, hmac_secrets, ostium):
    path = BASE + "markets/list"
    stamp = str(int(time.time()))
    body = b'{"network": "localnet"}'
    sig = signature(OLD_SECRET, "POST", path, stamp, body)
    first = client.post(path, data=body, content_type="application/json", HTTP_X_TIMESTAMP=stamp, HTTP_X_SIGNATURE=sig)
    again = client.post(path, data=body, content_type="application/json", HTTP_X_TIMESTAMP=stamp, HTTP_X_SIGNATURE=sig)
    assert first.status_code == 200, first.content  # the previous secret still verifies during rotation
    assert again.status_code == 401 and again.json()["error"]["code"] == "REPLAYED"


@pytest.mark.django_db
def test_no_secret_configured_refuses_everything(client, settings):
    settings.OSTIUM_SERVICE_HMAC_SECRETS = []
    response = signed(client, "markets/list", {})
    assert response.status_code == 401


@pytest.mark.django_db
def test_private_keys_are_never_accepted(client, hmac_secrets):
    key = "0x" + "ab" * 32
    for payload in ({"account": "0x1", "private_key": "x"}, {"address": key}, {"nested": {"signingKey": "x"}}):
        response = signed(client, "accounts/balance", payload)
        assert response.status_code == 400, payload
        assert response.json()["error"]["code"] == "SECRET_REFUSED"
        assert key not in response.content.decode()


# --- endpoint schemas on the localnet ---------------------------------------------------------------------


@pytest.mark.django_db
def test_every_endpoint_answers_in_its_schema(client, hmac_secrets, ostium, signer_armed):
    me = ostium.traders[0].address
    ostium.set_price("BTC-USD", "65000")
    responses = {
        "markets/list": signed(client, "markets/list", {}),
        "accounts/balance": signed(client, "accounts/balance", {"address": me}),
        "prices/get": signed(client, "prices/get", {"symbols": ["BTC-USD", "ETH-USD"]}),
    }
    open_body = {
        "idempotency_key": "svc-1",
        "account": me,
        "symbol": "BTC-USD",
        "side": "long",
        "collateral": "100",
        "leverage": "10",
        "take_profit": "70000",
    }
    responses["positions/open"] = signed(client, "positions/open", open_body)
    assert responses["positions/open"].json()["data"]["status"] == "pending"
    ostium.run_keeper()
    responses["orders/status"] = signed(client, "orders/status", {"idempotency_key": "svc-1"})
    assert responses["orders/status"].json()["data"]["status"] == "filled"
    responses["positions/list"] = signed(client, "positions/list", {"account": me})
    [position] = responses["positions/list"].json()["data"]
    ref = {"account": me, "pair_id": position["pair_id"], "trade_index": position["trade_index"]}
    responses["positions/update-sl"] = signed(client, "positions/update-sl", ref | {"price": "60000"})
    responses["positions/update-tp"] = signed(client, "positions/update-tp", ref | {"price": "71000"})
    responses["positions/close"] = signed(
        client, "positions/close", ref | {"idempotency_key": "svc-2", "fraction": "0.5"}
    )
    assert responses["positions/close"].json()["data"]["status"] == "pending"
    responses["orders/cancel"] = signed(client, "orders/cancel", {"account": me, "venue_order_id": "no-such"})
    responses["orders/sync"] = signed(client, "orders/sync", {})
    assert responses["orders/sync"].json()["data"]["errors"] == 0
    for endpoint, response in responses.items():
        expected = 404 if endpoint == "orders/cancel" else 200  # a refused write is a failure
        assert response.status_code == expected, (endpoint, response.content)
        jsonschema.validate(response.json(), SCHEMAS[endpoint])
    assert set(responses) == set(SCHEMAS)
    assert responses["orders/cancel"].json()["error"]["code"] == "ORDER_NOT_FOUND"


@pytest.mark.django_db
def test_open_and_close_replay_the_stored_response(client, hmac_secrets, ostium, signer_armed):
    me = ostium.traders[0].address
    body = {
        "idempotency_key": "svc-9",
        "account": me,
        "symbol": "BTC-USD",
        "side": "long",
        "collateral": "50",
        "leverage": "5",
    }
    first = signed(client, "positions/open", body)
    assert first.status_code == 200, first.content
    nonce = ostium.w3.eth.get_transaction_count(me)
    second = signed(client, "positions/open", body)  # a new signature (a new time stamp)
    assert second.json()["data"] == first.json()["data"] and second["Idempotent-Replayed"] == "true"
    assert ostium.w3.eth.get_transaction_count(me) == nonce  # nothing sent again
    from providers.models import OstiumServiceResponse
    from trading.admin_panel.panel import component_views

    shown = next(c for c in component_views() if c.component == "signer:ostium")  # the panel's last activity
    answered = OstiumServiceResponse.objects.get(idempotency_key="svc-9").created_at
    assert (shown.last_activity, shown.activity) == (answered, "open or close answered")
    other = signed(client, "positions/open", body | {"collateral": "60"})
    assert other.status_code == 422
    jsonschema.validate(other.json(), ERROR_ENVELOPE)


@pytest.mark.django_db
def test_bad_input_and_the_kill_switch(client, hmac_secrets, settings):
    missing = signed(client, "positions/open", {"idempotency_key": "x", "symbol": "BTC-USD"})
    assert missing.status_code == 400 and "direction" in missing.json()["error"]["details"]
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": False}
    for endpoint in (
        "positions/open",
        "positions/close",
        "positions/update-sl",
        "positions/update-tp",
        "orders/cancel",
    ):
        response = signed(client, endpoint, {"idempotency_key": "k", "account": "0x1"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "VENUE_DISABLED", endpoint


@pytest.mark.django_db
def test_a_disarmed_signer_sends_nothing_whatever_the_field_names(client, hmac_secrets, ostium):
    from trading.services.control import control_arm, control_disarm

    me = ostium.traders[0].address
    nonce = ostium.w3.eth.get_transaction_count(me)
    control_disarm(component="signer:ostium", actor="test", reason="stop")
    control_disarm(component="executor:ostium", actor="test", reason="stop")
    body = {
        "idempotency_key": "disarmed-1",  # the earlier field names, still accepted
        "account": me,
        "symbol": "BTC-USD",
        "side": "long",
        "collateral": "100",
        "leverage": "10",
    }
    refused = signed(client, "positions/open", body)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "VENUE_DISARMED", refused.content
    assert ostium.w3.eth.get_transaction_count(me) == nonce
    control_arm(component="signer:ostium", actor="test", reason="go")
    sent = signed(client, "positions/open", body)
    assert sent.status_code == 200 and sent.json()["data"]["status"] == "pending"


@pytest.mark.django_db
def test_a_write_whose_outcome_is_unknown_answers_202_and_a_refused_one_fails(
    client, hmac_secrets, ostium, signer_armed, settings
):
    me = ostium.traders[0].address
    approve_usdc(ostium, me)
    settings.OSTIUM_WRITE_TIMEOUT = 1.0
    body = {"pairId": 0, "collateral": "100", "leverage": "10", "direction": True, "idempotencyKey": "unknown-1"}
    ostium.w3.provider.make_request("evm_setAutomine", [False])
    try:
        unknown = signed(client, "positions/open", body)
    finally:
        ostium.w3.provider.make_request("evm_setAutomine", [True])
        ostium.w3.provider.make_request("evm_mine", [])
    assert unknown.status_code == 202, unknown.content
    data = unknown.json()["data"]
    assert data["status"] == "unknown" and data["error"]["code"] == "UNKNOWN_OUTCOME"
    asked = signed(client, "orders/status", {"idempotencyKey": "unknown-1"})
    assert asked.json()["data"]["status"] == "pending"  # it was sent: orders/status says what became of it
    closed = signed(
        client,
        "positions/close",
        {"pairId": 0, "tradeIndex": "7", "idempotencyKey": "close-none"},
    )
    assert closed.status_code == 404 and closed.json()["success"] is False
    assert closed.json()["error"]["code"] == "POSITION_NOT_FOUND"
    again = signed(
        client,
        "positions/close",
        {"pairId": 0, "tradeIndex": "7", "idempotencyKey": "close-none"},
        stamp=time.time_ns() // 1_000_000 + 1,
    )
    assert (again.status_code, again["Idempotent-Replayed"]) == (404, "true")  # the failure is replayed as such


# --- one contract, two transports -------------------------------------------------------------------------


@pytest.fixture(params=["in_process", "http"])
def ostium_venue(request, ostium, settings, transactional_db):
    """The Ostium VenueAdapter the trading core would get: in-process, or the HTTP client of
    the signer service running in its own uvicorn process."""
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.service_client import OstiumServiceVenue

    if request.param == "in_process":
        return OstiumVenue()
    start = request.getfixturevalue("asgi_server")
    settings.OSTIUM_SERVICE_HMAC_SECRETS = [SECRET]
    from trading.services.control import control_arm

    control_arm(component="signer:ostium", actor="test", reason="the service's contract")  # committed
    base = start(
        {
            "OSTIUM_NETWORK": "localnet",
            "OSTIUM_LOCALNET_CONFIG": settings.OSTIUM_LOCALNET_CONFIG,
            "OSTIUM_TRADER_KEY_FILE": settings.OSTIUM_TRADER_KEY_FILE,
            "OSTIUM_SERVICE_HMAC_SECRETS": SECRET,
        }
    )
    return OstiumServiceVenue(base_url=base)


def test_adapter_contract(ostium_venue, ostium):
    me = ostium.traders[0].address
    ostium.set_price("BTC-USD", "65000")
    assert "BTC-USD" in {m.symbol for m in ostium_venue.get_pairs()}
    assert ostium_venue.get_price("BTC-USD").price == D("65000")
    opened = ostium_venue.open_trade(
        OpenTradeRequest(
            idempotency_key="contract-1",
            account=me,
            symbol="BTC-USD",
            side=Side.SHORT,
            collateral=D("80"),
            leverage=D("5"),
            stop_loss=D("70000"),
        )
    )
    assert opened.status == ExecStatus.PENDING and opened.venue_order_id, opened.error
    ostium.run_keeper()
    filled = ostium_venue.get_order_status(idempotency_key="contract-1")
    assert filled.status == ExecStatus.FILLED and filled.fill.price == D("65000")
    [position] = ostium_venue.get_positions(account=me)
    assert position.side == Side.SHORT and position.collateral == D("80") and position.stop_loss == D("70000")
    moved = ostium_venue.update_tp(
        account=me, pair_id=position.pair_id, trade_index=position.trade_index, price=D("60000")
    )
    assert moved.status == ExecStatus.FILLED
    closing = ostium_venue.close_trade(
        CloseTradeRequest(
            idempotency_key="contract-2",
            account=me,
            symbol="BTC-USD",
            pair_id=position.pair_id,
            trade_index=position.trade_index,
        )
    )
    assert closing.status == ExecStatus.PENDING
    ostium.run_keeper()
    closed = ostium_venue.get_order_status(idempotency_key="contract-2")
    assert closed.status == ExecStatus.FILLED and closed.fill.realized_pnl == D("0")
    assert ostium_venue.get_positions(account=me) == []
    missing = ostium_venue.close_trade(
        CloseTradeRequest(idempotency_key="contract-3", account=me, symbol="BTC-USD", pair_id="0", trade_index="9")
    )
    assert missing.status == ExecStatus.REJECTED and missing.error.code == ErrorCode.POSITION_NOT_FOUND
    assert ostium_venue.get_order_status(idempotency_key="never-sent").status == ExecStatus.NOT_FOUND
