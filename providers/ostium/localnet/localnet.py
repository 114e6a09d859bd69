"""One-call Ostium localnet: anvil chain + contracts + keeper + subgraph +
price API (+ Safe 1.4.1 and Multicall3)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from web3 import Web3

from .anvil import ARBITRUM_SEPOLIA_CHAIN_ID, Anvil
from .artifacts import abi
from .config import DEFAULT_PAIRS, PairSpec
from .deploy import TX_FEES, Addresses, deploy_ostium
from .indexer import Indexer
from .keeper import Keeper
from .price_api import PriceServer
from .prices import PriceSource, RandomWalker
from .safe import SafeInfra, create_safe, deploy_safe_infra, exec_safe_tx
from .subgraph import SubgraphServer

log = logging.getLogger(__name__)

ROLE_DEPLOYER, ROLE_KEEPER = 0, 1


@dataclass(frozen=True)
class LocalAccount:
    name: str
    address: str
    private_key: str

    def as_dict(self) -> dict:
        return {"name": self.name, "address": self.address, "private_key": self.private_key}


def derive_accounts(mnemonic: str, count: int) -> list[LocalAccount]:
    """Anvil's dev accounts: BIP-44 m/44'/60'/0'/0/i from the mnemonic."""
    seed = seed_from_mnemonic(mnemonic, "")  # one PBKDF2 run for all accounts
    out = []
    for i in range(count):
        acct = Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}"))
        name = {ROLE_DEPLOYER: "deployer", ROLE_KEEPER: "keeper"}.get(i, f"trader{i - 1}")
        out.append(LocalAccount(name, acct.address, acct.key.to_0x_hex()))
    return out


@dataclass
class Localnet:
    anvil: Anvil
    w3: Web3
    addresses: Addresses
    safe_infra: SafeInfra
    accounts: list[LocalAccount]
    pairs: tuple[PairSpec, ...]
    prices: PriceSource
    keeper: Keeper
    indexer: Indexer
    subgraph: SubgraphServer
    price_server: PriceServer
    walker: RandomWalker | None = None
    startup_seconds: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    # ----- basic facts -----

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    @property
    def chain_id(self) -> int:
        return self.anvil.chain_id

    @property
    def subgraph_url(self) -> str:
        return self.subgraph.url

    @property
    def price_url(self) -> str:
        return self.price_server.url

    @property
    def deployer(self) -> LocalAccount:
        return self.accounts[ROLE_DEPLOYER]

    @property
    def keeper_account(self) -> LocalAccount:
        return self.accounts[ROLE_KEEPER]

    @property
    def traders(self) -> list[LocalAccount]:
        return self.accounts[2:]

    def contract(self, name: str):
        """Web3 contract for one of ours: usdc, trading, tradingStorage, callbacks, priceUpKeep, registry."""
        artifact = {
            "usdc": "MockUSDC",
            "trading": "OstiumTrading",
            "tradingStorage": "OstiumTradingStorage",
            "callbacks": "OstiumTradingCallbacks",
            "priceUpKeep": "OstiumPriceUpKeep",
            "registry": "OstiumRegistry",
            "faucet": "OstiumFaucet",
            "multicall3": "Multicall3",
        }[name]
        return self.w3.eth.contract(address=getattr(self.addresses, name), abi=abi(artifact))

    def network_config(self):
        """An ostium_python_sdk NetworkConfig pointing at this localnet."""
        from ostium_python_sdk import NetworkConfig

        return NetworkConfig(graph_url=self.subgraph_url, contracts=self.addresses.sdk_contracts(), is_testnet=True)

    def sdk(self, private_key: str, use_delegation: bool = False, verbose: bool = False):
        """An unmodified OstiumSDK wired to this localnet (RPC, submit RPC,
        subgraph and price API)."""
        from ostium_python_sdk import OstiumSDK

        sdk = OstiumSDK(
            self.network_config(),
            private_key=private_key,
            rpc_url=self.rpc_url,
            submit_rpc_url=self.rpc_url,
            use_delegation=use_delegation,
            verbose=verbose,
        )
        # The SDK's Price client has no URL parameter; point it at our API.
        sdk.price.base_url = self.price_url
        return sdk

    def config(self) -> dict:
        """JSON-serialisable network description."""
        return {
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "subgraph_url": self.subgraph_url,
            "price_url": self.price_url,
            "contracts": self.addresses.as_dict(),
            "sdk_contracts": self.addresses.sdk_contracts(),
            "pairs": [
                {"id": i, "symbol": p.symbol, "from": p.from_, "to": p.to, "feed_id": p.feed_id}
                for i, p in enumerate(self.pairs)
            ],
            "accounts": [a.as_dict() for a in self.accounts],
            "startup_seconds": round(self.startup_seconds, 3),
        }

    def write_config(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config(), indent=2) + "\n", encoding="utf-8")
        return path

    # ----- prices -----

    def set_price(self, symbol: str, price: Decimal | int | float | str) -> None:
        self.prices.set_price(symbol, price)

    def get_price(self, symbol: str) -> Decimal:
        return self.prices.get_price(symbol)

    def pair_index(self, symbol: str) -> int:
        symbol = PriceSource.normalise(symbol)
        for i, p in enumerate(self.pairs):
            if p.symbol == symbol:
                return i
        raise KeyError(symbol)

    # ----- funding -----

    def fund(
        self, address: str, usdc: Decimal | int | str = 0, eth: Decimal | int | str = 0, wait: bool = True
    ) -> str | None:
        """Mint USDC to and/or add ETH to ``address``; returns the mint's tx hash."""
        address = Web3.to_checksum_address(address)
        tx = None
        if usdc:
            amount = int(Decimal(str(usdc)) * 10**6)
            tx = (
                self.contract("usdc")
                .functions.mint(address, amount)
                .transact({"from": self.deployer.address, "gas": 200_000, **TX_FEES})
            )
            if wait:
                receipt = self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
                if receipt["status"] != 1:
                    raise RuntimeError(f"USDC mint to {address} reverted")
        if eth:
            balance = self.w3.eth.get_balance(address) + Web3.to_wei(Decimal(str(eth)), "ether")
            self.w3.provider.make_request("anvil_setBalance", [address, hex(balance)])
        return tx.to_0x_hex() if tx is not None else None

    def usdc_balance(self, address: str) -> Decimal:
        raw = self.contract("usdc").functions.balanceOf(Web3.to_checksum_address(address)).call()
        return Decimal(raw) / Decimal(10**6)

    # ----- Safe -----

    def create_safe(self, owners: list[str], threshold: int = 1) -> str:
        return create_safe(self.rpc_url, self.safe_infra, self.deployer.private_key, owners, threshold)

    def exec_safe_tx(self, safe_address: str, to: str, data, owner_keys: list[str], value: int = 0) -> dict:
        return exec_safe_tx(self.rpc_url, safe_address, to, data, owner_keys, value=value)

    # ----- chain control -----

    def run_keeper(self) -> list:
        return self.keeper.run_once()

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: str) -> None:
        result = self.w3.provider.make_request("evm_revert", [snapshot_id])
        if not result.get("result"):
            raise RuntimeError(f"evm_revert({snapshot_id}) failed: {result}")
        self.indexer.reset()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for part in (self.walker, self.keeper, self.subgraph, self.price_server):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("error stopping %s", part)
        self.anvil.stop()

    def __enter__(self) -> Localnet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_localnet(
    pairs: tuple[PairSpec, ...] = DEFAULT_PAIRS,
    accounts: int = 10,
    keeper_interval: float | None = 0.5,
    random_walk_interval: float | None = None,
    price_seed: int | None = None,
    spread_p: Decimal = Decimal("0"),
    fund_traders_usdc: Decimal | int = 100_000,
    chain_id: int = ARBITRUM_SEPOLIA_CHAIN_ID,
    price_source: PriceSource | None = None,
) -> Localnet:
    """Start anvil, deploy everything and start the keeper, subgraph and price
    API. ``keeper_interval=None`` leaves the keeper idle (call
    ``localnet.run_keeper()``); ``random_walk_interval`` moves prices.
    ``price_source`` plugs in another price source (any PriceSource
    subclass: ``get_price``, ``set_price``, ``quote``, ``quotes``, ``step``)."""
    started = time.monotonic()
    anvil = Anvil(chain_id=chain_id, accounts=accounts)
    started_parts: list = []
    try:
        w3 = _web3(anvil.rpc_url)
        accts = derive_accounts(anvil.mnemonic, accounts)
        deployer, keeper_acct = accts[ROLE_DEPLOYER], accts[ROLE_KEEPER]
        addresses = deploy_ostium(w3, deployer.address, keeper_acct.address, pairs)
        infra = deploy_safe_infra(anvil.rpc_url, deployer.private_key)
        addresses.safeSingleton = infra.singleton
        addresses.safeProxyFactory = infra.proxy_factory
        addresses.safeFallbackHandler = infra.fallback_handler

        prices = price_source or PriceSource(pairs, spread_p=spread_p, seed=price_seed)
        # each threaded component gets its own HTTP session
        keeper = Keeper(_web3(anvil.rpc_url), addresses, keeper_acct.address, prices, pairs)
        indexer = Indexer(_web3(anvil.rpc_url), addresses, pairs)
        subgraph = SubgraphServer(indexer).start()
        started_parts.append(subgraph)
        price_server = PriceServer(prices, pairs).start()
        started_parts.append(price_server)
        net = Localnet(anvil, w3, addresses, infra, accts, pairs, prices, keeper, indexer, subgraph, price_server)
        if fund_traders_usdc:
            mints = [net.fund(t.address, usdc=fund_traders_usdc, wait=False) for t in net.traders]
            for tx in mints:
                if w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)["status"] != 1:
                    raise RuntimeError("funding a demo trader failed")
        indexer.sync()
        if random_walk_interval:
            net.walker = RandomWalker(prices, random_walk_interval).start()
            started_parts.append(net.walker)
        if keeper_interval:
            keeper.start(keeper_interval)
            started_parts.append(keeper)
        net.startup_seconds = time.monotonic() - started
        return net
    except BaseException:
        for part in reversed(started_parts):
            try:
                part.stop()
            except Exception:
                log.exception("error stopping %s", part)
        anvil.stop()
        raise


def _web3(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
