"""Ostium network configuration: localnet, testnet (Arbitrum Sepolia) and mainnet (Arbitrum One).

Public addresses and subgraph URLs come from the SDK's own config module (read through
`providers.ostium.client`, the only module that imports the SDK); settings override the
URLs. The localnet is described by the JSON file `python -m providers.ostium.localnet`
writes (`OSTIUM_LOCALNET_CONFIG`). Nothing here touches the network except `ostium_check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from eth_utils import is_checksum_address, to_checksum_address

from configuration.runtime import config_value
from providers.sandbox_config import project_path, sandbox_config_read

LOCALNET, TESTNET, MAINNET = "localnet", "testnet", "mainnet"
NETWORKS = (LOCALNET, TESTNET, MAINNET)
CHAIN_IDS = {LOCALNET: 421614, TESTNET: 421614, MAINNET: 42161}
# Public endpoints used when no URL is configured (Arbitrum's own RPCs; Ostium's price API).
DEFAULT_RPC_URLS = {TESTNET: "https://sepolia-rollup.arbitrum.io/rpc", MAINNET: "https://arb1.arbitrum.io/rpc"}
DEFAULT_PRICE_URL = "https://metadata-backend.prod.bedrock.ostium.io"
REQUIRED_CONTRACTS = ("usdc", "trading", "tradingStorage")


class OstiumConfigError(ValueError):
    pass


@dataclass(frozen=True)
class OstiumNetwork:
    name: str
    chain_id: int
    rpc_url: str
    submit_rpc_url: str
    subgraph_url: str
    price_url: str
    contracts: dict = field(default_factory=dict)  # usdc, trading, tradingStorage (checksummed)
    pairs: tuple = ()  # localnet only: ({"id", "symbol", "from", "to"}, ...)

    @property
    def is_testnet(self) -> bool:
        return self.chain_id != CHAIN_IDS[MAINNET]

    @property
    def is_mainnet(self) -> bool:
        return self.name == MAINNET

    def fingerprint(self) -> tuple:
        return (self.name, self.chain_id, self.rpc_url, self.submit_rpc_url, self.subgraph_url, self.price_url)


def _checksummed(contracts: dict, network: str) -> dict:
    out = {}
    for name in REQUIRED_CONTRACTS:
        address = contracts.get(name)
        if not address:
            raise OstiumConfigError(f"{network}: contract address {name!r} missing")
        try:
            out[name] = to_checksum_address(address)
        except ValueError as exc:
            raise OstiumConfigError(f"{network}: {name} is not an address: {address!r}") from exc
    return out


def localnet_config_path() -> Path:
    """Where the localnet writes its config (`OSTIUM_LOCALNET_CONFIG`, under the project)."""
    return project_path(getattr(settings, "OSTIUM_LOCALNET_CONFIG", ".var/ostium-localnet.json"))


def _localnet_file() -> dict:
    path = localnet_config_path()
    return sandbox_config_read(
        str(path),
        label="localnet config",
        start_hint=f"start `python -m providers.ostium.localnet --config-out {path}`",
        error=OstiumConfigError,
    )


def network_config(name: str | None = None) -> OstiumNetwork:
    """The network `name` (default settings.OSTIUM_NETWORK) with settings' URL overrides."""
    name = (name or settings.OSTIUM_NETWORK or "").strip().lower()
    if name not in NETWORKS:
        raise OstiumConfigError(f"OSTIUM_NETWORK must be one of {', '.join(NETWORKS)}, not {name!r}")
    rpc = config_value("OSTIUM_RPC_URL")
    subgraph = config_value("OSTIUM_SUBGRAPH_URL")
    price = config_value("OSTIUM_PRICE_URL")
    pairs: tuple = ()
    if name == LOCALNET:
        data = _localnet_file()
        chain_id = int(data.get("chain_id", CHAIN_IDS[LOCALNET]))
        rpc = rpc or data["rpc_url"]
        subgraph = subgraph or data["subgraph_url"]
        price = price or data["price_url"]
        contracts = data.get("sdk_contracts") or data.get("contracts") or {}
        pairs = tuple(data.get("pairs") or ())
    else:
        from providers.ostium.client import sdk_public_network

        public = sdk_public_network(name)
        chain_id = CHAIN_IDS[name]
        rpc = rpc or DEFAULT_RPC_URLS[name]
        subgraph = subgraph or public["graph_url"]
        price = price or DEFAULT_PRICE_URL
        contracts = public["contracts"]
    return OstiumNetwork(
        name=name,
        chain_id=chain_id,
        rpc_url=rpc,
        submit_rpc_url=settings.OSTIUM_SUBMIT_RPC_URL or rpc,
        subgraph_url=subgraph,
        price_url=price.rstrip("/"),
        contracts=_checksummed(contracts, name),
        pairs=pairs,
    )


def network_validate(net: OstiumNetwork) -> list[str]:
    """Offline checks (no network): chain id, checksummed addresses, URLs. Returns problems."""
    problems = []
    if net.chain_id != CHAIN_IDS[net.name]:
        problems.append(f"chain id {net.chain_id} is not {CHAIN_IDS[net.name]} ({net.name})")
    for key, address in net.contracts.items():
        if not is_checksum_address(address):
            problems.append(f"{key} address {address} is not checksummed")
    for label, url in (("rpc", net.rpc_url), ("subgraph", net.subgraph_url), ("price", net.price_url)):
        if not url.startswith(("http://", "https://")):
            problems.append(f"{label} URL {url!r} is not http(s)")
    if net.name == MAINNET and not settings.OSTIUM_MAINNET_TRADER_ALLOWLIST:
        problems.append("mainnet: OSTIUM_MAINNET_TRADER_ALLOWLIST is empty (every write will be refused)")
    return problems


def ostium_check(name: str | None = None) -> dict:
    """Start-up check: the config is valid, the RPC's chain id is the network's, and the RPC has
    the network's Trading contract at its address (the chain id alone does not tell Arbitrum
    Sepolia from the localnet, nor a live localnet from the one a stale localnet file names).
    Returns {"ok", "network", "chain_id", "expected_chain_id", "problems"}."""
    from providers.ostium.client import rpc_chain_id, rpc_code

    try:
        net = network_config(name)
    except OstiumConfigError as exc:
        return {"ok": False, "network": name or settings.OSTIUM_NETWORK, "problems": [str(exc)]}
    problems = network_validate(net)
    chain_id = None
    try:
        chain_id = rpc_chain_id(net.rpc_url)
    except Exception as exc:
        problems.append(f"RPC {net.rpc_url} unreachable: {type(exc).__name__}: {exc}"[:300])
    if chain_id is not None and chain_id != net.chain_id:
        problems.append(f"RPC chain id {chain_id} is not {net.chain_id} ({net.name})")
    elif chain_id is not None:
        trading = net.contracts["trading"]
        try:
            if not rpc_code(net.rpc_url, trading):
                hint = "a stale localnet config file?" if net.name == LOCALNET else "is it the localnet?"
                problems.append(f"no contract at the {net.name} Trading address {trading} on this RPC ({hint})")
        except Exception as exc:
            problems.append(f"RPC {net.rpc_url} unreachable: {type(exc).__name__}: {exc}"[:300])
    return {
        "ok": not problems,
        "network": net.name,
        "chain_id": chain_id,
        "expected_chain_id": net.chain_id,
        "problems": problems,
    }
