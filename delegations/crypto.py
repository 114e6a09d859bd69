"""Encryption at rest for custody keys: the MultiFernet of `config.crypto.multi_fernet` over the keys in
`DELEGATE_KEY_ENCRYPTION_KEYS` (comma separated, newest first) or, when that is empty, the
file `DELEGATE_KEY_ENCRYPTION_KEY_FILE` (one key per line, newest first). With neither set
(development), a key file is generated once under the var folder, like the secret key.

Rotation: put a new key first, keep the old ones after it, run
`manage.py ostium_delegate_key rotate-encryption` (re-encrypts every row with the newest key),
then drop the old keys."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from config.crypto import multi_fernet
from config.errors import ApplicationError

logger = logging.getLogger("tradedesk.delegations.crypto")


class KeyEncryptionError(ApplicationError):
    status_code = 500
    code = "KEY_ENCRYPTION_UNAVAILABLE"


def _keys() -> list[str]:
    raw = list(getattr(settings, "DELEGATE_KEY_ENCRYPTION_KEYS", []) or [])
    if not raw:
        path = Path(settings.DELEGATE_KEY_ENCRYPTION_KEY_FILE)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Fernet.generate_key().decode() + "\n")
            path.chmod(0o600)
            logger.warning("generated a development key-encryption key file", extra={"path": str(path)})
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not raw:
        raise KeyEncryptionError("No key-encryption key is configured.")
    return raw


def fernet() -> MultiFernet:
    try:
        return multi_fernet(_keys())
    except (ValueError, TypeError) as exc:
        raise KeyEncryptionError("A key-encryption key is not a valid Fernet key.") from exc


def encrypt(plaintext: bytes) -> bytes:
    return fernet().encrypt(plaintext)


def decrypt(token: bytes) -> bytes:
    try:
        return fernet().decrypt(bytes(token))
    except InvalidToken as exc:
        raise KeyEncryptionError("A stored key cannot be decrypted with the configured keys.") from exc


def rotate(token: bytes) -> bytes:
    """Re-encrypt with the newest key (MultiFernet.rotate)."""
    try:
        return fernet().rotate(bytes(token))
    except InvalidToken as exc:
        raise KeyEncryptionError("A stored key cannot be decrypted with the configured keys.") from exc
