"""Chain access for delegations: Safe reads, SafeTx building, relayed execution and the
Ostium Trading / USDC reads. The one module here that talks to an RPC node.

Network facts (RPC URL, chain id, contract addresses) come from `network_config(name)`, which
reads the Ostium provider's network configuration (`providers.ostium.config`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from eth_abi import encode as abi_encode
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from safe_eth.eth import EthereumClient
from safe_eth.eth.contracts import get_multi_send_call_only_V1_4_1_contract
from safe_eth.safe import Safe, SafeOperationEnum, SafeTx
from safe_eth.safe.multi_send import MultiSendOperation, MultiSendTx
from web3.exceptions import TransactionNotFound

from config.errors import ApplicationError

logger = logging.getLogger("tradedesk.delegations.chain")

NULL_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_UINT256 = 2**256 - 1
# MultiSendCallOnly 1.4.1, canonical deployment (same address on every chain).
MULTISEND_CALL_ONLY_141 = "0x9641d764fc13c8B624c04430C7356C1C7C8102e2"
SUPPORTED_SAFE_VERSIONS = ("1.3.0", "1.4.1", "1.5.0")

TRADING_ABI = [
    {
        "name": "setDelegate",
        "type": "function",
        "inputs": [{"name": "delegate", "type": "address"}],
        "outputs": [],
        "stateMutability": "nonpayable",
    },
    {"name": "removeDelegate", "type": "function", "inputs": [], "outputs": [], "stateMutability": "nonpayable"},
    {
        "name": "delegations",
        "type": "function",
        "inputs": [{"name": "", "type": "address"}],
        "outputs": [{"name": "", "type": "address"}],
        "stateMutability": "view",
    },
]
ERC20_ABI = [
    {
        "name": "approve",
        "type": "function",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
        "stateMutability": "nonpayable",
    },
    {
        "name": "allowance",
        "type": "function",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    },
    {
        "name": "decimals",
        "type": "function",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
        "stateMutability": "view",
    },
]


class ChainError(ApplicationError):
    status_code = 502
    code = "CHAIN_UNAVAILABLE"


@dataclass(frozen=True)
class OstiumNetwork:
    name: str
    rpc_url: str
    chain_id: int
    trading: str
    trading_storage: str
    usdc: str
    multisend_call_only: str = MULTISEND_CALL_ONLY_141
    extra: dict = field(default_factory=dict)


def network_config(name: str) -> OstiumNetwork:
    """RPC URL, chain id and contract addresses of the Ostium network `name` (localnet, testnet,
    mainnet), from the Ostium provider's network configuration."""
    from providers.ostium.config import OstiumConfigError
    from providers.ostium.config import network_config as ostium_network

    try:
        net = ostium_network(name)
    except OstiumConfigError as exc:
        raise ApplicationError(
            f"Ostium network {name!r} is not available: {exc}"[:300],
            code="NETWORK_UNAVAILABLE",
            status_code=503,
            details={"network": name},
        ) from exc
    return OstiumNetwork(
        name=net.name,
        rpc_url=net.rpc_url,
        chain_id=net.chain_id,
        trading=net.contracts["trading"],
        trading_storage=net.contracts["tradingStorage"],
        usdc=net.contracts["usdc"],
        multisend_call_only=net.contracts.get("multiSendCallOnly") or MULTISEND_CALL_ONLY_141,
    )


def _client(net: OstiumNetwork) -> EthereumClient:
    return EthereumClient(net.rpc_url, provider_timeout=15, slow_provider_timeout=30, retry_count=1)


def _call(what: str, fn):
    """Run a chain read; transport failures become CHAIN_UNAVAILABLE (never a raw web3 error)."""
    try:
        return fn()
    except ApplicationError:
        raise
    except Exception as exc:
        logger.warning("chain call failed", extra={"what": what, "error": type(exc).__name__})
        raise ChainError(f"Chain call failed: {what}.", details={"what": what}) from exc


# --- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafeState:
    address: str
    owners: tuple[str, ...]
    threshold: int
    nonce: int
    version: str


def safe_state(net: OstiumNetwork, safe_address: str) -> SafeState:
    client = _client(net)
    address = to_checksum_address(safe_address)
    if not _call("getCode", lambda: client.w3.eth.get_code(address)):
        raise ApplicationError(
            "No contract at this address.", code="SAFE_NOT_FOUND", status_code=400, details={"safe_address": address}
        )

    def read():
        safe = Safe(address, client)
        return SafeState(
            address=address,
            owners=tuple(to_checksum_address(o) for o in safe.retrieve_owners()),
            threshold=int(safe.retrieve_threshold()),
            nonce=int(safe.retrieve_nonce()),
            version=safe.retrieve_version(),
        )

    try:
        state = read()
    except Exception as exc:
        raise ApplicationError(
            "The address is not a Safe.", code="SAFE_NOT_FOUND", status_code=400, details={"safe_address": address}
        ) from exc
    if state.version not in SUPPORTED_SAFE_VERSIONS:
        raise ApplicationError(
            f"Safe version {state.version} is not supported.",
            code="SAFE_VERSION_UNSUPPORTED",
            status_code=400,
            details={"version": state.version, "supported": list(SUPPORTED_SAFE_VERSIONS)},
        )
    return state


def delegate_of(net: OstiumNetwork, trader: str) -> str:
    """`Trading.delegations(trader)` — the zero address when none."""
    client = _client(net)
    contract = client.w3.eth.contract(address=to_checksum_address(net.trading), abi=TRADING_ABI)
    return to_checksum_address(
        _call("delegations", lambda: contract.functions.delegations(to_checksum_address(trader)).call())
    )


def delegates_of(net: OstiumNetwork, traders: list[str]) -> dict[str, str]:
    """`Trading.delegations(trader)` for many traders in one batch (Multicall3 where the network
    has it, else one JSON-RPC batch request): {checksummed trader: delegate or the zero address}."""
    if not traders:
        return {}
    client = _client(net)
    contract = client.w3.eth.contract(address=to_checksum_address(net.trading), abi=TRADING_ABI)
    addresses = [to_checksum_address(t) for t in traders]
    results = _call(
        "delegations (batch)",
        lambda: client.batch_call([contract.functions.delegations(a) for a in addresses]),
    )
    return {a: to_checksum_address(r) for a, r in zip(addresses, results, strict=True)}


def eth_balances(net: OstiumNetwork, addresses: list[str], *, timeout: float = 3.0) -> dict[str, int]:
    """ETH (wei) of each address, read with a short timeout (the control panel asks)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(net.rpc_url, request_kwargs={"timeout": timeout}))
    return {a: int(_call("getBalance", lambda a=a: w3.eth.get_balance(to_checksum_address(a)))) for a in addresses}


def usdc_allowance(net: OstiumNetwork, owner: str) -> int:
    """Raw USDC units `owner` lets TradingStorage pull."""
    client = _client(net)
    usdc = client.w3.eth.contract(address=to_checksum_address(net.usdc), abi=ERC20_ABI)
    return int(
        _call(
            "allowance",
            lambda: usdc.functions.allowance(
                to_checksum_address(owner), to_checksum_address(net.trading_storage)
            ).call(),
        )
    )


# --- SafeTx --------------------------------------------------------------------------------------


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def set_delegate_data(delegate: str) -> bytes:
    return _selector("setDelegate(address)") + abi_encode(["address"], [to_checksum_address(delegate)])


def remove_delegate_data() -> bytes:
    return _selector("removeDelegate()")


def approve_data(spender: str, amount: int) -> bytes:
    return _selector("approve(address,uint256)") + abi_encode(["address", "uint256"], [spender, amount])


@dataclass(frozen=True)
class PreparedTx:
    to: str
    value: int
    data: bytes
    operation: int


def _multisend(net: OstiumNetwork, calls: list[tuple[str, bytes]]) -> PreparedTx:
    """One SafeTx that DELEGATECALLs MultiSendCallOnly 1.4.1 with `calls` ((to, data) pairs, in
    order, all or nothing)."""
    txs = [MultiSendTx(MultiSendOperation.CALL, to_checksum_address(to), 0, data) for to, data in calls]
    contract = get_multi_send_call_only_V1_4_1_contract(EthereumClient(net.rpc_url).w3, net.multisend_call_only)
    packed = b"".join(tx.encoded_data for tx in txs)
    data = HexBytes(contract.encode_abi("multiSend", [packed]))
    return PreparedTx(
        to=to_checksum_address(net.multisend_call_only),
        value=0,
        data=bytes(data),
        operation=SafeOperationEnum.DELEGATE_CALL.value,
    )


def delegate_batch(net: OstiumNetwork, delegate: str, allowance: int) -> PreparedTx:
    """`USDC.approve(TradingStorage, allowance)` then `Trading.setDelegate(delegate)`."""
    return _multisend(
        net,
        [(net.usdc, approve_data(net.trading_storage, allowance)), (net.trading, set_delegate_data(delegate))],
    )


def revoke_batch(net: OstiumNetwork) -> PreparedTx:
    """`Trading.removeDelegate()` then `USDC.approve(TradingStorage, 0)`: revoking also takes
    back the allowance the delegation granted."""
    return _multisend(net, [(net.trading, remove_delegate_data()), (net.usdc, approve_data(net.trading_storage, 0))])


def safe_tx(net: OstiumNetwork, safe_address: str, fields: dict, *, version: str = "1.4.1", signatures=b"") -> SafeTx:
    """A safe-eth-py SafeTx from stored fields (no chain read: nonce, version and chain id given)."""
    data = fields["data"]
    return SafeTx(
        _client(net),
        to_checksum_address(safe_address),
        to_checksum_address(fields["to"]),
        int(fields["value"]),
        HexBytes(data),
        int(fields["operation"]),
        int(fields["safeTxGas"]),
        int(fields["baseGas"]),
        int(fields["gasPrice"]),
        to_checksum_address(fields["gasToken"]),
        to_checksum_address(fields["refundReceiver"]),
        signatures=signatures,
        safe_nonce=int(fields["nonce"]),
        safe_version=version,
        chain_id=net.chain_id,
    )


def typed_data(tx: SafeTx) -> dict:
    """The EIP-712 typed data owners sign (`eth_signTypedData_v4`), JSON-ready."""
    data = tx.eip712_structured_data
    message = dict(data["message"])
    message.pop("dataGas", None)
    message["data"] = HexBytes(message["data"]).to_0x_hex()
    return {
        "types": data["types"],
        "primaryType": data["primaryType"],
        "domain": dict(data["domain"]),
        "message": message,
    }


# --- signatures ----------------------------------------------------------------------------------


class SignatureInvalid(ApplicationError):
    status_code = 400
    code = "SIGNATURE_INVALID"


def signature_recover(safe_tx_hash: bytes, signature: str) -> tuple[str, bytes]:
    """The signer of a 65-byte ECDSA signature over `safe_tx_hash`, and the signature as the
    Safe expects it. v 27/28: `eth_signTypedData` (or a raw hash signature); v 31/32: eth_sign
    of the hash (`personal_sign`), which the Safe recognises by v > 30."""
    from eth_account import Account

    try:
        raw = HexBytes(signature)
    except (ValueError, TypeError) as exc:
        raise SignatureInvalid("The signature is not hex.") from exc
    if len(raw) != 65:
        raise SignatureInvalid("A signature is 65 bytes (r, s, v).", details={"length": len(raw)})
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v in (0, 1):
        v += 27
    try:
        if v in (27, 28):
            owner = Account._recover_hash(bytes(safe_tx_hash), vrs=(v, r, s))
        elif v in (31, 32):
            owner = Account.recover_message(encode_defunct(primitive=bytes(safe_tx_hash)), vrs=(v - 4, r, s))
        else:
            raise SignatureInvalid("Unsupported signature type (v must be 27/28 or 31/32).", details={"v": v})
    except SignatureInvalid:
        raise
    except Exception as exc:
        raise SignatureInvalid("The signature cannot be recovered.") from exc
    normalised = raw[:64] + bytes([v])
    return to_checksum_address(owner), bytes(normalised)


def signatures_pack(signatures: list[tuple[str, bytes]]) -> bytes:
    """Concatenate (owner, signature) pairs sorted by owner address, as checkSignatures wants."""
    return b"".join(sig for _, sig in sorted(signatures, key=lambda p: int(p[0], 16)))


# --- execution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecOutcome:
    tx_hash: str
    mined: bool
    success: bool  # the Safe emitted ExecutionSuccess
    error: str = ""


EXECUTION_SUCCESS = keccak(text="ExecutionSuccess(bytes32,uint256)")
EXECUTION_FAILURE = keccak(text="ExecutionFailure(bytes32,uint256)")


def safe_tx_simulate(tx: SafeTx) -> None:
    """`eth_call` the execTransaction: raises SafeTxRejected with the Safe's GS code if it would revert."""
    try:
        tx.call()
    except Exception as exc:
        raise ApplicationError(
            f"The Safe refuses this transaction: {type(exc).__name__}: {exc}"[:300],
            code="SAFE_TX_REJECTED",
            status_code=409,
        ) from exc


class SendRefused(ApplicationError):
    """The node refused `execTransaction` before it left: nothing was sent, the SafeTx and its
    signatures can be executed again (once the cause is fixed: fund the relayer, retry)."""

    status_code = 503


# what a node answers when it refuses a transaction outright → (code, what to do)
_REFUSALS = (
    ("insufficient funds", "INSUFFICIENT_GAS", "The relayer {relayer} has not enough ETH for gas: fund it."),
    ("nonce too low", "NONCE_TOO_LOW", "The relayer's nonce was taken by another transaction: execute again."),
    ("replacement transaction underpriced", "NONCE_TOO_LOW", "The relayer has a pending transaction: retry."),
)


def send_refusal(exc: BaseException, relayer: str) -> SendRefused | None:
    """A SendRefused when `exc` proves the transaction never left (the node refused it, or could
    not be reached at all); None when it may have been sent (a timeout after sending, anything
    unrecognised)."""
    import requests

    text = str(exc).lower()
    for needle, code, advice in _REFUSALS:
        if needle in text:
            return SendRefused(advice.format(relayer=relayer), code=code, details={"relayer": relayer})
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        return SendRefused(
            "The RPC node could not be reached; nothing was sent.", code="RPC_UNAVAILABLE", details={"relayer": relayer}
        )
    return None


def safe_tx_execute(net: OstiumNetwork, tx: SafeTx, relayer_key: bytes, *, timeout: float = 60) -> ExecOutcome:
    """Send `execTransaction` from the relayer and wait for the receipt. A send the node refused
    raises SendRefused (nothing left); a send whose fate is unknown comes back not mined, without
    a hash (the recovery job asks the chain later)."""
    client = _client(net)
    relayer = client.w3.eth.account.from_key(relayer_key).address
    try:
        tx_hash, _ = tx.execute(HexBytes(relayer_key).to_0x_hex(), tx_gas=1_500_000)
    except Exception as exc:
        logger.warning("execTransaction could not be sent", extra={"error": type(exc).__name__})
        refused = send_refusal(exc, relayer)
        if refused is not None:
            raise refused from exc
        return ExecOutcome("", mined=False, success=False, error=f"send outcome unknown: {type(exc).__name__}")
    tx_hex = HexBytes(tx_hash).to_0x_hex()
    try:
        receipt = client.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
    except Exception:
        return ExecOutcome(tx_hex, mined=False, success=False, error="receipt not seen in time")
    return _mined_outcome(tx_hex, receipt)


def _mined_outcome(tx_hash: str, receipt) -> ExecOutcome:
    """A mined execTransaction: reverted, or the Safe's ExecutionFailure / ExecutionSuccess."""
    if receipt["status"] != 1:
        return ExecOutcome(tx_hash, mined=True, success=False, error="execTransaction reverted")
    failed = any(e["topics"] and bytes(e["topics"][0]) == EXECUTION_FAILURE for e in receipt["logs"])
    return ExecOutcome(tx_hash, mined=True, success=not failed, error="ExecutionFailure" if failed else "")


def _found_or_none(read):
    """`read()`, with the node's "not found" as None."""
    try:
        return read()
    except TransactionNotFound:
        return None


def transaction_outcome(net: OstiumNetwork, tx_hash: str) -> ExecOutcome | None:
    """The outcome of a sent execTransaction, or None while it is not mined."""
    eth = _client(net).w3.eth
    receipt = _call("getTransactionReceipt", lambda: _found_or_none(lambda: eth.get_transaction_receipt(tx_hash)))
    return None if receipt is None else _mined_outcome(tx_hash, receipt)


def transaction_pending(net: OstiumNetwork, tx_hash: str) -> bool:
    """The node knows `tx_hash` but has not mined it (it is in the mempool)."""
    eth = _client(net).w3.eth
    found = _call("getTransaction", lambda: _found_or_none(lambda: eth.get_transaction(tx_hash)))
    return found is not None and found.get("blockNumber") is None


def account_has_pending(net: OstiumNetwork, address: str) -> bool:
    """`address` has sent transactions that are not mined yet (pending nonce above the mined one)."""
    client = _client(net)
    address = to_checksum_address(address)
    pending = _call("getTransactionCount", lambda: client.w3.eth.get_transaction_count(address, "pending"))
    mined = _call("getTransactionCount", lambda: client.w3.eth.get_transaction_count(address, "latest"))
    return pending > mined
