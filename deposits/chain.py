"""Chain reads and transaction building for deposits, on the target chain (the Ostium network:
Arbitrum One, or the localnet). Safe reads, SafeTx hashing and EIP-712 typed data are the
delegations' (`delegations.chain`): a Safe's owners sign a deposit's SafeTx exactly as they sign
a delegation's."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from safe_eth.eth import EthereumClient
from safe_eth.eth.contracts import get_multi_send_call_only_V1_4_1_contract
from safe_eth.safe import SafeOperationEnum
from safe_eth.safe.multi_send import MultiSendOperation, MultiSendTx
from web3 import Web3
from web3.exceptions import TransactionNotFound

from delegations import chain as safe_chain

NATIVE_ADDRESSES = ("0x0000000000000000000000000000000000000000", "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")


def target_network() -> safe_chain.OstiumNetwork:
    """The chain deposits end on, with its RPC and USDC contract."""
    return safe_chain.network_config(settings.OSTIUM_NETWORK)


def is_native(address: str) -> bool:
    return address.lower() in NATIVE_ADDRESSES


def _w3(net) -> Web3:
    return Web3(Web3.HTTPProvider(net.rpc_url, request_kwargs={"timeout": 10}))


def approve_data(spender: str, amount: int) -> str:
    return HexBytes(safe_chain.approve_data(to_checksum_address(spender), int(amount))).to_0x_hex()


def transfer_data(to: str, amount: int) -> str:
    selector = keccak(text="transfer(address,uint256)")[:4]
    return HexBytes(selector + abi_encode(["address", "uint256"], [to_checksum_address(to), int(amount)])).to_0x_hex()


def usdc_balance(net, address: str) -> int:
    w3 = _w3(net)
    usdc = w3.eth.contract(address=to_checksum_address(net.usdc), abi=_BALANCE_ABI)
    return int(safe_chain._call("balanceOf", lambda: usdc.functions.balanceOf(to_checksum_address(address)).call()))


_BALANCE_ABI = [
    {
        "name": "balanceOf",
        "type": "function",
        "inputs": [{"name": "", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    }
]


@dataclass(frozen=True)
class Credit:
    mined: bool
    success: bool
    amount_raw: int  # USDC moved to the target in that transaction


def usdc_credit(net, tx_hash: str, to: str) -> Credit:
    """The USDC (raw units) that transaction `tx_hash` on the target chain moved to `to`, read
    from its receipt's Transfer logs of the target USDC contract."""
    w3 = _w3(net)

    def read():
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    receipt = safe_chain._call("getTransactionReceipt", read)
    if receipt is None:
        return Credit(mined=False, success=False, amount_raw=0)
    usdc, target = to_checksum_address(net.usdc), to_checksum_address(to)
    amount = 0
    for log in receipt["logs"]:
        topics = log["topics"]
        if to_checksum_address(log["address"]) != usdc or len(topics) < 3 or bytes(topics[0]) != TRANSFER_TOPIC:
            continue
        if to_checksum_address(bytes(topics[2])[-20:]) == target:
            amount += int.from_bytes(bytes(log["data"]), "big")
    return Credit(mined=True, success=receipt["status"] == 1, amount_raw=amount)


# --- the SafeTx of a Safe source -----------------------------------------------------------------


def safe_deposit_tx(net, *, calls: list[tuple[str, int, str]]) -> safe_chain.PreparedTx:
    """What the Safe runs: one call as a plain CALL, several (approve, then the LI.FI call)
    batched by DELEGATECALL to MultiSendCallOnly 1.4.1, all or nothing. `calls`: (to, value, data)."""
    if len(calls) == 1:
        to, value, data = calls[0]
        return safe_chain.PreparedTx(
            to=to_checksum_address(to), value=int(value), data=bytes(HexBytes(data)), operation=0
        )
    txs = [
        MultiSendTx(MultiSendOperation.CALL, to_checksum_address(to), int(value), bytes(HexBytes(data)))
        for to, value, data in calls
    ]
    contract = get_multi_send_call_only_V1_4_1_contract(EthereumClient(net.rpc_url).w3, net.multisend_call_only)
    packed = b"".join(tx.encoded_data for tx in txs)
    return safe_chain.PreparedTx(
        to=to_checksum_address(net.multisend_call_only),
        value=0,
        data=bytes(HexBytes(contract.encode_abi("multiSend", [packed]))),
        operation=SafeOperationEnum.DELEGATE_CALL.value,
    )


def safe_tx_fields(prepared: safe_chain.PreparedTx, nonce: int) -> dict:
    return {
        "to": prepared.to,
        "value": int(prepared.value),
        "data": HexBytes(prepared.data).to_0x_hex(),
        "operation": prepared.operation,
        "safeTxGas": 0,
        "baseGas": 0,
        "gasPrice": 0,
        "gasToken": safe_chain.NULL_ADDRESS,
        "refundReceiver": safe_chain.NULL_ADDRESS,
        "nonce": int(nonce),
    }


def raw_to_decimal(raw: int | Decimal, decimals: int) -> Decimal:
    return Decimal(int(raw)) / Decimal(10) ** decimals


def safe_execution(net, safe: str, safe_tx_hash: str, *, from_block: int = 0) -> tuple[str, bool] | None:
    """The transaction that executed SafeTx `safe_tx_hash` on `safe`, from the Safe's
    ExecutionSuccess / ExecutionFailure logs (the SafeTx hash is their first topic after the
    signature from Safe 1.4.1, the start of their data in 1.3.0): (transaction hash, succeeded),
    or None when it has not run."""
    w3 = _w3(net)
    wanted = bytes(HexBytes(safe_tx_hash))
    logs = safe_chain._call(
        "getLogs",
        lambda: w3.eth.get_logs(
            {
                "address": to_checksum_address(safe),
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": [[safe_chain.EXECUTION_SUCCESS, safe_chain.EXECUTION_FAILURE]],
            }
        ),
    )
    for log in logs:
        topics = [bytes(t) for t in log["topics"]]
        if (len(topics) > 1 and topics[1] == wanted) or bytes(log["data"])[:32] == wanted:
            return HexBytes(log["transactionHash"]).to_0x_hex(), bytes(log["topics"][0]) == safe_chain.EXECUTION_SUCCESS
    return None


def block_number(net) -> int:
    return int(safe_chain._call("blockNumber", lambda: _w3(net).eth.block_number))


def transaction(net, tx_hash: str) -> tuple[str, str | None] | None:
    """(from, to) of a transaction the target chain knows (mined or pending), else None."""
    w3 = _w3(net)

    def read():
        try:
            return w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return None

    found = safe_chain._call("getTransaction", read)
    if found is None:
        return None
    return found["from"], found.get("to")
