"""Rate limits are shared by every web process: counters live in Redis. One process here is the
test's own Django, the other a real uvicorn process serving the same database and Redis."""

import httpx
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import minute_with_room
from tests.trading.accounts_helpers import UserFactory, bearer, login
from trading.throttling import parse_rate

pytestmark = pytest.mark.slow


def _rates(**rates):
    from django.conf import settings

    return override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**settings.THROTTLE_RATES, **rates}}
    )


def _assert_429(status, headers, body):
    assert status == 429, body
    assert int(headers["Retry-After"]) > 0
    assert body["error"]["code"] == "THROTTLED"
    assert body["error"]["details"]["retry_after_seconds"] == int(headers["Retry-After"])


def test_per_user_and_per_ip_limits_are_shared_across_two_processes(asgi_server):
    # given a second web process with the same limits: api 4, auth 3, per window of 1000 days
    # (windows are fixed: with per-minute ones, a run that crossed a minute started counting again)
    base = asgi_server({"THROTTLE_RATES": "api=4/1000d,auth=3/1000d"})
    with _rates(api="4/1000d", auth="3/1000d"):
        user = UserFactory()
        token = login(user)["access_token"]  # one `auth` hit from 127.0.0.1
        here = bearer(token)
        here.defaults["REMOTE_ADDR"] = "10.9.9.9"  # another IP: only the per-user bucket is shared
        there = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

        # when the user spends the limit half here, half there
        assert here.get("/api/v1/me").status_code == 200
        assert there.get("/api/v1/me").status_code == 200
        assert here.get("/api/v1/me").status_code == 200
        assert there.get("/api/v1/me").status_code == 200
        # then both processes refuse the next one
        r = there.get("/api/v1/me")
        _assert_429(r.status_code, r.headers, r.json())
        r = here.get("/api/v1/me")
        _assert_429(r.status_code, r, r.json())

        # and the per-IP auth limit counts across processes too (both see 127.0.0.1)
        anon_there = httpx.Client(base_url=base, timeout=10)
        bad = {"email": "nobody@example.com", "password": "wrong-password"}
        assert anon_there.post("/api/v1/auth/login", json=bad).status_code == 401
        assert APIClient().post("/api/v1/auth/login", bad, format="json").status_code == 401
        r = anon_there.post("/api/v1/auth/login", json=bad)
        _assert_429(r.status_code, r.headers, r.json())
        r = APIClient().post("/api/v1/auth/login", bad, format="json")
        _assert_429(r.status_code, r, r.json())
        # another user is not affected by the first user's bucket
        other = bearer(login_from("10.8.8.8", UserFactory()))
        other.defaults["REMOTE_ADDR"] = "10.8.8.8"
        assert other.get("/api/v1/me").status_code == 200


def login_from(ip: str, user) -> str:
    from tests.trading.accounts_helpers import PASSWORD

    response = APIClient(REMOTE_ADDR=ip).post(
        "/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@pytest.mark.django_db
def test_scoped_limit_comes_from_settings():
    with _rates(api="2/min"):
        client = bearer(login(UserFactory())["access_token"])
        minute_with_room()
        assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("100/min", (100, 60)), ("10/s", (10, 1)), ("5/hour", (5, 3600)), ("7/day", (7, 86400)), ("50/5min", (50, 300))],
)
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed
    assert parse_rate(None) is None


@pytest.mark.django_db
def test_trade_execution_is_limited_to_ten_a_minute_by_default_and_reads_are_not():
    client = bearer(login(UserFactory())["access_token"])
    minute_with_room()
    # opening and closing both execute trades: one `trade` bucket (before validation, so an
    # invalid body counts too)
    codes = [client.post("/api/v1/trading/trades", {}, format="json").status_code for _ in range(6)]
    codes += [client.delete("/api/v1/trading/trades/BTC-USD/1").status_code for _ in range(4)]
    assert codes == [400] * 6 + [404] * 4
    r = client.post("/api/v1/trading/trades", {}, format="json")
    _assert_429(r.status_code, r, r.json())
    r = client.delete("/api/v1/trading/trades/BTC-USD/1")
    _assert_429(r.status_code, r, r.json())
    # reading orders and positions is under the general `api` limit, not the trade one
    assert client.get("/api/v1/trading/orders").status_code == 200
    assert client.get("/api/v1/trading/positions").status_code == 200


@pytest.mark.django_db
def test_price_queries_have_their_own_limit():
    with _rates(prices="2/min"):
        client = bearer(login(UserFactory())["access_token"])
        minute_with_room()
        codes = [client.get("/api/v1/prices/NOPE-USD").status_code for _ in range(2)]
        assert 429 not in codes
        r = client.get("/api/v1/prices?pairs=NOPE-USD")
        _assert_429(r.status_code, r, r.json())
        assert client.get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_anonymous_price_queries_are_limited_per_ip():
    with _rates(prices="2/min"):
        client = APIClient()  # prices are open (seed 003 §4.3): the IP bucket is the limit
        minute_with_room()
        codes = [client.get("/api/v1/prices/NOPE-USD").status_code for _ in range(2)]
        assert codes == [404, 404]
        r = client.get("/api/v1/prices?pairs=NOPE-USD")
        _assert_429(r.status_code, r, r.json())


@pytest.mark.django_db
def test_one_request_counts_in_the_ip_and_the_user_bucket_and_counters_expire():
    import time

    from django.core.cache import cache

    from config.cache import cache_redis
    from trading.throttling import KEY_NAMESPACE, counter_hits, counter_wait

    # given a limit of 2 per 1000 days (one window for the whole test) for callers sharing an IP
    duration = 1000 * 86400
    with _rates(probe="2/1000d"):
        window = int(time.time() // duration)
        keys = [f"{KEY_NAMESPACE}:probe:{who}:{window}" for who in ("ip:10.0.0.1", "user:1")]
        # when the first caller makes two requests, both of its buckets count each
        assert counter_hits(scope="probe", whos=["ip:10.0.0.1", "user:1"]) is None
        assert counter_hits(scope="probe", whos=["ip:10.0.0.1", "user:1"]) is None
        assert [cache.get(k) for k in keys] == [2, 2]
        # then the counters expire after the window (plus one second)
        ttls = [cache_redis().ttl(cache.make_and_validate_key(k)) for k in keys]
        assert all(duration - 60 < ttl <= duration + 1 for ttl in ttls), ttls
        # and a third request from the same IP is refused, whichever user it is
        assert counter_hits(scope="probe", whos=["ip:10.0.0.1", "user:2"]) is not None
        assert counter_wait(scope="probe", who="user:1") is not None  # at the limit
        assert counter_wait(scope="probe", who="user:2") is None  # one of 2
        # a scope without a rate counts nothing
        assert counter_hits(scope="unlimited-probe", whos=["ip:10.0.0.1"]) is None


@pytest.mark.django_db
def test_counting_survives_redis_forgetting_its_scripts():
    """The counters are kept by a Lua script that Redis caches; a Redis restart (or SCRIPT FLUSH)
    forgets it, and the next count loads it again rather than failing the request."""
    import time

    from django.core.cache import cache

    from config.cache import cache_redis
    from trading.throttling import KEY_NAMESPACE, counter_hits

    duration = 1000 * 86400
    with _rates(probe="3/1000d"):
        key = f"{KEY_NAMESPACE}:probe:user:flush:{int(time.time() // duration)}"
        assert counter_hits(scope="probe", whos=["user:flush"]) is None
        # when Redis forgets every script between two requests
        cache_redis().script_flush()
        # then the next request is still counted, in the same window
        assert counter_hits(scope="probe", whos=["user:flush"]) is None
        assert cache.get(key) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("restarted", [False, True], ids=["connection-dropped", "redis-restarted"])
def test_counting_survives_redis_dropping_its_connection(restarted):
    """The script is sent on a connection each thread keeps for it; when Redis drops that
    connection (an idle timeout), the next count reconnects rather than failing. A restart also
    forgets the script: the same next count reconnects and loads it again."""
    import time

    from django.core.cache import cache

    from config.cache import cache_redis
    from trading import throttling
    from trading.throttling import KEY_NAMESPACE, counter_hits

    duration = 1000 * 86400
    with _rates(probe="3/1000d"):
        key = f"{KEY_NAMESPACE}:probe:user:dropped:{int(time.time() // duration)}"
        assert counter_hits(scope="probe", whos=["user:dropped"]) is None
        own = throttling._own.conn
        own.send_command("CLIENT", "ID")
        # when Redis closes this thread's connection between two requests
        assert cache_redis().client_kill_filter(_id=own.read_response()) == 1
        if restarted:  # a restarted Redis has no scripts (every client's: they load them again)
            cache_redis().script_flush()
        # then the next request is still counted, in the same window
        assert counter_hits(scope="probe", whos=["user:dropped"]) is None
        assert cache.get(key) == 2


@pytest.mark.django_db
def test_threads_that_come_and_go_are_all_counted_beyond_the_pools_cap():
    """A server that runs each request on a new thread: every thread's script connection closes
    with its thread and never takes a place of the shared pool's, so more threads than the
    pool's cap all count (none fails with "Too many connections" and turns into a 503)."""
    import threading
    import time

    from django.core.cache import cache

    from config.cache import cache_redis
    from trading.throttling import KEY_NAMESPACE, counter_hits

    threads = cache_redis().connection_pool.max_connections + 20
    duration = 1000 * 86400
    failures = []

    def one_request():
        try:
            counter_hits(scope="probe", whos=["user:threads"])
        except Exception as exc:  # whatever a thread raised is reported
            failures.append(repr(exc))

    with _rates(probe=f"{threads + 1}/1000d"):
        key = f"{KEY_NAMESPACE}:probe:user:threads:{int(time.time() // duration)}"
        for _ in range(threads):
            thread = threading.Thread(target=one_request)
            thread.start()
            thread.join()
        assert failures == []
        assert cache.get(key) == threads


@pytest.mark.django_db
def test_a_trade_reads_its_price_in_the_rate_limits_round_trip(api, markets, monkeypatch):
    """Opening a trade reads the price cache together with the `trade` counters (one Lua script):
    no round trip of its own for the price, and the order is placed at the cached price."""
    from redis.connection import AbstractConnection

    from providers.prices import price_cache_key, price_set
    from trading.models import Order

    price_set("BTC-USD", markets["BTC-USD"] + 1)
    price_key = price_cache_key("BTC-USD", venue="paper")
    sent = []
    original = AbstractConnection.send_command

    def record(self, *args, **options):  # every command sent on any connection, pooled or not
        sent.append(args)
        return original(self, *args, **options)

    monkeypatch.setattr(AbstractConnection, "send_command", record)
    r = api.post(
        "/api/v1/trading/trades",
        {"asset": "BTCUSDT", "direction": "long", "order_type": "MARKET", "collateral": "50", "leverage": "5"},
        format="json",
        HTTP_PREFER="respond-async",
    )
    monkeypatch.undo()
    assert r.status_code == 202, r.json()
    naming_the_price = [args[0] for args in sent if any(price_key in str(a) for a in args)]
    assert set(naming_the_price) == {"EVALSHA"}  # the rate limit's script (again after a NOSCRIPT), nothing else
    assert Order.objects.get(pk=r.json()["order_id"]).reference_price == markets["BTC-USD"] + 1
