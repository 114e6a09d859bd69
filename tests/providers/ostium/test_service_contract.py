"""The signer service speaks the Ostium service specification's contract: its request examples
(`seed_000_requests.json`) are replayed, signed with our own HMAC code, against the service in
its own uvicorn process (the unmodified SDK on the localnet behind it), and every answer's shape
is checked. Then what the specification asks of it besides: every write checks `signer:ostium`
and the trading states at the moment it would be sent, the network of each request is honoured,
the replay guard keys on the whole signed request, and key ids are not mistaken for keys."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import jsonschema
import pytest

from providers.ostium.wire import signature
from tests.providers.ostium.test_service import DEC, DEC_OR_NULL, ERROR_ENVELOPE, MARKET, POSITION, WRITTEN, ok_schema

SECRET = "contract-secret"
PREFIX = "/internal/ostium/v1/"
STEPS = json.loads((Path(__file__).parent / "seed_000_requests.json").read_text())["steps"]

SHAPES = {
    "health": ok_schema({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}),
    "ready": ok_schema(
        {"type": "object", "required": ["status", "checks"], "properties": {"status": {"const": "ready"}}}
    ),
    "markets": ok_schema({"type": "array", "minItems": 1, "items": MARKET}),
    "price": ok_schema(
        {
            "type": "object",
            "required": ["symbol", "base", "quote", "price", "isMarketOpen", "timestamp", "source", "venue"],
            "properties": {
                "price": DEC,
                "bid": DEC_OR_NULL,
                "ask": DEC_OR_NULL,
                "isMarketOpen": {"type": "boolean"},
                "timestamp": {"type": "string"},
            },
        }
    ),
    "balance": ok_schema(
        {"type": "object", "required": ["address", "usdc", "native"], "properties": {"usdc": DEC, "native": DEC}}
    ),
    "positions": ok_schema({"type": "array", "items": POSITION}),
    "written": ok_schema(WRITTEN),
}


def _fill(value, context: dict):
    if isinstance(value, dict):
        return {k: _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in context:
        return context[value[1:-1]]
    return value


class Caller:
    """Another internal system calling the service: our own HMAC signing, httpx."""

    def __init__(self, base: str):
        self.base = base

    def post(self, endpoint: str, body: dict, *, idempotency_key: str = "", stamp: str | None = None):
        path = PREFIX + endpoint
        raw = json.dumps(body).encode()
        stamp = stamp or str(time.time_ns() // 1_000_000)
        headers = {
            "content-type": "application/json",
            "x-timestamp": stamp,
            "x-signature": signature(SECRET, "POST", path, stamp, raw, idempotency_key),
        }
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        return httpx.post(self.base + path, content=raw, headers=headers, timeout=60)

    def get(self, endpoint: str):
        return httpx.get(self.base + PREFIX + endpoint, timeout=60)


@pytest.fixture
def service(ostium, settings, transactional_db, asgi_server):
    """The signer service in its own uvicorn process on the localnet, `signer:ostium` armed."""
    from trading.services.control import control_arm

    control_arm(component="signer:ostium", actor="test", reason="the contract test")
    base = asgi_server(
        {
            "OSTIUM_NETWORK": "localnet",
            "OSTIUM_LOCALNET_CONFIG": settings.OSTIUM_LOCALNET_CONFIG,
            "OSTIUM_TRADER_KEY_FILE": settings.OSTIUM_TRADER_KEY_FILE,
            "OSTIUM_SERVICE_HMAC_SECRETS": SECRET,
        }
    )
    return Caller(base)


def _delegating_safe(net) -> str:
    """A Safe that approved Ostium and delegated to the service's signer (the trader key)."""
    owner = net.traders[6]
    safe = net.create_safe([owner.address], threshold=1)
    net.fund(safe, usdc=1000)
    usdc, trading = net.contract("usdc"), net.contract("trading")
    net.exec_safe_tx(
        safe, usdc.address, usdc.encode_abi("approve", [net.addresses.tradingStorage, 2**256 - 1]), [owner.private_key]
    )
    net.exec_safe_tx(
        safe, trading.address, trading.encode_abi("setDelegate", [net.traders[0].address]), [owner.private_key]
    )
    return safe


def test_the_specifications_request_examples_are_answered_in_its_shapes(service, ostium):
    context = {
        "network": "localnet",
        "trader": ostium.traders[0].address,
        "safe": _delegating_safe(ostium),
        "delegate": ostium.traders[0].address,
    }
    for step in STEPS:
        if step.get("method") == "GET":
            response = service.get(step["path"])
        else:
            response = service.post(step["path"], _fill(step["body"], context))
        expect, answer = step["expect"], response.json()
        assert response.status_code == expect["status"], (step["name"], answer)
        assert set(answer["meta"]) == {"timestamp", "requestId"}, step["name"]
        if "error" in expect:
            jsonschema.validate(answer, ERROR_ENVELOPE)
            assert answer["error"]["code"] == expect["error"], (step["name"], answer)
            continue
        jsonschema.validate(answer, SHAPES[expect["shape"]])
        if "data_status" in expect:
            assert answer["data"]["status"] == expect["data_status"], (step["name"], answer)
        if "count" in expect:
            assert len(answer["data"]) == expect["count"], (step["name"], answer)
            context["tradeIndex"] = answer["data"][0]["tradeIndex"]
        if step.get("then") == "keeper":
            assert all(action.ok for action in ostium.run_keeper()), step["name"]
    # what the answers said happened on chain
    assert ostium.usdc_balance(context["safe"]) == 1000  # opened and closed at the same price


def _open_body(key: str, **extra) -> dict:
    return {
        "network": "localnet",
        "pairId": 0,
        "collateral": "100",
        "leverage": "10",
        "direction": True,
        "orderType": "MARKET",
        "idempotencyKey": key,
        **extra,
    }


def test_every_write_asks_signer_ostium_and_the_trading_states_when_it_would_be_sent(service, ostium):
    from trading.services.control import control_arm, control_disarm, trading_state_set

    me = ostium.traders[0].address
    nonce = ostium.w3.eth.get_transaction_count(me)
    control_disarm(component="signer:ostium", actor="test", reason="stop the signer")
    control_disarm(component="executor:ostium", actor="test", reason="stop the executor")
    refused = {
        "positions/open": service.post("positions/open", _open_body("gate-1")),
        "positions/close": service.post(
            "positions/close", {"network": "localnet", "pairId": 0, "tradeIndex": "0", "idempotencyKey": "gate-2"}
        ),
        "positions/update-sl": service.post(
            "positions/update-sl", {"network": "localnet", "pairId": 0, "tradeIndex": "0", "slPrice": "1"}
        ),
        "positions/update-tp": service.post(
            "positions/update-tp", {"network": "localnet", "pairId": 0, "tradeIndex": "0", "tpPrice": "1"}
        ),
        "orders/cancel": service.post("orders/cancel", {"network": "localnet", "orderId": "1"}),
    }
    for endpoint, response in refused.items():
        assert response.status_code == 409, (endpoint, response.text)
        assert response.json()["error"]["code"] == "VENUE_DISARMED", endpoint
    assert ostium.w3.eth.get_transaction_count(me) == nonce  # nothing was sent
    assert service.post("markets/list", {"network": "localnet"}).status_code == 200  # reads go on

    control_arm(component="signer:ostium", actor="test", reason="go")
    trading_state_set(scope_type="instrument", scope_key="BTC-USD", state="REDUCE_ONLY", actor="test", reason="r")
    reduce_only = service.post("positions/open", _open_body("gate-3"))
    assert reduce_only.status_code == 409 and reduce_only.json()["error"]["code"] == "TRADING_REDUCE_ONLY"
    trading_state_set(scope_type="global", state="HALTED", actor="test", reason="h")
    halted = service.post(
        "positions/close", {"network": "localnet", "pairId": 0, "tradeIndex": "0", "idempotencyKey": "gate-4"}
    )
    assert halted.status_code == 409 and halted.json()["error"]["code"] == "TRADING_HALTED"
    assert ostium.w3.eth.get_transaction_count(me) == nonce

    trading_state_set(scope_type="global", state="ACTIVE", actor="test", reason="a")
    trading_state_set(scope_type="instrument", scope_key="BTC-USD", state="ACTIVE", actor="test", reason="a")
    # refused requests were not stored: the same idempotency key goes through once armed
    opened = service.post("positions/open", _open_body("gate-1"))
    assert opened.status_code == 200 and opened.json()["data"]["status"] == "pending", opened.text
    assert ostium.w3.eth.get_transaction_count(me) > nonce


def test_the_replay_guard_keys_on_the_whole_signed_request(service, ostium):
    stamp = str(int(time.time()))
    body = {"network": "localnet", "symbols": ["BTC-USD"]}
    assert service.post("prices/get", body, stamp=stamp).status_code == 200
    replay = service.post("prices/get", body, stamp=stamp)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "REPLAYED"
    # two opens alike but for their idempotency keys (sent as headers), in the same second
    same = _open_body("unused")
    del same["idempotencyKey"]
    first = service.post("positions/open", same, idempotency_key="twin-1", stamp=stamp)
    second = service.post("positions/open", same, idempotency_key="twin-2", stamp=stamp)
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["data"]["orderId"] != second.json()["data"]["orderId"]
    # the header is signed: a captured request with another key is not accepted
    forged = httpx.post(
        service.base + PREFIX + "positions/open",
        content=json.dumps(same).encode(),
        headers={
            "content-type": "application/json",
            "x-timestamp": stamp,
            "x-signature": signature(SECRET, "POST", PREFIX + "positions/open", stamp, json.dumps(same).encode()),
            "idempotency-key": "twin-3",
        },
    )
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "UNAUTHENTICATED"


def test_a_32_byte_key_id_is_not_mistaken_for_a_private_key_and_a_key_is_refused(service, ostium):
    key_id = hashlib.sha256(b"order 42").hexdigest()  # 64 hex characters, as idempotency keys often are
    opened = service.post("positions/open", _open_body(key_id))
    assert opened.status_code == 200, opened.text
    status = service.post("orders/status", {"network": "localnet", "idempotencyKey": key_id})
    assert status.json()["data"]["status"] == "pending"
    for body in (
        _open_body("k-1", note=ostium.traders[3].private_key),
        _open_body("k-2", privateKey="x"),
        {"network": "localnet", "address": ostium.traders[3].private_key},
    ):
        refused = service.post("positions/open", body)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "SECRET_REFUSED", refused.text
        assert ostium.traders[3].private_key[2:] not in refused.text
