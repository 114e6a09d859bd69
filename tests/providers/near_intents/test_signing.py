"""NEP-413 signing, the versioned nonce and intent messages, checked against the verifier's
own test vector and its rules (as the sandbox verifier applies them)."""

import base64
import json
import struct
from datetime import UTC, datetime, timedelta

import base58
import nacl.signing
import pytest

from providers.near_intents.intents import deadline_text, ft_withdraw, intent_message
from providers.near_intents.signing import (
    intent_hash,
    keypair_generate,
    nep413_prehash,
    public_key_of,
    sign_nep413,
    verify_nep413,
    versioned_nonce,
    versioned_nonce_parse,
)

# near/intents crates/signatures/nep413/src/lib.rs, test `verify_ok`
VECTOR_PUBLIC_KEY = bytes.fromhex("e2e9cb7ac57cb46d4da1ce1d1cc2c33bdfe17407c517916b522724a8ea2c6c50")
VECTOR_SIGNATURE = bytes.fromhex(
    "e2ff6254871a3fec1853c167b42f0f14248c4cf7fef5452dc24d8dbdc5c4bf18"
    "3ab707322b4d782d5f5a05571bae476c5f7ee41c473f3002e600865e46b75d0f"
)


def test_the_verifiers_own_test_vector_verifies_over_our_prehash():
    prehash = nep413_prehash(message="Hello, world!", nonce=bytes(32), recipient="intents.near")
    nacl.signing.VerifyKey(VECTOR_PUBLIC_KEY).verify(prehash, VECTOR_SIGNATURE)  # raises when it does not
    signed = {
        "standard": "nep413",
        "payload": {
            "message": "Hello, world!",
            "nonce": base64.b64encode(bytes(32)).decode(),
            "recipient": "intents.near",
        },
        "public_key": "ed25519:" + base58.b58encode(VECTOR_PUBLIC_KEY).decode(),
        "signature": "ed25519:" + base58.b58encode(VECTOR_SIGNATURE).decode(),
    }
    assert verify_nep413(signed)
    tampered = {**signed, "payload": {**signed["payload"], "message": "Hello, world?"}}
    assert not verify_nep413(tampered)
    other_recipient = {**signed, "payload": {**signed["payload"], "recipient": "intents.testnet"}}
    assert not verify_nep413(other_recipient)


def test_the_prehash_is_the_borsh_layout_with_the_nep413_tag():
    prehash = nep413_prehash(message="m", nonce=b"\x01" * 32, recipient="r", callback_url="https://cb")
    import hashlib

    body = struct.pack("<I", 2**31 + 413) + struct.pack("<I", 1) + b"m" + b"\x01" * 32 + struct.pack("<I", 1) + b"r"
    body += b"\x01" + struct.pack("<I", 10) + b"https://cb"
    assert prehash == hashlib.sha256(body).digest()
    with pytest.raises(ValueError):
        nep413_prehash(message="m", nonce=b"short", recipient="r")


def test_the_versioned_nonce_carries_magic_version_salt_and_deadline():
    deadline = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    nonce = versioned_nonce(salt=bytes.fromhex("e110f317"), deadline=deadline, random_part=b"\x07" * 15)
    assert len(nonce) == 32
    assert nonce[:4] == bytes.fromhex("5628f6c6") and nonce[4] == 0 and nonce[5:9] == bytes.fromhex("e110f317")
    assert struct.unpack("<q", nonce[9:17])[0] == int(deadline.timestamp() * 1_000_000) * 1000
    assert nonce[17:] == b"\x07" * 15
    assert versioned_nonce_parse(nonce) == (bytes.fromhex("e110f317"), int(deadline.timestamp() * 1e6) * 1000)
    assert versioned_nonce_parse(bytes(32)) is None  # legacy
    assert versioned_nonce(salt=b"abcd", deadline=deadline) != versioned_nonce(salt=b"abcd", deadline=deadline)


def test_sign_and_verify_round_trip_and_intent_hash():
    seed, public_key = keypair_generate()
    assert public_key == public_key_of(seed) and public_key.startswith("ed25519:")
    deadline = datetime.now(UTC) + timedelta(minutes=1)
    message = intent_message(
        signer_id="desk.near",
        deadline=deadline,
        intents=[ft_withdraw(token_id="nep141:usdt.tether-token.near", amount_raw=5, chain="near", address="bob.near")],
    )
    signed = sign_nep413(
        seed, message=message, nonce=versioned_nonce(salt=b"salt", deadline=deadline), recipient="intents.near"
    )
    assert signed["standard"] == "nep413" and signed["public_key"] == public_key
    assert verify_nep413(signed)
    assert base58.b58decode(intent_hash(signed)) == nep413_prehash(
        message=message, nonce=base64.b64decode(signed["payload"]["nonce"]), recipient="intents.near"
    )
    parsed = json.loads(signed["payload"]["message"])
    assert parsed["signer_id"] == "desk.near" and parsed["deadline"] == deadline_text(deadline)
    assert parsed["deadline"].endswith("Z") and len(parsed["deadline"]) == 24
    other_seed, _ = keypair_generate()
    forged = {**signed, "public_key": public_key_of(other_seed)}
    assert not verify_nep413(forged)


def test_ft_withdraw_to_a_near_account_and_through_the_bridge():
    near = ft_withdraw(token_id="nep141:wrap.near", amount_raw=10, chain="near", address="bob.near")
    assert near == {"intent": "ft_withdraw", "token": "wrap.near", "amount": "10", "receiver_id": "bob.near"}
    token = "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near"
    poa = ft_withdraw(token_id=token, amount_raw=7, chain="eth:42161", address="0xabc")
    assert poa["receiver_id"] == poa["token"] == token.removeprefix("nep141:")
    assert poa["memo"] == "WITHDRAW_TO:0xabc"
    with pytest.raises(ValueError):
        ft_withdraw(token_id="nep245:v2_1.omni.hot.tg:1117_x", amount_raw=1, chain="near", address="bob.near")


def test_the_base58_encoding_is_the_base58_librarys():
    import os

    from providers.near_intents.signing import b58encode

    samples = [b"", b"\0", b"\0\0\x01", b"\xff" * 64, b"\0" * 3 + os.urandom(29)]
    samples += [os.urandom(size) for size in (1, 9, 31, 32, 33, 64, 65) for _ in range(50)]
    for data in samples:
        assert b58encode(data) == base58.b58encode(data).decode(), data.hex()
