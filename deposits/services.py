"""Deposit lifecycle: quoted → awaiting_signature → submitted → pending → completed, or
partial / refunded / failed. Every transition writes a `deposit.<status>` ledger event (with
`user_id`, so the user's `deposits` websocket channel gets a `deposit_update` and their webhooks
`deposit.completed`), in the transaction that makes it; a swap that delivers writes
`swap.completed`.

Tradedesk never signs for the user. It asks LI.FI for a route and hands back what to sign: the
ERC-20 `approve` and LI.FI's `transactionRequest` for a wallet, or one SafeTx (hashed and typed
exactly as a delegation's) for a Safe's owners. The user sends it and reports the hash; the
`deposits-poll` Beat job follows LI.FI's `/v1/status` and, on DONE/COMPLETED, credits only what
the chain shows: the USDC Transfer to the target in LI.FI's receiving transaction, at least the
quote's `toAmountMin`.

LI.FI is called outside any database transaction; the state change that follows is one short
transaction under the deposit's row lock, so a poll racing another finds the status moved and
changes nothing (each event, and each webhook, happens once)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from eth_utils import is_address, to_checksum_address

from config.errors import ApplicationError, ConflictError, NotFoundError
from config.inputs import plain_decimal
from delegations import chain as safe_chain
from deposits import chain, in_flight
from deposits.models import Deposit, TokenSwap
from providers.lifi import client as lifi
from trading.services.ledger import event_record

logger = logging.getLogger("tradedesk.deposits")

S = Deposit.Status
W = TokenSwap.Status
TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
RATE_LIMIT_KEY = "lifi:rate_limited_until"
SAFE_TX_KEYS = (
    "to",
    "value",
    "data",
    "operation",
    "safeTxGas",
    "baseGas",
    "gasPrice",
    "gasToken",
    "refundReceiver",
    "nonce",
)
# how far along a deposit is, for `deposit_update.swap_progress`
PROGRESS = {
    "quoted": 0,
    "awaiting_signature": 0,
    "submitted": 10,
    "WAIT_SOURCE_CONFIRMATIONS": 25,
    "WAIT_DESTINATION_TRANSACTION": 75,
}


class DepositError(ApplicationError):
    status_code = 422


# --- events --------------------------------------------------------------------------------------


def swap_progress(deposit: Deposit, swap: TokenSwap | None) -> float:
    if deposit.status in Deposit.ENDED:
        return 100.0
    if deposit.status == S.PENDING and swap is not None:
        return float(PROGRESS.get(swap.substatus, 50))
    return float(PROGRESS.get(deposit.status, 0))


def deposit_event(deposit: Deposit, topic: str, *, actor: str, payload: dict | None = None):
    swap = deposit.swap
    body = {
        "deposit_id": deposit.pk,
        "user_id": deposit.user_id,
        "status": deposit.seed_status,
        "status_detail": deposit.status,
        "token_symbol": deposit.token_symbol,
        "chain": deposit.chain,
        "amount": str(deposit.amount),
        "target_address": deposit.target_address,
        "target_token": deposit.target_token,
        "target_chain": deposit.target_chain,
        "transaction_hash": deposit.transaction_hash,
        "swap_status": swap.seed_status if swap else None,
        "swap_status_detail": swap.swap_status if swap else None,
        "swap_substatus": swap.substatus if swap else None,
        "swap_progress": swap_progress(deposit, swap),
        "credited_amount": None if deposit.credited_amount is None else str(deposit.credited_amount),
    }
    body.update(payload or {})
    # the treasury's pending inbound of the target follows the deposit (after this commits)
    transaction.on_commit(lambda target=deposit.target_address: in_flight.treasury_pending_refresh(target))
    return event_record(
        topic=topic,
        aggregate_type="deposit",
        aggregate_id=deposit.pk,
        correlation_id=deposit.correlation_id,
        actor=actor,
        payload=body,
    )


def _transition(deposit: Deposit, to: str, *, actor: str, fields=(), payload=None):
    source = deposit.status
    deposit.status = to
    deposit.save(update_fields=["status", "updated_at", *fields])
    return deposit_event(deposit, f"deposit.{to}", actor=actor, payload={"from": source, **(payload or {})})


def deposit_lock(pk) -> Deposit | None:
    return Deposit.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def owned(user, deposit_id) -> Deposit:
    found = Deposit.objects.filter(pk=deposit_id, user=user).exclude(source=Deposit.Source.DESK).first()
    if found is None:
        raise NotFoundError("No such deposit.", code="DEPOSIT_NOT_FOUND")
    return found


# --- LI.FI calls as API errors ---------------------------------------------------------------------


def _lifi_call(fn):
    """A LI.FI call; its failures become the error envelope (503 when LI.FI is down or rate
    limits us, 422 when it has no route)."""
    try:
        return fn()
    except lifi.LifiNoRoute as exc:
        raise DepositError(
            f"LI.FI has no route for this deposit: {exc.message}"[:300],
            code="NO_ROUTE",
            details={"lifi_code": exc.body.get("code"), "lifi_message": exc.message},
        ) from exc
    except lifi.LifiError as exc:
        if exc.disabled:
            raise ApplicationError(
                "LI.FI is disabled here (LIFI_ENABLED).", code="LIFI_DISABLED", status_code=503
            ) from exc
        if exc.rate_limited:
            cache.set(RATE_LIMIT_KEY, timezone.now().timestamp() + (exc.retry_after or 60), timeout=3600)
            raise ApplicationError(
                "LI.FI is rate limiting the desk; try again later.",
                code="LIFI_RATE_LIMITED",
                status_code=503,
                details={"retry_after": exc.retry_after},
            ) from exc
        raise ApplicationError(
            f"LI.FI is unavailable: {exc.message}"[:300], code="LIFI_UNAVAILABLE", status_code=503
        ) from exc


def _token(chain_id: int, token_address: str, token_symbol: str) -> dict:
    """The token as LI.FI lists it on `chain_id` (`/v1/tokens`, cached ten minutes)."""
    key = f"lifi:tokens:{chain_id}"
    listed = cache.get(key)
    if listed is None:
        listed = _lifi_call(lambda: lifi.tokens([chain_id])).get(str(chain_id), [])
        cache.set(key, listed, timeout=600)
    wanted = (token_address or "").lower()
    for token in listed:
        address = str(token.get("address", "")).lower()
        if wanted and (address == wanted or (chain.is_native(wanted) and chain.is_native(address))):
            return token
    if not wanted:
        for token in listed:
            if str(token.get("symbol", "")).upper() == token_symbol.upper():
                return token
    raise DepositError(
        "LI.FI does not route this token on this chain.",
        code="TOKEN_UNSUPPORTED",
        details={"token_address": token_address, "token_symbol": token_symbol, "chain_id": chain_id},
    )


# --- where a deposit comes from and goes ---------------------------------------------------------


def chain_id_of(name: str) -> int:
    name = (name or "").strip().lower()
    if name == settings.DEPOSIT_TARGET_CHAIN:
        return chain.target_network().chain_id
    if name not in settings.DEPOSIT_CHAINS:
        raise DepositError(
            f"Deposits from chain {name!r} are not supported.",
            code="CHAIN_UNSUPPORTED",
            details={"chain": name, "supported": sorted({*settings.DEPOSIT_CHAINS, settings.DEPOSIT_TARGET_CHAIN})},
        )
    return settings.DEPOSIT_CHAINS[name]


def _user_wallet(user) -> str:
    if not user.wallet_address or not is_address(user.wallet_address):
        raise DepositError("A deposit needs your wallet: sign in with a wallet first.", code="WALLET_REQUIRED")
    return to_checksum_address(user.wallet_address)


def _user_safe(user) -> str | None:
    """The user's Safe when they trade in delegated mode (their live delegation's Safe)."""
    from delegations.models import OstiumDelegation
    from delegations.services import user_safe_delegation

    found = user_safe_delegation(user=user, network=settings.OSTIUM_NETWORK)
    if found is None or found.status not in (OstiumDelegation.Status.ACTIVE, OstiumDelegation.Status.SUBMITTED):
        return None
    return found.safe_address


def _slippage_check(quote: lifi.Quote) -> None:
    if quote.to_amount <= 0:
        raise DepositError("LI.FI quoted nothing out.", code="NO_ROUTE")
    slip = Decimal(quote.to_amount - quote.to_amount_min) / Decimal(quote.to_amount)
    if slip > Decimal(settings.DEPOSIT_MAX_SLIPPAGE):
        raise DepositError(
            "The quote's slippage is beyond the limit.",
            code="SLIPPAGE_TOO_HIGH",
            details={
                "slippage": f"{slip:.6f}",
                "max_slippage": str(settings.DEPOSIT_MAX_SLIPPAGE),
                "to_amount": str(quote.to_amount),
                "to_amount_min": str(quote.to_amount_min),
            },
        )


def _quote(deposit: Deposit) -> lifi.Quote:
    quote = _lifi_call(
        lambda: lifi.quote(
            from_chain=deposit.chain_id,
            to_chain=deposit.target_chain_id,
            from_token=deposit.token_address,
            to_token=deposit.target_token_address,
            from_address=deposit.from_address,
            to_address=deposit.target_address,
            from_amount=int(deposit.amount_raw),
            slippage=Decimal(settings.DEPOSIT_SLIPPAGE),
        )
    )
    if quote.from_chain_id != deposit.chain_id or quote.to_chain_id != deposit.target_chain_id:
        raise DepositError(
            "LI.FI answered a route between other chains.",
            code="WRONG_CHAIN",
            details={"from_chain_id": quote.from_chain_id, "to_chain_id": quote.to_chain_id},
        )
    if str(quote.transaction_request.get("chainId", deposit.chain_id)) != str(deposit.chain_id):
        raise DepositError("LI.FI's transaction is for another chain.", code="WRONG_CHAIN")
    _slippage_check(quote)
    return quote


def _swap_fields(deposit: Deposit, quote: lifi.Quote) -> dict:
    now = timezone.now()
    return {
        "route_id": quote.id,
        "tool": quote.tool,
        "to_amount_raw": quote.to_amount,
        "to_amount_min_raw": quote.to_amount_min,
        "estimated_output": chain.raw_to_decimal(quote.to_amount, 6),
        "min_output": chain.raw_to_decimal(quote.to_amount_min, 6),
        "approval_address": quote.approval_address,
        "transaction_request": quote.transaction_request,
        "quoted_at": now,
        "quote_expires_at": now + timedelta(seconds=settings.DEPOSIT_QUOTE_TTL_SECONDS),
    }


def _calls(deposit: Deposit, swap: TokenSwap | None) -> list[tuple[str, int, str]]:
    """What the sender runs, in order: (to, value, data)."""
    if swap is None:  # USDC already on the target chain: a plain transfer to the target
        return [(deposit.token_address, 0, chain.transfer_data(deposit.target_address, int(deposit.amount_raw)))]
    request = swap.transaction_request
    calls = []
    if not chain.is_native(deposit.token_address) and swap.approval_address:
        calls.append((deposit.token_address, 0, chain.approve_data(swap.approval_address, int(deposit.amount_raw))))
    calls.append((request["to"], int(str(request.get("value") or "0x0"), 16), request["data"]))
    return calls


def _prepare_safe_tx(deposit: Deposit, swap: TokenSwap | None) -> None:
    """The SafeTx the Safe's owners sign (the Safe's current nonce), hashed as a delegation's."""
    net = chain.target_network()
    state = safe_chain.safe_state(net, deposit.from_address)
    prepared = chain.safe_deposit_tx(net, calls=_calls(deposit, swap))
    fields = chain.safe_tx_fields(prepared, state.nonce)
    deposit.safe_tx = {
        **fields,
        "threshold": state.threshold,
        "owners": list(state.owners),
        "prepared_block": chain.block_number(net),  # where the relay recovery starts reading logs
    }
    deposit.safe_tx_hash = safe_chain.safe_tx(net, deposit.from_address, fields).safe_tx_hash.to_0x_hex()


def safe_typed_data(deposit: Deposit) -> dict | None:
    if not deposit.safe_tx:
        return None
    net = chain.target_network()
    fields = {k: deposit.safe_tx[k] for k in SAFE_TX_KEYS}
    return safe_chain.typed_data(safe_chain.safe_tx(net, deposit.from_address, fields))


# --- create ---------------------------------------------------------------------------------------


def _amount(value) -> Decimal:
    try:
        amount = plain_decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise ApplicationError(
            'amount is not a number: give ASCII digits with an optional point, like "1.5".',
            code="VALIDATION_ERROR",
            details={"amount": ["invalid"]},
        ) from exc
    if amount <= 0:
        raise ApplicationError(
            "amount must be positive.", code="VALIDATION_ERROR", details={"amount": ["not positive"]}
        )
    return amount


def deposit_create(
    *,
    user,
    token_symbol: str,
    chain_name: str,
    amount,
    token_address: str = "",
    transaction_hash: str = "",
    source: str | None = None,
    actor: str | None = None,
    desk_wallet: str | None = None,
) -> Deposit:
    """Quote a deposit and prepare what the user signs. USDC already on the target chain needs
    no swap: with `transaction_hash` (a transfer to the target) it is followed like a swap and
    credited once the chain shows the transfer; from the target wallet itself it is credited when
    the chain shows the balance."""
    actor = actor or f"user:{user.pk}"
    amount = _amount(amount)
    chain_name = (chain_name or "").strip().lower()
    chain_id = chain_id_of(chain_name)
    if token_address and not is_address(token_address):
        raise ApplicationError(
            "token_address is not an address.", code="VALIDATION_ERROR", details={"token_address": ["not an address"]}
        )
    if transaction_hash and not TX_HASH_RE.match(transaction_hash):
        raise ApplicationError(
            "transaction_hash is not a transaction hash.",
            code="VALIDATION_ERROR",
            details={"transaction_hash": ["0x and 64 hex digits"]},
        )
    transaction_hash = (transaction_hash or "").lower()
    net = chain.target_network()
    target_chain = settings.DEPOSIT_TARGET_CHAIN
    if desk_wallet:  # the desk's own wallet converts (deposits/desk_swaps.py): it sends, it receives
        wallet, safe, target, source = desk_wallet, None, desk_wallet, Deposit.Source.DESK
        if chain_id != net.chain_id:
            raise DepositError(f"The desk swaps on {target_chain} only.", code="WRONG_CHAIN")
    else:
        wallet = _user_wallet(user)
        safe = _user_safe(user)
        target = safe or wallet
        source = source or ("safe" if safe else "wallet")
    if source == "safe" and not safe:
        raise DepositError("You have no Safe in delegated mode.", code="SAFE_REQUIRED")
    if source == "safe" and chain_id != net.chain_id:
        raise DepositError(
            f"A Safe deposits from {target_chain} only (where the desk reads the Safe).",
            code="WRONG_CHAIN",
            details={"chain": chain_name, "safe_chain": target_chain},
        )
    from_address = safe if source == "safe" else wallet

    if chain_id == net.chain_id and (token_address or "").lower() == net.usdc.lower():
        token = {"address": to_checksum_address(net.usdc), "symbol": "USDC", "decimals": 6}
    else:
        token = _token(chain_id, token_address, token_symbol)
    listed_symbol = str(token.get("symbol") or "")
    if token_symbol and listed_symbol and token_symbol.strip().upper() != listed_symbol.upper():
        # never quote another token than the one the user named: 1 "USDC" at the native
        # address would have been 1 ETH to sign
        raise DepositError(
            f"The token at {token['address']} on {chain_name} is {listed_symbol}, not {token_symbol}.",
            code="TOKEN_MISMATCH",
            details={"token_address": token_address, "token_symbol": token_symbol, "listed_symbol": listed_symbol},
        )
    decimals = int(token["decimals"])
    raw = (amount * Decimal(10) ** decimals).to_integral_value(rounding=ROUND_DOWN)
    if raw <= 0 or amount.as_tuple().exponent < -decimals:
        raise ApplicationError(
            f"amount has more than {decimals} decimals.", code="VALIDATION_ERROR", details={"amount": ["too precise"]}
        )
    swap_needed = not (chain_id == net.chain_id and str(token["address"]).lower() == net.usdc.lower())
    if swap_needed and transaction_hash:
        raise DepositError(
            "A swap is quoted first: sign the quote's transaction and report its hash to /submitted.",
            code="TRANSACTION_HASH_UNEXPECTED",
        )
    deposit = Deposit(
        user=user,
        token_address=to_checksum_address(token["address"]),
        token_symbol=(listed_symbol or token_symbol)[:20],
        token_decimals=decimals,
        chain=chain_name,
        chain_id=chain_id,
        amount=amount,
        amount_raw=raw,
        status=S.QUOTED,
        source=source,
        from_address=from_address,
        target_address=target,
        target_chain=target_chain,
        target_chain_id=net.chain_id,
        target_token=settings.DEPOSIT_TARGET_TOKEN,
        target_token_address=to_checksum_address(net.usdc),
        swap_needed=swap_needed,
    )
    quote = _quote(deposit) if swap_needed else None  # no transaction open while LI.FI answers
    swap = None
    if quote is not None:
        swap = TokenSwap(
            from_token=deposit.token_symbol,
            from_token_address=deposit.token_address,
            to_token=deposit.target_token,
            to_token_address=deposit.target_token_address,
            from_chain=chain_name,
            from_chain_id=chain_id,
            to_chain=target_chain,
            to_chain_id=net.chain_id,
            amount=amount,
            from_amount_raw=raw,
            **_swap_fields(deposit, quote),
        )
    if source == "safe":
        _prepare_safe_tx(deposit, swap)
    already_there = not swap_needed and not transaction_hash and from_address == target
    if already_there:
        balance = chain.usdc_balance(net, target)
        if balance < raw:
            raise DepositError(
                "Your wallet does not hold this much USDC on the target chain.",
                code="INSUFFICIENT_BALANCE",
                details={"balance": str(chain.raw_to_decimal(balance, 6))},
            )

    with transaction.atomic():
        deposit.save(force_insert=True)
        if swap is not None:
            swap.deposit = deposit
            swap.save(force_insert=True)
        deposit_event(
            deposit,
            "deposit.quoted",
            actor=actor,
            payload={"route_id": swap.route_id if swap else None, "source": source},
        )
        if already_there:
            deposit.credited_amount = amount
            deposit.completed_at = timezone.now()
            _transition(
                deposit,
                S.COMPLETED,
                actor=actor,
                fields=("credited_amount", "completed_at"),
                payload={"verified": "balance"},
            )
        elif transaction_hash:
            _submit(deposit, None, transaction_hash, actor=actor)
        else:
            _transition(deposit, S.AWAITING_SIGNATURE, actor=actor)
    return deposit


def _submit(deposit: Deposit, swap: TokenSwap | None, tx_hash: str, *, actor: str) -> None:
    """Record the user's sent transaction (caller holds the lock, in a transaction)."""
    now = timezone.now()
    deposit.transaction_hash = tx_hash
    deposit.submitted_at = now
    deposit.next_poll_at = now
    try:
        with transaction.atomic():
            if swap is not None:
                swap.swap_transaction_hash = tx_hash
                swap.swap_status = W.PROCESSING
                swap.save(update_fields=["swap_transaction_hash", "swap_status", "updated_at"])
            _transition(
                deposit,
                S.SUBMITTED,
                actor=actor,
                fields=("transaction_hash", "submitted_at", "next_poll_at"),
            )
    except IntegrityError as exc:
        raise ConflictError(
            "This transaction hash belongs to another deposit.", code="TRANSACTION_ALREADY_USED"
        ) from exc

    def kick():
        from deposits.tasks import deposit_poll_task

        try:
            deposit_poll_task.delay(deposit.pk)
        except Exception:  # the Beat job polls it anyway
            logger.warning("deposit poll kick failed", extra={"deposit_id": deposit.pk})

    if settings.DEPOSIT_POLL_KICK:
        transaction.on_commit(kick)


# --- re-quote, submitted ----------------------------------------------------------------------------


def deposit_requote(*, user, deposit_id: int, actor: str | None = None) -> Deposit:
    """A fresh quote (and transaction, or SafeTx) for a deposit still awaiting its signature."""
    actor = actor or f"user:{user.pk}"
    deposit = owned(user, deposit_id)
    if deposit.status != S.AWAITING_SIGNATURE or not deposit.swap_needed:
        raise ConflictError(
            f"A deposit in status {deposit.status} cannot be quoted again.",
            code="DEPOSIT_NOT_QUOTABLE",
            details={"status": deposit.status},
        )
    quote = _quote(deposit)
    with transaction.atomic():
        deposit = deposit_lock(deposit.pk)
        if deposit.status != S.AWAITING_SIGNATURE:
            raise ConflictError("The deposit changed meanwhile.", code="DEPOSIT_NOT_QUOTABLE")
        swap = deposit.swap
        old_route = swap.route_id
        for name, value in _swap_fields(deposit, quote).items():
            setattr(swap, name, value)
        swap.save()
        if deposit.source == Deposit.Source.SAFE:
            _prepare_safe_tx(deposit, swap)
            deposit.save(update_fields=["safe_tx", "safe_tx_hash", "updated_at"])
        deposit_event(
            deposit,
            "deposit.requoted",
            actor=actor,
            payload={"route_id": swap.route_id, "previous_route_id": old_route},
        )
    return deposit


def _sender_check(deposit: Deposit, tx_hash: str) -> None:
    """What the target chain (the one chain the desk reads) says of a reported transaction: one
    found there for a deposit from another chain is on the wrong chain; one from the deposit's
    chain must come from its sender (the wallet, or for a Safe an `execTransaction` to it). Not
    found (not propagated yet) or the chain unreadable: the poll decides."""
    try:
        found = chain.transaction(chain.target_network(), tx_hash)
    except ApplicationError:
        return
    if found is None:
        return
    if deposit.chain_id != deposit.target_chain_id:
        raise DepositError(
            f"This transaction is on {deposit.target_chain}, but the deposit comes from {deposit.chain}.",
            code="WRONG_CHAIN",
            details={"chain": deposit.chain, "transaction_chain": deposit.target_chain},
        )
    sender, to = found
    expected = deposit.from_address.lower()
    if (sender or "").lower() != expected and (to or "").lower() != expected:
        raise DepositError(
            "This transaction was not sent by the deposit's sender.",
            code="TRANSACTION_NOT_FROM_SENDER",
            details={"from_address": deposit.from_address},
        )


def deposit_submitted(*, user, deposit_id: int, tx_hash: str, actor: str | None = None) -> Deposit:
    """Record the hash of the transaction the user (or the Safe's owners) sent. The same hash
    again answers the deposit as it is; another hash, or a quote past its validity, is refused."""
    actor = actor or f"user:{user.pk}"
    if not isinstance(tx_hash, str) or not TX_HASH_RE.match(tx_hash):
        raise ApplicationError(
            "tx_hash is not a transaction hash.", code="VALIDATION_ERROR", details={"tx_hash": ["0x and 64 hex digits"]}
        )
    tx_hash = tx_hash.lower()  # one spelling per transaction: the unique constraints compare strings
    deposit = owned(user, deposit_id)
    if not deposit.transaction_hash:
        _sender_check(deposit, tx_hash)
    with transaction.atomic():
        deposit = deposit_lock(deposit.pk)
        if deposit.transaction_hash:
            if deposit.transaction_hash == tx_hash:
                return deposit  # the same report twice: one swap
            raise ConflictError(
                "This deposit already has its transaction.",
                code="DEPOSIT_ALREADY_SUBMITTED",
                details={"transaction_hash": deposit.transaction_hash},
            )
        if deposit.status != S.AWAITING_SIGNATURE:
            raise ConflictError(
                f"A deposit in status {deposit.status} takes no transaction.",
                code="DEPOSIT_NOT_SUBMITTABLE",
                details={"status": deposit.status},
            )
        swap = deposit.swap
        if swap is not None and swap.quote_expires_at <= timezone.now():
            raise ConflictError(
                "The quote expired before it was signed: quote again (POST .../quote) and sign the new one.",
                code="QUOTE_EXPIRED",
                details={"quote_expires_at": swap.quote_expires_at.isoformat()},
            )
        _submit(deposit, swap, tx_hash, actor=actor)
    return deposit


# --- following LI.FI --------------------------------------------------------------------------------


def _backoff(failures: int) -> float:
    base = settings.DEPOSIT_POLL_BACKOFF_SECONDS
    return min(base * 2 ** max(0, failures - 1), settings.DEPOSIT_POLL_BACKOFF_MAX_SECONDS)


def _poll_failed(deposit: Deposit, error: str, *, retry_after: float | None = None) -> None:
    with transaction.atomic():
        locked = deposit_lock(deposit.pk)
        if locked is None or locked.status not in Deposit.FOLLOWED:
            return
        locked.poll_failures += 1
        delay = retry_after if retry_after is not None else _backoff(locked.poll_failures)
        locked.next_poll_at = timezone.now() + timedelta(seconds=delay)
        locked.last_polled_at = timezone.now()
        locked.poll_error = error[:300]
        locked.save(update_fields=["poll_failures", "next_poll_at", "last_polled_at", "poll_error", "updated_at"])


def rate_limited_until() -> float | None:
    until = cache.get(RATE_LIMIT_KEY)
    return until if until and until > timezone.now().timestamp() else None


def deposit_poll(deposit: Deposit, *, actor: str = "system:deposits_poll") -> Deposit:
    """Ask LI.FI (or, with no swap, the chain) where one submitted deposit stands, and move it."""
    swap = deposit.swap
    if deposit.status not in Deposit.FOLLOWED:
        return deposit
    if swap is None:
        return _poll_transfer(deposit, actor=actor)
    try:
        status = lifi.status(tx_hash=deposit.transaction_hash, from_chain=swap.from_chain_id, to_chain=swap.to_chain_id)
    except lifi.LifiError as exc:
        if exc.rate_limited:
            cache.set(RATE_LIMIT_KEY, timezone.now().timestamp() + (exc.retry_after or 60), timeout=3600)
        _poll_failed(deposit, f"LI.FI: {exc.message}", retry_after=exc.retry_after if exc.rate_limited else None)
        return Deposit.objects.get(pk=deposit.pk)
    credit = None
    if status.status == "DONE" and status.substatus == "COMPLETED":
        receiving_tx = str((status.receiving or {}).get("txHash") or "")
        if not TX_HASH_RE.match(receiving_tx):
            _poll_failed(deposit, "LI.FI reports DONE without a receiving transaction")
            return Deposit.objects.get(pk=deposit.pk)
        try:
            credit = chain.usdc_credit(chain.target_network(), receiving_tx, deposit.target_address)
        except ApplicationError as exc:
            _poll_failed(deposit, f"chain: {exc}")
            return Deposit.objects.get(pk=deposit.pk)
        if not credit.mined:
            _poll_failed(deposit, "receiving transaction not mined yet")
            return Deposit.objects.get(pk=deposit.pk)
    return _apply_status(deposit.pk, status, credit, actor=actor)


def _schedule_next(deposit: Deposit, fields: list[str]) -> None:
    now = timezone.now()
    deposit.last_polled_at = now
    deposit.next_poll_at = now + timedelta(seconds=settings.DEPOSIT_POLL_BACKOFF_SECONDS)
    deposit.poll_failures = 0
    deposit.poll_error = ""
    fields.extend(["last_polled_at", "next_poll_at", "poll_failures", "poll_error"])


def _end(deposit: Deposit, swap: TokenSwap | None, to: str, *, actor: str, fields: list[str], payload=None) -> None:
    now = timezone.now()
    deposit.completed_at = now
    deposit.next_poll_at = None
    fields.extend(["completed_at", "next_poll_at"])
    if swap is not None:
        swap.completed_at = now
        swap.save()
    _transition(deposit, to, actor=actor, fields=tuple(dict.fromkeys(fields)), payload=payload)


def _apply_status(pk: int, status: lifi.Status, credit: chain.Credit | None, *, actor: str) -> Deposit:
    with transaction.atomic():
        deposit = deposit_lock(pk)
        if deposit is None or deposit.status not in Deposit.FOLLOWED:
            return deposit
        swap = deposit.swap
        fields: list[str] = []
        _schedule_next(deposit, fields)
        changed = (swap.lifi_status, swap.substatus) != (status.status, status.substatus)
        swap.lifi_status, swap.substatus = status.status, status.substatus
        swap.substatus_message = status.substatus_message[:300]
        swap.explorer_link = status.explorer_link[:200]
        swap.receiving_transaction_hash = str((status.receiving or {}).get("txHash") or "")[:66]
        received = status.receiving_amount
        if received is not None:
            decimals = int(status.receiving_token.get("decimals") or 6)
            swap.actual_output = chain.raw_to_decimal(received, decimals)
            swap.received_token = str(status.receiving_token.get("address") or "")[:42]
        lifi_payload = {"lifi_status": status.status, "lifi_substatus": status.substatus}

        if status.status in ("NOT_FOUND",):
            swap.save()
            deposit.save(update_fields=fields)
            return deposit

        def unsettled(to: str, swap_status: str, code: str, message: str, *, swap_error: bool = True, extra=()):
            """The deposit ends without a credit: the code and message on it (and on the swap)."""
            swap.swap_status = swap_status
            if swap_error:
                swap.error_message = message
            deposit.error_code, deposit.error_message = code, message
            _end(
                deposit,
                swap,
                to,
                actor=actor,
                fields=[*fields, *extra, "error_code", "error_message"],
                payload=lifi_payload,
            )
            return deposit

        if status.status == "INVALID":
            return unsettled(
                S.FAILED, W.FAILED, "TRANSACTION_INVALID", "LI.FI does not recognise this transaction (INVALID)."
            )
        if status.status == "PENDING":
            swap.swap_status = W.PROCESSING
            swap.save()
            if deposit.status == S.SUBMITTED:
                _transition(deposit, S.PENDING, actor=actor, fields=tuple(fields), payload=lifi_payload)
            elif changed:
                deposit.save(update_fields=fields)
                deposit_event(deposit, "deposit.pending", actor=actor, payload={"from": S.PENDING, **lifi_payload})
            else:
                deposit.save(update_fields=fields)
            return deposit
        if status.status == "FAILED":
            return unsettled(
                S.FAILED,
                W.FAILED,
                status.substatus or "UNKNOWN_FAILED_ERROR",
                status.substatus_message or status.substatus,
            )
        # DONE
        if status.substatus == "PARTIAL":
            message = "Another token than USDC arrived; it is not credited as USDC."
            return unsettled(S.PARTIAL, W.PARTIAL, "PARTIAL", message, swap_error=False)
        if status.substatus == "REFUNDED":
            message = "LI.FI refunded the tokens to the sender."
            return unsettled(S.REFUNDED, W.REFUNDED, "REFUNDED", message, swap_error=False)
        # COMPLETED: credited only what the chain shows, at least toAmountMin
        credited = chain.raw_to_decimal(credit.amount_raw, 6)
        minimum = int(swap.to_amount_min_raw or 0)
        if not credit.success or credit.amount_raw < minimum:
            deposit.credited_amount = credited
            message = f"the chain shows {credited} USDC to the target, below the minimum {swap.min_output}"
            return unsettled(S.FAILED, W.FAILED, "CREDIT_BELOW_MINIMUM", message, extra=("credited_amount",))
        swap.swap_status = W.COMPLETED
        swap.actual_output = credited
        deposit.credited_amount = credited
        deposit.credit_transaction_hash = swap.receiving_transaction_hash
        swap.save()
        event_record(
            topic="swap.completed",
            aggregate_type="token_swap",
            aggregate_id=swap.pk,
            correlation_id=deposit.correlation_id,
            actor=actor,
            payload={
                "swap_id": swap.pk,
                "deposit_id": deposit.pk,
                "status": swap.seed_status,
                "status_detail": swap.swap_status,
                "user_id": deposit.user_id,
                "from_token": swap.from_token,
                "from_chain": swap.from_chain,
                "to_token": swap.to_token,
                "to_chain": swap.to_chain,
                "amount": str(swap.amount),
                "estimated_output": str(swap.estimated_output),
                "actual_output": str(credited),
                "swap_transaction_hash": swap.swap_transaction_hash,
                "receiving_transaction_hash": swap.receiving_transaction_hash,
                "route_id": swap.route_id,
            },
        )
        _end(
            deposit,
            swap,
            S.COMPLETED,
            actor=actor,
            fields=[*fields, "credited_amount", "credit_transaction_hash"],
            payload=lifi_payload,
        )
        return deposit


def _poll_transfer(deposit: Deposit, *, actor: str) -> Deposit:
    """No swap: the user's own USDC transfer to the target, read from the chain."""
    try:
        credit = chain.usdc_credit(chain.target_network(), deposit.transaction_hash, deposit.target_address)
    except ApplicationError as exc:
        _poll_failed(deposit, f"chain: {exc}")
        return Deposit.objects.get(pk=deposit.pk)
    if not credit.mined:
        _poll_failed(deposit, "transaction not mined yet")
        return Deposit.objects.get(pk=deposit.pk)
    with transaction.atomic():
        deposit = deposit_lock(deposit.pk)
        if deposit.status not in Deposit.FOLLOWED:
            return deposit
        fields: list[str] = []
        _schedule_next(deposit, fields)
        credited = chain.raw_to_decimal(credit.amount_raw, 6)
        deposit.credited_amount = credited
        if not credit.success or credit.amount_raw < int(deposit.amount_raw):
            deposit.error_code = "TRANSFER_NOT_FOUND"
            deposit.error_message = f"the transaction moved {credited} USDC to the target, not {deposit.amount}"
            _end(
                deposit, None, S.FAILED, actor=actor, fields=[*fields, "credited_amount", "error_code", "error_message"]
            )
            return deposit
        deposit.credit_transaction_hash = deposit.transaction_hash
        _end(
            deposit,
            None,
            S.COMPLETED,
            actor=actor,
            fields=[*fields, "credited_amount", "credit_transaction_hash"],
            payload={"verified": "transfer"},
        )
        return deposit


def deposits_poll(*, limit: int = 50, actor: str = "system:deposits_poll") -> dict:
    """Beat job: poll the submitted deposits that are due (oldest first), and flag those pending
    longer than DEPOSIT_DELAY_ALERT_MINUTES (`delayed_at`, event `deposit.delayed`). While LI.FI
    rate limits the desk (a 429's `ratelimit-reset`), nothing is asked of it."""
    now = timezone.now()
    counts = {"polled": 0, "ended": 0, "flagged": 0, "skipped": ""}
    cutoff = now - timedelta(minutes=settings.DEPOSIT_DELAY_ALERT_MINUTES)
    for pk in Deposit.objects.filter(
        status__in=Deposit.FOLLOWED, delayed_at__isnull=True, submitted_at__lte=cutoff
    ).values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            deposit = deposit_lock(pk)
            if deposit.status not in Deposit.FOLLOWED or deposit.delayed_at is not None:
                continue
            deposit.delayed_at = now
            deposit.save(update_fields=["delayed_at", "updated_at"])
            deposit_event(
                deposit,
                "deposit.delayed",
                actor=actor,
                payload={
                    "submitted_at": deposit.submitted_at.isoformat(),
                    "alert_minutes": settings.DEPOSIT_DELAY_ALERT_MINUTES,
                },
            )
            counts["flagged"] += 1
    from deposits.relay import relay_recover

    counts["relay"] = relay_recover(actor=actor)
    if rate_limited_until() is not None:
        counts["skipped"] = "rate_limited"
        return counts
    due = (
        Deposit.objects.filter(status__in=Deposit.FOLLOWED)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .order_by("next_poll_at", "id")[:limit]
    )
    for deposit in due:
        after = deposit_poll(deposit, actor=actor)
        counts["polled"] += 1
        if after.status in Deposit.ENDED:
            counts["ended"] += 1
        if rate_limited_until() is not None:
            counts["skipped"] = "rate_limited"
            break
    return counts


def safe_tx_out(deposit: Deposit) -> dict | None:
    if not deposit.safe_tx:
        return None
    fields = dict(deposit.safe_tx)
    return {
        "safe_address": deposit.from_address,
        "safe_tx": {
            k: (str(fields[k]) if k not in ("to", "data", "operation", "gasToken", "refundReceiver") else fields[k])
            for k in SAFE_TX_KEYS
        },
        "safe_tx_hash": deposit.safe_tx_hash,
        "threshold": fields.get("threshold"),
        "owners": fields.get("owners"),
        "typed_data": safe_typed_data(deposit),
    }


def wallet_transactions(deposit: Deposit) -> tuple[dict | None, dict | None]:
    """(approval, transaction) a wallet signs, in LI.FI's transactionRequest shape (hex values)."""
    if deposit.source != Deposit.Source.WALLET or deposit.status not in (S.QUOTED, S.AWAITING_SIGNATURE):
        return None, None
    swap = deposit.swap
    calls = _calls(deposit, swap)
    approval = None
    if len(calls) == 2:
        to, value, data = calls[0]
        approval = {
            "from": deposit.from_address,
            "to": to,
            "data": data,
            "value": hex(value),
            "chainId": deposit.chain_id,
        }
    if swap is not None:
        request = dict(swap.transaction_request)
    else:
        to, value, data = calls[-1]
        request = {
            "from": deposit.from_address,
            "to": to,
            "data": data,
            "value": hex(value),
            "chainId": deposit.chain_id,
        }
    return approval, request
