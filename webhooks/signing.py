"""Signing secrets and the two signature schemes every delivery carries.

- Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`,
  `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, keyed with the
  base64-decoded part of the secret after `whsec_`. Several signatures are space-separated
  (during a secret rotation: the new one first, then the old one).
- MarqetFi style: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, body)>` keyed with the
  whole secret string (`whsec_...`, UTF-8), plus `X-Webhook-Event-Type`,
  `X-Webhook-Delivery-ID`, `X-Webhook-Timestamp`. Always the newest secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


MIN_SECRET_BYTES = 24  # a secret the client chooses must be at least this long (192 bits)


def secret_generate() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_problem(secret: str) -> str | None:
    """Why a client-chosen secret is refused, or None. A `whsec_` secret must be base64 of at
    least MIN_SECRET_BYTES bytes; any other one at least MIN_SECRET_BYTES bytes of UTF-8."""
    if secret.startswith(PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
        except ValueError:
            return "A secret starting with whsec_ must be base64 after the prefix."
        if len(key) < MIN_SECRET_BYTES:
            return f"The secret's key must be at least {MIN_SECRET_BYTES} bytes."
        return None
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"The secret must be at least {MIN_SECRET_BYTES} bytes (UTF-8); leave it out to get a generated one."
    return None


def _key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64 part of a `whsec_` secret, else (a secret the
    client chose) the secret's UTF-8 bytes."""
    if secret.startswith(PREFIX):
        return base64.b64decode(secret.removeprefix(PREFIX))
    return secret.encode()


def standard_signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def marqetfi_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Signer:
    """`signed_headers` for one endpoint's secrets, with its HMAC keys set up once (a delivery
    run signs many messages with them): each signature starts from a copy of a keyed HMAC."""

    def __init__(self, secrets_newest_first: list[str]):
        self.standard = [hmac.new(_key(s), digestmod=hashlib.sha256) for s in secrets_newest_first]
        self.marqetfi = hmac.new(secrets_newest_first[0].encode(), digestmod=hashlib.sha256)

    def headers(self, *, msg_id: str, delivery_id: str, event_type: str, timestamp: int, body: bytes) -> dict[str, str]:
        signed = f"{msg_id}.{timestamp}.".encode() + body
        standard = []
        for keyed in self.standard:
            mac = keyed.copy()
            mac.update(signed)
            standard.append("v1," + base64.b64encode(mac.digest()).decode())
        marqetfi = self.marqetfi.copy()
        marqetfi.update(body)
        return {
            "content-type": "application/json",
            "user-agent": "Tradedesk-Webhooks/1.0",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(standard),
            "x-webhook-signature": "sha256=" + marqetfi.hexdigest(),
            "x-webhook-event-type": event_type,
            "x-webhook-delivery-id": delivery_id,
            "x-webhook-timestamp": str(timestamp),
        }


def signed_headers(
    *, secrets_newest_first: list[str], msg_id: str, delivery_id: str, event_type: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return Signer(secrets_newest_first).headers(
        msg_id=msg_id, delivery_id=delivery_id, event_type=event_type, timestamp=timestamp, body=body
    )
