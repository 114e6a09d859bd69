"""Safe 1.4.1 on the localnet: deploy the singleton, proxy factory and
compatibility fallback handler from safe-eth-py's bundled artifacts, create
Safes and execute owner-signed Safe transactions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from eth_account import Account
from safe_eth.eth import EthereumClient
from safe_eth.eth.contracts import get_safe_V1_4_1_contract
from safe_eth.safe import Safe
from safe_eth.safe.compatibility_fallback_handler import CompatibilityFallbackHandlerV141
from safe_eth.safe.proxy_factory import ProxyFactoryV141
from safe_eth.safe.safe import SafeV141
from web3 import Web3

NULL_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass
class SafeInfra:
    singleton: str
    proxy_factory: str
    fallback_handler: str


def deploy_safe_infra(rpc_url: str, deployer_key: str) -> SafeInfra:
    client = EthereumClient(rpc_url)
    account = Account.from_key(deployer_key)
    singleton = SafeV141.deploy_contract(client, account).contract_address
    factory = ProxyFactoryV141.deploy_contract(client, account).contract_address
    handler = CompatibilityFallbackHandlerV141.deploy_contract(client, account).contract_address
    return SafeInfra(singleton, factory, handler)


def create_safe(
    rpc_url: str,
    infra: SafeInfra,
    deployer_key: str,
    owners: list[str],
    threshold: int,
    salt_nonce: int | None = None,
) -> str:
    """Deploy a Safe proxy with the given owners/threshold; returns its address."""
    client = EthereumClient(rpc_url)
    w3 = client.w3
    setup_data = get_safe_V1_4_1_contract(w3, infra.singleton).encode_abi(
        "setup",
        [
            [Web3.to_checksum_address(o) for o in owners],
            threshold,
            NULL_ADDRESS,
            b"",
            infra.fallback_handler,
            NULL_ADDRESS,
            0,
            NULL_ADDRESS,
        ],
    )
    factory = ProxyFactoryV141(infra.proxy_factory, client)
    sent = factory.deploy_proxy_contract_with_nonce(
        Account.from_key(deployer_key),
        infra.singleton,
        initializer=bytes.fromhex(setup_data[2:]),
        salt_nonce=salt_nonce if salt_nonce is not None else secrets.randbits(64),
    )
    receipt = w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1:
        raise RuntimeError("Safe creation reverted")
    return sent.contract_address


def exec_safe_tx(
    rpc_url: str,
    safe_address: str,
    to: str,
    data: bytes | str,
    owner_keys: list[str],
    sender_key: str | None = None,
    value: int = 0,
) -> dict:
    """Build a SafeTx, sign it with the owners' keys (eth_account, via
    safe-eth-py) and execute it. Returns the receipt; raises if the inner
    call failed (ExecutionFailure)."""
    client = EthereumClient(rpc_url)
    safe = Safe(Web3.to_checksum_address(safe_address), client)
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    safe_tx = safe.build_multisig_tx(Web3.to_checksum_address(to), value, data)
    for key in owner_keys:
        safe_tx.sign(key)
    tx_hash, _ = safe_tx.execute(sender_key or owner_keys[0], tx_gas=1_500_000)
    receipt = client.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1:
        raise RuntimeError(f"Safe transaction {tx_hash.hex()} reverted")
    failure_topic = Web3.keccak(text="ExecutionFailure(bytes32,uint256)")
    for log in receipt["logs"]:
        if log["topics"] and bytes(log["topics"][0]) == bytes(failure_topic):
            raise RuntimeError(f"Safe transaction {tx_hash.hex()} executed with ExecutionFailure")
    return receipt
