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


@pytest.fixture
def redis_hung(settings):
    """A Redis that accepts the connection and then never answers (a host gone without closing
    its connections, a network partition): the listener's backlog completes the handshake."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    port = listener.getsockname()[1]
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    yield
    listener.close()


@pytest.mark.timeout(60)
def test_a_redis_that_never_answers_is_a_503_in_seconds_not_a_request_hung_for_good(api, redis_hung):
    import time

    started = time.monotonic()
    _unavailable(api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="k-2"))
    assert time.monotonic() - started < 20  # the client's socket timeout (redis-py's 5 s), not for ever
    assert not Order.objects.exists() and not IdempotencyRecord.objects.exists()


@pytest.mark.timeout(60)
def test_the_feeds_redis_client_gives_up_on_a_redis_that_never_answers(redis_hung):
    import asyncio
    import time

    import redis

    from providers.reference import store

    async def write():
        client = store.async_client()
        try:
            await store.astate_update(client, "kraken", fields={"connected": 1})
        finally:
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        asyncio.run(write())
    assert time.monotonic() - started < 20  # the stream fails and its supervisor starts it again
