"""The LI.FI double's state: chains, tokens and prices, the quotes it gave, the transfers it is
following, and the scripts tests and the demo set.

A quote's `transactionRequest` calls the LI.FI diamond with calldata carrying a marker and the
quote id. When `/v1/status` is asked about a transaction hash it does not know, the double reads
the transaction from the chain's RPC (when it has one for that chain) and finds the marker in its
input — directly, or inside a Safe's `execTransaction` — so a transaction really sent on the
localnet is what starts a transfer. Without an RPC, `transfer_seen(tx_hash, quote_id)` tells it.

A transfer stays PENDING (WAIT_SOURCE_CONFIRMATIONS, then WAIT_DESTINATION_TRANSACTION) for its
script's `pending_for` seconds (None: forever), then ends as scripted: DONE/COMPLETED mints the
quoted `toAmount` (or `deliver_raw`) of the destination token to `toAddress` on the destination
chain's RPC (the localnet's MockUSDC has a public `mint`), DONE/PARTIAL delivers another token,
DONE/REFUNDED and FAILED/<substatus> deliver nothing."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from eth_utils import keccak

NATIVE = "0x0000000000000000000000000000000000000000"
DIAMOND = "0x1231DEB6f5749EF6cE6943a275A1D3E7486F4EaE"  # LI.FI diamond (same address on EVM chains)
MARKER = keccak(text="tradedesk.lifi-sandbox.quote")  # 32 bytes before the quote id in calldata
SELECTOR = keccak(text="swapTokensGeneric(bytes32,bytes32)")[:4]
USDC_ARBITRUM = "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
USDC_E_ARBITRUM = "0xFF970A61A04b1cA14834A43f5dE4533eBDDB5CC8"

DEFAULT_CHAINS = (
    (1, "eth", "Ethereum", "ETH"),
    (42161, "arb", "Arbitrum", "ETH"),
    (10, "opt", "Optimism", "ETH"),
    (8453, "bas", "Base", "ETH"),
    (137, "pol", "Polygon", "POL"),
    (56, "bsc", "BSC", "BNB"),
)
DEFAULT_TOKENS = {
    1: (
        (NATIVE, "ETH", 18),
        ("0xdAC17F958D2ee523a2206206994597C13D831ec7", "USDT", 6),
        ("0x6B175474E89094C44Da98b954EedeAC495271d0F", "DAI", 18),
        ("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USDC", 6),
    ),
    42161: (
        (NATIVE, "ETH", 18),
        (USDC_ARBITRUM, "USDC", 6),
        (USDC_E_ARBITRUM, "USDC.e", 6),
        ("0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9", "USDT", 6),
    ),
    10: ((NATIVE, "ETH", 18), ("0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "USDC", 6)),
    8453: ((NATIVE, "ETH", 18), ("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USDC", 6)),
    137: ((NATIVE, "POL", 18), ("0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USDC", 6)),
    56: ((NATIVE, "BNB", 18), ("0x55d398326f99059fF775485246999027B3197955", "USDT", 18)),
}
DEFAULT_PRICES = {"ETH": "3000", "USDT": "1", "DAI": "1", "USDC": "1", "USDC.e": "1", "POL": "0.5", "BNB": "600"}


@dataclass
class Script:
    """How the next transfer (or the one of `tx_hash`) goes."""

    outcome: str = "COMPLETED"  # COMPLETED | PARTIAL | REFUNDED | FAILED
    substatus: str = ""  # FAILED's sub-status (default UNKNOWN_FAILED_ERROR)
    pending_for: float | None = 0.0  # seconds PENDING before the outcome; None: never ends
    deliver_raw: int | None = None  # amount delivered on COMPLETED (default: the quoted toAmount)


@dataclass
class QuoteRecord:
    id: str
    from_chain: int
    to_chain: int
    from_token: dict
    to_token: dict
    from_address: str
    to_address: str
    from_amount: int
    to_amount: int
    to_amount_min: int
    slippage: Decimal
    created_at: float


@dataclass
class Transfer:
    tx_hash: str
    quote: QuoteRecord
    script: Script
    seen_at: float
    status: str = "PENDING"
    substatus: str = "WAIT_SOURCE_CONFIRMATIONS"
    receiving_tx: str = ""
    received_raw: int = 0
    received_token: dict = field(default_factory=dict)
    error: str = ""


class World:
    def __init__(self, *, chains=DEFAULT_CHAINS, tokens=None, prices=None, api_key: str = ""):
        self.lock = threading.RLock()
        self.chains = [
            {"id": cid, "key": key, "name": name, "chainType": "EVM", "coin": coin, "mainnet": True}
            for cid, key, name, coin in chains
        ]
        self.tokens: dict[int, list[dict]] = {}
        for cid, rows in (tokens or DEFAULT_TOKENS).items():
            for address, symbol, decimals in rows:
                self.token_add(cid, address, symbol, decimals)
        self.prices = {k: Decimal(v) for k, v in (prices or DEFAULT_PRICES).items()}
        self.api_key = api_key
        self.fee = Decimal("0.003")
        self.quote_ttl: float | None = None  # informational; LI.FI quotes carry no expiry field
        self.quotes: dict[str, QuoteRecord] = {}
        self.transfers: dict[str, Transfer] = {}
        self.scripts: deque[Script] = deque()
        self.tx_scripts: dict[str, Script] = {}
        self.quote_slippage: Decimal | None = None  # force a wider toAmountMin than asked
        self.no_route_above_usd: Decimal = Decimal("1000000")
        self.rate_limited = 0  # the next N requests answer 429
        self.rate_limit_reset = 2.0
        self.down = False  # answer 503 to everything
        self.rpc: dict[int, str] = {}  # chain id → JSON-RPC URL (reads transactions, delivers)
        self.minter: str = ""  # an unlocked account on the destination RPC that sends the mints
        self.calls: list[tuple[str, dict]] = []

    # --- configuration ------------------------------------------------------------------------

    def chain_add(self, chain_id: int, key: str, name: str, coin: str = "ETH") -> None:
        with self.lock:
            self.chains = [c for c in self.chains if c["id"] != chain_id]
            self.chains.append(
                {"id": chain_id, "key": key, "name": name, "chainType": "EVM", "coin": coin, "mainnet": False}
            )

    def token_add(self, chain_id: int, address: str, symbol: str, decimals: int) -> None:
        with self.lock:
            rows = [t for t in self.tokens.get(chain_id, []) if t["address"].lower() != address.lower()]
            rows.append(
                {
                    "address": address,
                    "chainId": chain_id,
                    "symbol": symbol,
                    "decimals": decimals,
                    "name": symbol,
                    "coinKey": symbol,
                    "priceUSD": "",
                }
            )
            self.tokens[chain_id] = rows

    def script_next(self, **kwargs) -> Script:
        script = Script(**kwargs)
        with self.lock:
            self.scripts.append(script)
        return script

    # --- lookups ------------------------------------------------------------------------------

    def chain_id(self, value: str) -> int | None:
        for chain in self.chains:
            if str(chain["id"]) == str(value) or chain["key"] == str(value).lower():
                return chain["id"]
        return None

    def token(self, chain_id: int, value: str) -> dict | None:
        for token in self.tokens.get(chain_id, []):
            if token["address"].lower() == value.lower() or token["symbol"].lower() == value.lower():
                return token
        return None

    def price(self, token: dict) -> Decimal:
        return self.prices.get(token["symbol"], Decimal("0"))

    # --- quotes -------------------------------------------------------------------------------

    def quote_make(
        self, *, from_chain, to_chain, from_token, to_token, from_address, to_address, from_amount, slippage
    ) -> QuoteRecord:
        value_usd = Decimal(from_amount) / Decimal(10) ** from_token["decimals"] * self.price(from_token)
        to_price = self.price(to_token)
        if to_price <= 0 or value_usd <= 0:
            raise ValueError("no price")
        out = value_usd * (1 - self.fee) / to_price * Decimal(10) ** to_token["decimals"]
        to_amount = int(out)
        slip = self.quote_slippage if self.quote_slippage is not None else slippage
        record = QuoteRecord(
            id=str(uuid.uuid4()),
            from_chain=from_chain,
            to_chain=to_chain,
            from_token=from_token,
            to_token=to_token,
            from_address=from_address,
            to_address=to_address,
            from_amount=from_amount,
            to_amount=to_amount,
            to_amount_min=int(out * (1 - slip)),
            slippage=slip,
            created_at=time.time(),
        )
        with self.lock:
            self.quotes[record.id] = record
        return record

    @staticmethod
    def calldata(quote_id: str) -> bytes:
        return SELECTOR + MARKER + uuid.UUID(quote_id).bytes.rjust(32, b"\0")

    def quote_in(self, data: bytes) -> QuoteRecord | None:
        at = data.find(MARKER)
        if at < 0:
            return None
        raw = data[at + 32 : at + 64]
        if len(raw) < 32:
            return None
        with self.lock:
            return self.quotes.get(str(uuid.UUID(bytes=raw[16:])))

    # --- transfers ----------------------------------------------------------------------------

    def transfer_seen(self, tx_hash: str, quote_id: str, *, script: Script | None = None) -> Transfer:
        with self.lock:
            key = tx_hash.lower()
            if key in self.transfers:
                return self.transfers[key]
            script = script or self.tx_scripts.pop(key, None) or (self.scripts.popleft() if self.scripts else Script())
            transfer = Transfer(tx_hash=tx_hash, quote=self.quotes[quote_id], script=script, seen_at=time.time())
            self.transfers[key] = transfer
            return transfer

    def transfer_find(self, tx_hash: str, from_chain: int | None) -> Transfer | None:
        with self.lock:
            found = self.transfers.get(tx_hash.lower())
        if found is not None:
            return found
        if not re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash):
            return None
        for chain_id, url in list(self.rpc.items()):
            if from_chain is not None and chain_id != from_chain:
                continue
            tx = _rpc(url, "eth_getTransactionByHash", [tx_hash])
            if not tx or tx.get("blockNumber") is None:
                continue
            receipt = _rpc(url, "eth_getTransactionReceipt", [tx_hash])
            if not receipt or int(receipt.get("status", "0x0"), 16) != 1:
                continue
            quote = self.quote_in(bytes.fromhex(tx.get("input", "0x")[2:]))
            if quote is not None:
                return self.transfer_seen(tx_hash, quote.id)
        return None

    def advance(self, transfer: Transfer) -> Transfer:
        """Move a PENDING transfer on when its time has come (delivering on the destination chain)."""
        with self.lock:
            if transfer.status != "PENDING":
                return transfer
            script = transfer.script
            elapsed = time.time() - transfer.seen_at
            if script.pending_for is None or elapsed < script.pending_for:
                if elapsed > 0.0 or script.pending_for is None:
                    transfer.substatus = "WAIT_DESTINATION_TRANSACTION"
                return transfer
            quote = transfer.quote
            if script.outcome == "COMPLETED":
                amount = quote.to_amount if script.deliver_raw is None else int(script.deliver_raw)
                transfer.receiving_tx = self._deliver(
                    quote.to_chain, quote.to_token["address"], quote.to_address, amount
                )
                transfer.received_raw, transfer.received_token = amount, quote.to_token
                transfer.status, transfer.substatus = "DONE", "COMPLETED"
            elif script.outcome == "PARTIAL":
                other = self.token(quote.to_chain, "USDC.e") or quote.to_token
                transfer.received_raw, transfer.received_token = quote.to_amount_min, other
                transfer.receiving_tx = "0x" + keccak(text=f"partial:{transfer.tx_hash}").hex()
                transfer.status, transfer.substatus = "DONE", "PARTIAL"
            elif script.outcome == "REFUNDED":
                transfer.received_raw, transfer.received_token = quote.from_amount, quote.from_token
                transfer.receiving_tx = "0x" + keccak(text=f"refund:{transfer.tx_hash}").hex()
                transfer.status, transfer.substatus = "DONE", "REFUNDED"
            else:
                transfer.status, transfer.substatus = "FAILED", script.substatus or "UNKNOWN_FAILED_ERROR"
            return transfer

    def _deliver(self, chain_id: int, token: str, to: str, amount: int) -> str:
        """Mint `amount` of `token` to `to` on the destination chain's RPC (MockUSDC.mint)."""
        url = self.rpc.get(chain_id)
        if not url or not self.minter:
            return "0x" + keccak(text=f"deliver:{to}:{amount}:{time.time()}").hex()
        selector = keccak(text="mint(address,uint256)")[:4]
        data = selector + bytes.fromhex(to[2:].lower().rjust(64, "0")) + amount.to_bytes(32, "big")
        tx_hash = _rpc(
            url,
            "eth_sendTransaction",
            [
                {
                    "from": self.minter,
                    "to": token,
                    "data": "0x" + data.hex(),
                    "gas": hex(200_000),
                    "maxFeePerGas": hex(10**10),
                    "maxPriorityFeePerGas": "0x0",
                }
            ],
        )
        for _ in range(200):
            receipt = _rpc(url, "eth_getTransactionReceipt", [tx_hash])
            if receipt:
                break
            time.sleep(0.02)
        return tx_hash


def _rpc(url: str, method: str, params: list):
    import httpx

    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10).json()
    if answer.get("error"):
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")
