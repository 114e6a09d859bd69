"""A Safe deposit's SafeTx: owner signatures and the desk's relay of `execTransaction`, the
same way a delegation's SafeTx is signed and executed (`delegations.chain`: signature recovery,
packing, simulation, execution from the desk's relayer, which pays the gas).

Relaying is the desk's one side effect in a deposit, because it sends a transaction. It runs only
while the `deposits:relay` component is armed, and it is checked at the side effect. The component
is disarmed by default and when disarmed, answers 503 VENUE_DISARMED. The signatures stay, and the
owners can always execute the SafeTx themselves and report its hash to `/submitted`. A SafeTx runs
at most once whatever happens here: the Safe's nonce allows one execution."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hexbytes import HexBytes

from config.errors import ApplicationError, ConflictError
from delegations import chain as safe_chain
from delegations import keys
from deposits import chain, services
from deposits.models import Deposit, DepositSignature
from trading.services import control

logger = logging.getLogger("tradedesk.deposits")

RELAY = "deposits:relay"
S = Deposit.Status
# a relay claim older than this is treated as abandoned (the process died mid-send)
CLAIM_STALE_AFTER = timedelta(minutes=5)


def _signable(deposit: Deposit) -> None:
    if deposit.source != Deposit.Source.SAFE or not deposit.safe_tx_hash:
        raise ConflictError("This deposit has no SafeTx.", code="DEPOSIT_NOT_SAFE")
    if deposit.status != S.AWAITING_SIGNATURE or deposit.transaction_hash:
        raise ConflictError(
            f"A deposit in status {deposit.status} takes no signatures.",
            code="DEPOSIT_NOT_SIGNABLE",
            details={"status": deposit.status},
        )


def _fields(deposit: Deposit) -> dict:
    return {k: deposit.safe_tx[k] for k in services.SAFE_TX_KEYS}


def signers(deposit: Deposit) -> list[str]:
    return list(
        deposit.signatures.filter(safe_tx_hash=deposit.safe_tx_hash).order_by("id").values_list("owner", flat=True)
    )


def signature_add(*, user, deposit_id: int, signature: str, actor: str | None = None) -> Deposit:
    """Verify one owner's signature over the deposit's current safeTxHash and store it."""
    actor = actor or f"user:{user.pk}"
    deposit = services.owned(user, deposit_id)
    _signable(deposit)
    owner, normalised = safe_chain.signature_recover(HexBytes(deposit.safe_tx_hash), signature)
    state = safe_chain.safe_state(chain.target_network(), deposit.from_address)
    if state.nonce > int(deposit.safe_tx["nonce"]):
        raise ConflictError(
            "The Safe executed another transaction since this SafeTx was prepared: quote again.",
            code="SAFE_NONCE_MOVED",
            details={"safe_nonce": state.nonce},
        )
    if owner not in state.owners:
        raise ApplicationError(
            "The signature does not come from an owner of the Safe for this safeTxHash.",
            code="SIGNATURE_NOT_FROM_OWNER",
            status_code=400,
        )
    with transaction.atomic():
        deposit = services.deposit_lock(deposit.pk)
        _signable(deposit)
        if deposit.signatures.filter(safe_tx_hash=deposit.safe_tx_hash, owner=owner).exists():
            raise ConflictError("This owner has already signed.", code="SIGNATURE_DUPLICATE", details={"owner": owner})
        DepositSignature.objects.create(
            deposit=deposit, safe_tx_hash=deposit.safe_tx_hash, owner=owner, signature=HexBytes(normalised).to_0x_hex()
        )
        count = deposit.signatures.filter(safe_tx_hash=deposit.safe_tx_hash).count()
        services.deposit_event(
            deposit,
            "deposit.signed",
            actor=actor,
            payload={"owner": owner, "signatures": count, "threshold": state.threshold},
        )
    return deposit


def relay_gate() -> control.Gate:
    return control.component_gate(RELAY)


def execute(*, user, deposit_id: int, actor: str | None = None) -> Deposit:
    """Relay the Safe's `execTransaction` with the collected signatures (the desk's relayer pays
    gas), then follow it like a reported hash. Refused while `deposits:relay` is not armed."""
    actor = actor or f"user:{user.pk}"
    deposit = services.owned(user, deposit_id)
    _signable(deposit)
    swap = deposit.swap
    if swap is not None and swap.quote_expires_at <= timezone.now():
        raise ConflictError("The quote expired: quote again and sign the new SafeTx.", code="QUOTE_EXPIRED")
    net = chain.target_network()
    state = safe_chain.safe_state(net, deposit.from_address)
    if state.nonce != int(deposit.safe_tx["nonce"]):
        raise ConflictError("The Safe's nonce moved: quote again.", code="SAFE_NONCE_MOVED")

    # 1. claim (short transaction)
    with transaction.atomic():
        deposit = services.deposit_lock(deposit.pk)
        _signable(deposit)
        if deposit.relay_claimed_at and deposit.relay_claimed_at > timezone.now() - CLAIM_STALE_AFTER:
            raise ConflictError("The SafeTx is being executed.", code="DEPOSIT_EXECUTING")
        signatures = [
            (s.owner, bytes(HexBytes(s.signature)))
            for s in deposit.signatures.filter(safe_tx_hash=deposit.safe_tx_hash)
            if s.owner in state.owners
        ]
        if len(signatures) < state.threshold:
            raise ConflictError(
                "Not enough owner signatures yet.",
                code="THRESHOLD_NOT_MET",
                details={"signatures": len(signatures), "threshold": state.threshold},
            )
        gate = relay_gate()  # checked at the side effect
        if not gate.ok:
            raise ApplicationError(gate.message, code=gate.code, status_code=503, details={"component": RELAY})
        claimed_at = deposit.relay_claimed_at = timezone.now()
        deposit.save(update_fields=["relay_claimed_at", "updated_at"])

    # 2. the side effect (no transaction open)
    tx = safe_chain.safe_tx(
        net,
        deposit.from_address,
        _fields(deposit),
        version=state.version,
        signatures=safe_chain.signatures_pack(signatures),
    )
    outcome, error = None, None
    try:
        safe_chain.safe_tx_simulate(tx)
        relayer = keys.relayer_key_load(settings.OSTIUM_NETWORK)
        outcome = safe_chain.safe_tx_execute(net, tx, bytes(relayer.key))
        del relayer
    except ApplicationError as exc:
        error = exc

    # 3. record
    with transaction.atomic():
        deposit = services.deposit_lock(deposit.pk)
        if deposit.relay_claimed_at != claimed_at:
            return deposit  # someone else's claim meanwhile
        if error is None and outcome is not None and not outcome.tx_hash:
            # sent or not, nobody knows: keep the claim; `relay_recover` asks the Safe's logs
            deposit.error_code, deposit.error_message = "RELAY_OUTCOME_UNKNOWN", outcome.error[:500]
            deposit.save(update_fields=["error_code", "error_message", "updated_at"])
            services.deposit_event(deposit, "deposit.relay_unknown", actor=actor, payload={"error": outcome.error})
            return deposit
        deposit.relay_claimed_at = None
        if outcome is not None and outcome.tx_hash and not (outcome.mined and not outcome.success):
            deposit.save(update_fields=["relay_claimed_at", "updated_at"])
            services._submit(deposit, deposit.swap, outcome.tx_hash, actor=actor)
            return deposit
        deposit.error_code = error.code if error else "EXECUTION_FAILED"
        deposit.error_message = (error.message if error else outcome.error)[:500]
        deposit.save(update_fields=["relay_claimed_at", "error_code", "error_message", "updated_at"])
        services.deposit_event(
            deposit,
            "deposit.relay_failed",
            actor=actor,
            payload={"error_code": deposit.error_code, "transaction_hash": outcome.tx_hash if outcome else ""},
        )
    if error is not None:
        raise error
    raise ConflictError(f"The SafeTx did not run: {deposit.error_message}", code=deposit.error_code)


def relay_recover(*, limit: int = 20, actor: str = "system:relay_recover") -> dict:
    """Beat (inside `deposits-poll`): settle relay claims left behind — a relay whose outcome was
    unknown, or a process that died between sending `execTransaction` and recording its hash.
    The Safe's logs say whether the SafeTx ran: it did → the deposit is submitted with that
    transaction (then followed as any other); it failed → failed; it did not and the claim is
    older than CLAIM_STALE_AFTER → the claim is dropped and the signatures can execute again
    (the Safe's nonce lets the SafeTx run once, whoever sends it)."""
    counts = {"checked": 0, "submitted": 0, "released": 0, "errors": 0}
    claimed = Deposit.objects.filter(
        source=Deposit.Source.SAFE, status=S.AWAITING_SIGNATURE, relay_claimed_at__isnull=False
    ).order_by("relay_claimed_at")[:limit]
    for deposit in claimed:
        counts["checked"] += 1
        seen = deposit.relay_claimed_at
        try:
            found = chain.safe_execution(
                chain.target_network(),
                deposit.from_address,
                deposit.safe_tx_hash,
                from_block=int(deposit.safe_tx.get("prepared_block") or 0),
            )
        except ApplicationError as exc:
            counts["errors"] += 1
            logger.warning("relay recovery failed", extra={"deposit_id": deposit.pk, "code": exc.code})
            continue
        stale = seen <= timezone.now() - CLAIM_STALE_AFTER
        if found is None and not stale:
            continue
        with transaction.atomic():
            deposit = services.deposit_lock(deposit.pk)
            if deposit.status != S.AWAITING_SIGNATURE or deposit.relay_claimed_at != seen:
                continue
            deposit.relay_claimed_at = None
            if found is None:
                deposit.save(update_fields=["relay_claimed_at", "updated_at"])
                services.deposit_event(deposit, "deposit.relay_released", actor=actor)
                counts["released"] += 1
                continue
            tx_hash, succeeded = found
            if not succeeded:
                deposit.error_code, deposit.error_message = "EXECUTION_FAILED", "the Safe reported ExecutionFailure"
                deposit.completed_at = timezone.now()
                deposit.transaction_hash = tx_hash
                services._transition(
                    deposit,
                    S.FAILED,
                    actor=actor,
                    fields=("relay_claimed_at", "error_code", "error_message", "completed_at", "transaction_hash"),
                )
                continue
            deposit.error_code = deposit.error_message = ""
            deposit.save(update_fields=["relay_claimed_at", "error_code", "error_message", "updated_at"])
            services._submit(deposit, deposit.swap, tx_hash, actor=actor)
            counts["submitted"] += 1
    return counts
