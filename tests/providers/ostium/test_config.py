"""Ostium network configuration: testnet and mainnet validated offline (chain ids,
checksummed addresses from the SDK's own config), the localnet from its JSON file, and
the start-up chain-id check against a live chain."""

from __future__ import annotations

import pytest
from eth_utils import is_checksum_address

from providers.ostium.config import OstiumConfigError, network_config, network_validate, ostium_check


@pytest.fixture
def no_overrides(settings):
    settings.OSTIUM_RPC_URL = settings.OSTIUM_SUBMIT_RPC_URL = ""
    settings.OSTIUM_SUBGRAPH_URL = settings.OSTIUM_PRICE_URL = ""
    settings.OSTIUM_MAINNET_TRADER_ALLOWLIST = ["0x000000000000000000000000000000000000dEaD"]


def test_testnet_and_mainnet_offline(no_overrides):
    testnet, mainnet = network_config("testnet"), network_config("mainnet")
    assert (testnet.chain_id, mainnet.chain_id) == (421614, 42161)
    assert testnet.is_testnet and not mainnet.is_testnet and mainnet.is_mainnet
    for net in (testnet, mainnet):
        assert set(net.contracts) == {"usdc", "trading", "tradingStorage"}
        assert all(is_checksum_address(a) for a in net.contracts.values())
        assert net.rpc_url.startswith("https://") and net.submit_rpc_url == net.rpc_url
        assert net.subgraph_url.startswith("https://") and net.price_url.startswith("https://")
        assert network_validate(net) == []
    assert testnet.contracts["trading"] != mainnet.contracts["trading"]
    # the public Arbitrum One USDC
    assert mainnet.contracts["usdc"] == "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"


def test_overrides_come_from_settings(no_overrides, settings):
    settings.OSTIUM_RPC_URL = "https://rpc.example/arb"
    settings.OSTIUM_SUBMIT_RPC_URL = "https://submit.example/arb"
    settings.OSTIUM_PRICE_URL = "https://prices.example/"
    net = network_config("testnet")
    assert (net.rpc_url, net.submit_rpc_url, net.price_url) == (
        "https://rpc.example/arb",
        "https://submit.example/arb",
        "https://prices.example",
    )


def test_mainnet_without_an_allowlist_is_flagged(no_overrides, settings):
    settings.OSTIUM_MAINNET_TRADER_ALLOWLIST = []
    assert any("ALLOWLIST" in p for p in network_validate(network_config("mainnet")))


def test_bad_names_and_missing_localnet_file(settings, tmp_path):
    with pytest.raises(OstiumConfigError):
        network_config("goerli")
    settings.OSTIUM_LOCALNET_CONFIG = str(tmp_path / "missing.json")
    with pytest.raises(OstiumConfigError, match="not found"):
        network_config("localnet")
    assert ostium_check("localnet")["ok"] is False


def test_localnet_from_its_file_and_the_chain_id_check(ostium, settings):
    net = network_config()
    assert net.name == "localnet" and net.rpc_url == ostium.rpc_url
    assert net.contracts["trading"] == ostium.addresses.trading
    assert ostium_check()["ok"] is True
    # mainnet settings pointed at a 421614 RPC: the check says so
    settings.OSTIUM_RPC_URL = ostium.rpc_url
    settings.OSTIUM_MAINNET_TRADER_ALLOWLIST = ["0x000000000000000000000000000000000000dEaD"]
    result = ostium_check("mainnet")
    assert result["ok"] is False and result["chain_id"] == 421614
    assert any("is not 42161" in p for p in result["problems"])


def test_the_management_command_fails_on_a_wrong_chain(ostium, settings):
    from django.core.management import CommandError, call_command

    call_command("ostium_check")
    settings.OSTIUM_RPC_URL = ostium.rpc_url
    with pytest.raises(CommandError, match="chain id"):
        call_command("ostium_check", network="mainnet")


def test_the_breaker_opens_after_repeated_failures_and_recovers(settings):
    from providers.ostium.resilience import breaker_allow, breaker_record, breaker_reset, breaker_state

    settings.OSTIUM_BREAKER_THRESHOLD = 3
    settings.OSTIUM_BREAKER_COOLDOWN = 0.5
    breaker_reset("unit")
    for _ in range(3):
        assert breaker_allow("unit")
        breaker_record("unit", ok=False)
    assert breaker_state("unit")["state"] == "open" and not breaker_allow("unit")
    import time

    time.sleep(0.6)
    assert breaker_state("unit")["state"] == "half_open"
    assert breaker_allow("unit") and not breaker_allow("unit")  # one probe at a time
    breaker_record("unit", ok=True)
    assert breaker_state("unit")["state"] == "closed"


def test_reads_retry_with_jitter_but_not_forever(settings):
    from providers.ostium.resilience import retry_read

    settings.OSTIUM_READ_RETRIES = 2
    calls = []

    def flaky():
        calls.append(1)
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        retry_read(flaky, is_retryable=lambda exc: True)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(TimeoutError):
        retry_read(flaky, is_retryable=lambda exc: False)
    assert len(calls) == 1


@pytest.mark.django_db
def test_the_sync_job_is_skipped_where_the_keys_are_not(settings):
    from providers.ostium.sync import ostium_sync

    settings.OSTIUM_SERVICE_BASE_URL = "http://signer.internal"
    assert ostium_sync() == {"skipped": 1}
    settings.OSTIUM_SERVICE_BASE_URL = ""
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": False}
    assert ostium_sync() == {"skipped": 1}
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": True}
    assert ostium_sync()["errors"] == 0  # nothing to watch: no network access at all
