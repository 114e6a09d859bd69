import json
import logging

from config.context import request_id_var
from config.logging import REDACTED as REDACTED_TEXT
from config.logging import ContextFilter, JsonFormatter, RedactionFilter, redact


def _emit(msg, *args, **extra):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    ContextFilter().filter(record)
    RedactionFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_log_carries_request_id():
    token = request_id_var.set("rid-1")
    try:
        line = _emit("hello %s", "world")
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world" and line["request_id"] == "rid-1" and line["level"] == "INFO"


def test_service_and_namespace_are_the_process_and_the_deployment_on_every_line(settings):
    from config.logging import STABLE_FIELDS, service_name

    plain = _emit("free text")
    # a line that names a service or namespace of its own (a library's extra) does not move them
    named = _emit("a solver line", component="strategy", event="decision", service="other", namespace="elsewhere")
    for line in (plain, named):
        assert set(STABLE_FIELDS) <= set(line)
        assert (line["service"], line["namespace"]) == (service_name(), settings.LOG_NAMESPACE)
    assert (named["component"], named["event"]) == ("strategy", "decision")


def test_secrets_are_redacted_by_key_and_by_shape():
    key = "0x" + "ab" * 32
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    line = _emit(
        "login with %s and key %s url ?password=hunter2&x=1",
        jwt,
        key,
        payload={"password": "hunter2", "nested": {"api_key": "k", "ok": "fine"}, "note": f"whsec_abc {key}"},
        authorization="Bearer x",
    )
    text = json.dumps(line)
    for secret in ("hunter2", key, jwt, "whsec_abc", "Bearer x"):
        assert secret not in text
    assert line["payload"]["nested"]["ok"] == "fine"


def test_each_secret_shape_is_redacted_alone_in_a_short_field():
    """Short texts skip the regular expressions unless they hold what one of them needs: each
    shape shorter than a hash, alone in a field of its own, is still caught."""
    from config.logging import redact_text

    for secret in ("eyJa.eyJb.c", "whsec_abc", "tdk_abc", "x?token=abc", "PASSWORD=hunter2"):
        assert REDACTED_TEXT in redact_text(secret), secret
    for plain in ("BTC/EURE", "01M961968590S64JZ70ND33C70", "near_intents", "8e0b4b4e-1f0a-4d4e-9a6d-3f6c2a1b0c9d"):
        assert redact_text(plain) == plain


def test_a_public_hash_is_kept_under_its_own_key_and_nowhere_else():
    """A transaction's hash is what an operator looks a trade up by on a block explorer: kept in
    the logs and the admin's payloads under the keys that name one. The same shape anywhere else,
    or with more than the hash in the field, is still taken for a private key."""
    tx = "0x" + "ab" * 32
    payload = {
        "transaction_hash": tx,
        "safe_tx_hash": tx,
        "txHash": "cd" * 32,
        "intent_hashes": tx,
        "key": tx,
        "transaction_hash_note": tx,
        "quote_hash": f"{tx} and more",
        "nested": [{"tx_hash": tx, "private_key_hash": tx}],
    }
    shown = redact(payload)
    assert shown["transaction_hash"] == shown["safe_tx_hash"] == shown["intent_hashes"] == tx
    assert shown["txHash"] == "cd" * 32 and shown["nested"][0]["tx_hash"] == tx
    assert shown["key"] == shown["transaction_hash_note"] == shown["nested"][0]["private_key_hash"] == REDACTED_TEXT
    assert tx not in shown["quote_hash"]

    line = _emit("sent", transaction_hash=tx, safe_tx_hash=tx, digest=tx)
    assert (line["transaction_hash"], line["safe_tx_hash"], line["digest"]) == (tx, tx, REDACTED_TEXT)


def test_redact_keeps_structure():
    assert redact({"a": [1, {"secret": "s"}]}) == {"a": [1, {"secret": "[REDACTED]"}]}


def test_objects_logged_as_extras_are_redacted_as_the_text_they_print():
    """Django's `django.request` lines carry the request object, whose str() is the full path
    with its query string: `/ws?token=...` reached the log."""

    class Request:
        def __str__(self):
            return "<ASGIRequest: GET '/api/v1/nowhere?token=abc.def-ghi&x=1'>"

    line = _emit("Not Found: /api/v1/nowhere", request=Request(), status_code=404)
    assert line["request"] == "<ASGIRequest: GET '/api/v1/nowhere?token=[REDACTED]&x=1'>"
    assert line["status_code"] == 404


def test_uvicorns_access_log_when_on_goes_through_our_handler(caplog):
    from config.logging import adopt_server_access_log

    access = logging.getLogger("uvicorn.access")
    saved = access.handlers[:]
    try:
        access.handlers = [logging.StreamHandler()]  # uvicorn's own, as `--access-log` leaves it
        adopt_server_access_log()
        assert access.handlers == logging.getLogger().handlers
        access.handlers = []  # `--no-access-log`: stays off
        adopt_server_access_log()
        assert access.handlers == []
    finally:
        access.handlers = saved
