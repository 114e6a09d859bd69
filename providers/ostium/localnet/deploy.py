"""Deploy the localnet contracts onto a fresh chain."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from web3 import Web3

from .artifacts import abi, load_artifact
from .config import DEFAULT_PAIRS, MULTICALL3_ADDRESS, SDK_TESTNET_FAUCET_ADDRESS, PairSpec

VAULT_LIQUIDITY_USDC = 100_000_000 * 10**6  # pays traders' profits
FAUCET_AMOUNT_USDC = 10_000 * 10**6
MAX_ALLOWED_COLLATERAL_USDC = 1_000_000 * 10**6
MARKET_ORDERS_TIMEOUT_BLOCKS = 30
TRIGGER_TIMEOUT_BLOCKS = 30


# Explicit EIP-1559 fees for our own transactions (anvil's suggested
# priority fee can exceed web3's computed max fee at a tiny base fee).
TX_FEES = {"maxFeePerGas": 1_000_000_000, "maxPriorityFeePerGas": 0}


def _b32(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


@dataclass
class Addresses:
    usdc: str
    registry: str
    trading: str
    tradingStorage: str
    callbacks: str
    priceUpKeep: str
    faucet: str
    multicall3: str
    safeSingleton: str = ""
    safeProxyFactory: str = ""
    safeFallbackHandler: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def sdk_contracts(self) -> dict:
        """The ``contracts`` mapping for ostium_python_sdk.NetworkConfig."""
        return {"usdc": self.usdc, "trading": self.trading, "tradingStorage": self.tradingStorage}


def create_address(sender: str, nonce: int) -> str:
    """Address of the contract created by ``sender``'s transaction ``nonce``."""
    if nonce == 0:
        nonce_rlp = b"\x80"
    elif nonce < 0x80:
        nonce_rlp = bytes([nonce])
    else:
        raw_nonce = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        nonce_rlp = bytes([0x80 + len(raw_nonce)]) + raw_nonce
    payload = b"\x94" + bytes.fromhex(sender[2:]) + nonce_rlp  # rlp([address, nonce])
    return Web3.to_checksum_address(Web3.keccak(bytes([0xC0 + len(payload)]) + payload)[12:])


class Deployer:
    """Sends the deployer's transactions with fixed gas limits (no estimate
    round trips). Calls are pipelined: ``transact`` only sends, ``flush``
    waits for all receipts and checks that none reverted."""

    DEPLOY_GAS = 8_000_000
    CALL_GAS = 1_000_000

    def __init__(self, w3: Web3, deployer: str):
        self.w3 = w3
        self.deployer = Web3.to_checksum_address(deployer)
        self._pending: list = []

    def _wait(self, tx_hash):
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"deployment transaction {tx_hash.hex()} reverted")
        return receipt

    def deploy(self, name: str, *args) -> str:
        """Send a deployment (pipelined) and return the address it will have."""
        nonce = self.w3.eth.get_transaction_count(self.deployer, "pending")
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        params = {"from": self.deployer, "gas": self.DEPLOY_GAS, "nonce": nonce, **TX_FEES}
        self._pending.append(factory.constructor(*args).transact(params))
        return create_address(self.deployer, nonce)

    def transact(self, fn) -> None:
        self._pending.append(fn.transact({"from": self.deployer, "gas": self.CALL_GAS, **TX_FEES}))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for tx_hash in pending:
            self._wait(tx_hash)

    def contract(self, name: str, address: str):
        return self.w3.eth.contract(address=address, abi=abi(name))


def deploy_ostium(
    w3: Web3,
    deployer: str,
    keeper: str,
    pairs: tuple[PairSpec, ...] = DEFAULT_PAIRS,
) -> Addresses:
    d = Deployer(w3, deployer)
    registry = d.deploy("OstiumRegistry")
    usdc = d.deploy("MockUSDC")
    storage = d.deploy("OstiumTradingStorage", registry, usdc)
    upkeep = d.deploy("OstiumPriceUpKeep", registry)
    trading = d.deploy(
        "OstiumTrading",
        registry,
        MAX_ALLOWED_COLLATERAL_USDC,
        MARKET_ORDERS_TIMEOUT_BLOCKS,
        TRIGGER_TIMEOUT_BLOCKS,
    )
    callbacks = d.deploy("OstiumTradingCallbacks", registry)

    reg = d.contract("OstiumRegistry", registry)
    for name, address in (
        ("trading", trading),
        ("tradingStorage", storage),
        ("callbacks", callbacks),
        ("priceUpKeep", upkeep),
        ("tradesUpKeep", keeper),
        ("priceKeeper", keeper),
        ("usdc", usdc),
    ):
        d.transact(reg.functions.registerContract(_b32(name), Web3.to_checksum_address(address)))

    st = d.contract("OstiumTradingStorage", storage)
    for p in pairs:
        d.transact(
            st.functions.addPair(
                p.from_, p.to, bytes.fromhex(p.feed_id[2:]), p.group.min_leverage, p.group.max_leverage, p.min_lev_pos
            )
        )
    d.transact(d.contract("MockUSDC", usdc).functions.mint(storage, VAULT_LIQUIDITY_USDC))
    d.flush()

    # The SDK's Faucet class talks to a fixed address; install our faucet there.
    faucet_template = d.deploy("OstiumFaucet", registry, usdc, FAUCET_AMOUNT_USDC, 0)
    d.flush()
    w3.provider.make_request(
        "anvil_setCode", [SDK_TESTNET_FAUCET_ADDRESS, w3.eth.get_code(faucet_template).to_0x_hex()]
    )
    # Multicall3 at its canonical address (no immutables, so the runtime code is enough).
    w3.provider.make_request("anvil_setCode", [MULTICALL3_ADDRESS, load_artifact("Multicall3")["deployedBytecode"]])

    return Addresses(
        usdc=usdc,
        registry=registry,
        trading=trading,
        tradingStorage=storage,
        callbacks=callbacks,
        priceUpKeep=upkeep,
        faucet=SDK_TESTNET_FAUCET_ADDRESS,
        multicall3=MULTICALL3_ADDRESS,
    )
