import json
import logging

from config.context import request_id_var
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
