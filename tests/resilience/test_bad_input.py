"""A bad-input corpus for every door of a running desk — REST, `/ws`, `/stream`, the Ostium
signer service, the webhook endpoints API and the webhook allowlist in the admin: deep nesting
(the one request that segfaulted the web process), huge bodies, NUL and other control
characters, odd digits, wrong content types, unknown fields. Each answer is a 4xx in the door's
envelope (or a websocket error / close 1009), and afterwards every process is still up."""

import json
import re
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.resilience.desk import SIGNER_SECRET, next_frame, ws_connect

DEEP = "[" * 100_000 + "]" * 100_000  # 200 KB: under the body limit, far over the depth limit
HUGE = 10 * 1024 * 1024  # 10 MB: over the body limit
ORDER = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"}


def _still_up(desk) -> None:
    assert httpx.get(f"{desk.base}/health", timeout=10).status_code == 200
    assert desk.exits() == [], desk.log_text()[-4000:]


def _envelope(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "timestamp", "request_id"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


JSON = {"content-type": "application/json"}


def _rest_corpus():
    """(name, method, path, content, headers, status, error code or None: any)."""
    return [
        ("deep body, unauthenticated", "POST", "/api/v1/auth/login", DEEP, JSON, 400, "JSON_TOO_DEEP"),
        ("deep order", "POST", "/api/v1/trading/trades", DEEP, JSON, 400, "JSON_TOO_DEEP"),
        ("deep object", "POST", "/api/v1/webhooks", '{"a":' * 5000 + "1" + "}" * 5000, JSON, 400, "JSON_TOO_DEEP"),
        ("10 MB order", "POST", "/api/v1/trading/trades", json.dumps({**ORDER, "x": "0" * HUGE}), JSON, 413, None),
        ("NUL in a query", "GET", "/api/v1/ostium/delegations?safe=%00", None, {}, 400, "INVALID_CHARACTERS"),
        ("escape in a query", "GET", "/api/v1/trading/orders?asset=%1B%5B2J", None, {}, 400, "INVALID_CHARACTERS"),
        ("NUL in the path", "GET", "/api/v1/prices/BTC%00USD", None, {}, 400, "INVALID_CHARACTERS"),
        (
            "NUL in a JSON string",
            "POST",
            "/api/v1/webhooks",
            json.dumps({"url": "https://example.com/\u0000", "event_types": ["order.filled"]}),
            JSON,
            400,
            "INVALID_CHARACTERS",
        ),
        (
            "NUL in a JSON key",
            "POST",
            "/api/v1/trading/trades",
            json.dumps({**ORDER, "\u0000": 1}),
            JSON,
            400,
            "INVALID_CHARACTERS",
        ),
        ("not UTF-8", "POST", "/api/v1/trading/trades", b"\xff\xfe\x00{", JSON, 400, "PARSE_ERROR"),
        ("not JSON", "POST", "/api/v1/trading/trades", "{'asset': 1}", JSON, 400, "PARSE_ERROR"),
        ("NaN", "POST", "/api/v1/trading/trades", '{"collateral": NaN}', JSON, 400, "PARSE_ERROR"),
        ("text/plain", "POST", "/api/v1/trading/trades", json.dumps(ORDER), {"content-type": "text/plain"}, 415, None),
        ("xml", "POST", "/api/v1/webhooks", "<a/>", {"content-type": "application/xml"}, 415, None),
        ("odd digits in a page", "GET", "/api/v1/trading/orders?limit=%D9%A1%D9%A0", None, {}, 400, None),
        ("empty enum", "GET", "/api/v1/trading/orders?status=", None, {}, 400, None),
        # amounts are JSON numbers or ASCII decimal strings; unknown fields on order endpoints are refused
        (
            "Arabic-Indic amount",
            "POST",
            "/api/v1/trading/trades",
            json.dumps({**ORDER, "collateral": "١٠٠"}),
            JSON,
            400,
            "VALIDATION_ERROR",
        ),
        (
            "underscored",
            "POST",
            "/api/v1/trading/trades",
            json.dumps({**ORDER, "collateral": "1_0"}),
            JSON,
            400,
            "VALIDATION_ERROR",
        ),
        ("unknown order field", "POST", "/api/v1/trading/trades", json.dumps({**ORDER, "bogus": 1}), JSON, 400, None),
        ("unknown field", "POST", "/api/v1/webhooks", json.dumps({"url": 1, "bogus": True}), JSON, 400, None),
    ]


@pytest.mark.parametrize("case", _rest_corpus(), ids=lambda case: case[0])
def test_rest(live_desk, desk_user, case):
    _name, method, path, content, headers, status, code = case
    _email, token = desk_user
    with live_desk.client(token) as c:
        response = c.request(method, path, content=content, headers=headers)
    if status is None:
        assert response.status_code < 500, response.text[:500]
        if response.status_code >= 400:
            _envelope(response)
    else:
        assert response.status_code == status, response.text[:500]
        error = _envelope(response)
        assert code is None or error["code"] == code, error
    _still_up(live_desk)


def test_a_huge_body_without_a_length_is_refused_as_it_arrives(live_desk):
    def chunks():
        for _ in range(HUGE // 65536):
            yield b" " * 65536

    response = httpx.post(f"{live_desk.base}/api/v1/auth/login", content=chunks(), headers=JSON, timeout=30)
    assert response.status_code == 413 and _envelope(response)["code"] == "PAYLOAD_TOO_LARGE"
    _still_up(live_desk)


# --- websockets ------------------------------------------------------------------------------


def _code(frame: dict) -> str | None:
    return frame.get("code") or (frame.get("data") or {}).get("code")


@pytest.mark.parametrize("path", ["/ws", "/stream"])
def test_websockets(live_desk, desk_user, path):
    _email, token = desk_user
    with ws_connect(live_desk, token, path) as ws:
        errors = {
            "[" * 30_000 + "]" * 30_000: "bad_json",  # under the size limit, over the depth limit
            '{"type": "subscribe", "channel": "prices", "topics": ["a\\u0000"], "data": {"pairs": ["A\\u0000"]}}': (
                "invalid_characters"
            ),
            '{"type": "ping", "\\u0007": 1}': "invalid_characters",
            "{nope": "bad_json",
        }
        for text, code in errors.items():
            ws.send(text)
            frame = next_frame(ws, lambda f: f["type"] == "error", 10)
            assert frame and _code(frame) == code, (text[:40], frame)
        ws.send(b"\x00\x01")
        assert _code(next_frame(ws, lambda f: f["type"] == "error", 10)) == "bad_message"
        ws.send(json.dumps({"type": "ping"}))
        assert next_frame(ws, lambda f: f["type"] == "pong", 10)  # the session goes on
    # over REALTIME_MAX_MESSAGE_SIZE (64 KiB): close 1009. Far over it, uvicorn stops reading and
    # closes with the rest unread, which the kernel may turn into a reset that drops the close
    # frame before the client reads it: then only "the connection ended".
    for message, reset_allowed in (("x" * 70_000, False), (DEEP, True), ("x" * 2 * 1024 * 1024, True)):
        assert _close_code(live_desk, token, path, message) == 1009 or reset_allowed
        with ws_connect(live_desk, token, path) as ws:  # and the next session is served
            ws.send(json.dumps({"type": "ping"}))
            assert next_frame(ws, lambda f: f["type"] == "pong", 10)
    _still_up(live_desk)


def _close_code(desk, token: str, path: str, message: str) -> int | None:
    with ws_connect(desk, token, path) as ws:
        try:
            ws.send(message)
            while True:
                ws.recv(timeout=15)
        except (ConnectionClosed, ConnectionResetError) as closed:
            received = getattr(closed, "rcvd", None)
            return received.code if received is not None else None


# --- the Ostium signer service ---------------------------------------------------------------


def _signed(desk, body: bytes, endpoint: str = "positions/open") -> httpx.Response:
    from providers.ostium.wire import signature

    path = f"/internal/ostium/v1/{endpoint}"
    stamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-timestamp": stamp,
        "x-signature": signature(SIGNER_SECRET, "POST", path, stamp, body),
    }
    return httpx.post(f"{desk.base}{path}", content=body, headers=headers, timeout=30)


def test_the_signer_service(live_desk):
    deep = _signed(live_desk, DEEP.encode())
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "JSON_TOO_DEEP"
    nul = _signed(live_desk, json.dumps({"symbol": "BTC\u0000USD", "idempotency_key": "k"}).encode())
    assert nul.status_code == 400 and nul.json()["error"]["code"] == "INVALID_CHARACTERS"
    huge = _signed(live_desk, b'{"x": "' + b"0" * HUGE + b'"}')
    assert huge.status_code == 413
    garbage = _signed(live_desk, b"\xff\xfe")
    assert garbage.status_code == 400
    unsigned = httpx.post(f"{live_desk.base}/internal/ostium/v1/positions/open", content=DEEP.encode(), timeout=30)
    assert unsigned.status_code == 401
    _still_up(live_desk)


# --- the admin's webhook inputs -----------------------------------------------------------------


def _admin(desk) -> httpx.Client:
    client = httpx.Client(base_url=desk.base, timeout=30, follow_redirects=False)
    page = client.get("/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    login = client.post(
        "/admin/login/",
        data={"username": "operator", "password": desk.operator_password, "csrfmiddlewaretoken": csrf},
        headers={"referer": f"{desk.base}/admin/login/"},
    )
    assert login.status_code == 302, login.text[:500]
    return client


def test_the_webhook_admin_inputs(live_desk):
    add = "/admin/webhooks/webhookallowlist/add/"
    admin = _admin(live_desk)
    try:
        form = admin.get(add)
        assert form.status_code == 200
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        fields = {"csrfmiddlewaretoken": csrf, "host": "hooks.internal", "cidr": "", "note": "ok"}
        headers = {"referer": f"{live_desk.base}{add}"}

        nul = admin.post(add, data={**fields, "note": "a\x00b"}, headers=headers)
        assert nul.status_code == 400 and "Control characters" in nul.text
        escape = admin.post(add, data={**fields, "host": "hooks\x1b[2J.internal"}, headers=headers)
        assert escape.status_code == 400
        huge = admin.post(add, data={**fields, "note": "x" * HUGE}, headers=headers)
        assert huge.status_code == 413
        search = admin.get("/admin/webhooks/webhookendpoint/?q=%00")
        assert search.status_code == 400
        fine = admin.post(add, data=fields, headers=headers)
        assert fine.status_code == 302, fine.text[:500]  # a clean entry still saves
    finally:
        admin.close()
    _still_up(live_desk)
