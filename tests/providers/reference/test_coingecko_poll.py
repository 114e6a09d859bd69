"""The CoinGecko poll (the real client) against the loopback double: keys, 429 and Retry-After,
timeouts, staleness. Seed 004: CoinGecko times out or answers 429 -> it backs off, the state
shows rate_limited, nothing else breaks."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from providers.coingecko.client import retry_after_seconds
from providers.coingecko.poll import coingecko_poll
from providers.reference.service import evaluate_pairs, reference_state
from providers.reference.store import Quote, now_ms, quotes_put, states_get


def _source(name="coingecko"):
    return next(s for s in reference_state()["sources"] if s["name"] == name)


def _kraken_fresh(price="60001"):
    now = now_ms()
    quotes_put(
        [Quote(source="kraken", pair="BTC/EUR", price=Decimal(price), observed_ms=now, received_ms=now, via="ws")]
    )


def test_a_poll_stores_each_pair_with_coingeckos_own_timestamp(reference):
    reference.gecko.stale(42)
    result = coingecko_poll()
    assert result["ok"] and result["refreshed"] == ["BTC/EUR", "BTC/USD", "ETH/USD"]
    request = reference.gecko.requests[-1]
    assert request["path"] == "/api/v3/simple/price"
    assert request["params"] == {
        "ids": "bitcoin,ethereum",
        "vs_currencies": "eur,usd",
        "include_last_updated_at": "true",
        "precision": "full",
    }
    ev = evaluate_pairs(["BTC/EUR"])["BTC/EUR"]
    assert ev.coingecko.quote.price == Decimal("60003") and ev.coingecko.quote.via == "poll"
    assert 41_000 <= ev.coingecko.age_ms <= 45_000  # from last_updated_at, not from when we asked
    assert _source()["health"] == "ok"
    assert coingecko_poll()["skipped"] == "not due"  # COINGECKO_POLL_SECONDS later at the earliest
    assert len(reference.gecko.requests) == 1


@pytest.mark.parametrize(("plan", "header"), [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")])
def test_the_configured_key_goes_in_its_plans_header(reference, settings, plan, header):
    settings.COINGECKO_API_KEY, settings.COINGECKO_API_PLAN = "CG-secret", plan
    assert coingecko_poll(force=True)["ok"]
    headers = {k.lower(): v for k, v in reference.gecko.requests[-1]["headers"].items()}
    assert headers[header] == "CG-secret"
    assert not {"x-cg-demo-api-key", "x-cg-pro-api-key"} - {header} & set(headers)


def test_no_key_sends_no_key_header(reference):
    assert coingecko_poll(force=True)["ok"]
    assert not any(k.lower().startswith("x-cg-") for k in reference.gecko.requests[-1]["headers"])


def test_429_backs_off_for_its_retry_after_and_shows_rate_limited(reference):
    _kraken_fresh()
    reference.gecko.rate_limit(times=1, retry_after="120")
    result = coingecko_poll(force=True)
    assert result["error"]["code"] == "rate_limited" and result["error"]["retry_after"] == 120.0
    coingecko = _source()
    assert coingecko["health"] == "rate_limited" and coingecko["rate_limited"] == 1
    assert coingecko["backoff_until"] > datetime.now(UTC) + timedelta(seconds=110)
    # while backing off nothing is asked, even forced; the fair rate goes on from Kraken
    assert coingecko_poll(force=True)["skipped"] == "rate_limited"
    assert coingecko_poll()["skipped"] == "rate_limited"
    assert len(reference.gecko.requests) == 1
    ev = evaluate_pairs(["BTC/EUR"])["BTC/EUR"]
    assert (ev.outcome, ev.source, ev.cross_check) == ("ok", "kraken", "unavailable")


def test_a_timeout_is_down_with_a_back_off_that_doubles_and_nothing_raises(reference, settings):
    _kraken_fresh()
    settings.COINGECKO_POLL_SECONDS = 10
    reference.gecko.delay(2.0, times=None)  # the client waits COINGECKO_TIMEOUT = 1 s
    result = coingecko_poll(force=True)
    assert result["error"]["code"] == "error" and "timeout" in result["error"]["message"]
    state = states_get(["coingecko"])["coingecko"]
    first = int(state["backoff_until_ms"]) - now_ms()
    assert 8_000 <= first <= 11_000 and state["consecutive_failures"] == "1"
    assert _source()["health"] == "down" and "timeout" in _source()["last_error"]
    # once the back-off is over the next failure waits twice as long
    from providers.reference.store import state_update

    state_update("coingecko", fields={"backoff_until_ms": now_ms() - 1})
    coingecko_poll(force=True)
    second = int(states_get(["coingecko"])["coingecko"]["backoff_until_ms"]) - now_ms()
    assert 18_000 <= second <= 22_000
    assert evaluate_pairs(["BTC/EUR"])["BTC/EUR"].outcome == "ok"  # Kraken alone still prices


def test_a_success_after_failures_clears_the_back_off(reference):
    reference.gecko.fail(500)
    assert coingecko_poll(force=True)["error"]
    from providers.reference.store import state_update

    state_update("coingecko", fields={"backoff_until_ms": now_ms() - 1})
    assert coingecko_poll(force=True)["ok"]
    state = states_get(["coingecko"])["coingecko"]
    assert state["consecutive_failures"] == "0" and state["backoff_until_ms"] == ""
    assert _source()["health"] == "ok" and _source()["errors"] == 1


def test_invalid_json_is_an_error_not_a_price(reference):
    reference.gecko.invalid_json()
    result = coingecko_poll(force=True)
    assert "not JSON" in result["error"]["message"]
    assert evaluate_pairs(["BTC/EUR"])["BTC/EUR"].coingecko.status == "missing"


def test_a_stale_last_updated_at_is_stale_and_with_kraken_stale_the_pair_is_unhealthy(reference, settings):
    """Seed 004: both stale -> unhealthy; a consumer is refused with the reason, never given an old price."""
    from providers.reference.service import ReferenceUnavailable, reference_rate_use

    settings.REFERENCE_MAX_AGE_MS = 1000
    reference.gecko.stale(600)
    coingecko_poll(force=True)
    now = now_ms()
    quotes_put(
        [
            Quote(
                source="kraken",
                pair="BTC/EUR",
                price=Decimal("60001"),
                observed_ms=now - 5000,
                received_ms=now,
                via="ws",
            )
        ]
    )
    ev = evaluate_pairs(["BTC/EUR"])["BTC/EUR"]
    assert ev.outcome == "unhealthy" and ev.rate is None
    assert _source()["health"] == "stale"
    with pytest.raises(ReferenceUnavailable) as refused:
        reference_rate_use("BTC/EUR", purpose="decision")
    assert refused.value.code == "REFERENCE_UNHEALTHY" and refused.value.status_code == 503
    assert "kraken stale" in refused.value.message and "coingecko stale" in refused.value.message
    assert refused.value.details["sample_id"]


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:01:00 GMT", now=now) == 60.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_a_paused_coingecko_is_not_polled(reference, operator_user):
    from trading.services.reference import reference_source_pause

    reference_source_pause(actor=operator_user, source="coingecko", reason="quota")
    assert coingecko_poll(force=True)["skipped"] == "paused"
    assert reference.gecko.requests == [] and _source()["health"] == "paused"
