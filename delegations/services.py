"""Delegation lifecycle: prepare → signatures → execute → active → revoke → revoked, every
transition with its ledger event (`delegation.<status>`, correlation `delegation-<id>`).

Chain reads and the relayed `execTransaction` happen outside any database transaction; the
state change that follows them is one short transaction with its event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from eth_utils import is_address, to_checksum_address
from hexbytes import HexBytes

from config.errors import ApplicationError, ConflictError, NotFoundError
from delegations import chain, keys
from delegations.models import DelegationSignature, OstiumDelegation
from trading.models import Wallet
from trading.services import control
from trading.services.ledger import event_record

logger = logging.getLogger("tradedesk.delegations")

S = OstiumDelegation.Status
A = OstiumDelegation.Action
# The desk's relay of a delegation's `execTransaction` (its relayer pays the gas): a control
# component, disarmed on deploy and by Halt everything. Disarmed, execute answers 503 and the
# delegation keeps its signatures; owners can execute the SafeTx from their Safe themselves, and
# the chain check notices the delegate change (`delegations_chain_check`).
RELAY = "delegations:relay"


# --- events & locks ------------------------------------------------------------------------------


def delegation_event(*, delegation: OstiumDelegation, topic: str, actor: str, payload: dict | None = None):
    body = {
        "delegation_id": delegation.pk,
        "user_id": delegation.user_id,
        "network": delegation.network,
        "safe_address": delegation.safe_address,
        "delegate_address": delegation.delegate_address,
        "status": delegation.status,
        "action": delegation.action,
        "safe_tx_hash": delegation.safe_tx_hash,
        "transaction_hash": delegation.transaction_hash,
    }
    body.update(payload or {})
    return event_record(
        topic=topic,
        aggregate_type="delegation",
        aggregate_id=delegation.pk,
        correlation_id=delegation.correlation_id,
        actor=actor,
        payload=body,
    )


def delegation_lock(pk) -> OstiumDelegation | None:
    return OstiumDelegation.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def _transition(delegation: OstiumDelegation, to: str, *, actor: str, fields=(), payload=None):
    source = delegation.status
    delegation.status = to
    delegation.save(update_fields=["status", "updated_at", *fields])
    return delegation_event(
        delegation=delegation, topic=f"delegation.{to}", actor=actor, payload={"from": source, **(payload or {})}
    )


def _writes_enabled() -> None:
    """The environment kill switch (OSTIUM_ENABLED=false) stops every Ostium write, delegations
    included: nothing is prepared, signed, executed or revoked; reads and reconciliation go on."""
    if not control.venue_enabled("ostium"):
        raise ApplicationError(
            "Ostium writes are disabled (OSTIUM_ENABLED=false).", code="VENUE_DISABLED", status_code=503
        )


def _owned(user, delegation_id) -> OstiumDelegation:
    found = OstiumDelegation.objects.filter(pk=delegation_id, user=user).first()
    if found is None:
        raise NotFoundError("No such delegation.", code="DELEGATION_NOT_FOUND")
    return found


def user_addresses(user) -> set[str]:
    """The addresses the user has proven to control: the sign-in wallet and verified wallets."""
    found = set()
    if user.wallet_address:
        found.add(to_checksum_address(user.wallet_address))
    for address in Wallet.objects.filter(user=user, is_active=True, verified_at__isnull=False).values_list(
        "wallet_address", flat=True
    ):
        found.add(to_checksum_address(address))
    return found


def _require_owner(user, state: chain.SafeState) -> None:
    if not user_addresses(user) & set(state.owners):
        raise ApplicationError(
            "None of your verified wallets is an owner of this Safe.",
            code="NOT_SAFE_OWNER",
            status_code=403,
            details={"safe_address": state.address},
        )


def _checksum(value: str, field: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ApplicationError(
            f"{field} is not an address.", code="VALIDATION_ERROR", details={field: ["not an address"]}
        )
    return to_checksum_address(value)


# --- prepare -------------------------------------------------------------------------------------


def _store_tx(delegation: OstiumDelegation, *, prepared: chain.PreparedTx, nonce: int, net) -> None:
    delegation.tx_to = prepared.to
    delegation.tx_value = prepared.value
    delegation.tx_data = HexBytes(prepared.data).to_0x_hex()
    delegation.tx_operation = prepared.operation
    delegation.safe_tx_gas = delegation.base_gas = delegation.gas_price = 0
    delegation.gas_token = delegation.refund_receiver = chain.NULL_ADDRESS
    delegation.safe_nonce = nonce
    delegation.safe_tx_hash = chain.safe_tx(
        net, delegation.safe_address, delegation.safe_tx_fields()
    ).safe_tx_hash.to_0x_hex()
    delegation.transaction_hash = ""
    delegation.error_code = delegation.error_message = ""


def delegation_prepare(
    *, user, network: str, safe_address: str, usdc_allowance: int | None = None, actor: str | None = None
) -> OstiumDelegation:
    """Check the caller owns the Safe (on chain) and prepare the SafeTx that approves USDC for
    TradingStorage and sets our delegate, batched through MultiSendCallOnly."""
    _writes_enabled()
    actor = actor or f"user:{user.pk}"
    safe_address = _checksum(safe_address, "safe_address")
    net = chain.network_config(network)
    state = chain.safe_state(net, safe_address)
    _require_owner(user, state)
    delegate = keys.delegate_key_address(network=network, user=user)
    allowance = chain.MAX_UINT256 if usdc_allowance is None else int(usdc_allowance)
    if not 0 < allowance <= chain.MAX_UINT256:
        raise ApplicationError(
            "usdc_allowance must be positive.",
            code="VALIDATION_ERROR",
            details={"usdc_allowance": ["must be positive"]},
        )
    prepared = chain.delegate_batch(net, delegate, allowance)

    with transaction.atomic():
        live = (
            OstiumDelegation.objects.select_for_update()
            .filter(user=user, network=network, safe_address=safe_address, delegate_address=delegate)
            .filter(status__in=OstiumDelegation.LIVE)
            .first()
        )
        if live is not None:
            if live.status == S.PENDING_SIGNATURE and int(live.safe_nonce) < state.nonce:
                live.error_code, live.error_message = "SAFE_NONCE_MOVED", "replaced by a new preparation"
                _transition(live, S.FAILED, actor=actor, fields=("error_code", "error_message"))
            else:
                raise ConflictError(
                    "A live delegation of this Safe to this delegate exists.",
                    code="DELEGATION_EXISTS",
                    details={"delegation_id": live.pk, "status": live.status},
                )
        delegation = OstiumDelegation(
            user=user,
            network=network,
            safe_address=safe_address,
            delegate_address=delegate,
            action=A.DELEGATE,
            threshold=state.threshold,
            usdc_allowance=allowance,
        )
        _store_tx(delegation, prepared=prepared, nonce=state.nonce, net=net)
        try:
            with transaction.atomic():
                delegation.save(force_insert=True)
        except IntegrityError as exc:
            raise ConflictError(
                "A live delegation of this Safe to this delegate exists.", code="DELEGATION_EXISTS"
            ) from exc
        delegation_event(
            delegation=delegation,
            topic="delegation.prepared",
            actor=actor,
            payload={"safe_nonce": state.nonce, "threshold": state.threshold, "owners": list(state.owners)},
        )
    return delegation


def delegation_typed_data(delegation: OstiumDelegation) -> dict:
    net = chain.network_config(delegation.network)
    return chain.typed_data(chain.safe_tx(net, delegation.safe_address, delegation.safe_tx_fields()))


# --- signatures ----------------------------------------------------------------------------------


def delegation_signature_add(*, user, delegation_id: int, signature: str, actor: str | None = None) -> OstiumDelegation:
    """Verify one owner's signature over the delegation's current safeTxHash and store it."""
    _writes_enabled()
    actor = actor or f"user:{user.pk}"
    delegation = _owned(user, delegation_id)
    if not delegation.signable:
        raise ConflictError(
            f"A delegation in status {delegation.status} takes no signatures.",
            code="DELEGATION_NOT_SIGNABLE",
            details={"status": delegation.status},
        )
    owner, normalised = chain.signature_recover(HexBytes(delegation.safe_tx_hash), signature)
    net = chain.network_config(delegation.network)
    state = chain.safe_state(net, delegation.safe_address)
    if state.nonce > int(delegation.safe_nonce):
        # the SafeTx can never run now: say so at once rather than collect signatures for it
        delegation = _nonce_moved(delegation, nonce=state.nonce, actor=actor)
        raise ConflictError(
            "The Safe executed another transaction since this SafeTx was prepared; it can no longer be executed.",
            code="SAFE_NONCE_MOVED",
            details={"status": delegation.status, "safe_nonce": state.nonce},
        )
    if owner not in state.owners:
        # a non-owner's key, or a signature over another hash (it recovers to a stranger)
        raise ApplicationError(
            "The signature does not come from an owner of the Safe for this safeTxHash.",
            code="SIGNATURE_NOT_FROM_OWNER",
            status_code=400,
        )
    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        if not delegation.signable:
            raise ConflictError("The delegation takes no more signatures.", code="DELEGATION_NOT_SIGNABLE")
        if delegation.signatures.filter(safe_tx_hash=delegation.safe_tx_hash, owner=owner).exists():
            raise ConflictError("This owner has already signed.", code="SIGNATURE_DUPLICATE", details={"owner": owner})
        DelegationSignature.objects.create(
            delegation=delegation,
            safe_tx_hash=delegation.safe_tx_hash,
            owner=owner,
            signature=HexBytes(normalised).to_0x_hex(),
        )
        count = delegation.signatures.filter(safe_tx_hash=delegation.safe_tx_hash).count()
        delegation.threshold = state.threshold
        delegation.save(update_fields=["threshold", "updated_at"])
        delegation_event(
            delegation=delegation,
            topic="delegation.signed",
            actor=actor,
            payload={"owner": owner, "signatures": count, "threshold": state.threshold},
        )
    return delegation


def delegation_signers(delegation: OstiumDelegation) -> list[str]:
    return list(
        delegation.signatures.filter(safe_tx_hash=delegation.safe_tx_hash)
        .order_by("id")
        .values_list("owner", flat=True)
    )


# --- execute -------------------------------------------------------------------------------------


def delegation_execute(*, user, delegation_id: int, actor: str | None = None) -> OstiumDelegation:
    """Relay `execTransaction` with the collected signatures (our relayer pays gas), wait for
    the receipt and confirm `delegations(safe)` on chain; only while `delegations:relay` is
    armed (else 503 VENUE_DISARMED, nothing claimed). Runs once per prepared SafeTx: a
    second call finds the delegation no longer executable. A send that never left (the relayer
    has no ETH for gas, its nonce was taken, the node refused it) leaves the delegation
    executable with its signatures and answers the cause (INSUFFICIENT_GAS, ...)."""
    _writes_enabled()
    actor = actor or f"user:{user.pk}"
    delegation = _owned(user, delegation_id)
    net = chain.network_config(delegation.network)
    state = chain.safe_state(net, delegation.safe_address)
    if delegation.signable and not delegation.transaction_hash and state.nonce > int(delegation.safe_nonce):
        return _nonce_moved(delegation, nonce=state.nonce, actor=actor)

    # 1. claim (short transaction): nobody else executes this SafeTx
    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        if not delegation.signable or delegation.transaction_hash:
            raise ConflictError(
                f"A delegation in status {delegation.status} is not executable.",
                code="DELEGATION_NOT_EXECUTABLE",
                details={"status": delegation.status, "transaction_hash": delegation.transaction_hash},
            )
        if int(delegation.safe_nonce) != state.nonce:  # prepared again meanwhile
            raise ConflictError("The delegation changed meanwhile; try again.", code="DELEGATION_CHANGED")
        signatures = [
            (s.owner, bytes(HexBytes(s.signature)))
            for s in delegation.signatures.filter(safe_tx_hash=delegation.safe_tx_hash)
            if s.owner in state.owners
        ]
        if len(signatures) < state.threshold:
            raise ConflictError(
                "Not enough owner signatures yet.",
                code="THRESHOLD_NOT_MET",
                details={"signatures": len(signatures), "threshold": state.threshold},
            )
        gate = control.component_gate(RELAY)  # checked at the side effect, under the lock
        if not gate.ok:
            raise ApplicationError(
                gate.message, code=gate.code, status_code=503, details={"component": RELAY, "status": delegation.status}
            )
        claimed_at = delegation.submitted_at = timezone.now()
        if delegation.action == A.DELEGATE:
            _transition(
                delegation, S.SUBMITTED, actor=actor, fields=("submitted_at",), payload={"signatures": len(signatures)}
            )
        else:
            delegation.transaction_hash = "pending"
            delegation.save(update_fields=["transaction_hash", "submitted_at", "updated_at"])
            delegation_event(
                delegation=delegation,
                topic="delegation.submitted",
                actor=actor,
                payload={"signatures": len(signatures)},
            )

    # 2. the side effect (no transaction open)
    tx = chain.safe_tx(
        net,
        delegation.safe_address,
        delegation.safe_tx_fields(),
        version=state.version,
        signatures=chain.signatures_pack(signatures),
    )
    outcome = None
    error = None
    try:
        chain.safe_tx_simulate(tx)
        relayer = keys.relayer_key_load(delegation.network)
        outcome = chain.safe_tx_execute(net, tx, bytes(relayer.key))
        del relayer
    except ApplicationError as exc:
        error = exc
    on_chain = None
    if outcome is not None and outcome.mined:
        try:
            on_chain = chain.delegate_of(net, delegation.safe_address)
        except ApplicationError:
            on_chain = None  # recorded as sent; the next read reconciles it

    # 3. record the result — unless recovery took the claim over meanwhile (this process was
    # slower than DELEGATION_RECOVERY_AFTER_SECONDS): then the chain decides, through reconcile
    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        superseded = delegation.submitted_at != claimed_at or not _claimed(delegation)
        if superseded:
            logger.warning(
                "execution result arrived after its claim was recovered",
                extra={"delegation_id": delegation.pk, "transaction_hash": outcome.tx_hash if outcome else ""},
            )
        elif outcome is not None and outcome.tx_hash:
            delegation.transaction_hash = outcome.tx_hash
            delegation.save(update_fields=["transaction_hash", "updated_at"])
        if superseded:
            pass
        elif error is not None and error.code in NEVER_SENT:
            _send_refused(delegation, error, actor=actor)
        elif error is not None or (outcome and outcome.mined and not outcome.success):
            delegation.error_code = error.code if error else "EXECUTION_FAILED"
            delegation.error_message = error.message if error else outcome.error
            if delegation.action == A.DELEGATE:
                _fail(delegation, actor=actor)
            else:
                _revoke_abandoned(delegation, actor=actor)
        elif outcome and outcome.mined:
            _apply_chain_delegate(delegation, on_chain, actor=actor, reason="executed")
        # not mined in time: stays submitted/revoking with its hash; reads reconcile it
    if superseded:
        return delegation_reconcile(delegation=delegation, actor=actor)
    if error is not None and error.code in NEVER_SENT:
        error.details = {**(error.details or {}), "delegation_id": delegation.pk, "status": delegation.status}
        raise error
    if error is not None and error.status_code >= 500:
        raise error
    return delegation


# Failures that prove execTransaction never left: the claim is undone and the same signatures
# can execute the SafeTx again. Only a transaction that ran (or a moved Safe nonce) ends it.
NEVER_SENT = frozenset({"INSUFFICIENT_GAS", "NONCE_TOO_LOW", "RPC_UNAVAILABLE", "RELAYER_KEY_MISSING"})


def _send_refused(delegation: OstiumDelegation, error: ApplicationError, *, actor: str) -> None:
    """Undo the claim of an execution that never left (caller holds the lock): an activation goes
    back to pending_signature, a revocation stays revoking without its pending mark; both keep
    their signatures and can be executed again."""
    delegation.error_code, delegation.error_message = error.code, error.message
    delegation.transaction_hash = ""
    payload = {"reason": "send_refused", "error_code": error.code, "error_message": error.message}
    if delegation.action == A.DELEGATE:
        _transition(
            delegation,
            S.PENDING_SIGNATURE,
            actor=actor,
            fields=("transaction_hash", "error_code", "error_message"),
            payload=payload,
        )
    else:
        delegation.save(update_fields=["transaction_hash", "error_code", "error_message", "updated_at"])
        delegation_event(delegation=delegation, topic="delegation.send_refused", actor=actor, payload=payload)


def _revoke_abandoned(delegation: OstiumDelegation, *, actor: str) -> None:
    """The revocation did not happen: the delegation is still active on chain; the revoke can be
    prepared again (the next read reconciles it anyway)."""
    if delegation.transaction_hash == "pending":
        delegation.transaction_hash = ""
    delegation.action = A.DELEGATE
    _transition(
        delegation,
        S.ACTIVE,
        actor=actor,
        fields=("error_code", "error_message", "transaction_hash", "action"),
        payload={"reason": "revoke_failed", "error_code": delegation.error_code},
    )


def _nonce_moved(delegation: OstiumDelegation, *, nonce: int, actor: str) -> OstiumDelegation:
    """The Safe has executed a transaction at the nonce the delegation's SafeTx was prepared for,
    so that SafeTx can never run. If the transaction was ours (the owners executed it themselves)
    the chain says so and the row follows it; otherwise an activation fails and a revocation is
    abandoned (still active; revoke prepares it again at the new nonce)."""
    delegation = delegation_reconcile(delegation=delegation, actor=actor)
    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        if delegation.signable and not delegation.transaction_hash and int(delegation.safe_nonce) < nonce:
            delegation.error_code = "SAFE_NONCE_MOVED"
            delegation.error_message = f"The Safe nonce is {nonce}, the SafeTx was for {delegation.safe_nonce}."
            if delegation.action == A.DELEGATE:
                _fail(delegation, actor=actor)
            else:
                _revoke_abandoned(delegation, actor=actor)
    return delegation


def _fail(delegation: OstiumDelegation, *, actor: str) -> None:
    _transition(
        delegation,
        S.FAILED,
        actor=actor,
        fields=("error_code", "error_message"),
        payload={
            "error_code": delegation.error_code,
            "error_message": delegation.error_message,
        },
    )


def _apply_chain_delegate(delegation: OstiumDelegation, on_chain: str | None, *, actor: str, reason: str) -> None:
    """Bring the row in line with `delegations(safe)` read from chain (caller holds the lock)."""
    if on_chain is None:
        return
    ours = on_chain == delegation.delegate_address
    now = timezone.now()
    delegation.checked_at = now
    delegation.save(update_fields=["checked_at"])
    if delegation.status == S.SUBMITTED and ours:
        delegation.activated_at = now
        _transition(delegation, S.ACTIVE, actor=actor, fields=("activated_at",), payload={"reason": reason})
    elif delegation.status == S.SUBMITTED and not ours:
        delegation.error_code = "DELEGATE_NOT_SET"
        delegation.error_message = f"delegations(safe) is {on_chain} after execution"
        _fail(delegation, actor=actor)
    elif delegation.status in (S.ACTIVE, S.REVOKING) and not ours:
        delegation.revoked_at = now
        _transition(
            delegation,
            S.REVOKED,
            actor=actor,
            fields=("revoked_at",),
            payload={"reason": reason, "on_chain_delegate": on_chain},
        )


# --- reconcile & recovery -----------------------------------------------------------------------


def _claimed(delegation: OstiumDelegation) -> bool:
    """An execution of the current SafeTx was claimed, so `execTransaction` may have been sent:
    an activation in `submitted`, or a revocation in `revoking` with a transaction hash (or the
    `pending` mark written before sending). Execute refuses such a row."""
    return delegation.status == S.SUBMITTED or (delegation.status == S.REVOKING and bool(delegation.transaction_hash))


def _claim_stale(delegation: OstiumDelegation) -> bool:
    """The claim is older than any live executor can be (rows claimed before `submitted_at`
    existed count as stale)."""
    if delegation.submitted_at is None:
        return True
    grace = timedelta(seconds=settings.DELEGATION_RECOVERY_AFTER_SECONDS)
    return delegation.submitted_at <= timezone.now() - grace


def _execution_in_flight(net, delegation: OstiumDelegation) -> tuple[chain.ExecOutcome | None, bool]:
    """For a claimed execution whose effect is not on chain and whose Safe nonce has not moved:
    its mined outcome if its hash has a receipt, and whether it may still land — its hash is in
    the mempool, the claim is recent (the executor may be sending right now), or our relayer has
    unmined transactions (sent, the hash not recorded before a crash)."""
    if delegation.transaction_hash.startswith("0x"):
        outcome = chain.transaction_outcome(net, delegation.transaction_hash)
        if outcome is not None:
            return outcome, False
        if chain.transaction_pending(net, delegation.transaction_hash):
            return None, True
    if not _claim_stale(delegation):
        return None, True
    relayer = keys.relayer_key_address(delegation.network)
    return None, bool(relayer and chain.account_has_pending(net, relayer))


def delegation_reconcile(*, delegation: OstiumDelegation, actor: str = "system:reconcile") -> OstiumDelegation:
    """Compare with the chain (`delegations(safe)`, the Safe nonce, the receipt of a recorded
    transaction) and move the row to what the chain says:

    - active, but `delegations(safe)` is no longer our delegate (revoked from another wallet) →
      revoked; pending_signature whose Safe nonce moved → active if our SafeTx ran, else failed;
    - submitted (activation claimed): delegate set → active; nonce moved without it → failed;
      nonce not moved and nothing in flight (a crash between the claim and the send, or a
      dropped transaction) → back to pending_signature, the same signatures executable again;
    - revoking with a claimed execution: delegate gone → revoked; still delegated and nothing in
      flight, or the nonce moved → back to active (`revoke` prepares the SafeTx again).

    "In flight" (wait, change nothing): the recorded hash is in the mempool, the claim is younger
    than DELEGATION_RECOVERY_AFTER_SECONDS, or the relayer has unmined transactions. A SafeTx
    runs at most once whatever happens here: the Safe nonce allows one execution."""
    if delegation.status in (S.REVOKED, S.FAILED):
        return delegation
    seen = (delegation.status, delegation.transaction_hash, delegation.submitted_at, delegation.safe_tx_hash)
    net = chain.network_config(delegation.network)
    on_chain = chain.delegate_of(net, delegation.safe_address)
    ours = on_chain == delegation.delegate_address
    claimed = _claimed(delegation)
    nonce = None
    outcome, in_flight = None, False
    if delegation.status == S.PENDING_SIGNATURE or claimed:
        nonce = chain.safe_state(net, delegation.safe_address).nonce
    moved = nonce is not None and nonce > int(delegation.safe_nonce)
    done_on_chain = ours if delegation.status == S.SUBMITTED else not ours
    if claimed and not moved and not done_on_chain:
        outcome, in_flight = _execution_in_flight(net, delegation)

    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        if (delegation.status, delegation.transaction_hash, delegation.submitted_at, delegation.safe_tx_hash) != seen:
            return delegation  # changed while the chain was read; the next read looks again
        if delegation.status == S.PENDING_SIGNATURE and moved:
            if ours:  # someone executed our SafeTx themselves
                delegation.status = S.SUBMITTED
            else:
                delegation.error_code = "SAFE_NONCE_MOVED"
                delegation.error_message = "The Safe executed another transaction with this nonce."
                _fail(delegation, actor=actor)
                return delegation
        elif delegation.status == S.SUBMITTED and not ours and not moved:
            if outcome is not None and not outcome.success:  # reverted, nonce unused
                delegation.error_code, delegation.error_message = "EXECUTION_FAILED", outcome.error
                _fail(delegation, actor=actor)
            elif not in_flight:
                _execution_recovered(delegation, actor=actor)
            return delegation
        elif delegation.status == S.REVOKING and ours:
            if claimed and (moved or not in_flight):
                if moved:
                    delegation.error_code = "SAFE_NONCE_MOVED"
                    delegation.error_message = f"The Safe nonce is {nonce}, the SafeTx was for {delegation.safe_nonce}."
                elif outcome is not None:
                    delegation.error_code, delegation.error_message = "EXECUTION_FAILED", outcome.error
                else:
                    delegation.error_code = "EXECUTION_INTERRUPTED"
                    delegation.error_message = "The revocation was not sent (interrupted); revoke again."
                _revoke_abandoned(delegation, actor=actor)
                return delegation
            delegation.checked_at = timezone.now()
            delegation.save(update_fields=["checked_at"])
            return delegation
        _apply_chain_delegate(delegation, on_chain, actor=actor, reason="chain_reconciled")
    return delegation


def _execution_recovered(delegation: OstiumDelegation, *, actor: str) -> None:
    """An activation claimed but never executed (caller holds the lock): back to
    pending_signature with its signatures, so execute can run again."""
    abandoned = delegation.transaction_hash if delegation.transaction_hash.startswith("0x") else ""
    delegation.transaction_hash = ""
    delegation.error_code = "EXECUTION_INTERRUPTED"
    delegation.error_message = "The execution was not completed (interrupted or dropped); execute again."
    _transition(
        delegation,
        S.PENDING_SIGNATURE,
        actor=actor,
        fields=("transaction_hash", "error_code", "error_message"),
        payload={"reason": "execution_recovered", "abandoned_transaction_hash": abandoned},
    )


def delegations_recover(*, limit: int = 100, actor: str = "system:recovery") -> dict:
    """Beat job: resolve executions claimed longer than DELEGATION_RECOVERY_AFTER_SECONDS ago
    (a process that crashed between the claim and sending `execTransaction`, or before it
    recorded the outcome) by reconciling each with the chain. Returns counts."""
    cutoff = timezone.now() - timedelta(seconds=settings.DELEGATION_RECOVERY_AFTER_SECONDS)
    stuck = (
        OstiumDelegation.objects.filter(Q(status=S.SUBMITTED) | (Q(status=S.REVOKING) & ~Q(transaction_hash="")))
        .filter(Q(submitted_at__isnull=True) | Q(submitted_at__lte=cutoff))
        .order_by(F("submitted_at").asc(nulls_first=True), "id")[:limit]
    )
    counts = {"checked": 0, "resolved": 0, "errors": 0}
    for delegation in stuck:
        counts["checked"] += 1
        try:
            after = delegation_reconcile(delegation=delegation, actor=actor)
        except ApplicationError as exc:
            counts["errors"] += 1
            logger.warning("delegation recovery failed", extra={"delegation_id": delegation.pk, "code": exc.code})
            continue
        if after.status != delegation.status or after.transaction_hash != delegation.transaction_hash:
            counts["resolved"] += 1
    return counts


def delegations_chain_check(*, batch_size: int | None = None, actor: str = "system:chain_check") -> dict:
    """Beat job: re-read `delegations(safe)` for the active delegations checked longest ago
    (`batch_size` per network and run, one batched chain read each) and mark those whose
    delegate is gone (revoked from another wallet) revoked — event `delegation.revoked`,
    reason `chain_check`. The others get `checked_at`. Returns counts."""
    batch_size = batch_size or settings.DELEGATION_CHAIN_CHECK_BATCH
    active = OstiumDelegation.objects.filter(status=S.ACTIVE)
    counts = {"checked": 0, "revoked": 0, "errors": 0}
    for network in sorted(set(active.values_list("network", flat=True))):
        rows = list(
            active.filter(network=network)
            .order_by(F("checked_at").asc(nulls_first=True), "id")
            .values_list("pk", "safe_address", "delegate_address")[:batch_size]
        )
        try:
            found = chain.delegates_of(chain.network_config(network), [safe for _, safe, _ in rows])
        except ApplicationError as exc:
            counts["errors"] += len(rows)
            logger.warning("delegation chain check failed", extra={"network": network, "code": exc.code})
            continue
        counts["checked"] += len(rows)
        still, gone = [], []
        for pk, safe, delegate in rows:
            on_chain = found[to_checksum_address(safe)]
            if on_chain == delegate:
                still.append(pk)
            else:
                gone.append((pk, on_chain))
        OstiumDelegation.objects.filter(pk__in=still, status=S.ACTIVE).update(checked_at=timezone.now())
        for pk, on_chain in gone:
            with transaction.atomic():
                delegation = delegation_lock(pk)
                if delegation is None or delegation.status != S.ACTIVE:
                    continue
                _apply_chain_delegate(delegation, on_chain, actor=actor, reason="chain_check")
                counts["revoked"] += 1
    return counts


# --- revoke --------------------------------------------------------------------------------------


def delegation_revoke(*, user, delegation_id: int, actor: str | None = None) -> OstiumDelegation:
    """Prepare the `removeDelegate()` SafeTx (status revoking); owners sign it and execute it
    through the same endpoints."""
    _writes_enabled()
    actor = actor or f"user:{user.pk}"
    delegation = delegation_reconcile(delegation=_owned(user, delegation_id))
    if delegation.status == S.REVOKING:
        return delegation
    if delegation.status != S.ACTIVE:
        raise ConflictError(
            f"A delegation in status {delegation.status} cannot be revoked.",
            code="DELEGATION_NOT_ACTIVE",
            details={"status": delegation.status},
        )
    net = chain.network_config(delegation.network)
    state = chain.safe_state(net, delegation.safe_address)
    _require_owner(user, state)
    with transaction.atomic():
        delegation = delegation_lock(delegation.pk)
        if delegation.status != S.ACTIVE:
            raise ConflictError("The delegation changed meanwhile.", code="DELEGATION_NOT_ACTIVE")
        delegation.action = A.REVOKE
        delegation.threshold = state.threshold
        _store_tx(delegation, prepared=chain.revoke_batch(net), nonce=state.nonce, net=net)
        _transition(
            delegation,
            S.REVOKING,
            actor=actor,
            fields=(
                "action",
                "threshold",
                "tx_to",
                "tx_value",
                "tx_data",
                "tx_operation",
                "safe_tx_gas",
                "base_gas",
                "gas_price",
                "gas_token",
                "refund_receiver",
                "safe_nonce",
                "safe_tx_hash",
                "transaction_hash",
                "error_code",
                "error_message",
            ),
            payload={"safe_nonce": state.nonce},
        )
    return delegation


# --- trading through a delegation ----------------------------------------------------------------


@dataclass(frozen=True)
class VenueAccount:
    account: str
    delegated: bool


class DelegationDenied(ApplicationError):
    status_code = 422
    code = "DELEGATION_MISSING"


def ostium_network_for_trading() -> str:
    return getattr(settings, "OSTIUM_NETWORK", "localnet")


def user_safe_delegation(*, user, network: str) -> OstiumDelegation | None:
    """The user's Safe for Ostium: their latest delegation that got anywhere (not failed)."""
    return OstiumDelegation.objects.filter(user=user, network=network).exclude(status=S.FAILED).order_by("-id").first()


def ostium_pretrade_check(*, user, collateral, reduces_exposure: bool) -> VenueAccount | None:
    """Pre-trade check for venue `ostium`. A user whose Ostium account is a Safe trades in
    delegated mode with `account = safe`; refused before anything is sent when the delegation
    is not active on chain (DELEGATION_MISSING) or the Safe's USDC allowance for TradingStorage
    is below the collateral (ALLOWANCE_MISSING). None: the user trades from their own wallet."""
    network = ostium_network_for_trading()
    delegation = user_safe_delegation(user=user, network=network)
    if delegation is None:
        return None
    if not reduces_exposure:
        # new exposure: ask the chain (someone may have revoked from another wallet). Closes and
        # protective orders, which may be placed inside a caller's transaction, use the stored status.
        delegation = delegation_reconcile(delegation=delegation)
    if delegation.status != S.ACTIVE:
        raise DelegationDenied(
            "No active Ostium delegation for your Safe.",
            code="DELEGATION_MISSING",
            details={"safe_address": delegation.safe_address, "status": delegation.status},
        )
    if not reduces_exposure and collateral:
        net = chain.network_config(network)
        allowance = chain.usdc_allowance(net, delegation.safe_address)
        needed = int(collateral * 10**6)
        if allowance < needed:
            raise DelegationDenied(
                "The Safe's USDC allowance for Ostium is below the collateral.",
                code="ALLOWANCE_MISSING",
                details={"safe_address": delegation.safe_address, "allowance": allowance, "needed": needed},
            )
    return VenueAccount(account=delegation.safe_address, delegated=True)
