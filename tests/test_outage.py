"""Redis unreachable (the cache, throttle counters, price cache and broker all live there):
reads that need only the database keep working; calls that need Redis answer 503
`SERVICE_UNAVAILABLE` with `details.retryable`, and a refused write leaves nothing behind.
The resilience suite stops a real Redis under a running desk (tests/resilience/test_faults.py)."""

import pytest
from rest_framework.test import APIClient

from trading.models import IdempotencyRecord, Order

pytestmark = pytest.mark.django_db

OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


@pytest.fixture
def api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="u", email="u@example.com"))
    return client


@pytest.fixture
def redis_down(settings, tmp_path):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"unix://{tmp_path}/gone.sock"}}


def _unavailable(response) -> None:
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE" and error["details"]["retryable"] is True
    assert int(response["Retry-After"]) > 0


def test_database_only_reads_keep_working(api, redis_down):
    assert api.get("/api/v1/trading/orders").status_code == 200
    assert api.get("/api/v1/trading/positions").status_code == 200  # unmarked: as stored
    assert api.get("/api/v1/me").status_code == 200


def test_calls_that_need_redis_are_503_and_a_refused_write_leaves_nothing(api, redis_down):
    _unavailable(api.get("/api/v1/prices/BTC-USD"))
    _unavailable(api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="k-1"))
    assert not Order.objects.exists() and not IdempotencyRecord.objects.exists()
    _unavailable(APIClient().post("/api/v1/auth/login", {"email": "u@example.com", "password": "x"}, format="json"))
