"""Input bounds at every door (config/inputs.py): body size, JSON nesting depth and control
characters are checked before anything parses or stores the input, and answered with the
error envelope — never a crash, never a 5xx. The resilience suite sends the same corpus to a
running desk (tests/resilience/test_bad_input.py)."""

import json
import time
from decimal import Decimal

import httpx
import pytest
from rest_framework.test import APIClient

from config.inputs import json_depth_exceeds, plain_decimal
from providers.ostium.wire import signature

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000  # the repro: one request of this killed the web process


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}
    return error


@pytest.fixture
def api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="u", email="u@example.com"))
    return client


@pytest.mark.parametrize(
    "value, expected",
    [(5, "5"), ("1000.50", "1000.50"), (".5", "0.5"), ("-2", "-2"), (1000.0, "1000.0"), (Decimal("0.1"), "0.1")],
)
def test_plain_decimal_reads_ascii_digits_and_json_numbers(value, expected):
    assert plain_decimal(value) == Decimal(expected)


@pytest.mark.parametrize(
    "value",
    ["1e3", 1e20, "١٠", "１", " 5", "5 ", "1_000", "NaN", "Infinity", float("nan"), Decimal("NaN"), True, None, [], ""],
)
def test_plain_decimal_refuses_what_python_s_decimal_would_take(value):
    with pytest.raises(ValueError):
        plain_decimal(value)


def test_the_depth_scan_skips_strings_and_counts_nesting():
    assert not json_depth_exceeds('{"a": "[[[[[[[[[[[[[[[[[["}', 3)
    assert not json_depth_exceeds('[[["\\"[[[[["]]]', 3)
    assert json_depth_exceeds("[[[[]]]]", 3)
    assert json_depth_exceeds('{"a": {"b": {"c": {"d": 1}}}}', 3)
    assert not json_depth_exceeds('{"a": {"b": {"c": 1}}, "d": [1, [2]]}', 3)


def test_deeply_nested_json_is_a_400_before_parsing(client):
    response = client.post("/api/v1/auth/login", data=DEEP, content_type="application/json")
    assert _error(response, 400, "JSON_TOO_DEEP")["details"] == {"max_depth": 32}


def test_an_oversized_order_body_is_a_413(api, settings):
    body = json.dumps({"asset": "BTC-USD", "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = api.post("/api/v1/trading/trades", data=body, content_type="application/json")
    _error(response, 413, "PAYLOAD_TOO_LARGE")
    response = api.post(
        "/api/v1/trading/trades", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )  # (the idempotency check reads the raw body first)
    _error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_nul_in_a_query_parameter_is_a_400_not_a_database_error(api):
    response = api.get("/api/v1/ostium/delegations?safe=%00")  # was a psycopg DataError: 500
    assert _error(response, 400, "INVALID_CHARACTERS")["details"] == {"safe": ["Contains a control character."]}
    _error(api.get("/api/v1/trading/orders?asset=BTC%07"), 400, "INVALID_CHARACTERS")
    assert api.get("/api/v1/trading/orders?asset=BTC-USD").status_code == 200


def test_control_characters_in_json_strings_and_keys_are_a_400(api):
    body = {"url": "https://example.com/\u0000", "event_types": ["order.filled"], "description": "ok\ttab\nline"}
    error = _error(api.post("/api/v1/webhooks", body, format="json"), 400, "INVALID_CHARACTERS")
    assert error["details"] == {"url": ["Contains a control character."]}
    body = {"url": "https://example.com/", "event_types": ["order.filled"], "description": "\x1b[31mred"}
    _error(api.post("/api/v1/webhooks", body, format="json"), 400, "INVALID_CHARACTERS")
    body = {"url": "https://example.com/", "event_types": ["order.filled"], "bad\u0000key": 1}
    assert "bad?key" in _error(api.post("/api/v1/webhooks", body, format="json"), 400, "INVALID_CHARACTERS")["details"]


def test_a_form_body_stays_readable_after_the_check(api):
    """The form check reads the body first: a multipart order with an Idempotency-Key (which
    hashes the raw body) was a 500 (RawPostDataException)."""
    response = api.post("/api/v1/trading/trades", {"asset": ""}, format="multipart", HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 400, response.content


def test_control_characters_in_form_fields_are_a_400(client, operator_user):
    client.force_login(operator_user)
    response = client.post("/api/v1/trading/trades", {"asset": "BTC\x00USD"})
    _error(response, 400, "INVALID_CHARACTERS")
    response = client.post("/admin/webhooks/webhookendpoint/1/change/", {"description": "a\x00b"})
    assert response.status_code == 400 and b"Control characters" in response.content


def test_not_json_and_wrong_content_types_are_the_envelope(api):
    _error(api.post("/api/v1/webhooks", data="{nope", content_type="application/json"), 400, "PARSE_ERROR")
    _error(api.post("/api/v1/webhooks", data="<a/>", content_type="application/xml"), 415, "UNSUPPORTED_MEDIA_TYPE")
    _error(api.post("/api/v1/webhooks", data=b"\xff\xfe", content_type="application/json"), 400, "PARSE_ERROR")


# --- the signer service ----------------------------------------------------------------------


SECRET = "inputs-test-secret"


def _signed(client, body: bytes):
    path = "/internal/ostium/v1/positions/open"
    stamp = str(int(time.time()))
    return client.post(
        path,
        data=body,
        content_type="application/json",
        HTTP_X_TIMESTAMP=stamp,
        HTTP_X_SIGNATURE=signature(SECRET, "POST", path, stamp, body),
    )


def test_the_signer_service_bounds_depth_and_characters_before_parsing(client, settings):
    settings.OSTIUM_SERVICE_HMAC_SECRETS = [SECRET]
    response = _signed(client, DEEP.encode())
    assert response.status_code == 400 and response.json()["error"]["code"] == "JSON_TOO_DEEP"
    response = _signed(client, json.dumps({"symbol": "BTC\u0000USD"}).encode())
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_CHARACTERS"


# --- a real server: the ASGI body limit ---------------------------------------------------------


def test_the_server_refuses_an_oversized_body_before_reading_it(asgi_server):
    base = asgi_server({"DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE": "65536"})
    big = b"[" + b"1," * 40_000 + b"1]"
    response = httpx.post(f"{base}/api/v1/auth/login", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["x-request-id"] == response.json()["error"]["request_id"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(20):
            yield b" " * 8192

    response = httpx.post(f"{base}/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    response = httpx.post(f"{base}/api/v1/auth/login", content=DEEP.encode()[:60000] + b"]")
    assert response.status_code in (400, 415)  # under the limit: parsed (or refused) by the API
    assert httpx.get(f"{base}/health").status_code == 200


def test_wire_json_refuses_a_document_too_deep_for_the_parser_as_not_json():
    from config.inputs import wire_json

    assert wire_json(b'{"a": [1.5]}', parse_float=Decimal) == {"a": [Decimal("1.5")]}
    for text in ("{oops", DEEP):  # the second: JSON, but a RecursionError in json.loads
        with pytest.raises(ValueError):
            wire_json(text)
