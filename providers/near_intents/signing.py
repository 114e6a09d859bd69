"""NEP-413 signing of intents for the verifier, with PyNaCl (ed25519) and base58.

- prehash = sha256(borsh(u32 2**31+413) || borsh(message: String) || nonce[32] || borsh(recipient:
  String) || borsh(Option<callback_url>)): what is signed, and the intent's hash on the verifier
  (`intent_hash` is its base58 form, as the relay reports it).
- The nonce is the verifier's versioned nonce V1: magic `5628f6c6` || 0x00 || salt (4 bytes, the
  verifier's `current_salt`) || deadline (i64 LE, nanoseconds) || 15 random bytes. The verifier
  refuses an unknown salt, a nonce whose deadline is before the intent's, or an expired one.
- Keys are NEAR ed25519 keys: a 32-byte seed; the public key travels as `ed25519:<base58>`.

Checked against the verifier's own NEP-413 test vector (tests/providers/near_intents)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from datetime import datetime

import base58
import nacl.exceptions
import nacl.signing

NEP413_TAG = struct.pack("<I", 2**31 + 413)
VERSIONED_NONCE_MAGIC = bytes.fromhex("5628f6c6")
NONCE_V1 = b"\x00"
ED25519 = "ed25519:"


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_PAIRS = [a + b for a in _B58 for b in _B58]  # a value below 58**2 → its two digits
_B58_CHUNK = 58**10


def b58encode(data: bytes) -> str:
    """`base58.b58encode(data).decode()` (Bitcoin's alphabet), ten digits per big-number division
    instead of one: a signature and an intent hash are encoded for every quote answered."""
    n = int.from_bytes(data, "big")
    pairs = []
    while n:
        n, chunk = divmod(n, _B58_CHUNK)
        for _ in range(5):
            chunk, pair = divmod(chunk, 58 * 58)
            pairs.append(_B58_PAIRS[pair])
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(pairs)).lstrip("1")


def _borsh_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("<I", len(data)) + data


def nep413_prehash(*, message: str, nonce: bytes, recipient: str, callback_url: str | None = None) -> bytes:
    if len(nonce) != 32:
        raise ValueError("a NEP-413 nonce is 32 bytes")
    body = _borsh_string(message) + nonce + _borsh_string(recipient)
    body += b"\x00" if callback_url is None else b"\x01" + _borsh_string(callback_url)
    return hashlib.sha256(NEP413_TAG + body).digest()


def versioned_nonce(*, salt: bytes, deadline: datetime, random_part: bytes | None = None) -> bytes:
    """The verifier's versioned nonce V1 (32 bytes)."""
    if len(salt) != 4:
        raise ValueError("the salt is 4 bytes")
    random_part = os.urandom(15) if random_part is None else random_part
    if len(random_part) != 15:
        raise ValueError("the random part is 15 bytes")
    nanos = int(deadline.timestamp() * 1_000_000) * 1000
    return VERSIONED_NONCE_MAGIC + NONCE_V1 + salt + struct.pack("<q", nanos) + random_part


def versioned_nonce_parse(nonce: bytes) -> tuple[bytes, int] | None:
    """(salt, deadline in ns) of a V1 versioned nonce; None for a legacy (unversioned) one."""
    if len(nonce) != 32 or not nonce.startswith(VERSIONED_NONCE_MAGIC) or nonce[4:5] != NONCE_V1:
        return None
    (deadline_ns,) = struct.unpack("<q", nonce[9:17])
    return nonce[5:9], deadline_ns


def public_key_of(seed: bytes) -> str:
    return ED25519 + base58.b58encode(bytes(nacl.signing.SigningKey(seed).verify_key)).decode()


def keypair_generate() -> tuple[bytes, str]:
    """(seed, "ed25519:<base58 public key>") of a fresh key."""
    key = nacl.signing.SigningKey.generate()
    return bytes(key), ED25519 + base58.b58encode(bytes(key.verify_key)).decode()


def _key_bytes(value: str, size: int) -> bytes:
    if not value.startswith(ED25519):
        raise ValueError(f"not an ed25519 value: {value[:20]!r}")
    raw = base58.b58decode(value[len(ED25519) :])
    if len(raw) != size:
        raise ValueError(f"an ed25519 value of {len(raw)} bytes, not {size}")
    return raw


class Nep413Signer:
    """A key that signs many payloads: the ed25519 key and its public key are derived from the
    seed once (a scalar multiplication and a base58 encoding that `sign_nep413` pays each time)."""

    def __init__(self, seed: bytes):
        self._key = nacl.signing.SigningKey(seed)
        self.public_key = ED25519 + base58.b58encode(bytes(self._key.verify_key)).decode()

    def sign(self, *, message: str, nonce: bytes, recipient: str) -> dict:
        """The verifier's MultiPayload (standard nep413) for `message`."""
        signature = self._key.sign(nep413_prehash(message=message, nonce=nonce, recipient=recipient)).signature
        return {
            "standard": "nep413",
            "payload": {"message": message, "nonce": base64.b64encode(nonce).decode(), "recipient": recipient},
            "public_key": self.public_key,
            "signature": ED25519 + b58encode(signature),
        }


def sign_nep413(seed: bytes, *, message: str, nonce: bytes, recipient: str) -> dict:
    """The verifier's MultiPayload (standard nep413) for `message`, signed with `seed`."""
    return Nep413Signer(seed).sign(message=message, nonce=nonce, recipient=recipient)


def payload_prehash(signed: dict) -> bytes:
    payload = signed["payload"]
    return nep413_prehash(
        message=payload["message"],
        nonce=base64.b64decode(payload["nonce"]),
        recipient=payload["recipient"],
        callback_url=payload.get("callbackUrl"),
    )


def intent_hash(signed: dict) -> str:
    """The intent's hash on the verifier (the NEP-413 prehash), base58."""
    return b58encode(payload_prehash(signed))


def verify_nep413(signed: dict) -> bool:
    """Does the signature verify against the payload's prehash and the given public key?"""
    try:
        verify_key = nacl.signing.VerifyKey(_key_bytes(signed["public_key"], 32))
        verify_key.verify(payload_prehash(signed), _key_bytes(signed["signature"], 64))
    except (KeyError, ValueError, TypeError, nacl.exceptions.BadSignatureError):
        return False
    return True
