"""config/crypto.py: secrets at rest under rotatable Fernet keys."""

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from config import crypto


def test_round_trip_and_the_token_hides_the_secret():
    token = crypto.encrypt("whsec_top-secret")
    assert "top-secret" not in token
    assert crypto.decrypt(token) == "whsec_top-secret"


def test_keys_rotate_old_tokens_still_open_and_reencrypt_moves_them_to_the_new_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        token = crypto.encrypt("s3cret")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert crypto.decrypt(token) == "s3cret"
        moved = crypto.reencrypt(token)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert crypto.decrypt(moved) == "s3cret"
        with pytest.raises(crypto.InvalidToken):
            crypto.decrypt(token)


def test_fingerprint_is_short_and_stable():
    assert crypto.fingerprint("a") == crypto.fingerprint("a") != crypto.fingerprint("b")
    assert len(crypto.fingerprint("a")) == 12
