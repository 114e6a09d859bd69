"""Deposit tests: the Ostium localnet plays Arbitrum (real Safe 1.4.1 contracts and MockUSDC on
anvil) and the LI.FI double answers quotes and status, delivering by minting USDC there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.delegations.conftest import chain_env, new_owner, one_owner_safe, user_client  # noqa: F401
from tests.providers.ostium.conftest import localnet, localnet_session, ostium  # noqa: F401

BASE = "/api/v1/deposits"


@dataclass
class Lifi:
    world: object
    url: str
    chain_id: int  # the localnet's (our "arbitrum")
    usdc: str


@pytest.fixture
def lifi(chain_env, settings):  # noqa: F811
    """The LI.FI double in front of the localnet: it knows the localnet chain (ETH and MockUSDC),
    reads sent transactions from its RPC and mints USDC there when a transfer completes."""
    from django.core.cache import cache

    from providers.lifi.sandbox import World, start_sandbox
    from providers.lifi.sandbox.world import NATIVE

    net = chain_env.net
    world = World()
    world.chain_add(net.chain_id, "arbl", "Arbitrum (localnet)")
    world.token_add(net.chain_id, NATIVE, "ETH", 18)
    world.token_add(net.chain_id, net.addresses.usdc, "USDC", 6)
    world.rpc[net.chain_id] = net.rpc_url
    world.minter = net.deployer.address
    server = start_sandbox(world=world)
    settings.LIFI_ENDPOINTS, settings.LIFI_API_URL = "live", server.url + "/v1"
    settings.DEPOSIT_POLL_BACKOFF_SECONDS = 0.0
    cache.delete_many([f"lifi:tokens:{c}" for c in (1, net.chain_id)] + ["lifi:rate_limited_until"])
    try:
        yield Lifi(world=world, url=server.url, chain_id=net.chain_id, usdc=net.addresses.usdc)
    finally:
        server.stop()
        cache.delete_many([f"lifi:tokens:{c}" for c in (1, net.chain_id)] + ["lifi:rate_limited_until"])


@pytest.fixture
def eoa(chain_env, django_user_model):  # noqa: F811
    """(owner account, user, JWT client): a user signed in with a funded wallet."""
    owner: LocalAccount = new_owner(chain_env.net)
    chain_env.net.fund(owner.address, eth=10)
    user, client = user_client(django_user_model, owner, username="eoa")
    return owner, user, client


def send(net, account: LocalAccount, request: dict) -> str:
    """Sign and send a transaction request (LI.FI's shape: hex value) from `account`."""
    w3 = net.w3
    tx = {
        "to": w3.to_checksum_address(request["to"]),
        "data": request["data"],
        "value": int(str(request.get("value") or "0x0"), 16),
        "chainId": int(request["chainId"]),
        "nonce": w3.eth.get_transaction_count(account.address),
        "gas": 500_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 0,
    }
    signed = Account.sign_transaction(tx, account.key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)
    assert receipt["status"] == 1
    return tx_hash.to_0x_hex()


def create(client, expected=201, **body):
    payload = {"token_symbol": "ETH", "chain": "arbitrum", "amount": "0.1", **body}
    response = client.post(BASE, payload, format="json")
    assert response.status_code == expected, response.content
    return response.json()


def submitted(client, deposit_id, tx_hash, expected=200):
    response = client.post(f"{BASE}/{deposit_id}/submitted", {"tx_hash": tx_hash}, format="json")
    assert response.status_code == expected, response.content
    return response.json()


def topics(deposit_id) -> list[str]:
    from trading.models import Event

    return list(
        Event.objects.filter(correlation_id=f"deposit-{deposit_id}").order_by("id").values_list("topic", flat=True)
    )
