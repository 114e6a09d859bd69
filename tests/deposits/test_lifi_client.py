"""The LI.FI client against the double: its wire (the API key header, 429 with ratelimit-reset,
the error body of a missing route) and where it finds LI.FI."""

from __future__ import annotations

import json

import pytest

from providers.lifi import client as lifi
from providers.lifi.sandbox import World, start_sandbox


@pytest.fixture
def double(settings, db):
    server = start_sandbox(world=World(api_key="k-123"))
    settings.LIFI_ENDPOINTS, settings.LIFI_API_URL = "live", server.url + "/v1"
    settings.LIFI_API_KEY = "k-123"
    yield server
    server.stop()


def quote(**extra):
    params = {
        "from_chain": 1,
        "to_chain": 42161,
        "from_token": "USDT",
        "to_token": "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
        "from_address": "0x1111111111111111111111111111111111111111",
        "to_address": "0x2222222222222222222222222222222222222222",
        "from_amount": 10_000_000,
    }
    return lifi.quote(**{**params, **extra})


def test_quote_sends_the_key_and_reads_the_step(double, settings):
    q = quote()
    assert q.from_chain_id == 1 and q.to_chain_id == 42161 and q.from_amount == 10_000_000
    assert q.to_amount == 9_970_000 and q.to_amount_min < q.to_amount and q.approval_address
    assert q.transaction_request["chainId"] == 1 and q.transaction_request["value"] == "0x0"
    path, params = double.world.calls[-1]
    assert path == "/v1/quote" and params["integrator"] == "tradedesk" and params["fromAmount"] == "10000000"
    settings.LIFI_API_KEY = "wrong"
    with pytest.raises(lifi.LifiError) as refused:
        quote()
    assert refused.value.status_code == 401


def test_no_route_429_and_down(double):
    with pytest.raises(lifi.LifiNoRoute) as none:
        quote(from_amount=10**14)  # a hundred million dollars
    assert none.value.body["code"] == 1002
    double.world.rate_limited, double.world.rate_limit_reset = 1, 42
    with pytest.raises(lifi.LifiError) as limited:
        lifi.status(tx_hash="0x" + "ab" * 32)
    assert limited.value.rate_limited and limited.value.retry_after == 42
    double.world.down = True
    with pytest.raises(lifi.LifiError) as down:
        lifi.chains()
    assert down.value.unavailable and not down.value.rate_limited
    double.world.down = False
    assert lifi.status(tx_hash="0x" + "ab" * 32).status == "NOT_FOUND"
    assert {c["id"] for c in lifi.chains()} >= {1, 42161}
    assert [t["symbol"] for t in lifi.tokens([42161])["42161"]][:2] == ["ETH", "USDC"]


def test_where_lifi_is(settings, tmp_path, db):
    settings.LIFI_ENDPOINTS = "live"
    assert lifi.base_url() == "https://li.quest/v1"  # LIFI_API_URL's default
    settings.LIFI_ENDPOINTS = "sandbox"
    settings.LIFI_SANDBOX_CONFIG = str(tmp_path / "lifi.json")
    with pytest.raises(lifi.LifiError) as missing:
        lifi.base_url()
    assert missing.value.unavailable
    (tmp_path / "lifi.json").write_text(json.dumps({"url": "http://127.0.0.1:9/v1"}))
    assert lifi.base_url() == "http://127.0.0.1:9/v1"


def test_lifi_disabled_by_its_kill_switch(double, settings):
    settings.LIFI_ENABLED = False
    with pytest.raises(lifi.LifiError) as off:
        quote()
    assert off.value.disabled and not double.world.calls
