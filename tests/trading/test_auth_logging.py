"""No password, token, nonce, signature or API key reaches the logs during a whole auth flow.
Every record (root logger, DEBUG) goes through the project's filters and JSON formatter, as in
production; the raw records are checked too, so a secret is not merely hidden by luck of shape."""

import io
import json
import logging

import pytest
from eth_account import Account
from rest_framework.test import APIClient

from config.logging import ContextFilter, JsonFormatter, RedactionFilter
from tests.trading.accounts_helpers import PASSWORD, bearer, sign
from trading.services.accounts import api_key_create

pytestmark = pytest.mark.django_db


class _Raw(logging.Filter):
    def __init__(self, sink):
        super().__init__()
        self.sink = sink

    def filter(self, record):
        extras = {k: v for k, v in record.__dict__.items() if k not in ("msg", "args")}
        self.sink.append(f"{record.getMessage()} {extras}")
        return True


@pytest.fixture
def captured_logs():
    stream, raw = io.StringIO(), []
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_Raw(raw))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream, raw
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_full_auth_flow_logs_no_secrets(captured_logs, staff_client, operator_user):
    stream, raw = captured_logs
    secrets = []
    client = APIClient()

    # register, a failed login, a login
    r = client.post(
        "/api/v1/auth/register", {"email": "log@example.com", "username": "logger", "password": PASSWORD}, format="json"
    )
    assert r.status_code == 201
    secrets += [PASSWORD, r.json()["access_token"], r.json()["refresh_token"]]
    wrong = "Wrong-Guess-Password-77"
    secrets.append(wrong)
    assert client.post("/api/v1/auth/login", {"email": "log@example.com", "password": wrong}).status_code == 401
    weak = "1234567"
    secrets.append(weak)
    r = client.post("/api/v1/auth/register", {"email": "w@example.com", "username": "weak", "password": weak})
    assert r.status_code == 400
    tokens = client.post("/api/v1/auth/login", {"email": "log@example.com", "password": PASSWORD}).json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    assert bearer(tokens["access_token"]).get("/api/v1/me").status_code == 200

    # refresh, replay of the old refresh token (logged as a warning), logout
    rotated = client.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}).json()
    secrets += [rotated["access_token"], rotated["refresh_token"]]
    assert client.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}).status_code == 401
    login2 = client.post("/api/v1/auth/login", {"email": "log@example.com", "password": PASSWORD}).json()
    secrets += [login2["access_token"], login2["refresh_token"]]
    assert client.post("/api/v1/auth/logout", {"refresh_token": login2["refresh_token"]}).status_code == 204

    # Sign-In with Ethereum
    account = Account.create()
    issued = client.post("/api/v1/auth/wallet/nonce", {"wallet_address": account.address}).json()
    signature = sign(account, issued["message"])
    secrets += [issued["nonce"], signature, account.key.hex()]
    siwe = client.post("/api/v1/auth/wallet/connect", {"message": issued["message"], "signature": signature}).json()
    secrets += [siwe["access_token"], siwe["refresh_token"]]
    assert client.post("/api/v1/auth/wallet/connect", {"message": issued["message"], "signature": signature})

    # API keys: from the admin and from the service
    r = staff_client.post(
        "/admin/trading/apikey/add/",
        {"name": "logkey", "user": operator_user.pk, "scopes": ["read"], "expires_at": ""},
        follow=True,
    )
    admin_key = next(w for w in r.content.decode().split() if w.startswith("tdk_")).split("<")[0]
    _, raw_key = api_key_create(name="svc", user=operator_user, scopes=["read"], created_by=None)
    secrets += [admin_key, raw_key]
    for key in (admin_key, raw_key, raw_key + "x"):
        keyed = APIClient()
        keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        keyed.get("/api/v1/me")

    # then: something was logged (the test can see logs at all) ...
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    messages = {line["message"] for line in lines}
    assert "user signed in" in messages and "refresh token reuse detected; family revoked" in messages
    assert any(line["level"] == "WARNING" and line["logger"] == "django.request" for line in lines)
    # ... and no secret appears in what was written, nor in the raw records
    raw_text = "\n".join(raw)
    for secret in secrets:
        assert secret not in output, f"secret of length {len(secret)} written to the log"
        assert secret not in raw_text, f"secret of length {len(secret)} passed to a logger"
