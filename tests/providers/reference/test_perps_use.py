"""Reference prices on the perps side: the risk engine's reference band (RISK_REFERENCE_BAND_BPS)
and the paper venue following the fair rates (PAPER_FEED=reference)."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from providers.models import PaperPriceState, ReferenceSample
from providers.reference.store import Quote, now_ms, quotes_put
from trading.models import Event, Order
from trading.risk import OrderIntent, ReferenceBand, RiskLimits, RiskSnapshot, risk_check

D = Decimal
OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "2"}


def _kraken(pair, price, age_ms=0):
    now = now_ms()
    quotes_put([Quote("kraken", pair, D(price), now - age_ms, now, "ws", D(price), D(price))])


@pytest.fixture
def band(reference, settings):
    from trading.selectors import risk_limits_cache_clear

    settings.RISK_REFERENCE_BAND_BPS = "50"
    settings.RISK_LIMITS_CACHE_SECONDS = 0
    risk_limits_cache_clear()
    return settings


@pytest.fixture
def trader_api(django_user_model, paper_markets):
    from providers.prices import price_set

    price_set("BTC-USD", D("60000"))
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="t", email="t@example.com"))
    return client


def test_a_venue_price_within_the_band_passes_and_the_order_records_the_sample(band, trader_api):
    _kraken("BTC/USD", "60200")  # 33 bps from the venue's 60000
    response = trader_api.post("/api/v1/trading/trades", OPEN, format="json")
    assert response.status_code == 202, response.json()
    accepted = Event.objects.get(topic="order.accepted")
    check = accepted.payload["reference_check"]
    assert (check["pair"], check["rate"], check["outcome"], check["band_bps"]) == ("BTC/USD", "60200", "ok", "50")
    sample = ReferenceSample.objects.get(pk=check["sample_id"])
    assert sample.rate == D("60200") and sample.pinned_for == "risk_check"


def test_a_venue_price_far_off_the_reference_is_refused_with_a_clear_code(band, trader_api):
    _kraken("BTC/USD", "61000")  # 163.93 bps
    response = trader_api.post("/api/v1/trading/trades", OPEN, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "RISK_REFERENCE_BAND"
    assert error["details"]["distance_bps"] == "163.93" and error["details"]["reference_rate"] == "61000"
    assert error["details"]["venue_price"] == "60000" and error["details"]["pair"] == "BTC/USD"
    assert not Order.objects.exists()
    assert Event.objects.get(topic="risk.rejected").payload["code"] == "RISK_REFERENCE_BAND"


def test_an_unusable_reference_refuses_new_exposure_but_not_a_close(band, trader_api, settings):
    settings.RISK_REFERENCE_BAND_BPS = "0"
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="test", reason="test")

    opened = trader_api.post("/api/v1/trading/trades", OPEN, format="json")
    assert opened.status_code == 202
    settings.RISK_REFERENCE_BAND_BPS = "50"
    _kraken("BTC/USD", "60000", age_ms=60_000)  # stale, and no CoinGecko: unhealthy
    refused = trader_api.post("/api/v1/trading/trades", OPEN, format="json")
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "RISK_REFERENCE_UNAVAILABLE" and error["details"]["outcome"] == "unhealthy"
    assert "kraken stale" in error["message"] and error["details"]["sample_id"]


def test_an_asset_without_a_reference_pair_and_a_zero_band_are_not_checked(band, trader_api, settings):
    from providers.prices import price_set

    price_set("ETH-USD", D("3000"))
    eth = trader_api.post("/api/v1/trading/trades", {**OPEN, "asset": "ETH-USD"}, format="json")
    assert (
        eth.status_code == 422 and eth.json()["error"]["code"] == "RISK_REFERENCE_UNAVAILABLE"
    )  # ETH/USD is configured
    settings.REFERENCE_PAIRS = ["BTC/EUR"]
    assert trader_api.post("/api/v1/trading/trades", {**OPEN, "asset": "ETH-USD"}, format="json").status_code == 202
    settings.RISK_REFERENCE_BAND_BPS = "0"
    settings.REFERENCE_PAIRS = ["BTC/USD"]
    samples = ReferenceSample.objects.count()
    assert trader_api.post("/api/v1/trading/trades", OPEN, format="json").status_code == 202
    assert "reference_check" not in Event.objects.filter(topic="order.accepted").last().payload
    assert ReferenceSample.objects.count() == samples  # no reference read at all


def test_the_pure_engine_checks_the_band_only_for_new_exposure():
    limits = RiskLimits(D(10**9), None, 100, D("0.05"), D("0.10"), D(10**9), 1000)
    far = ReferenceBand("BTC/USD", D(50), D("61000"), 7, "ok")
    snap = RiskSnapshot(limits, {}, D(100), frozenset(), D(0), 0, D("60000"), reference_band=far)
    intent = OrderIntent("paper", "BTC-USD", "long", "MARKET", D(100), D(2), False, D("0.01"))
    with pytest.raises(Exception) as refused:
        risk_check(intent, snap)
    assert refused.value.code == "RISK_REFERENCE_BAND" and refused.value.details["sample_id"] == 7
    closing = OrderIntent("paper", "BTC-USD", "long", "MARKET", D(0), D(2), True, D("0.01"))
    assert risk_check(closing, snap) is None


def test_the_paper_venue_follows_the_fair_rate_and_stops_rather_than_go_stale(reference, settings, paper_markets):
    from providers.prices import prices_tick

    settings.PAPER_FEED = "reference"
    _kraken("BTC/USD", "65432.123")
    ticks = {t.symbol: t for t in prices_tick()}
    btc = ticks["BTC-USD"]
    assert btc.price == D("65432.12") and btc.source.startswith("reference#")
    sample = ReferenceSample.objects.get(pk=int(btc.source.split("#")[1]))
    assert sample.pair == "BTC/USD" and sample.pinned_at is None  # marks do not pin
    assert ticks["EUR-USD"].source == "paper"  # no reference pair: the walk goes on
    assert PaperPriceState.objects.get(symbol="BTC-USD").source == btc.source

    _kraken("BTC/USD", "65432.123", age_ms=60_000)  # stale, no fallback: unhealthy
    assert "BTC-USD" not in {t.symbol for t in prices_tick()}
    assert PaperPriceState.objects.get(symbol="BTC-USD").price == D("65432.12")


def test_the_walk_is_the_default(reference, paper_markets):
    from providers.prices import prices_tick

    _kraken("BTC/USD", "65432.123")
    assert {t.source for t in prices_tick()} == {"paper"}
