"""Liquidity actions: deposit addresses, fundings, withdrawals and rebalances, one state machine
(`requested → submitted → seen → credited`, or `delayed`, `failed`, `cancelled`), each transition
a `liquidity.<status>` ledger event in the transaction that makes it.

- A funding is pending (inbound, never spendable) until the bridge service reports it credited;
  it moves to credited exactly once, and a credit lower than expected is a drift on the balance.
  The same external transaction hash twice is flagged as a duplicate and counted once.
- A withdrawal reserves its amount when requested; it is signed and published only while the
  `treasury:withdrawals` component is armed (checked at the side effect), to an allowlisted
  destination, and above WITHDRAWAL_APPROVAL_THRESHOLD only after a second operator approved it.
- Anything open longer than FUNDING_DELAY_ALERT_MINUTES is `delayed` (and shown on top)."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import ApplicationError, ConflictError, NotFoundError
from config.inputs import plain_decimal
from trading.models import ControlState
from trading.services import control
from trading.services.ledger import event_record
from trading.services.operator import actor_label, permission_require
from treasury import lock_objects
from treasury.models import (
    ZERO,
    AllowlistEntry,
    DepositAddress,
    IllegalLiquidityTransition,
    InventoryBalance,
    LiquidityAction,
    Venue,
    amount_text,
)
from treasury.services import inventory

logger = logging.getLogger("tradedesk.treasury")
K, St = LiquidityAction.Kind, LiquidityAction.Status
WITHDRAWALS = "treasury:withdrawals"
PERM_REQUEST = "treasury.add_liquidityaction"
PERM_CANCEL = "treasury.change_liquidityaction"
PERM_APPROVE = "treasury.approve_liquidityaction"
PERM_FREEZE = "treasury.freeze_withdrawals"
PERM_ALLOWLIST = "treasury.add_allowlistentry"
PERM_REFRESH = "treasury.refresh_inventory"


def _payload(action: LiquidityAction, **extra) -> dict:
    return {
        "action_id": action.pk,
        "kind": action.kind,
        "venue": action.venue,
        "account": action.account,
        "asset": action.asset,
        "symbol": action.symbol,
        "amount": amount_text(action.amount),
        "status": action.status,
        **extra,
    }


def _event(action: LiquidityAction, topic: str, *, actor: str = "system", **extra) -> None:
    event_record(
        topic=topic,
        aggregate_type="liquidity_action",
        aggregate_id=action.pk,
        correlation_id=action.correlation_id,
        actor=actor,
        payload=_payload(action, **extra),
    )


def liquidity_transition(action: LiquidityAction, dst: str, *, actor: str = "system", **extra) -> LiquidityAction:
    """Move a locked action to `dst` (caller's transaction) and write `liquidity.<dst>`."""
    if not action.can_move(dst):
        raise IllegalLiquidityTransition(action.pk, action.status, dst)
    now = timezone.now()
    src = action.status
    if dst == St.DELAYED:
        action.delayed_from = src
    action.status = dst
    if dst == St.SUBMITTED and action.submitted_at is None:
        action.submitted_at = now
    if dst == St.SEEN and action.seen_at is None:
        action.seen_at = now
    if dst in LiquidityAction.TERMINAL:
        action.closed_at = now
    action.save()
    _event(action, f"liquidity.{dst}", actor=actor, previous_status=src, **extra)
    log = logger.warning if dst in (St.DELAYED, St.FAILED) else logger.info
    log(f"liquidity action {dst}", extra={"liquidity_action_id": action.pk, "kind": action.kind, "venue": action.venue})
    return action


def _refresh_pending(action: LiquidityAction) -> None:
    inventory.pending_refresh(venue=action.venue, account=action.account, asset=action.asset)
    if action.kind == K.REBALANCE:
        inventory.pending_refresh(venue=action.dest_venue, account=action.dest_account, asset=action.dest_asset)


def _release(action: LiquidityAction, *, actor: str, reason: str) -> None:
    if action.reservation_id:
        inventory.inventory_release(reservation=action.reservation, actor=actor, reason=reason)


def _fail(action: LiquidityAction, *, code: str, message: str, actor: str = "system", **extra) -> LiquidityAction:
    action.error_code, action.error_message = code, message[:2000]
    liquidity_transition(action, St.FAILED, actor=actor, error_code=code, error_message=message[:300], **extra)
    _release(action, actor=actor, reason=f"{code}: {message}"[:300])
    _refresh_pending(action)
    return action


def _decimals_check(amount: Decimal, symbol: str, decimals: int) -> None:
    if Decimal(amount).scaleb(decimals) % 1:
        raise ApplicationError(
            f"{symbol} has {decimals} decimals.", code="INVALID_AMOUNT", details={"amount": ["Too many decimals."]}
        )


def _amount(value, field: str = "amount") -> Decimal:
    try:
        amount = plain_decimal(value)
    except (InvalidOperation, ValueError):
        raise ApplicationError("Not a number.", code="INVALID_AMOUNT", details={field: ["Not a number."]}) from None
    if amount <= 0:
        raise ApplicationError(
            "The amount must be positive.", code="INVALID_AMOUNT", details={field: ["Must be positive."]}
        )
    return amount


def _near():
    """(network config, client) of NEAR Intents; NEAR_INTENTS_NOT_CONFIGURED when there is none."""
    from providers.near_intents.client import near_intents_client
    from providers.near_intents.config import NearIntentsConfigError, network_config

    try:
        net = network_config()
    except NearIntentsConfigError as exc:
        raise ApplicationError(str(exc), code="NEAR_INTENTS_NOT_CONFIGURED", status_code=503) from None
    if not net.solver_account:
        raise ApplicationError(
            "No NEAR Intents solver account (NEAR_INTENTS_SOLVER_ACCOUNT).",
            code="NEAR_INTENTS_NOT_CONFIGURED",
            status_code=503,
        )
    return net, near_intents_client(net)


def _venue_error(exc, *, code: str = "VENUE_UNAVAILABLE") -> ApplicationError:
    error = exc.error
    return ApplicationError(
        f"NEAR Intents: {error.message}",
        code=code if error.retryable else str(error.code),
        details={"venue_code": str(error.code), "retryable": error.retryable},
        status_code=502 if error.retryable else 400,
    )


def _token(asset: str):
    """(symbol, decimals) of a NEAR Intents token id the desk knows (a synced balance or the
    well-known list); UNSUPPORTED_ASSET otherwise."""
    from providers.near_intents.tokens import KNOWN, TokenIdError, token_id_parse

    try:
        token_id_parse(asset)
    except TokenIdError as exc:
        raise ApplicationError(str(exc), code="UNSUPPORTED_ASSET", details={"asset": [str(exc)]}) from None
    balance = InventoryBalance.objects.filter(venue=Venue.NEAR_INTENTS, asset=asset).exclude(symbol="").first()
    if balance is not None:
        return balance.symbol, balance.decimals
    if asset in KNOWN:
        return KNOWN[asset].symbol, KNOWN[asset].decimals
    raise ApplicationError(
        f"{asset} is not a token the desk holds or knows.", code="UNSUPPORTED_ASSET", details={"asset": ["Unknown."]}
    )


# --- requests ------------------------------------------------------------------------------------
def liquidity_action_request(*, actor, kind: str, **fields) -> LiquidityAction:
    """An operator asks for a deposit address, records a funding, or requests a withdrawal or a
    rebalance (the door of the API and the admin)."""
    permission_require(actor=actor, perm=PERM_REQUEST)
    handlers = {
        K.DEPOSIT_ADDRESS: deposit_address_request,
        K.FUNDING: funding_record,
        K.WITHDRAWAL: withdrawal_request,
        K.REBALANCE: withdrawal_request,
    }
    if kind not in handlers:
        raise ApplicationError(f"Unknown kind {kind!r}.", code="UNSUPPORTED_KIND", details={"kind": ["Unknown kind."]})
    if kind == K.REBALANCE:
        fields["rebalance"] = True
    return handlers[kind](actor=actor, **fields)


def deposit_address_request(*, actor, venue: str = Venue.NEAR_INTENTS, chain: str = "", **_) -> LiquidityAction:
    """A funding handle from the bridge service for the solver account on `chain`: recorded
    (requested), asked for outside any transaction, then credited (address stored) or failed."""
    from providers.interface import VenueException

    if venue != Venue.NEAR_INTENTS:
        raise ApplicationError(
            "Deposit addresses come from the NEAR Intents bridge service.",
            code="UNSUPPORTED_VENUE",
            details={"venue": ["Only near_intents."]},
        )
    if not chain:
        raise ApplicationError("A chain is required.", code="MISSING_FIELDS", details={"chain": ["Required."]})
    net, client = _near()
    try:
        supported = {t.chain for t in client.supported_tokens()}
    except VenueException as exc:
        raise _venue_error(exc) from None
    if chain not in supported:
        raise ApplicationError(
            f"The bridge service does not take deposits on {chain}.",
            code="UNSUPPORTED_CHAIN",
            details={"chain": [f"Supported: {', '.join(sorted(supported))}."]},
        )
    with transaction.atomic():
        action = LiquidityAction.objects.create(
            kind=K.DEPOSIT_ADDRESS,
            venue=venue,
            account=net.solver_account,
            chain=chain,
            requested_by=actor_label(actor),
            requested_by_user=actor,
        )
        _event(action, "liquidity.requested", actor=actor_label(actor), chain=chain)
    return deposit_address_fetch(action_id=action.pk)


def deposit_address_fetch(*, action_id: int) -> LiquidityAction:
    """Ask the bridge for the address of a requested deposit_address action (idempotent: the
    service gives one address per account and chain); the tracker retries lost ones."""
    from providers.interface import VenueException

    action = LiquidityAction.objects.get(pk=action_id)
    if action.status not in (St.REQUESTED, St.DELAYED):
        return action
    _, client = _near()
    try:
        handle = client.deposit_address(action.account, action.chain)
    except VenueException as exc:
        if exc.error.retryable:
            raise _venue_error(exc) from None
        with transaction.atomic():
            action = lock_objects.action_locked(action_id)
            if action.is_open:
                _fail(action, code="DEPOSIT_ADDRESS_REFUSED", message=exc.error.message)
        return action
    with transaction.atomic():
        action = lock_objects.action_locked(action_id)
        if not action.is_open:
            return action
        action.address, action.memo = handle.address, handle.memo
        DepositAddress.objects.get_or_create(
            venue=action.venue,
            account=action.account,
            chain=handle.chain,
            address=handle.address,
            defaults={"memo": handle.memo, "action": action},
        )
        liquidity_transition(action, St.CREDITED, address=handle.address, memo=handle.memo)
    return action


@transaction.atomic
def funding_record(
    *,
    actor,
    venue: str = Venue.NEAR_INTENTS,
    asset: str = "",
    amount=None,
    tx_hash: str = "",
    chain: str = "",
    address: str = "",
    account: str = "",
    **_,
) -> LiquidityAction:
    """An operator records a funding from an external wallet into a venue (expected amount; the
    source transaction hash once known). It is pending until the venue credits it."""
    if venue not in Venue.values:
        raise ApplicationError("Unknown venue.", code="UNSUPPORTED_VENUE", details={"venue": ["Unknown venue."]})
    amount = _amount(amount)
    symbol, decimals = "", 0
    if venue == Venue.NEAR_INTENTS:
        net, _ = _near()
        account = account or net.solver_account
        symbol, decimals = _token(asset)
        _decimals_check(amount, symbol, decimals)  # the bridge credits whole units: a finer one never matches
    elif not (asset and account):
        raise ApplicationError(
            "asset and account are required.",
            code="MISSING_FIELDS",
            details={k: ["Required."] for k, v in (("asset", asset), ("account", account)) if not v},
        )
    tx_hash = (tx_hash or "").strip()
    if tx_hash:
        original = LiquidityAction.objects.filter(
            venue=venue, kind=K.FUNDING, tx_hash=tx_hash, duplicate_of__isnull=True
        ).first()
        if original is not None:
            raise ConflictError(
                f"Transaction {tx_hash} is already recorded as funding #{original.pk}.",
                code="DUPLICATE_TX_HASH",
                details={"tx_hash": [f"Already funding #{original.pk}."], "duplicate_of": original.pk},
            )
    inventory.balance_for_action(venue=venue, account=account, asset=asset, symbol=symbol, decimals=decimals)
    label = actor_label(actor) if actor else "system"
    action = LiquidityAction.objects.create(
        kind=K.FUNDING,
        venue=venue,
        account=account,
        asset=asset,
        symbol=symbol,
        amount=amount,
        chain=chain,
        address=address,
        tx_hash=tx_hash,
        requested_by=label,
        requested_by_user=actor,
    )
    _event(action, "liquidity.requested", actor=label, tx_hash=tx_hash)
    if tx_hash:
        liquidity_transition(action, St.SUBMITTED, actor=label, tx_hash=tx_hash)
    _refresh_pending(action)
    return action


def withdrawal_threshold(symbol: str) -> Decimal:
    per_symbol = {k.upper(): v for k, v in (settings.WITHDRAWAL_APPROVAL_THRESHOLDS or {}).items()}
    return Decimal(str(per_symbol.get((symbol or "").upper(), settings.WITHDRAWAL_APPROVAL_THRESHOLD)))


def _allowlisted(*, chain: str, address: str, asset: str) -> bool:
    entries = AllowlistEntry.objects.filter(chain=chain, active=True, address__iexact=address)
    return entries.filter(asset__in=["", asset]).exists()


def withdrawal_request(
    *,
    actor,
    venue: str = Venue.NEAR_INTENTS,
    asset: str = "",
    amount=None,
    chain: str = "",
    address: str = "",
    rebalance: bool = False,
    dest_venue: str = "",
    dest_account: str = "",
    dest_asset: str = "",
    **_,
) -> LiquidityAction:
    """Request a withdrawal (or a rebalance: a withdrawal whose destination is another venue's
    account, shown there as pending inbound). The amount is reserved now; the intent is signed
    and published by `withdrawal_submit` (after a second operator's approval above the threshold)."""
    from providers.near_intents.tokens import is_account_id

    if venue != Venue.NEAR_INTENTS:
        raise ApplicationError(
            "Withdrawals and rebalances are sent from NEAR Intents only.",
            code="REBALANCE_SOURCE_UNSUPPORTED" if rebalance else "UNSUPPORTED_VENUE",
            details={"venue": ["Only near_intents."]},
        )
    amount = _amount(amount)
    errors = {k: ["Required."] for k, v in (("asset", asset), ("chain", chain), ("address", address)) if not v}
    if rebalance:
        errors.update(
            {k: ["Required."] for k, v in (("dest_venue", dest_venue), ("dest_account", dest_account)) if not v}
        )
        if dest_venue and dest_venue not in Venue.values:
            errors["dest_venue"] = ["Unknown venue."]
    if errors:
        raise ApplicationError("Missing or invalid fields.", code="MISSING_FIELDS", details=errors)
    if chain == "near" and not is_account_id(address):
        raise ApplicationError(
            "Not a NEAR account id.", code="INVALID_ADDRESS", details={"address": ["Not a NEAR account id."]}
        )
    symbol, decimals = _token(asset)
    _decimals_check(amount, symbol, decimals)
    if not _allowlisted(chain=chain, address=address, asset=asset):
        raise ApplicationError(
            f"{address} on {chain} is not on the treasury allowlist.",
            code="WITHDRAWAL_DESTINATION_NOT_ALLOWED",
            details={"address": ["Not on the treasury allowlist."]},
            status_code=403,
        )
    net, _ = _near()
    label = actor_label(actor)
    with transaction.atomic():
        action = LiquidityAction.objects.create(
            kind=K.REBALANCE if rebalance else K.WITHDRAWAL,
            venue=venue,
            account=net.solver_account,
            asset=asset,
            symbol=symbol,
            amount=amount,
            chain=chain,
            address=address,
            dest_venue=dest_venue,
            dest_account=dest_account,
            dest_asset=dest_asset or (asset if dest_venue == Venue.NEAR_INTENTS else ""),
            needs_approval=amount > withdrawal_threshold(symbol),
            requested_by=label,
            requested_by_user=actor,
        )
        action.reservation = inventory.inventory_reserve(
            venue=venue,
            account=net.solver_account,
            asset=asset,
            amount=amount,
            ref=f"liquidity:{action.pk}",
            actor=label,
            reason=f"{action.kind} #{action.pk}",
        )
        action.save(update_fields=["reservation"])
        _event(
            action,
            "liquidity.requested",
            actor=label,
            chain=chain,
            address=address,
            needs_approval=action.needs_approval,
            threshold=amount_text(withdrawal_threshold(symbol)),
        )
        if rebalance:
            inventory.balance_for_action(venue=dest_venue, account=dest_account, asset=action.dest_asset or asset)
            _refresh_pending(action)
        if not action.needs_approval:
            _submit_after_commit(action.pk)
    return action


def _submit_after_commit(action_id: int) -> None:
    from treasury.tasks import withdrawal_submit_task

    transaction.on_commit(lambda: withdrawal_submit_task.delay(action_id))


@transaction.atomic
def liquidity_action_approve(*, actor, action_id: int, reason: str = "") -> LiquidityAction:
    """The second pair of eyes: another operator than the requester approves a withdrawal above
    the threshold; it is then submitted."""
    permission_require(actor=actor, perm=PERM_APPROVE)
    action = lock_objects.action_locked(action_id)
    if action is None:
        raise NotFoundError("No such liquidity action.", code="LIQUIDITY_ACTION_NOT_FOUND")
    if not action.needs_approval:
        raise ConflictError("This action needs no approval.", code="APPROVAL_NOT_REQUIRED")
    if action.approved_at is not None:
        raise ConflictError(f"Already approved by {action.approved_by}.", code="ALREADY_APPROVED")
    if action.status != St.REQUESTED:
        raise ConflictError(f"The action is {action.status}.", code="ACTION_NOT_APPROVABLE")
    if action.requested_by_user_id == actor.pk:
        raise ApplicationError(
            "Four eyes: the operator who requested a withdrawal cannot approve it.",
            code="FOUR_EYES_REQUIRED",
            status_code=403,
        )
    action.approved_by, action.approved_at = actor_label(actor), timezone.now()
    action.save(update_fields=["approved_by", "approved_at", "updated_at"])
    _event(action, "liquidity.approved", actor=action.approved_by, reason=reason)
    _submit_after_commit(action.pk)
    return action


@transaction.atomic
def liquidity_action_cancel(*, actor, action_id: int, reason: str) -> LiquidityAction:
    """Cancel an action that has not left the desk: a withdrawal not submitted, a funding the
    bridge has not seen; its hold is released."""
    permission_require(actor=actor, perm=PERM_CANCEL)
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED", details={"reason": ["Required."]})
    action = lock_objects.action_locked(action_id)
    if action is None:
        raise NotFoundError("No such liquidity action.", code="LIQUIDITY_ACTION_NOT_FOUND")
    # a withdrawal's intent may execute once submitted; a funding is only an expectation until seen
    outbound = action.kind in (K.WITHDRAWAL, K.REBALANCE)
    left = action.intent_hash or (action.submitted_at if outbound else action.seen_at)
    if left or not action.can_move(St.CANCELLED):
        raise ConflictError(
            f"Action #{action.pk} is {action.status}" + (" and has left the desk" if left else "") + ".",
            code="ACTION_NOT_CANCELLABLE",
        )
    label = actor_label(actor)
    liquidity_transition(action, St.CANCELLED, actor=label, reason=reason.strip())
    _release(action, actor=label, reason=f"cancelled: {reason.strip()}")
    _refresh_pending(action)
    return action


# --- the side effect: sign and publish a withdrawal ---------------------------------------------------
def _withdrawals_gate():
    return control.control_gate(ControlState.objects.filter(component=WITHDRAWALS).first(), component=WITHDRAWALS)


def _refused_by_gate(action: LiquidityAction) -> bool:
    """Check `treasury:withdrawals` now; closed → the action fails with the refusal (caller's transaction)."""
    gate = _withdrawals_gate()
    if gate.ok:
        return False
    code = "WITHDRAWALS_PAUSED" if gate.code == "VENUE_PAUSED" else "WITHDRAWALS_FROZEN"
    _fail(action, code=code, message=f"refused at the side effect: {gate.message}", stage="side_effect")
    return True


def withdrawal_submit(*, action_id: int) -> LiquidityAction | None:
    """Sign the withdrawal intent and publish it through the relay, once. The signed intent and
    its hash are committed (status submitted) before it is sent; an answer that is lost leaves it
    submitted, and `liquidity_track` asks `get_status` — the same signed intent may be published
    again (its nonce makes it execute at most once), a new one never."""
    from providers.interface import VenueException
    from providers.near_intents.intents import ft_withdraw
    from providers.near_intents.signer import intent_sign
    from providers.near_intents.tokens import to_raw

    with transaction.atomic():
        action = lock_objects.action_locked(action_id, skip_locked=True)
        if action is None or action.status not in (St.REQUESTED, St.DELAYED) or action.intent_hash:
            return action
        if action.kind not in (K.WITHDRAWAL, K.REBALANCE) or (action.needs_approval and not action.approved_at):
            return action
        if _refused_by_gate(action):
            return action
        balance = InventoryBalance.objects.get(venue=action.venue, account=action.account, asset=action.asset)
        if balance.effective_status() == InventoryBalance.Status.STALE:
            _fail(action, code="INVENTORY_STALE", message=balance.why_stale(), stage="side_effect")
            return action
    try:
        net, client = _near()
        decimals = balance.decimals
        deadline = timezone.now() + timedelta(seconds=settings.WITHDRAWAL_DEADLINE_SECONDS)
        signed = intent_sign(
            client,
            intents=[
                ft_withdraw(
                    token_id=action.asset,
                    amount_raw=to_raw(action.amount, decimals),
                    chain=action.chain,
                    address=action.address,
                )
            ],
            deadline=deadline,
        )
    except (VenueException, ApplicationError) as exc:
        code = str(exc.error.code) if isinstance(exc, VenueException) else exc.code
        message = exc.error.message if isinstance(exc, VenueException) else exc.message
        retryable = isinstance(exc, VenueException) and exc.error.retryable
        with transaction.atomic():
            action = lock_objects.action_locked(action_id)
            if action.is_open and not action.intent_hash:
                if retryable:  # nothing signed or sent: the tracker tries again
                    action.error_code, action.error_message = code, message[:2000]
                    action.save(update_fields=["error_code", "error_message", "updated_at"])
                else:
                    _fail(action, code=code, message=message, stage="sign")
        return action
    with transaction.atomic():
        action = lock_objects.action_locked(action_id)
        if action.status not in (St.REQUESTED, St.DELAYED) or action.intent_hash:
            return action
        if _refused_by_gate(action):  # checked again as close to the send as the database allows
            return action
        action.intent_hash, action.signed_intent, action.intent_deadline = (
            signed.intent_hash,
            signed.signed_data,
            signed.deadline,
        )
        action.error_code = action.error_message = ""
        liquidity_transition(action, St.SUBMITTED, intent_hash=signed.intent_hash, deadline=signed.deadline)
        _refresh_pending(action)
    return _publish(action, client)


def _publish(action: LiquidityAction, client) -> LiquidityAction:
    from providers.interface import VenueException

    try:
        result = client.publish_intent(action.signed_intent)
    except VenueException as exc:
        with transaction.atomic():
            action = lock_objects.action_locked(action.pk)
            action.error_code, action.error_message = str(exc.error.code), exc.error.message[:2000]
            action.save(update_fields=["error_code", "error_message", "updated_at"])
        logger.warning(
            "withdrawal publish: no answer", extra={"liquidity_action_id": action.pk, "code": str(exc.error.code)}
        )
        return action
    with transaction.atomic():
        action = lock_objects.action_locked(action.pk)
        action.relay_response = {"status": result.status, "intent_hash": result.intent_hash, "reason": result.reason}
        action.save(update_fields=["relay_response", "updated_at"])
        if result.status != "OK" and action.is_open and action.status != St.SEEN:
            _fail(action, code="INTENT_REJECTED", message=result.reason or "the relay refused the intent")
        else:
            _event(action, "liquidity.published", relay=action.relay_response)
    return action


# --- tracking ---------------------------------------------------------------------------------------
def _withdrawal_track(action: LiquidityAction, client) -> None:
    from providers.interface import VenueException

    try:
        if action.status in (St.SUBMITTED, St.DELAYED) and action.intent_hash and not action.seen_at:
            status = client.get_status(action.intent_hash)
            with transaction.atomic():
                locked = lock_objects.action_locked(action.pk)
                if not locked.is_open or locked.seen_at:
                    return
                if status.status in ("SETTLED", "TX_BROADCASTED") and status.tx_hash:
                    locked.tx_hash = status.tx_hash
                    liquidity_transition(locked, St.SEEN, tx_hash=status.tx_hash, relay_status=status.status)
                    if locked.reservation_id:
                        inventory.inventory_consume(reservation=locked.reservation, reason=f"withdrawal #{locked.pk}")
                    if locked.chain == "near":  # a transfer on NEAR itself: settled is arrived
                        liquidity_transition(locked, St.CREDITED, amount_credited=amount_text(locked.amount))
                        locked.amount_credited = locked.amount
                        locked.save(update_fields=["amount_credited"])
                    _refresh_pending(locked)
                    return
                if status.status == "NOT_FOUND_OR_NOT_VALID":
                    if locked.intent_deadline and locked.intent_deadline < timezone.now():
                        _fail(locked, code="INTENT_EXPIRED", message="the intent was never settled before its deadline")
                        return
                    if locked.relay_response is None:  # never answered: the same intent again (nonce: once)
                        transaction.on_commit(lambda: _publish(locked, client))
            return
        if action.status in (St.SEEN, St.DELAYED) and action.seen_at and action.tx_hash:
            w = client.withdrawal_status(action.tx_hash)
            if w.status == "COMPLETED":
                with transaction.atomic():
                    locked = lock_objects.action_locked(action.pk)
                    if locked.is_open:
                        locked.transfer_tx_hash, locked.amount_credited = w.transfer_tx_hash, locked.amount
                        liquidity_transition(locked, St.CREDITED, transfer_tx_hash=w.transfer_tx_hash)
                        _refresh_pending(locked)
    except VenueException as exc:
        logger.warning("withdrawal tracking", extra={"liquidity_action_id": action.pk, "code": str(exc.error.code)})


def deposits_observe(deposits, *, venue: str = Venue.NEAR_INTENTS) -> dict:
    """Apply the bridge service's deposits to funding actions (the NEAR Intents sync, before it
    reads the verifier): PENDING → seen; CREDITED/COMPLETED → credited exactly once (a credit
    lower than expected is a drift); FAILED → failed. A deposit no action knows becomes a funding
    action of its own; the same transaction hash twice is flagged and counted once."""
    from providers.near_intents.tokens import to_units

    counts = {"seen": 0, "credited": 0, "failed": 0, "new": 0, "duplicates": 0}
    first_seen: dict[str, object] = {}
    for d in deposits:
        if d.tx_hash in first_seen:
            if _flag_duplicate(d, venue=venue):
                counts["duplicates"] += 1
            continue
        first_seen[d.tx_hash] = d
        amount = to_units(d.amount_raw, d.decimals)
        with transaction.atomic():
            action = _funding_for(d, amount, venue=venue, counts=counts)
            if action is None or not action.is_open:
                continue
            if d.status == "PENDING" and action.status in (St.REQUESTED, St.SUBMITTED):
                liquidity_transition(action, St.SEEN, tx_hash=d.tx_hash, bridge_status=d.status)
                counts["seen"] += 1
            elif d.status in ("CREDITED", "COMPLETED"):
                _credit(action, amount, bridge_status=d.status)
                counts["credited"] += 1
            elif d.status == "FAILED":
                _fail(action, code="DEPOSIT_FAILED", message="the bridge service reports the deposit failed")
                counts["failed"] += 1
            _refresh_pending(action)
    return counts


def _funding_for(d, amount: Decimal, *, venue: str, counts: dict) -> LiquidityAction | None:
    """The (locked) funding action of a bridge deposit: by its transaction hash, else an operator's
    funding without one for the same asset and amount, else a new one (origin: bridge)."""
    base = LiquidityAction.objects.filter(venue=venue, kind=K.FUNDING, duplicate_of__isnull=True)
    found = base.filter(tx_hash=d.tx_hash).first()
    if found is None:
        found = (
            base.filter(
                tx_hash="", account=d.account_id, asset=d.token_id, amount=amount, status__in=LiquidityAction.OPEN
            )
            .order_by("pk")
            .first()
        )
        if found is not None:
            found = lock_objects.action_locked(found.pk)
            found.tx_hash = d.tx_hash
            found.chain = found.chain or d.chain
            found.address = found.address or d.address
            found.save(update_fields=["tx_hash", "chain", "address", "updated_at"])
            if found.status == St.REQUESTED:
                liquidity_transition(found, St.SUBMITTED, tx_hash=d.tx_hash)
            return found
        symbol, decimals = _token_or_raw(d)
        inventory.balance_for_action(
            venue=venue, account=d.account_id, asset=d.token_id, symbol=symbol, decimals=decimals
        )
        try:
            with transaction.atomic():
                found = LiquidityAction.objects.create(
                    kind=K.FUNDING,
                    origin=LiquidityAction.Origin.BRIDGE,
                    venue=venue,
                    account=d.account_id,
                    asset=d.token_id,
                    symbol=symbol,
                    amount=amount,
                    chain=d.chain,
                    address=d.address,
                    tx_hash=d.tx_hash,
                    requested_by="bridge",
                )
        except IntegrityError:  # another sync round recorded it first
            found = base.filter(tx_hash=d.tx_hash).first()
            return lock_objects.action_locked(found.pk) if found else None
        _event(found, "liquidity.requested", tx_hash=d.tx_hash, origin="bridge")
        liquidity_transition(found, St.SUBMITTED, tx_hash=d.tx_hash)
        counts["new"] += 1
        return found
    return lock_objects.action_locked(found.pk)


def _token_or_raw(d) -> tuple[str, int]:
    try:
        symbol, decimals = _token(d.token_id)
    except ApplicationError:
        symbol, decimals = "", d.decimals
    return symbol, d.decimals or decimals


def _credit(action: LiquidityAction, amount: Decimal, *, bridge_status: str) -> None:
    """Credited exactly once (the caller holds the action's lock and saw it open)."""
    action.amount_credited = amount
    expected = action.amount or amount
    action.drift = max(expected - amount, ZERO)
    action.save(update_fields=["amount_credited", "drift", "updated_at"])
    liquidity_transition(
        action,
        St.CREDITED,
        amount_credited=amount_text(amount),
        drift=amount_text(action.drift),
        bridge_status=bridge_status,
    )
    if action.drift > 0:
        balance = InventoryBalance.objects.get(venue=action.venue, account=action.account, asset=action.asset)
        inventory.inventory_drift_record(balance=balance, amount=action.drift, action=action)


def _flag_duplicate(d, *, venue: str) -> bool:
    """A second record of an already-recorded transaction hash: flagged once, never counted."""
    original = LiquidityAction.objects.filter(
        venue=venue, kind=K.FUNDING, tx_hash=d.tx_hash, duplicate_of__isnull=True
    ).first()
    if original is None or LiquidityAction.objects.filter(duplicate_of=original).exists():
        return False
    with transaction.atomic():
        flagged = LiquidityAction.objects.create(
            kind=K.FUNDING,
            origin=LiquidityAction.Origin.BRIDGE,
            venue=venue,
            account=original.account,
            asset=original.asset,
            symbol=original.symbol,
            amount=original.amount,
            chain=d.chain,
            address=d.address,
            tx_hash=d.tx_hash,
            duplicate_of=original,
            status=St.FAILED,
            error_code="DUPLICATE_TX_HASH",
            error_message=f"the bridge reported transaction {d.tx_hash} again; counted once, as #{original.pk}",
            requested_by="bridge",
            closed_at=timezone.now(),
        )
        _event(flagged, "liquidity.duplicate", tx_hash=d.tx_hash, duplicate_of=original.pk)
    logger.warning("duplicate funding transaction", extra={"tx_hash": d.tx_hash, "duplicate_of": original.pk})
    return True


def liquidity_delays_mark(*, now=None) -> int:
    """Open actions older than FUNDING_DELAY_ALERT_MINUTES become `delayed` (once)."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.FUNDING_DELAY_ALERT_MINUTES)
    count = 0
    for pk in LiquidityAction.objects.filter(
        status__in=(St.REQUESTED, St.SUBMITTED, St.SEEN), created_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            action = lock_objects.action_locked(pk, skip_locked=True)
            if action is not None and action.status in (St.REQUESTED, St.SUBMITTED, St.SEEN):
                minutes = (now - action.created_at).total_seconds() / 60
                liquidity_transition(action, St.DELAYED, minutes_open=round(minutes, 1))
                count += 1
    return count


def liquidity_track() -> dict:
    """One tracking round (Beat): withdrawals' intent and bridge status, lost submissions and
    deposit-address requests retried, delays marked, expired reservations released."""
    counts = {"tracked": 0, "retried": 0, "delayed": liquidity_delays_mark()}
    counts["released"] = inventory.inventory_release_expired()
    outbound = LiquidityAction.objects.filter(kind__in=(K.WITHDRAWAL, K.REBALANCE), status__in=LiquidityAction.OPEN)
    if (
        not outbound.exists()
        and not LiquidityAction.objects.filter(kind=K.DEPOSIT_ADDRESS, status__in=(St.REQUESTED, St.DELAYED)).exists()
    ):
        return counts
    try:
        _, client = _near()
    except ApplicationError:
        return counts
    stale_before = timezone.now() - timedelta(seconds=30)
    for action in outbound.order_by("pk"):
        if action.intent_hash:
            _withdrawal_track(action, client)
            counts["tracked"] += 1
        elif action.updated_at < stale_before and (not action.needs_approval or action.approved_at):
            withdrawal_submit(action_id=action.pk)  # its task was lost, or signing failed transiently
            counts["retried"] += 1
    for pk in LiquidityAction.objects.filter(
        kind=K.DEPOSIT_ADDRESS, status__in=(St.REQUESTED, St.DELAYED), updated_at__lt=stale_before
    ).values_list("pk", flat=True):
        with contextlib.suppress(ApplicationError):
            deposit_address_fetch(action_id=pk)
        counts["retried"] += 1
    return counts


# --- withdrawal freeze and allowlist ------------------------------------------------------------------
@transaction.atomic
def withdrawals_freeze(*, actor, reason: str) -> ControlState:
    """Freeze withdrawals: one recorded action that disarms `treasury:withdrawals` (every
    withdrawal is refused at its side effect until an operator arms it again)."""
    permission_require(actor=actor, perm=PERM_FREEZE)
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED", details={"reason": ["Required."]})
    label = actor_label(actor)
    state = control.control_disarm(component=WITHDRAWALS, actor=label, reason=f"withdrawals frozen: {reason.strip()}")
    open_count = LiquidityAction.objects.filter(
        kind__in=(K.WITHDRAWAL, K.REBALANCE), status__in=(St.REQUESTED, St.DELAYED), intent_hash=""
    ).count()
    event_record(
        topic="treasury.withdrawals_frozen",
        aggregate_type="control_state",
        aggregate_id=WITHDRAWALS,
        correlation_id=f"control-{WITHDRAWALS}",
        actor=label,
        payload={"reason": reason.strip(), "waiting_withdrawals": open_count},
    )
    logger.warning("withdrawals frozen", extra={"actor": label})
    return state


@transaction.atomic
def allowlist_add(*, actor, chain: str, address: str, asset: str = "", label: str = "") -> AllowlistEntry:
    permission_require(actor=actor, perm=PERM_ALLOWLIST)
    errors = {k: ["Required."] for k, v in (("chain", chain), ("address", address)) if not (v or "").strip()}
    if errors:
        raise ApplicationError("Missing fields.", code="MISSING_FIELDS", details=errors)
    if AllowlistEntry.objects.filter(chain=chain, address__iexact=address.strip(), asset=asset, active=True).exists():
        raise ConflictError("Already on the allowlist.", code="ALLOWLIST_ENTRY_EXISTS")
    who = actor_label(actor)
    entry = AllowlistEntry.objects.create(
        chain=chain.strip(), address=address.strip(), asset=asset, label=label, added_by=who
    )
    event_record(
        topic="treasury.allowlist_added",
        aggregate_type="allowlist_entry",
        aggregate_id=entry.pk,
        actor=who,
        payload={"chain": entry.chain, "address": entry.address, "asset": entry.asset, "label": label},
    )
    return entry


@transaction.atomic
def allowlist_remove(*, actor, entry_id: int, reason: str) -> AllowlistEntry:
    permission_require(actor=actor, perm=PERM_ALLOWLIST)
    entry = AllowlistEntry.objects.select_for_update().get(pk=entry_id)
    if entry.active:
        entry.active = False
        entry.save(update_fields=["active"])
        event_record(
            topic="treasury.allowlist_removed",
            aggregate_type="allowlist_entry",
            aggregate_id=entry.pk,
            actor=actor_label(actor),
            payload={"chain": entry.chain, "address": entry.address, "asset": entry.asset, "reason": reason},
        )
    return entry
