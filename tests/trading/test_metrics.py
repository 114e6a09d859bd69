"""`/metrics`: never open, and one scrape sums every process (prometheus_client multiprocess mode).

The cross-process test drives a real uvicorn web process (HTTP metrics are written there) and the
test's own Celery worker (the executor's, fills' and tasks' metrics are written here); the scrape
of the web process shows both."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from trading.models import Order

TOKEN = "metrics-test-token-0123456789"
OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_is_not_there_without_a_token(client, settings, db):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_metrics_refuses_a_request_without_the_bearer_token(client, settings, db, header):
    settings.METRICS_TOKEN = TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert "tradedesk_" not in response.content.decode()


def test_metrics_with_the_token_counts_requests_by_route_template(client, settings, db):
    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    before = samples(client.get("/metrics", **auth).content.decode())
    client.get("/api/v1/trading/orders/12345")  # unauthenticated: 401 or 403, by its route template
    client.get("/no/such/path/98765")
    response = client.get("/metrics", **auth)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    after = samples(response.content.decode())
    route = "api/v1/trading/orders/<int:pk>"
    counted = {
        (dict(labels)["route"], dict(labels)["status"])
        for (name, labels), v in after.items()
        if name == "tradedesk_http_requests_total" and v > value(before, name, **dict(labels))
    }
    assert any(r == route and s in ("401", "403") for r, s in counted), counted
    assert ("unmatched", "404") in counted
    # no raw path (ids) in any label
    assert not any("12345" in v or "98765" in v for (_, labels) in after for _, v in labels)


@pytest.mark.celery
@pytest.mark.slow
def test_one_scrape_of_a_web_process_sums_the_web_and_the_worker(
    asgi_server, celery_worker, markets, trader, armed, settings
):
    from tests.trading.accounts_helpers import PASSWORD, login

    trader.set_password(PASSWORD)
    trader.save()
    token = login(trader)["access_token"]
    # given a real web process (its own pid) sharing the metrics directory with this process,
    # whose Celery worker executes the orders
    base = asgi_server({"METRICS_TOKEN": TOKEN})
    scrape_auth = {"Authorization": f"Bearer {TOKEN}"}
    web = httpx.Client(base_url=base, timeout=15)
    before = samples(web.get("/metrics", headers=scrape_auth).text)

    # when a trader opens a trade through the web process and the worker fills it
    opened = web.post("/api/v1/trading/trades", json=OPEN, headers={"Authorization": f"Bearer {token}"})
    assert opened.status_code == 201, opened.text
    order_id = opened.json()["order_id"]
    wait_for(lambda: Order.objects.get(pk=order_id).status == Order.Status.FILLED, what="the order filled")

    # then one scrape of the web process shows both processes' counts
    task = {"task": "trading.tasks.execute_order_task", "outcome": "success"}

    def scraped():  # (the fill is counted inside the task, the task itself only after it returns)
        found = samples(web.get("/metrics", headers=scrape_auth).text)
        filled = value(found, "tradedesk_fills_total", venue="paper", kind="open") > 0
        ran = value(found, "tradedesk_tasks_total", **task) > value(before, "tradedesk_tasks_total", **task)
        return found if filled and ran else None

    after = wait_for(scraped, what="the worker's fill in the scrape")

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tradedesk_http_requests_total", route="api/v1/trading/trades", method="POST", status="201") >= 1
    assert grew("tradedesk_http_request_duration_seconds_count", route="api/v1/trading/trades", method="POST") >= 1
    assert grew("tradedesk_orders_total", status="ACCEPTED", venue="paper") >= 1  # written by the web process
    assert grew("tradedesk_orders_total", status="FILLED", venue="paper") >= 1  # written by the worker
    assert grew("tradedesk_fills_total", venue="paper", kind="open") >= 1
    assert grew("tradedesk_fill_notional_total", venue="paper") > 0
    assert grew("tradedesk_order_submit_duration_seconds_count", venue="paper", action="open", outcome="filled") >= 1
    assert grew("tradedesk_order_fill_latency_seconds_count", venue="paper") >= 1
    assert grew("tradedesk_tasks_total", task="trading.tasks.execute_order_task", outcome="success") >= 1
    assert value(after, "tradedesk_executor_in_flight", venue="paper") == 0
    # and the state read at scrape time
    assert value(after, "tradedesk_executor_armed", venue="paper") == 1
    assert value(after, "tradedesk_venue_enabled", venue="paper") == 1
    assert ("tradedesk_outbox_backlog", frozenset()) in after
    assert ("tradedesk_webhook_backlog", frozenset()) in after
    assert ("tradedesk_celery_queue_depth", frozenset({("queue", settings.CELERY_TASK_DEFAULT_QUEUE)})) in after
    assert value(after, "tradedesk_price_age_seconds", source="paper", symbol="BTC-USD") >= 0
    assert ("tradedesk_price_age_seconds", frozenset({("source", "paper"), ("symbol", "BTC-USD")})) in after
    assert not any(name == "tradedesk_state_reading_errors" for name, _ in after)


def test_a_process_starts_with_a_metrics_directory_that_does_not_exist_yet(tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings

    directory = tmp_path / "not" / "yet"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "TRADEDESK_METRICS_DIR_PID": ""}
    code = "import config.metrics as m; m.HTTP_REQUESTS.labels('health', 'GET', '200').inc()"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert any(name.startswith("counter_") for name in os.listdir(directory))


@pytest.mark.django_db(transaction=True)
def test_risk_rejections_and_protective_evaluations_are_counted_where_they_happen(
    markets, trader, api, client, settings
):
    from datetime import timedelta
    from decimal import Decimal as D

    from django.utils import timezone

    from trading.models import RiskLimit
    from trading.services.protective import protective_evaluate

    settings.METRICS_TOKEN = TOKEN

    def scrape():
        return samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())

    before = scrape()
    RiskLimit.objects.create(instrument="BTC-USD", max_notional=D("500"))
    refused = api.post("/api/v1/trading/trades", OPEN | {"leverage": "6"}, format="json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "RISK_MAX_NOTIONAL"
    protective_evaluate(venue="paper", asset="BTC-USD", price=D("60000"), price_at=timezone.now(), door="beat")
    protective_evaluate(venue="paper", asset="ETH-USD", price=D("1"), price_at=timezone.now() - timedelta(hours=1))
    after = scrape()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tradedesk_risk_rejections_total", code="RISK_MAX_NOTIONAL") == 1
    assert grew("tradedesk_http_requests_total", route="api/v1/trading/trades", method="POST", status="422") == 1
    assert grew("tradedesk_orders_total", status="ACCEPTED", venue="paper") == 0  # no order exists
    assert grew("tradedesk_protective_evaluations_total", door="beat") == 1
    assert grew("tradedesk_protective_evaluations_total", door="tick") == 1  # a stale price is evaluated too
    assert grew("tradedesk_protective_evaluation_duration_seconds_count", door="beat") == 1


def test_a_database_pool_timeout_under_a_503_is_counted():
    from django.db import OperationalError
    from psycopg_pool import PoolTimeout

    from config import metrics
    from config.errors import outage_error

    before = metrics.DB_POOL_TIMEOUTS._value.get()
    try:
        try:
            raise PoolTimeout("couldn't get a connection after 10.00 sec")
        except PoolTimeout as exc:
            raise OperationalError(str(exc)) from exc  # as Django wraps it
    except OperationalError as wrapped:
        assert outage_error(wrapped).status_code == 503
    assert outage_error(OperationalError("server closed the connection")).status_code == 503  # not a pool timeout
    assert metrics.DB_POOL_TIMEOUTS._value.get() == before + 1


def test_requests_tallied_in_memory_reach_the_histogram_as_observe_would_write_them(client, settings, db):
    from config.metrics import http_observe

    settings.METRICS_TOKEN = TOKEN

    def scrape():
        return samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())

    before = scrape()
    # given three requests of one route tallied by the middleware's bookkeeping (not yet written)
    for seconds in (0.003, 0.2, 20.0):
        http_observe("test/tally", "GET", 200, seconds)
    http_observe("test/tally", "GET", 503, 0.005)  # on a bucket's bound: that bucket (le is <=)
    # when the endpoint is scraped (the scraping process writes its tally first)
    after = scrape()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # then the counter by status and the histogram's cumulative buckets, count and sum are right
    assert grew("tradedesk_http_requests_total", route="test/tally", method="GET", status="200") == 3
    assert grew("tradedesk_http_requests_total", route="test/tally", method="GET", status="503") == 1
    bucket = "tradedesk_http_request_duration_seconds_bucket"
    route = {"route": "test/tally", "method": "GET"}
    assert grew(bucket, le="0.005", **route) == 2
    assert grew(bucket, le="0.1", **route) == 2
    assert grew(bucket, le="0.25", **route) == 3
    assert grew(bucket, le="10.0", **route) == 3
    assert grew(bucket, le="+Inf", **route) == 4
    assert grew("tradedesk_http_request_duration_seconds_count", **route) == 4
    assert abs(grew("tradedesk_http_request_duration_seconds_sum", **route) - 20.208) < 1e-9


def test_the_armed_gauge_counts_a_timed_arming_that_has_run_out_as_disarmed(client, settings, db):
    """Before the expiry job has run, a lapsed arming is disarmed to the gates, so it is to the gauge."""
    from datetime import timedelta

    from django.utils import timezone

    from trading.services import control

    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

    def armed() -> float:
        return value(
            samples(client.get("/metrics", **auth).content.decode()), "tradedesk_executor_armed", venue="paper"
        )

    control.control_arm(
        component="executor:paper", actor="op", reason="an hour", expires_at=timezone.now() + timedelta(hours=1)
    )
    assert armed() == 1
    control.control_arm(
        component="executor:paper", actor="op", reason="ran out", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert armed() == 0
    assert control.executor_gate("paper").code == "VENUE_DISARMED"
