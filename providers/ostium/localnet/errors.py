"""Decode custom errors raised by the localnet contracts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from web3 import Web3

from .artifacts import CONTRACT_NAMES, abi

_CODEC = Web3().codec


def _type(item) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


@lru_cache(maxsize=1)
def error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {}
    for name in CONTRACT_NAMES:
        for item in abi(name):
            if item["type"] != "error":
                continue
            types = [_type(i) for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            table[bytes(Web3.keccak(text=sig))[:4]] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


@dataclass
class DecodedError:
    name: str
    args: dict
    selector: str

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.args.items())})"


def decode_error(data: bytes | str) -> DecodedError | None:
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if len(data) < 4:
        return None
    entry = error_table().get(data[:4])
    if entry is None:
        if data[:4] == bytes.fromhex("08c379a0"):
            (reason,) = _CODEC.decode(["string"], data[4:])
            return DecodedError("Error", {"reason": reason}, "0x08c379a0")
        return None
    name, types, names = entry
    values = [
        Web3.to_checksum_address(v) if t == "address" else v
        for t, v in zip(types, _CODEC.decode(types, data[4:]) if types else (), strict=True)
    ]
    return DecodedError(name, dict(zip(names, values, strict=True)), "0x" + data[:4].hex())


def revert_reason(w3: Web3, tx_hash) -> DecodedError | None:
    """Replay a mined, failed transaction with eth_call on the parent block's
    state and decode its revert data."""
    tx = w3.eth.get_transaction(tx_hash)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
    try:
        w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
    except Exception as exc:  # web3 raises ContractCustomError / ContractLogicError
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return decode_error(data)
        for arg in exc.args:
            if isinstance(arg, str) and arg.startswith("0x"):
                return decode_error(arg)
        return None
    return None
