"""Refusing private keys wherever a request body arrives (the delegations API, the Ostium signer
service): a field named like a secret, or a value that is a 32-byte hex string — except in a field
documented as a hash or a key id (`idempotencyKey`, `txHash`, `safe_tx_hash`, ...), where a 32-byte
hex value is what it says. Each door refuses with the code SECRET_REFUSED."""

from __future__ import annotations

import re

REFUSED_CODE = "SECRET_REFUSED"  # the error code of every refusal
SECRET_NAME = re.compile(r"private|secret|mnemonic|seed|passphrase|keystore|signing_?key", re.I)
HEX_32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# field names (lower case, without _ and -) documented as hashes or key ids
HASH_OR_KEY_ID = frozenset(
    {
        "idempotencykey",
        "hash",
        "txhash",
        "transactionhash",
        "safetxhash",
        "blockhash",
        "messagehash",
        "keyid",
        "requestid",
        "orderid",
        "tradeid",
        "feedid",
    }
)


def _documented_hash(name: str) -> bool:
    return name.replace("_", "").replace("-", "").lower() in HASH_OR_KEY_ID


def secret_found(data, path: str = "", name: str = "") -> tuple[str, str] | None:
    """(field path, message) of the first thing in `data` that looks like a private key, or None."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_NAME.search(str(key)):
                return where, "Private keys, seeds and mnemonics are never accepted."
            found = secret_found(value, where, str(key))
            if found:
                return found
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found = secret_found(value, f"{path}[{i}]", name)
            if found:
                return found
    elif isinstance(data, str) and HEX_32.match(data.strip()) and not _documented_hash(name):
        return path, "A 32-byte hex value looks like a private key and is refused."
    return None
