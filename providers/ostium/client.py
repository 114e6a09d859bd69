"""The only module that imports `ostium_python_sdk`.

One SDK instance per (network, signer, delegation mode) per process, built lazily on first
use (never at import or in a web request's set-up). Keys and URLs are always passed
explicitly (the SDK would otherwise read PRIVATE_KEY / RPC_URL from the environment).

- Writes for one signer are serialised: a process lock plus a Redis lock per signer address
  (the SDK takes the nonce from `latest`, so two concurrent writes would collide). A write
  runs in a worker thread bounded by OSTIUM_WRITE_TIMEOUT; when it does not finish in time
  the caller gets `WriteTimeout` (outcome unknown) carrying the nonce and block the write
  started from, and the lock stays held until the SDK call really returns.
- Every write's receipt is checked: status 0 raises `WriteReverted` with the decoded reason.
- Async SDK reads run on one dedicated event loop thread per SDK instance (the subgraph
  client's lock and aiohttp session belong to that loop), bounded by OSTIUM_READ_TIMEOUT.
- The SDK `print`s: while an SDK call runs, its thread's stdout goes to our logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from hexbytes import HexBytes
from web3 import Web3

from config.cache import cache_redis
from configuration.runtime import config_value
from providers.ostium.config import OstiumNetwork

logger = logging.getLogger("tradedesk.providers.ostium.sdk")


# --- stdout capture (thread-aware) --------------------------------------------------------------

_capture = threading.local()


class _StdoutRouter(io.TextIOBase):
    """Replaces sys.stdout while SDK calls may print: writes from a capturing thread become
    log records; every other thread writes through to the stream it wrapped."""

    def __init__(self, inner):
        self.inner = inner
        self._buffers: dict[int, str] = {}

    def write(self, text: str) -> int:
        if getattr(_capture, "on", False):
            ident = threading.get_ident()
            buffered = self._buffers.get(ident, "") + text
            *lines, rest = buffered.split("\n")
            self._buffers[ident] = rest
            for line in lines:
                if line.strip():
                    logger.info("sdk: %s", line.strip()[:2000])
            return len(text)
        return self.inner.write(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self.inner.flush()

    def isatty(self) -> bool:
        return False


_router_lock = threading.Lock()


@contextlib.contextmanager
def sdk_output_captured():
    with _router_lock:
        if not isinstance(sys.stdout, _StdoutRouter):
            sys.stdout = _StdoutRouter(sys.stdout)
    previous = getattr(_capture, "on", False)
    _capture.on = True
    try:
        yield
    finally:
        _capture.on = previous


# --- errors raised by this module (normalised in errors.py) -------------------------------------


class WriteTimeout(Exception):
    """The write did not finish in time: it may or may not have been mined."""

    def __init__(self, message: str, *, signer: str, nonce: int, from_block: int):
        super().__init__(message)
        self.signer, self.nonce, self.from_block = signer, nonce, from_block


class WriteReverted(Exception):
    def __init__(self, message: str, *, tx_hash: str, reason: str = "", reason_args: dict | None = None):
        super().__init__(message)
        self.tx_hash, self.reason, self.reason_args = tx_hash, reason, reason_args or {}


class SignerBusy(Exception):
    """The signer's write lock could not be taken in time: nothing was sent."""


@dataclass
class WriteOutcome:
    receipt: dict
    tx_hash: str
    order_id: str = ""
    signer: str = ""
    nonce: int = 0
    from_block: int = 0
    extra: dict = field(default_factory=dict)


# --- static facts from the SDK --------------------------------------------------------------------


def sdk_public_network(name: str) -> dict:
    """The SDK's own public config for "testnet" / "mainnet": graph_url and contracts."""
    from ostium_python_sdk import NetworkConfig

    cfg = NetworkConfig.mainnet() if name == "mainnet" else NetworkConfig.testnet()
    return {"graph_url": cfg.graph_url, "contracts": dict(cfg.contracts), "is_testnet": cfg.is_testnet}


def rpc_chain_id(rpc_url: str, timeout: float | None = None) -> int:
    timeout = timeout or config_value("OSTIUM_READ_TIMEOUT")
    return Web3(_provider(rpc_url, timeout)).eth.chain_id


def rpc_code(rpc_url: str, address: str, timeout: float | None = None) -> bytes:
    """The contract code at `address` (empty: no contract there)."""
    timeout = timeout or config_value("OSTIUM_READ_TIMEOUT")
    return bytes(Web3(_provider(rpc_url, timeout)).eth.get_code(Web3.to_checksum_address(address)))


def _provider(rpc_url: str, timeout: float):
    """An HTTP provider bounded by `timeout`, without web3's own retry loop (reads retry in
    resilience.retry_read; writes never retry)."""
    return Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)


@lru_cache(maxsize=1)
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    from ostium_python_sdk.abi.callbacks_abi import callbacks_abi
    from ostium_python_sdk.abi.trading_abi import trading_abi
    from ostium_python_sdk.abi.trading_storage_abi import trading_storage_abi

    def typ(item):
        if item["type"].startswith("tuple"):
            return "(" + ",".join(typ(c) for c in item["components"]) + ")" + item["type"][5:]
        return item["type"]

    table = {}
    for abi in (trading_abi, trading_storage_abi, callbacks_abi):
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [typ(i) for i in item.get("inputs", [])]
            sig = f"{item['name']}({','.join(types)})"
            table[bytes(Web3.keccak(text=sig))[:4]] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


def decode_revert_data(data: bytes | str) -> tuple[str, dict]:
    """(error name, args) for revert data, ("", {}) when unknown. Error(string) → ("Error", {reason})."""
    if isinstance(data, str):
        try:
            data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
        except ValueError:
            return "", {}
    if len(data) < 4:
        return "", {}
    codec = Web3().codec
    if data[:4] == bytes.fromhex("08c379a0"):
        try:
            (reason,) = codec.decode(["string"], data[4:])
            return "Error", {"reason": reason}
        except Exception:
            return "", {}
    entry = _error_table().get(data[:4])
    if entry is None:
        return "", {"selector": "0x" + data[:4].hex()}
    name, types, names = entry
    try:
        values = codec.decode(types, data[4:]) if types else ()
    except Exception:
        values = ()
    return name, {n: (str(v) if isinstance(v, int) else v) for n, v in zip(names, values, strict=False)}


def _call_error(exc: BaseException) -> tuple[str, dict]:
    """The decoded revert carried by a failed eth_call, ("", {"message"}) when it has none."""
    for candidate in (getattr(exc, "data", None), *exc.args):
        if isinstance(candidate, str) and candidate.startswith("0x"):
            return decode_revert_data(candidate)
        if isinstance(candidate, dict) and isinstance(candidate.get("data"), str):
            return decode_revert_data(candidate["data"])
    return "", {"message": str(exc)[:300]}


def _is_transport(exc: BaseException) -> bool:
    """A failure to reach the node (not an answer from the chain)."""
    import requests

    return isinstance(exc, requests.RequestException | ConnectionError | TimeoutError)


# --- plain HTTP reads (no SDK, no key: safe in a web request) -------------------------------------

_PAIRS_QUERY = """
query getPairs { pairs(first: 1000) { id from to feed maxLeverage makerFeeP takerFeeP
  group { id name minLeverage maxLeverage } } }
"""


def http_pairs(net: OstiumNetwork) -> list[dict]:
    """The subgraph's pairs (the same query shape as the SDK's `get_pairs`)."""
    import httpx

    response = httpx.post(net.subgraph_url, json={"query": _PAIRS_QUERY}, timeout=config_value("OSTIUM_READ_TIMEOUT"))
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"subgraph error: {body['errors']}"[:500])
    return body["data"]["pairs"]


def http_latest_prices(net: OstiumNetwork) -> list[dict]:
    """Ostium's price API (`GET /PricePublish/latest-prices`, what the SDK's Price client reads)."""
    import httpx

    response = httpx.get(f"{net.price_url}/PricePublish/latest-prices", timeout=config_value("OSTIUM_READ_TIMEOUT"))
    response.raise_for_status()
    return response.json()


# --- the client -----------------------------------------------------------------------------------


class _LoopThread:
    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        _capture.on = True
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)

    def run(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


def open_collateral_query(traders: list[str], skip: int) -> str:
    """Open trades (trader, collateral) of many traders, a page of 1000 (standard subgraph `_in` filter)."""
    listed = ", ".join(f'"{t}"' for t in traders)
    return (
        f"query {{ trades(first: 1000, skip: {skip}, orderBy: tradeID, where: {{isOpen: true, trader_in: [{listed}]}}) "
        "{ trader collateral } }"
    )


def closes_query(trade_id: str) -> str:
    """The subgraph query for the settled closes of trade `trade_id`. The id (digits only) is
    written into the query as a string literal, which the filter takes whether the schema types
    `Order.tradeID` as BigInt, ID or String (the SDK reads the field but never filters on it, so
    its type is not known); a typed variable would fail validation on any other type."""
    trade = str(trade_id)
    if not trade.isdigit():
        raise ValueError(f"not a trade id: {trade_id!r}")
    return f"""
        query Closes {{
          orders(where: {{tradeID: "{trade}", orderAction: "Close", isPending: false}},
                 orderBy: executedAt, orderDirection: asc) {{
            id orderType orderAction price amountSentToTrader collateral closePercent
            isCancelled cancelReason executedAt executedTx devFee vaultFee oracleFee liquidationFee
          }}
        }}
        """


_signer_locks: dict[str, threading.Lock] = {}
_signer_locks_guard = threading.Lock()


def _signer_lock(address: str) -> threading.Lock:
    with _signer_locks_guard:
        return _signer_locks.setdefault(address.lower(), threading.Lock())


class OstiumClient:
    """Thin, typed-ish access to one SDK instance. Returns raw SDK/subgraph values (strings
    of integers in chain units); the adapter converts them to Decimals."""

    def __init__(self, net: OstiumNetwork, private_key: str, *, use_delegation: bool = False):
        self.net = net
        self._key = private_key
        self.use_delegation = use_delegation
        self.address = Web3.to_checksum_address(Web3().eth.account.from_key(private_key).address)
        self._sdk = None
        self._build_lock = threading.Lock()
        self._loop: _LoopThread | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"OstiumClient({self.net.name}, {self.address}, delegation={self.use_delegation})"

    # construction
    @property
    def sdk(self):
        if self._sdk is None:
            with self._build_lock:
                if self._sdk is None:
                    self._sdk = self._build()
        return self._sdk

    def _build(self):
        from ostium_python_sdk import NetworkConfig, OstiumSDK

        timeout = config_value("OSTIUM_READ_TIMEOUT")
        rpc_chain_id(self.net.rpc_url, timeout)  # fail fast: the SDK's own first call has no timeout
        config = NetworkConfig(
            graph_url=self.net.subgraph_url, contracts=dict(self.net.contracts), is_testnet=self.net.is_testnet
        )
        with sdk_output_captured():
            sdk = OstiumSDK(
                config,
                private_key=self._key,
                rpc_url=self.net.rpc_url,
                submit_rpc_url=self.net.submit_rpc_url,
                use_delegation=self.use_delegation,
            )
        # every RPC call bounded (the SDK's provider has no timeout of its own)
        sdk.w3.provider = _provider(self.net.rpc_url, timeout)
        sdk.ostium.set_submit_rpc_url(self.net.submit_rpc_url)
        sdk.price.base_url = self.net.price_url  # the SDK's Price client has no URL parameter
        self._loop = _LoopThread(f"ostium-loop-{self.address[:8]}")
        return sdk

    @property
    def w3(self) -> Web3:
        return self.sdk.w3

    # reads -------------------------------------------------------------------------------------
    def run_async(self, factory: Callable, timeout: float | None = None):
        """Run `factory()` (a coroutine) on this client's loop; bounded by the read timeout."""
        sdk = self.sdk
        assert sdk is not None and self._loop is not None
        return self._loop.run(factory(), timeout or config_value("OSTIUM_READ_TIMEOUT"))

    def call(self, fn: Callable, *args, **kwargs):
        with sdk_output_captured():
            return fn(*args, **kwargs)

    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def block_number(self) -> int:
        return self.w3.eth.block_number

    def latest_prices(self) -> list[dict]:
        return self.run_async(lambda: self.sdk.price.get_latest_prices())

    def pairs(self) -> list[dict]:
        return self.run_async(lambda: self.sdk.subgraph.get_pairs())

    def open_trades(self, trader: str) -> list[dict]:
        return self.run_async(lambda: self.sdk.subgraph.get_open_trades(trader.lower()))

    def limit_orders(self, trader: str) -> list[dict]:
        return self.run_async(lambda: self.sdk.subgraph.get_orders(trader.lower()))

    def order(self, order_id: str) -> dict | None:
        return self.run_async(lambda: self.sdk.subgraph.get_order_by_id(str(order_id)))

    def trade(self, trade_id: str) -> dict | None:
        return self.run_async(lambda: self.sdk.subgraph.get_trade_by_id(str(trade_id)))

    def recent_history(self, trader: str, last_n: int = 50) -> list[dict]:
        return self.run_async(lambda: self.sdk.subgraph.get_recent_history(trader.lower(), last_n))

    def closing_orders(self, trade_id: str) -> list[dict]:
        """Settled close orders of one trade (ours and the keepers': TP, SL, liquidation)."""
        from gql import gql

        query = gql(closes_query(trade_id))

        async def run():
            result = await self.sdk.subgraph._execute_query(query)
            return result["orders"]

        return self.run_async(run)

    def subgraph_block(self) -> int | None:
        """The block the subgraph has indexed (`_meta`), None when it does not say."""
        from gql import gql

        query = gql("query { _meta { block { number } } }")

        async def run():
            result = await self.sdk.subgraph._execute_query(query)
            return int(result["_meta"]["block"]["number"])

        try:
            return self.run_async(run)
        except Exception:
            return None

    def settlement(self, order_id: str, from_block: int | None = None) -> tuple[str, dict] | None:
        """The on-chain settlement event of a market order, None while it is pending."""
        found = self.run_async(
            lambda: self.sdk.ostium._wait_for_order_settlement(int(order_id), from_block=from_block, timeout=0)
        )
        if not found:
            return None
        name, args = found
        return name, {k: (dict(v) if hasattr(v, "keys") else v) for k, v in dict(args).items()}

    def usdc_balance(self, address: str) -> int:
        return self.sdk.ostium.usdc_contract.functions.balanceOf(Web3.to_checksum_address(address)).call()

    def eth_balance(self, address: str) -> int:
        return self.w3.eth.get_balance(Web3.to_checksum_address(address))

    def allowance(self, owner: str) -> int:
        o = self.sdk.ostium
        return o.usdc_contract.functions.allowance(
            Web3.to_checksum_address(owner), o.ostium_trading_storage_address
        ).call()

    def delegate_of(self, trader: str) -> str:
        contract = self.sdk.ostium.ostium_trading_contract
        return contract.functions.delegations(Web3.to_checksum_address(trader)).call()

    def nonce(self, address: str, block="latest") -> int:
        return self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), block)

    def find_transaction(self, *, signer: str, nonce: int, from_block: int, max_blocks: int = 2000) -> dict | None:
        """The mined transaction of `signer` with `nonce` (scanning from `from_block`), as its
        receipt; None when none is mined."""
        if self.nonce(signer) <= nonce:
            return None
        latest = self.block_number()
        signer = signer.lower()
        for number in range(max(from_block, latest - max_blocks), latest + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if tx["from"].lower() == signer and tx["nonce"] == nonce:
                    return self.w3.eth.get_transaction_receipt(tx["hash"])
        return None

    def order_id_from_receipt(self, receipt) -> str:
        order_id = self.sdk.ostium._extract_order_id(
            receipt, ["MarketOpenOrderInitiated", "MarketCloseOrderInitiatedV2", "MarketCloseOrderInitiated"]
        )
        return "" if order_id is None else str(order_id)

    def revert_reason(self, tx_hash) -> tuple[str, dict]:
        """Replay a failed transaction on its parent block's state and decode the revert."""
        w3 = self.w3
        tx = w3.eth.get_transaction(tx_hash)
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
        try:
            w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
        except Exception as exc:
            return _call_error(exc)
        return "", {}

    def simulate(self, fn_name: str, args: list, *, trader: str | None = None) -> tuple[str, dict] | None:
        """eth_call of a Trading function as this signer would send it (through
        `delegatedAction(trader, ...)` when `trader` is given): None when it would succeed,
        else the decoded revert (name, args). Sends nothing."""
        contract = self.sdk.ostium.ostium_trading_contract
        if trader:
            fn = contract.functions.delegatedAction(
                Web3.to_checksum_address(trader), contract.encode_abi(fn_name, args)
            )
        else:
            fn = getattr(contract.functions, fn_name)(*args)
        try:
            fn.call({"from": self.address})
        except Exception as exc:
            name, details = _call_error(exc)
            if not name and "message" in details and _is_transport(exc):
                raise
            return name or "reverted", details
        return None

    def limit_placed(self, receipt) -> tuple[str, str] | None:
        """(pair id, limit index) of the limit/stop open a receipt placed (OpenLimitPlacedV2)."""
        from web3.logs import DISCARD

        event = self.sdk.ostium.ostium_trading_contract.events.OpenLimitPlacedV2()
        for entry in event.process_receipt(receipt, errors=DISCARD):
            return str(entry["args"]["pairIndex"]), str(entry["args"]["index"])
        return None

    # The trading contract's events of a limit slot (trader, pair, index), with the field that
    # tells them apart: placed (a new limit takes the slot), cancelled, and triggered (a keeper
    # turned the limit into an open order, `orderId`; its fate is that order's).
    _SLOT_EVENTS = (
        ("placed", "OpenLimitPlacedV2"),
        ("cancelled", "OpenLimitCanceled"),
        ("triggered", "AutomationOpenOrderInitiated"),
    )

    def limit_slot_events(self, *, trader: str, pair_id: str, from_block: int, to_block: int) -> list[dict]:
        """The limit lifecycle events of `trader` on pair `pair_id` in blocks from_block..to_block,
        in chain order: {"event", "index", "order_id" (triggered), "tx", "block", "log_index"}.
        Read from the chain's logs, not from the subgraph: one eth_getLogs call for the three
        events (the trader is a different topic in each, so it is matched here)."""
        contract = self.sdk.ostium.ostium_trading_contract
        events = {}
        for kind, name in self._SLOT_EVENTS:
            event = getattr(contract.events, name)()
            events[HexBytes(event.topic)] = (kind, event)
        logs = self.w3.eth.get_logs(
            {"address": contract.address, "fromBlock": from_block, "toBlock": to_block, "topics": [list(events)]}
        )
        trader, found = trader.lower(), []
        for log in logs:
            kind, event = events[HexBytes(log["topics"][0])]
            args = event.process_log(log)["args"]
            if args["trader"].lower() != trader or str(args["pairIndex"]) != str(pair_id):
                continue
            found.append(
                {
                    "event": kind,
                    "index": str(args["index"]),
                    "order_id": str(args["orderId"]) if kind == "triggered" else "",
                    "tx": HexBytes(log["transactionHash"]).to_0x_hex(),
                    "block": int(log["blockNumber"]),
                    "log_index": int(log["logIndex"]),
                }
            )
        return sorted(found, key=lambda e: (e["block"], e["log_index"]))

    def limit_resting(self, *, trader: str, pair_id: str, index: str, block: int) -> bool:
        """Whether the slot holds a limit at `block` (TradingStorage.hasOpenLimitOrder)."""
        storage = self.sdk.ostium.ostium_trading_storage_contract
        return bool(
            storage.functions.hasOpenLimitOrder(Web3.to_checksum_address(trader), int(pair_id), int(index)).call(
                block_identifier=block
            )
        )

    # writes ------------------------------------------------------------------------------------
    def _lock_name(self) -> str:
        """One lock per signer per chain (every process); a localnet is its own chain."""
        chain = f"{self.net.chain_id}"
        if self.net.name == "localnet":
            chain += ":" + hashlib.sha256(self.net.rpc_url.encode()).hexdigest()[:12]
        return f"ostium:signer:{chain}:{self.address.lower()}"

    def write(
        self,
        name: str,
        fn: Callable[[object], object],
        *,
        timeout: float | None = None,
        before_send: Callable[[int, int], None] | None = None,
    ) -> WriteOutcome:
        """Run one SDK write `fn(sdk)` for this signer, serialised, bounded, receipt checked.
        `before_send(nonce, from_block)` runs before anything is sent (the caller records them,
        so that a process killed mid-write leaves what reconciliation needs to find it)."""
        sdk = self.sdk
        timeout = config_value("OSTIUM_WRITE_TIMEOUT") if timeout is None else timeout
        local = _signer_lock(self.address)
        if not local.acquire(timeout=settings.OSTIUM_LOCK_TIMEOUT):
            raise SignerBusy(f"signer {self.address} busy")
        shared = None
        try:
            shared = cache_redis().lock(
                self._lock_name(),
                timeout=max(timeout * 4, 300),
                thread_local=False,
            )
            if not shared.acquire(blocking_timeout=settings.OSTIUM_LOCK_TIMEOUT):
                raise SignerBusy(f"signer {self.address} busy in another process")
            nonce = self.nonce(self.address, "pending")
            from_block = self.block_number()
            if before_send is not None:
                before_send(nonce, from_block)
        except BaseException:
            if shared is not None:
                with contextlib.suppress(Exception):
                    shared.release()
            local.release()
            raise

        box: dict = {}

        def run():
            _capture.on = True
            try:
                box["value"] = fn(sdk)
            except BaseException as exc:
                box["error"] = exc
            finally:
                with contextlib.suppress(Exception):
                    shared.release()
                local.release()

        worker = threading.Thread(target=run, name=f"ostium-write-{name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            logger.warning(
                "ostium write timed out; outcome unknown",
                extra={"write": name, "signer": self.address, "nonce": nonce},
            )
            raise WriteTimeout(
                f"{name}: no receipt within {timeout:g}s", signer=self.address, nonce=nonce, from_block=from_block
            )
        if "error" in box:
            raise box["error"]
        value = box.get("value")
        receipt = value.get("receipt") if isinstance(value, dict) and "receipt" in value else value
        order_id = value.get("order_id") if isinstance(value, dict) and "receipt" in value else None
        tx_hash = receipt["transactionHash"]
        tx_hex = tx_hash.to_0x_hex() if hasattr(tx_hash, "to_0x_hex") else str(tx_hash)
        if int(receipt["status"]) != 1:
            reason, args = self.revert_reason(tx_hash)
            raise WriteReverted(
                f"{name} reverted: {reason or 'unknown reason'}", tx_hash=tx_hex, reason=reason, reason_args=args
            )
        return WriteOutcome(
            receipt=dict(receipt),
            tx_hash=tx_hex,
            order_id="" if order_id is None else str(order_id),
            signer=self.address,
            nonce=nonce,
            from_block=from_block,
        )


class OstiumReader:
    """Reads that need no key (the treasury's inventory sync): USDC balances on chain and open
    trades from the subgraph, through the SDK's own USDC ABI and subgraph client."""

    def __init__(self, net: OstiumNetwork):
        from ostium_python_sdk.abi.usdc_abi import usdc_abi

        self.net = net
        self.w3 = Web3(_provider(net.rpc_url, config_value("OSTIUM_READ_TIMEOUT")))
        self._usdc = self.w3.eth.contract(address=net.contracts["usdc"], abi=usdc_abi)
        self._subgraph = None
        self._loop = _LoopThread(f"ostium-reader-{net.name}")

    def usdc_balances(self, addresses: list[str]) -> list[int]:
        """USDC `balanceOf` of each address, in one JSON-RPC batch request."""
        with self.w3.batch_requests() as batch:
            for address in addresses:
                batch.add(self._usdc.functions.balanceOf(Web3.to_checksum_address(address)))
            return [int(v) for v in batch.execute()]

    def open_collateral(self, traders: list[str]) -> dict[str, int]:
        """Collateral (USDC units) in open trades per trader (lowercase), through the SDK's subgraph
        client: one query per page of 1000 trades for all `traders`."""
        from gql import gql
        from ostium_python_sdk.subgraph import SubgraphClient

        if self._subgraph is None:
            self._subgraph = SubgraphClient(self.net.subgraph_url)
        wanted = [Web3.to_checksum_address(t).lower() for t in traders]  # validated: safe to inline

        async def run():
            totals = dict.fromkeys(wanted, 0)
            skip = 0
            while True:
                query = gql(open_collateral_query(wanted, skip))
                rows = (await self._subgraph._execute_query(query))["trades"]
                for row in rows:
                    totals[row["trader"].lower()] = totals.get(row["trader"].lower(), 0) + int(row["collateral"])
                if len(rows) < 1000:
                    return totals
                skip += 1000

        return self._loop.run(run(), config_value("OSTIUM_READ_TIMEOUT"))

    def stop(self) -> None:
        self._loop.stop()


# --- instances ------------------------------------------------------------------------------------

_clients: dict[tuple, OstiumClient] = {}
_clients_lock = threading.Lock()


def client_for(net: OstiumNetwork, private_key: str, *, use_delegation: bool = False) -> OstiumClient:
    """The process-wide client for (network, signer, mode); the SDK inside is built on first use."""
    address = Web3().eth.account.from_key(private_key).address.lower()
    key = (net.fingerprint(), address, use_delegation)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = OstiumClient(net, private_key, use_delegation=use_delegation)
            _clients[key] = client
        return client


_readers: dict[tuple, OstiumReader] = {}


def reader_for(net: OstiumNetwork) -> OstiumReader:
    """The process-wide keyless reader of a network."""
    with _clients_lock:
        reader = _readers.get(net.fingerprint())
        if reader is None:
            reader = _readers[net.fingerprint()] = OstiumReader(net)
        return reader


def clients_reset() -> None:
    """Forget every client and reader (tests; after a config change). Their loop threads stop."""
    with _clients_lock:
        for client in _clients.values():
            if client._loop is not None:
                client._loop.stop()
        _clients.clear()
        for reader in _readers.values():
            reader.stop()
        _readers.clear()
