"""Field encryption for secrets at rest (webhook signing secrets, delegate keys, ...).

Fernet tokens under a `MultiFernet` (`multi_fernet`, also used for custody keys by
`delegations.crypto`) built from settings `FIELD_ENCRYPTION_KEYS`
(comma-separated Fernet keys, newest first). Encryption uses the first key; decryption tries
each, so keys can rotate: put a new key first, keep the old ones until `reencrypt` has been
run over the stored values, then drop them. Without the setting, one key is derived from
SECRET_KEY (fine for development; set real keys in production).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "fingerprint", "multi_fernet", "reencrypt"]


def _derived_key() -> bytes:
    digest = hashlib.sha256(b"tradedesk-field-encryption:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def multi_fernet(keys) -> MultiFernet:
    """The MultiFernet over `keys` (Fernet keys as str or bytes, newest first): encrypts with the
    first, decrypts with any. Raises ValueError for no key or a key that is not a Fernet key."""
    return _multi_fernet(tuple(k.decode() if isinstance(k, bytes) else k for k in keys))


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ValueError("no Fernet key")
    return MultiFernet([Fernet(k.encode()) for k in keys])


def _current() -> MultiFernet:
    keys = [k.strip() for k in (settings.FIELD_ENCRYPTION_KEYS or []) if k.strip()]
    return multi_fernet(keys or [_derived_key()])


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Raises `InvalidToken` when no configured key opens it."""
    return _current().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """The same plaintext under the newest key (for key rotation)."""
    return _current().rotate(token.encode()).decode()


def fingerprint(secret: str) -> str:
    """A short, non-reversible identifier of a secret, safe to show in the admin and API."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]
