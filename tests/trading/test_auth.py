"""Email/password accounts, Bearer JWTs and refresh-token rotation over the real API."""

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.conftest import minute_with_room
from tests.trading.accounts_helpers import PASSWORD, UserFactory, bearer, login
from trading import tokens
from trading.models import Event, RefreshToken, User

pytestmark = pytest.mark.django_db


def _envelope(response, status, code=None):
    assert response.status_code == status, response.content
    err = response.json()["error"]
    if code:
        assert err["code"] == code, err
    return err


def test_register_returns_tokens_that_authenticate():
    # given / when
    response = APIClient().post(
        "/api/v1/auth/register",
        {"email": "Alice@Example.com", "username": "alice", "password": PASSWORD},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == settings.JWT_ACCESS_TTL
    me = bearer(body["access_token"]).get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com" and me.json()["auth_method"] == "password"
    user = User.objects.get(username="alice")
    assert user.check_password(PASSWORD) and user.last_login_at is not None
    assert Event.objects.filter(topic="user.registered", aggregate_id=str(user.pk)).exists()


def test_access_token_claims():
    user = UserFactory()
    body = login(user)
    claims = jwt.decode(body["access_token"], tokens.signing_key(), algorithms=["HS256"], issuer="tradedesk")
    assert claims["sub"] == str(user.pk) and claims["type"] == "access" and claims["email"] == user.email
    assert claims["auth_method"] == "password" and claims["permissions"] == ["read", "trade", "account"]
    assert claims["exp"] - claims["iat"] == settings.JWT_ACCESS_TTL and claims["jti"]


def test_register_applies_password_validators():
    response = APIClient().post(
        "/api/v1/auth/register", {"email": "b@example.com", "username": "bob", "password": "12345678"}, format="json"
    )
    err = _envelope(response, 400, "VALIDATION_ERROR")
    assert err["details"]["password"]
    assert not User.objects.filter(username="bob").exists()


def test_register_duplicate_email_is_conflict():
    UserFactory(email="dup@example.com")
    response = APIClient().post(
        "/api/v1/auth/register", {"email": "DUP@example.com", "username": "other", "password": PASSWORD}, format="json"
    )
    _envelope(response, 409, "EMAIL_TAKEN")


def test_login_wrong_password_and_unknown_email_answer_the_same():
    user = UserFactory()
    client = APIClient()
    wrong = client.post("/api/v1/auth/login", {"email": user.email, "password": "nope-nope-1"}, format="json")
    unknown = client.post("/api/v1/auth/login", {"email": "ghost@example.com", "password": PASSWORD}, format="json")
    e1, e2 = _envelope(wrong, 401, "INVALID_CREDENTIALS"), _envelope(unknown, 401, "INVALID_CREDENTIALS")
    assert e1["message"] == e2["message"] == "Invalid email or password."


def test_login_of_inactive_user_is_refused():
    user = UserFactory(is_active=False)
    response = APIClient().post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    _envelope(response, 401, "INVALID_CREDENTIALS")


def test_inactive_user_is_refused_with_a_valid_access_token():
    user = UserFactory()
    body = login(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    err = _envelope(bearer(body["access_token"]).get("/api/v1/me"), 401, "AUTHENTICATION_FAILED")
    assert err["details"] == {"reason": "user_inactive"}
    # and cannot refresh either
    refresh = APIClient().post("/api/v1/auth/refresh", {"refresh_token": body["refresh_token"]}, format="json")
    _envelope(refresh, 401)


def test_unauthenticated_gets_401_with_www_authenticate():
    response = APIClient().get("/api/v1/me")
    _envelope(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("header", "reason", "error"),
    [
        ("Bearer garbage", "token_invalid", "invalid_token"),
        ("Bearer a.b.c", "token_invalid", "invalid_token"),
        ("Bearer", "header_invalid", "invalid_request"),
        ("Bearer x y", "header_invalid", "invalid_request"),
        ("Api-Key tdk_nope", "api_key_invalid", "invalid_token"),
    ],
)
def test_bad_bearer_tokens_are_401_saying_why(header, reason, error):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me")
    assert _envelope(response, 401, "AUTHENTICATION_FAILED")["details"] == {"reason": reason}
    assert response["WWW-Authenticate"] == f'Bearer realm="api", error="{error}"'  # RFC 6750


def test_refresh_token_is_not_an_access_token_and_expired_access_is_refused():
    user = UserFactory()
    body = login(user)
    _envelope(bearer(body["refresh_token"]).get("/api/v1/me"), 401)
    claims = jwt.decode(body["access_token"], tokens.signing_key(), algorithms=["HS256"], issuer="tradedesk")
    claims["exp"] = claims["iat"] - 1
    expired = jwt.encode(claims, tokens.signing_key(), algorithm="HS256")
    err = _envelope(bearer(expired).get("/api/v1/me"), 401)
    assert "expired" in err["message"]
    assert err["details"] == {"reason": "token_expired"}  # refresh, rather than sign in again
    forged = jwt.encode(
        {**claims, "exp": claims["iat"] + 900}, "another-key-of-enough-length-000000", algorithm="HS256"
    )
    _envelope(bearer(forged).get("/api/v1/me"), 401)


def test_refresh_rotates_and_the_old_token_is_revoked():
    user = UserFactory()
    first = login(user)
    client = APIClient()
    response = client.post("/api/v1/auth/refresh", {"refresh_token": first["refresh_token"]}, format="json")
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert bearer(second["access_token"]).get("/api/v1/me").status_code == 200
    old = RefreshToken.objects.get(jti=jwt.decode(first["refresh_token"], options={"verify_signature": False})["jti"])
    assert old.revoked_reason == "rotated" and old.replaced_by
    # the stored row holds a hash, never the token
    assert not RefreshToken.objects.filter(token_hash=first["refresh_token"]).exists()


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family():
    # given a session rotated once (the thief holds the first token, the user the second)
    user = UserFactory()
    stolen = login(user)["refresh_token"]
    client = APIClient()
    current = client.post("/api/v1/auth/refresh", {"refresh_token": stolen}, format="json").json()["refresh_token"]
    # when the stolen one is replayed
    replay = client.post("/api/v1/auth/refresh", {"refresh_token": stolen}, format="json")
    # then it is refused and the legitimate token dies with it
    _envelope(replay, 401, "TOKEN_REUSED")
    _envelope(client.post("/api/v1/auth/refresh", {"refresh_token": current}, format="json"), 401, "TOKEN_REVOKED")
    assert not RefreshToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert Event.objects.filter(topic="auth.refresh_reuse_detected", aggregate_id=str(user.pk)).count() == 1


def test_other_sessions_survive_a_reuse_in_one_family():
    user = UserFactory()
    session_a, session_b = login(user), login(user)
    client = APIClient()
    client.post("/api/v1/auth/refresh", {"refresh_token": session_a["refresh_token"]}, format="json")
    client.post("/api/v1/auth/refresh", {"refresh_token": session_a["refresh_token"]}, format="json")
    ok = client.post("/api/v1/auth/refresh", {"refresh_token": session_b["refresh_token"]}, format="json")
    assert ok.status_code == 200


def test_logout_revokes_the_refresh_token():
    user = UserFactory()
    body = login(user)
    client = APIClient()
    assert (
        client.post("/api/v1/auth/logout", {"refresh_token": body["refresh_token"]}, format="json").status_code == 204
    )
    _envelope(client.post("/api/v1/auth/refresh", {"refresh_token": body["refresh_token"]}, format="json"), 401)
    # idempotent
    assert (
        client.post("/api/v1/auth/logout", {"refresh_token": body["refresh_token"]}, format="json").status_code == 204
    )


def test_logout_with_a_garbage_token_is_401():
    _envelope(APIClient().post("/api/v1/auth/logout", {"refresh_token": "nope"}, format="json"), 401, "INVALID_TOKEN")


def test_password_login_is_locked_per_email_after_repeated_failures(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login_failures": "3/hour"}}
    user = UserFactory()
    for i in range(3):
        client = APIClient(REMOTE_ADDR=f"10.0.0.{i}")  # a different IP each time
        _envelope(client.post("/api/v1/auth/login", {"email": user.email, "password": "bad-guess-1"}), 401)
    # even the right password is refused now, from yet another IP
    response = APIClient(REMOTE_ADDR="10.0.0.99").post(
        "/api/v1/auth/login", {"email": user.email, "password": PASSWORD}
    )
    _envelope(response, 429, "THROTTLED")
    assert int(response["Retry-After"]) > 0
    # another account is unaffected
    assert login(UserFactory())["access_token"]


def test_auth_endpoints_are_throttled_per_ip(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}
    client = APIClient(REMOTE_ADDR="10.1.1.1")
    minute_with_room()
    for _ in range(3):
        _envelope(client.post("/api/v1/auth/login", {"email": "x@example.com", "password": "p"}), 401)
    response = client.post("/api/v1/auth/login", {"email": "x@example.com", "password": "p"})
    _envelope(response, 429, "THROTTLED")
    assert 0 < int(response["Retry-After"]) <= 60
    # a client-supplied X-Forwarded-For does not buy a new bucket (no trusted proxy configured)
    spoofed = client.post(
        "/api/v1/auth/login", {"email": "x@example.com", "password": "p"}, HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    _envelope(spoofed, 429)
    # another IP is fine
    _envelope(
        APIClient(REMOTE_ADDR="10.1.1.2").post("/api/v1/auth/login", {"email": "x@example.com", "password": "p"}), 401
    )


def test_openapi_schema_documents_the_auth_endpoints(staff_client):
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    for p in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/wallet/connect"):
        assert p in schema["paths"], p
    assert {"bearerAuth", "apiKeyAuth"} <= set(schema["components"]["securitySchemes"])


def test_purge_removes_only_long_expired_nonces_and_refresh_tokens():
    from datetime import timedelta

    from django.utils import timezone

    from trading.models import SiweNonce
    from trading.tasks import accounts_purge_expired_task

    user = UserFactory()
    live = login(user)
    old = timezone.now() - timedelta(days=2)
    SiweNonce.objects.create(nonce_hash="a" * 64, wallet_address="0x" + "1" * 40, expires_at=old)
    SiweNonce.objects.create(nonce_hash="b" * 64, wallet_address="0x" + "1" * 40, expires_at=timezone.now())
    RefreshToken.objects.create(jti="old", token_hash="c" * 64, family="f", user=user, expires_at=old)
    # when
    assert accounts_purge_expired_task() == {"nonces": 1, "refresh_tokens": 1}
    # then the live refresh token still works
    assert set(SiweNonce.objects.values_list("nonce_hash", flat=True)) == {"b" * 64}
    assert APIClient().post("/api/v1/auth/refresh", {"refresh_token": live["refresh_token"]}).status_code == 200
