"""Session-scoped Ostium localnet with per-test evm_snapshot/evm_revert."""

from __future__ import annotations

import pytest

from providers.ostium.localnet import start_localnet


@pytest.fixture(scope="session")
def localnet_session():
    net = start_localnet(keeper_interval=None)
    print(f"\nOstium localnet ready in {net.startup_seconds:.2f}s at {net.rpc_url}")
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def localnet(localnet_session):
    """The shared localnet, rolled back after the test (chain via
    evm_revert; subgraph index rebuilt from the reverted chain; prices reset)."""
    net = localnet_session
    snapshot = net.snapshot()
    try:
        yield net
    finally:
        net.keeper.paused = False
        net.revert(snapshot)
        net.prices.reset()
