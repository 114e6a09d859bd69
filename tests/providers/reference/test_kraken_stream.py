"""The Kraken websocket v2 stream (the real client) against the loopback double."""

import random
import time
from decimal import Decimal

import pytest

from providers.kraken.client import KrakenStream
from providers.reference.service import evaluate_pairs, reference_rate_use, reference_state
from providers.reference.store import states_get
from tests.conftest import wait_for


def _rate(pair="BTC/EUR"):
    return evaluate_pairs([pair])[pair]


def _source(name):
    return next(s for s in reference_state()["sources"] if s["name"] == name)


def test_the_stream_subscribes_and_keeps_the_latest_price_of_each_symbol(reference, feeds):
    feeds("kraken")
    wait_for(lambda: _rate().rate == Decimal("60001"))
    request = reference.kraken.subscribe_requests[0]
    assert request["params"]["channel"] == "ticker" and request["params"]["event_trigger"] == "bbo"
    assert sorted(request["params"]["symbol"]) == ["BTC/EUR", "BTC/USD", "ETH/USD"]  # not the cross BTC/EURE

    reference.kraken.set_price("BTC/EUR", "60100", "60104", "60101")
    wait_for(lambda: _rate().rate == Decimal("60102"))
    ev = _rate()
    assert (ev.outcome, ev.source) == ("ok", "kraken")
    q = ev.kraken.quote
    assert (q.bid, q.ask, q.last, q.via) == (Decimal("60100"), Decimal("60104"), Decimal("60101"), "ws")
    assert q.observed_ms <= q.received_ms
    kraken = _source("kraken")
    assert kraken["health"] == "ok" and kraken["connected"] is True
    assert {s["pair"]: s["health"] for s in kraken["symbols"]} == {"BTC/EUR": "ok", "BTC/USD": "ok", "ETH/USD": "ok"}
    assert _rate("BTC/EURE").rate == Decimal("60102")  # through the basis EURE = 1 EUR


def test_invalid_json_is_counted_and_skipped_without_dropping_the_connection(reference, feeds):
    feeds("kraken")
    wait_for(lambda: _rate().usable)
    reference.kraken.send_raw("{not json")
    reference.kraken.send_raw("[" * 5000 + "]" * 5000)  # JSON, but too deep for Python's parser
    reference.kraken.send_raw('{"channel": "ticker", "type": "update", "data": [{"symbol": "BTC/EUR", "bid": -1}]}')
    wait_for(lambda: states_get(["kraken"])["kraken"]["invalid_messages"] == 3)
    reference.kraken.set_price("BTC/EUR", "61000", "61002")
    wait_for(lambda: _rate().rate == Decimal("61001"))
    assert reference.kraken.connections_total == 1
    state = states_get(["kraken"])["kraken"]
    assert state["reconnects"] == 0 and "bid must be positive" in state["last_error"]


def test_a_silent_symbol_on_a_healthy_connection_goes_stale_and_falls_back(reference, feeds, settings):
    from providers.coingecko.poll import coingecko_poll

    settings.REFERENCE_MAX_AGE_MS = 1500
    feeds("kraken")
    wait_for(lambda: _rate("ETH/USD").usable)
    reference.kraken.silence("ETH/USD")
    coingecko_poll(force=True)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # the other symbols keep ticking
        reference.kraken.set_price("BTC/EUR", "60000", "60002")
        time.sleep(0.2)
    eth, btc = _rate("ETH/USD"), _rate("BTC/EUR")
    assert (eth.outcome, eth.source, eth.rate) == ("fallback", "coingecko", Decimal("3200.5"))
    assert eth.kraken.status == "stale" and btc.outcome == "ok"
    kraken = _source("kraken")
    assert kraken["connected"] is True and kraken["health"] == "stale"
    assert {s["pair"]: s["health"] for s in kraken["symbols"]}["ETH/USD"] == "stale"
    assert reference.kraken.connections_total == 1


def test_kraken_down_falls_back_to_coingecko_after_the_max_age_and_the_decision_records_it(reference, feeds, settings):
    """Seed 004: Kraken disconnects -> after the max age CoinGecko is used, the decision records
    `fallback: coingecko`, and Kraken's health shows down with its reconnect count."""
    from providers.coingecko.poll import coingecko_poll

    settings.REFERENCE_MAX_AGE_MS = 1000
    feeds("kraken")
    wait_for(lambda: _rate().usable)
    coingecko_poll(force=True)
    assert reference_rate_use("BTC/EUR", purpose="decision").source == "kraken"

    reference.kraken.set_down(True)
    wait_for(lambda: _source("kraken")["reconnects"] >= 2)
    assert _source("kraken")["health"] == "down"
    wait_for(lambda: _rate().outcome == "fallback", timeout=5)
    used = reference_rate_use("BTC/EUR", purpose="decision")
    assert (used.fallback, used.source, used.rate) == ("coingecko", "coingecko", Decimal("60003"))
    assert used.record()["fallback"] == "coingecko"
    kraken = _source("kraken")
    assert kraken["health"] == "down" and kraken["connected"] is False and kraken["reconnects"] >= 2
    assert "503" in kraken["last_error"]

    reference.kraken.set_down(False)  # it comes back: Kraken is primary again
    wait_for(lambda: _rate().source == "kraken", timeout=10)


def test_a_reconnect_storm_is_slowed_by_the_back_off_not_spun(reference, feeds, settings):
    """Seed 004: the server closes every connection shortly after it opens -> the back-off caps
    the rate. Only a connection that stayed up KRAKEN_STABLE_SECONDS resets it, so these short
    ones keep doubling the wait (0.1 s .. 0.8 s): at most 8 connections in 4 s (about 16 if each
    accepted connection restarted the back-off, hundreds without one)."""
    settings.KRAKEN_RECONNECT_MIN_SECONDS = 0.1
    settings.KRAKEN_RECONNECT_MAX_SECONDS = 0.8
    reference.kraken.storm(every=0.2)
    cpu = time.process_time()
    feeds("kraken")
    time.sleep(4.0)
    connections = reference.kraken.connections_total
    used = time.process_time() - cpu
    assert 2 <= connections <= 8, connections
    assert used < 2.0, f"{used:.2f} s of CPU in 4 s"
    state = states_get(["kraken"])["kraken"]
    assert state["reconnects"] >= connections - 1


def test_the_back_off_doubles_with_jitter_up_to_its_cap(settings):
    settings.KRAKEN_RECONNECT_MIN_SECONDS = 0.5
    settings.KRAKEN_RECONNECT_MAX_SECONDS = 30
    stream = KrakenStream(rng=random.Random(7))
    for attempts, full in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0)]:
        delays = [stream.backoff(attempts) for _ in range(200)]
        assert min(delays) >= full / 2 and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered


@pytest.mark.parametrize("paused_first", [False, True])
def test_a_paused_kraken_holds_no_connection_and_resumes(reference, feeds, operator_user, paused_first):
    from trading.services.reference import reference_source_pause, reference_source_resume

    if paused_first:
        reference_source_pause(actor=operator_user, source="kraken", reason="maintenance")
    feeds("kraken")
    if not paused_first:
        wait_for(lambda: reference.kraken.connections_open == 1)
        reference_source_pause(actor=operator_user, source="kraken", reason="maintenance")
    wait_for(lambda: reference.kraken.connections_open == 0)
    assert _source("kraken")["health"] == "paused" and _rate().kraken.status == "paused"
    reference_source_resume(actor=operator_user, source="kraken", reason="done")
    wait_for(lambda: reference.kraken.connections_open == 1)
    wait_for(lambda: _source("kraken")["health"] == "ok")
