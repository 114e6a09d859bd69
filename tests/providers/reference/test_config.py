"""Where the reference sources are: explicit URLs, the live ones, or the sandbox's address file."""

import json

import pytest

from providers.reference.config import (
    LIVE_COINGECKO,
    ReferenceConfigError,
    coingecko_url,
    kraken_rest_url,
    kraken_ws_url,
    pair_normalise,
)


@pytest.fixture
def endpoints(settings, tmp_path):
    settings.KRAKEN_WS_URL = settings.KRAKEN_REST_URL = settings.COINGECKO_API_URL = ""
    settings.REFERENCE_SANDBOX_CONFIG = str(tmp_path / "sandbox.json")
    return settings


def test_the_sandbox_file_names_the_doubles_and_its_absence_says_how_to_start_them(endpoints, tmp_path):
    endpoints.REFERENCE_ENDPOINTS = "sandbox"
    with pytest.raises(ReferenceConfigError, match="run `manage.py reference_sandbox` or set REFERENCE_ENDPOINTS=live"):
        kraken_ws_url()
    (tmp_path / "sandbox.json").write_text("{oops")
    with pytest.raises(ReferenceConfigError, match="is not JSON"):
        kraken_ws_url()
    (tmp_path / "sandbox.json").write_text(
        json.dumps({"kraken_ws_url": "ws://x/v2", "kraken_rest_url": "http://k/", "coingecko_url": "http://c/api/v3"})
    )
    assert (kraken_ws_url(), kraken_rest_url(), coingecko_url()) == ("ws://x/v2", "http://k", "http://c/api/v3")


def test_live_endpoints_follow_the_coingecko_plan_and_explicit_urls_win(endpoints):
    endpoints.REFERENCE_ENDPOINTS = "live"
    assert kraken_ws_url() == "wss://ws.kraken.com/v2" and kraken_rest_url() == "https://api.kraken.com"
    assert coingecko_url() == LIVE_COINGECKO["demo"]
    endpoints.COINGECKO_API_PLAN = "pro"
    assert coingecko_url() == "https://pro-api.coingecko.com/api/v3"
    endpoints.COINGECKO_API_PLAN = "enterprise"
    with pytest.raises(ReferenceConfigError):
        coingecko_url()
    endpoints.KRAKEN_WS_URL = "ws://127.0.0.1:1/v2"
    assert kraken_ws_url() == "ws://127.0.0.1:1/v2"


def test_pairs_are_normalised():
    assert pair_normalise(" btc-eure ") == "BTC/EURE" and pair_normalise("ETH/USD") == "ETH/USD"
    with pytest.raises(ValueError):
        pair_normalise("BTCEUR")
