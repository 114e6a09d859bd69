"""Custody of the keys Tradedesk holds for Ostium delegations.

- **Delegate key**: one per network (or one per user and network with
  `OSTIUM_DELEGATE_KEY_SCOPE=user`). Safes delegate Ostium trading to its address; only the
  Ostium client/signer path decrypts it, through `delegate_key_load` — nothing else may.
- **Relayer key**: one per network; pays gas for the Safes' `execTransaction`
  (`relayer_key_load`, used only by `delegations.chain` when executing).
- **NEAR Intents solver key**: one ed25519 key per NEAR Intents network; signs the solver
  account's intents (`solver_key_for_network`, registered as the NEAR Intents signer's key
  source). Its public key must be registered on the verifier (`add_public_key`).

Keys are generated here (`ostium_delegate_key create`), never accepted over the API, stored
encrypted (`delegations.crypto`), shown only as a fingerprint (address + short hash), and
never logged."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from eth_account import Account
from eth_account.signers.local import LocalAccount

from config.errors import ApplicationError, ConflictError
from delegations import crypto
from delegations.models import CustodyKey
from trading.services.ledger import event_record

P = CustodyKey.Purpose


class DelegateKeyMissing(ApplicationError):
    status_code = 503
    code = "DELEGATE_KEY_MISSING"


def key_scope() -> str:
    scope = getattr(settings, "OSTIUM_DELEGATE_KEY_SCOPE", "network")
    return "user" if scope == "user" else "network"


def _active(purpose: str, network: str, user=None):
    qs = CustodyKey.objects.filter(purpose=purpose, network=network, is_active=True)
    if purpose == P.DELEGATE and key_scope() == "user":
        if user is None:
            return None
        return qs.filter(user=user).first()
    return qs.filter(user__isnull=True).first()


@transaction.atomic
def custody_key_create(*, purpose: str, network: str, user=None, actor: str = "system", replace: bool = False):
    """Generate a fresh key, store it encrypted and return the row (never the key)."""
    if purpose != P.DELEGATE or key_scope() == "network":
        user = None
    existing = (
        CustodyKey.objects.select_for_update()
        .filter(purpose=purpose, network=network, is_active=True, user=user)
        .first()
    )
    if existing and not replace:
        raise ConflictError(
            f"An active {purpose} key exists for {network}.",
            code="CUSTODY_KEY_EXISTS",
            details={"address": existing.address},
        )
    if existing:
        existing.is_active = False
        existing.save(update_fields=["is_active"])
    if purpose == P.NEAR_SOLVER:
        from providers.near_intents.signing import keypair_generate

        secret, address = keypair_generate()
    else:
        account = Account.create()
        secret, address = bytes(account.key), account.address
        del account
    row = CustodyKey.objects.create(
        purpose=purpose, network=network, user=user, address=address, encrypted_key=crypto.encrypt(secret)
    )
    del secret
    event_record(
        topic="custody_key.created",
        aggregate_type="custody_key",
        aggregate_id=row.pk,
        actor=actor,
        payload={
            "purpose": purpose,
            "network": network,
            "address": row.address,
            "user_id": row.user_id,
            "replaced": existing.address if existing else None,
        },
    )
    return row


def delegate_key_create(*, network: str, user=None, actor: str = "system", replace: bool = False) -> CustodyKey:
    return custody_key_create(purpose=P.DELEGATE, network=network, user=user, actor=actor, replace=replace)


def relayer_key_create(*, network: str, actor: str = "system", replace: bool = False) -> CustodyKey:
    return custody_key_create(purpose=P.RELAYER, network=network, actor=actor, replace=replace)


def custody_keys_ensure(*, network: str, actor: str = "system") -> list[str]:
    """The addresses of `network`'s relayer key and (network-scoped) delegate key, each generated
    when there is none. For demos and first set-ups; never replaces a key."""
    purposes = [P.RELAYER] + ([P.DELEGATE] if key_scope() == "network" else [])
    addresses = []
    for purpose in purposes:
        row = _active(purpose, network) or custody_key_create(purpose=purpose, network=network, actor=actor)
        addresses.append(row.address)
    return addresses


def delegate_key_address(*, network: str, user=None) -> str:
    """The delegate's public address (no decryption)."""
    row = _active(P.DELEGATE, network, user)
    if row is None:
        raise DelegateKeyMissing(
            f"No delegate key for network {network}: run `manage.py ostium_delegate_key create --network {network}`.",
            details={"network": network},
        )
    return row.address


def delegate_key_load(network: str, user=None) -> LocalAccount:
    """Decrypt the delegate key for `network` (and `user` when keys are per user).

    THE ONLY reader of delegate key plaintext: called by the Ostium client/signer path that
    sends `delegatedAction` transactions, nowhere else. Do not log, return over an API or
    cache the result beyond the client that signs with it."""
    row = _active(P.DELEGATE, network, user)
    if row is None:
        raise DelegateKeyMissing(f"No delegate key for network {network}.", details={"network": network})
    return Account.from_key(crypto.decrypt(row.encrypted_key))


def delegate_key_for_trader(network: str, trader: str) -> str | None:
    """The Ostium signer's source of delegate keys (registered in AppConfig.ready through
    `providers.ostium.signer_keys`): the hex key of the delegate that acts for `trader` (a
    Safe), decrypted by `delegate_key_load`; None when Tradedesk holds none for the network."""
    from delegations.models import OstiumDelegation

    user = None
    if key_scope() == "user":
        found = (
            OstiumDelegation.objects.filter(network=network, safe_address__iexact=trader)
            .exclude(status=OstiumDelegation.Status.FAILED)
            .order_by("-id")
            .first()
        )
        if found is None:
            return None
        user = found.user
    if _active(P.DELEGATE, network, user) is None:
        return None
    return delegate_key_load(network, user).key.to_0x_hex()


def relayer_key_address(network: str) -> str | None:
    """The relayer's public address (no decryption), None when there is none."""
    row = _active(P.RELAYER, network)
    return row.address if row else None


def relayer_key_load(network: str) -> LocalAccount:
    """Decrypt the relayer key (pays gas for execTransaction); used only by `delegations.chain`."""
    row = _active(P.RELAYER, network)
    if row is None:
        raise DelegateKeyMissing(
            f"No relayer key for network {network}: run `manage.py ostium_delegate_key create-relayer "
            f"--network {network}` and fund its address.",
            code="RELAYER_KEY_MISSING",
            details={"network": network},
        )
    return Account.from_key(crypto.decrypt(row.encrypted_key))


def solver_key_create(*, network: str, actor: str = "system", replace: bool = False) -> CustodyKey:
    return custody_key_create(purpose=P.NEAR_SOLVER, network=network, actor=actor, replace=replace)


def solver_public_key(network: str) -> str | None:
    """The solver key's public key (`ed25519:<base58>`, no decryption), None when there is none."""
    row = _active(P.NEAR_SOLVER, network)
    return row.address if row else None


def solver_key_for_network(network: str) -> bytes | None:
    """The NEAR Intents signer's key source (registered in AppConfig.ready through
    `providers.near_intents.solver_keys`): the 32-byte ed25519 seed of the network's solver key,
    None when Tradedesk holds none. THE ONLY reader of solver key plaintext."""
    row = _active(P.NEAR_SOLVER, network)
    return crypto.decrypt(row.encrypted_key) if row else None


@transaction.atomic
def custody_keys_rotate_encryption(*, actor: str = "system") -> int:
    """Re-encrypt every stored key with the newest key-encryption key; returns the count."""
    count = 0
    now = timezone.now()
    for row in CustodyKey.objects.select_for_update().order_by("pk"):
        row.encrypted_key = crypto.rotate(row.encrypted_key)
        row.rotated_at = now
        row.save(update_fields=["encrypted_key", "rotated_at"])
        count += 1
    event_record(
        topic="custody_key.reencrypted",
        aggregate_type="custody_key",
        aggregate_id="all",
        actor=actor,
        payload={"count": count},
    )
    return count
