"""Staff API `/api/v1/ops/reference-prices...`: state, refresh, pause / resume (ledger events),
samples; errors in the envelope; in the OpenAPI schema."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from providers.coingecko.poll import coingecko_poll
from tests.trading.roles import user_in
from trading.models import Event

URL = "/api/v1/ops/reference-prices"


@pytest.fixture
def ops(reference, operator_user):
    client = APIClient()
    client.force_authenticate(operator_user)
    return client


def _pair(body, pair):
    return next(p for p in body["pairs"] if p["pair"] == pair)


def _source(body, name):
    return next(s for s in body["sources"] if s["name"] == name)


def test_the_state_shows_each_source_and_each_pairs_fair_rate(ops, reference):
    coingecko_poll(force=True)
    body = ops.get(URL).json()
    assert [s["name"] for s in body["sources"]] == ["kraken", "coingecko"]
    kraken, gecko = _source(body, "kraken"), _source(body, "coingecko")
    assert kraken["health"] == "down" and kraken["health_reason"] == "not connected"  # no feeds process here
    assert gecko["health"] == "ok" and gecko["errors"] == 0
    btc = next(s for s in gecko["symbols"] if s["pair"] == "BTC/EUR")
    assert btc["price"] == "60003" and btc["health"] == "ok" and btc["via"] == "poll" and btc["age_ms"] >= 0
    pair = _pair(body, "BTC/EUR")
    assert (pair["outcome"], pair["rate"], pair["source"], pair["fallback"]) == (
        "fallback",
        "60003",
        "coingecko",
        "coingecko",
    )
    assert pair["kraken"]["status"] == "missing" and pair["reason"].startswith("fallback: coingecko")
    assert _pair(body, "BTC/EURE")["basis"]["rows"][0]["source"] == "assumed peg"
    assert body["policy"]["max_age_ms"] == 10_000


def test_refresh_kraken_reads_the_rest_ticker_and_records_who_asked(ops, reference, operator_user):
    response = ops.post(f"{URL}/refresh", {"source": "kraken"}, format="json")
    assert response.status_code == 200, response.json()
    result = response.json()["results"][0]
    assert result == {"source": "kraken", "ok": True, "refreshed": ["BTC/EUR", "BTC/USD", "ETH/USD"]}
    assert {r["params"]["pair"] for r in reference.kraken.rest_requests} == {"XBTEUR", "XBTUSD", "ETHUSD"}
    pair = _pair(response.json()["state"], "BTC/EUR")
    assert (pair["outcome"], pair["rate"], pair["source"]) == ("ok", "60001", "kraken")
    assert pair["last_sample"]["id"]
    event = Event.objects.get(topic="reference.refreshed")
    assert event.actor.startswith(f"user:{operator_user.pk}:") and event.payload["results"][0]["ok"]


def test_refresh_both_reports_each_source(ops, reference):
    reference.kraken.rest_fail(200, ["EService:Unavailable"], times=3)
    body = ops.post(f"{URL}/refresh", {}, format="json").json()
    kraken, gecko = body["results"]
    assert not kraken["ok"] and "EService:Unavailable" in kraken["error"]["message"]
    assert gecko["ok"] and gecko["refreshed"] == ["BTC/EUR", "BTC/USD", "ETH/USD"]
    assert "EService:Unavailable" in _source(body["state"], "kraken")["last_error"]


def test_a_refresh_that_fails_everywhere_is_503_in_the_envelope(ops, reference):
    reference.kraken.rest_fail(502, times=3)
    response = ops.post(f"{URL}/refresh", {"source": "kraken"}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "REFERENCE_REFRESH_FAILED" and "HTTP 502" in str(error["details"])
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}


def test_refresh_of_coingecko_backing_off_after_429_is_refused(ops, reference):
    reference.gecko.rate_limit(times=1, retry_after="60")
    coingecko_poll(force=True)
    response = ops.post(f"{URL}/refresh", {"source": "coingecko"}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "REFERENCE_RATE_LIMITED" and 50 < error["details"]["retry_after"] <= 60
    assert len(reference.gecko.requests) == 1


def test_pause_and_resume_need_a_reason_and_write_ledger_events(ops, reference, operator_user):
    missing = ops.post(f"{URL}/pause", {"source": "kraken"}, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["details"] == {"reason": ["This field is required."]}
    blank = ops.post(f"{URL}/pause", {"source": "kraken", "reason": "  "}, format="json")
    assert blank.status_code == 400 and "reason" in blank.json()["error"]["details"]
    unknown = ops.post(f"{URL}/pause", {"source": "bitstamp", "reason": "x"}, format="json")
    assert unknown.status_code == 400 and "source" in unknown.json()["error"]["details"]
    assert not Event.objects.filter(topic__startswith="reference.source").exists()

    paused = ops.post(f"{URL}/pause", {"source": "coingecko", "reason": "quota spent"}, format="json")
    assert paused.status_code == 200
    gecko = _source(paused.json(), "coingecko")
    assert gecko["paused"] and gecko["health"] == "paused" and gecko["pause_reason"] == "quota spent"
    event = Event.objects.get(topic="reference.source_paused")
    assert (event.aggregate_type, event.aggregate_id) == ("reference_source", "coingecko")
    assert event.payload["reason"] == "quota spent" and event.payload["before"]["paused"] is False
    assert event.actor == gecko["changed_by"] and event.actor.startswith(f"user:{operator_user.pk}:")

    refused = ops.post(f"{URL}/refresh", {"source": "coingecko"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "REFERENCE_SOURCE_PAUSED"

    resumed = ops.post(f"{URL}/resume", {"source": "coingecko", "reason": "new month"}, format="json")
    assert resumed.status_code == 200 and not _source(resumed.json(), "coingecko")["paused"]
    assert Event.objects.get(topic="reference.source_resumed").payload["after"]["paused"] is False


def test_a_paused_source_is_not_used_by_the_fair_rates(ops, reference):
    ops.post(f"{URL}/refresh", {}, format="json")
    ops.post(f"{URL}/pause", {"source": "kraken", "reason": "bad prices"}, format="json")
    pair = _pair(ops.get(URL).json(), "BTC/EUR")
    assert (pair["outcome"], pair["source"], pair["kraken"]["status"]) == ("fallback", "coingecko", "paused")
    assert pair["reason"] == "fallback: coingecko (kraken paused)"


def test_only_staff_with_the_pause_permission_act(reference, django_user_model):
    viewer = APIClient()
    viewer.force_authenticate(user_in("viewer"))
    assert viewer.get(URL).status_code == 200
    denied = viewer.post(f"{URL}/pause", {"source": "kraken", "reason": "x"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "PERMISSION_DENIED"
    assert viewer.post(f"{URL}/refresh", {}, format="json").status_code == 403
    trader = APIClient()
    trader.force_authenticate(django_user_model.objects.create_user(username="t", email="t@example.com"))
    assert trader.get(URL).status_code == 403
    assert APIClient().get(URL).status_code in (401, 403)


def test_the_sample_in_force_at_a_time_is_one_row(ops, reference):
    from providers.reference.service import reference_rate_use

    ops.post(f"{URL}/refresh", {"source": "kraken"}, format="json")
    used = reference_rate_use("BTC/EUR", purpose="decision")
    at = ops.get(f"{URL}/samples", {"pair": "btc-eur"}).json()
    assert at["id"] == used.sample_id and Decimal(at["rate"]) == used.rate and at["pinned_for"] == "decision"
    assert at["kraken_status"] == "fresh" and at["outcome"] == "ok"
    assert ops.get(f"{URL}/samples/{used.sample_id}").json()["id"] == used.sample_id
    before = ops.get(f"{URL}/samples", {"pair": "BTC/EUR", "at": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404 and before.json()["error"]["code"] == "SAMPLE_NOT_FOUND"
    bad = ops.get(f"{URL}/samples", {"pair": "nonsense"})
    assert bad.status_code == 400 and "pair" in bad.json()["error"]["details"]


def test_the_endpoints_are_in_the_openapi_schema(ops):
    paths = ops.get("/api/schema/?format=json").json()["paths"]
    for path in (URL, f"{URL}/refresh", f"{URL}/pause", f"{URL}/resume", f"{URL}/samples", f"{URL}/samples/{{id}}"):
        assert path in paths, path
    assert "503" in paths[f"{URL}/refresh"]["post"]["responses"]
