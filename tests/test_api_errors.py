"""Every error path of the API leaves as the one envelope, carrying the request id."""

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

pytestmark = pytest.mark.django_db


class OnePerMinute(AnonRateThrottle):
    rate = "1/min"
    scope = "test-one"


@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([OnePerMinute])
def throttled_view(request):
    return Response({"ok": True})


@api_view(["GET"])
@permission_classes([AllowAny])
def boom_view(request):
    raise RuntimeError("database password=hunter2 leaked")


urlpatterns = [
    path("api/v1/test/throttled", throttled_view),
    path("api/v1/test/boom", boom_view),
]


def _assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details", "timestamp", "request_id"}
    assert err["code"] == code and err["message"]
    assert err["request_id"] == response["X-Request-ID"]
    return err


def test_request_id_is_accepted_and_echoed(staff_client):
    response = staff_client.get("/api/v1/ledger/events", HTTP_X_REQUEST_ID="req-abc-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-abc-123"


def test_request_id_is_generated_when_absent_or_unsafe(staff_client):
    response = staff_client.get("/api/v1/ledger/events", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] and "\n" not in response["X-Request-ID"]
    assert len(response["X-Request-ID"]) == 32


def test_validation_error(staff_client):
    err = _assert_envelope(staff_client.get("/api/v1/ledger/events?after=not-a-ulid"), 400, "VALIDATION_ERROR")
    assert "after" in err["details"]


def test_not_authenticated(client):
    response = client.get("/api/v1/ledger/events")
    _assert_envelope(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_permission_denied_for_non_staff(client, django_user_model):
    user = django_user_model.objects.create_user(username="u", email="u@example.com", password="x-Long-pass-1")
    client.force_login(user)
    _assert_envelope(client.get("/api/v1/ledger/events"), 403, "PERMISSION_DENIED")


def test_not_found_in_drf_view(staff_client):
    _assert_envelope(staff_client.get("/api/v1/ledger/events/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "NOT_FOUND")


def test_not_found_for_unknown_api_url(client):
    _assert_envelope(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")


def test_method_not_allowed(staff_client):
    _assert_envelope(staff_client.post("/api/v1/ledger/events", {}), 405, "METHOD_NOT_ALLOWED")


def test_malformed_json(staff_client):
    response = staff_client.generic("POST", "/api/v1/ledger/events", "{not json", content_type="application/json")
    assert response.status_code in (400, 405)
    assert response.json()["error"]["code"] in ("PARSE_ERROR", "METHOD_NOT_ALLOWED")


@override_settings(ROOT_URLCONF="tests.test_api_errors")
def test_throttled_has_retry_after(client):
    # (throttle counters are reset before every test by the autouse fixture in conftest)
    assert client.get("/api/v1/test/throttled").status_code == 200
    response = client.get("/api/v1/test/throttled")
    err = _assert_envelope(response, 429, "THROTTLED")
    assert int(response["Retry-After"]) > 0
    assert err["details"]["retry_after_seconds"] == int(response["Retry-After"])


@override_settings(ROOT_URLCONF="tests.test_api_errors")
def test_unhandled_error_is_500_without_internals(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/test/boom")
    err = _assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.content.decode() and "RuntimeError" not in err["message"]
