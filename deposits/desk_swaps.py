"""Treasury swaps: the desk converts a token its own wallet (the Ostium trader,
OSTIUM_TRADER_KEY_FILE) holds on the target chain into USDC there, through LI.FI. Unlike a user's
deposit, the desk signs and sends the transactions itself, so the path is gated by the
**`treasury:swaps`** component. The component is disarmed by default, and it is checked when the
swap is requested and again at the side effect, under the claim.

A treasury swap is a `Deposit` with `source=desk`. The row belongs to the operator who asked for
it, sends from and credits to the desk's wallet, and is followed by the same `deposits-poll` with
the same on-chain credit check. Users' endpoints do not show it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError, ConflictError, NotFoundError
from delegations import chain as safe_chain
from deposits import chain, services
from deposits.models import Deposit
from trading.services import control

logger = logging.getLogger("tradedesk.deposits")

TREASURY_SWAPS = "treasury:swaps"
S = Deposit.Status


def _gate() -> None:
    gate = control.component_gate(TREASURY_SWAPS)
    if not gate.ok:
        raise ApplicationError(gate.message, code=gate.code, status_code=503, details={"component": TREASURY_SWAPS})


def _desk_key() -> str:
    from providers.ostium.adapter import _read_key

    key = _read_key(settings.OSTIUM_TRADER_KEY_FILE)
    if not key:
        raise ConflictError("The desk has no wallet here (OSTIUM_TRADER_KEY_FILE).", code="DESK_WALLET_MISSING")
    return key


def desk_swap_request(*, operator, token_address: str, token_symbol: str, amount, actor: str | None = None) -> Deposit:
    """Quote a treasury swap of `amount` of the token into USDC (refused at once while
    `treasury:swaps` is not armed: nothing is quoted)."""
    from eth_account import Account

    _gate()
    wallet = Account.from_key(_desk_key()).address
    return services.deposit_create(
        user=operator,
        token_address=token_address,
        token_symbol=token_symbol,
        chain_name=settings.DEPOSIT_TARGET_CHAIN,
        amount=amount,
        desk_wallet=wallet,
        actor=actor or f"operator:{operator.pk}",
    )


def desk_swap_send(*, deposit_id: int, actor: str = "system:treasury_swaps") -> Deposit:
    """Sign and send the treasury swap's transactions from the desk's wallet (the ERC-20 approve,
    then LI.FI's transactionRequest), then follow it like any deposit. Claimed once; checks
    `treasury:swaps` at the side effect; a quote past its validity is refused."""
    from eth_account import Account
    from web3 import Web3

    deposit = Deposit.objects.filter(pk=deposit_id, source=Deposit.Source.DESK).first()
    if deposit is None:
        raise NotFoundError("No such treasury swap.", code="DEPOSIT_NOT_FOUND")
    with transaction.atomic():
        deposit = services.deposit_lock(deposit.pk)
        if deposit.status != S.AWAITING_SIGNATURE or deposit.transaction_hash or deposit.relay_claimed_at:
            raise ConflictError(
                f"A treasury swap in status {deposit.status} is not sendable.",
                code="DEPOSIT_NOT_SUBMITTABLE",
                details={"status": deposit.status},
            )
        swap = deposit.swap
        if swap is None:
            raise ConflictError("USDC needs no swap.", code="DEPOSIT_NOT_SUBMITTABLE")
        if swap.quote_expires_at <= timezone.now():
            raise ConflictError("The quote expired: request the swap again.", code="QUOTE_EXPIRED")
        _gate()  # at the side effect
        claimed_at = deposit.relay_claimed_at = timezone.now()
        deposit.save(update_fields=["relay_claimed_at", "updated_at"])

    # the side effect (no transaction open)
    net = chain.target_network()
    w3 = Web3(Web3.HTTPProvider(net.rpc_url, request_kwargs={"timeout": 15}))
    account = Account.from_key(_desk_key())
    tx_hash, error = "", None
    try:
        for to, value, data in services._calls(deposit, swap):
            nonce = w3.eth.get_transaction_count(account.address, "pending")
            request = {
                "to": Web3.to_checksum_address(to),
                "value": int(value),
                "data": data,
                "chainId": net.chain_id,
                "nonce": nonce,
                "gas": int(str(swap.transaction_request.get("gasLimit") or "0x7a120"), 16),
                "gasPrice": int(w3.eth.gas_price * 2),
            }
            signed = account.sign_transaction(request)
            sent = w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
            receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=60, poll_latency=0.05)
            if receipt["status"] != 1:
                raise ApplicationError(f"transaction {sent} reverted", code="EXECUTION_FAILED", status_code=409)
            tx_hash = sent
    except ApplicationError as exc:
        error = exc
    except Exception as exc:  # the node refused (nothing left) or the outcome is unknown
        refused = safe_chain.send_refusal(exc, account.address)
        error = refused or ApplicationError(
            f"send outcome unknown: {type(exc).__name__}", code="RELAY_OUTCOME_UNKNOWN", status_code=503
        )

    with transaction.atomic():
        deposit = services.deposit_lock(deposit.pk)
        if deposit.relay_claimed_at != claimed_at:
            return deposit
        if error is None:
            deposit.relay_claimed_at = None
            deposit.save(update_fields=["relay_claimed_at", "updated_at"])
            services._submit(deposit, deposit.swap, tx_hash, actor=actor)
            return deposit
        if error.code != "RELAY_OUTCOME_UNKNOWN":  # nothing of it ran: sendable again
            deposit.relay_claimed_at = None
        deposit.error_code, deposit.error_message = error.code, error.message[:500]
        deposit.save(update_fields=["relay_claimed_at", "error_code", "error_message", "updated_at"])
        services.deposit_event(deposit, "deposit.send_failed", actor=actor, payload={"error_code": error.code})
    raise error
