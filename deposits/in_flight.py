"""Deposits in flight: sent by the user's side (`submitted`, `pending`), not yet credited.

A user's deposit goes to their own wallet or Safe, never to the desk, so it is not desk
inventory. Two views of it for an operator:
- the treasury: when the target is an account the Ostium inventory tracks (the desk's trader
  wallet for a treasury swap, a Safe with an active delegation, a watched address), the USDC on
  its way counts in that balance's `pending_in` (never spendable) until the deposit ends;
- the control panel: the count and the USDC expected of every deposit in flight, wherever it
  goes (`deposits.health`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from eth_utils import is_address, to_checksum_address

from deposits.models import Deposit

logger = logging.getLogger("tradedesk.deposits")
ZERO = Decimal(0)
VENUE, ASSET = "ostium", "USDC"  # the Ostium inventory's USDC, on the chain deposits target


def in_flight():
    return Deposit.objects.filter(status__in=Deposit.FOLLOWED)


def expected_usdc(deposit: Deposit) -> tuple[Decimal, Decimal]:
    """(expected, guaranteed minimum) USDC of a deposit: the quote's estimate and toAmountMin, or
    the amount itself when no swap is needed."""
    swap = deposit.swap if deposit.swap_needed else None
    if swap is None:
        return deposit.amount, deposit.amount
    return swap.estimated_output or ZERO, swap.min_output or ZERO


def pending_inbound(*, venue: str, account: str, asset: str) -> Decimal:
    """The treasury's inbound source: USDC expected by deposits in flight to `account`."""
    if venue != VENUE or asset != ASSET:
        return ZERO
    rows = in_flight().filter(target_address__iexact=account)
    return sum((expected_usdc(d)[0] for d in rows), ZERO)


def treasury_pending_refresh(target_address: str) -> None:
    """Recompute the target's treasury balance (if the treasury tracks it) after a deposit moved."""
    from treasury.services.inventory import pending_refresh

    if not is_address(target_address):
        return
    try:
        with transaction.atomic():
            pending_refresh(venue=VENUE, account=to_checksum_address(target_address), asset=ASSET)
    except Exception:  # the deposit itself has committed; the view catches up at its next move
        logger.exception("treasury pending refresh failed", extra={"target_address": target_address})


@dataclass(frozen=True)
class InFlight:
    count: int
    expected: Decimal
    minimum: Decimal
    into_treasury: Decimal  # the part going to accounts the treasury tracks (their pending_in)
    ids: list[int]


def in_flight_totals() -> InFlight:
    from treasury.models import InventoryBalance

    rows = list(in_flight().order_by("submitted_at", "pk"))
    tracked = {
        a.lower() for a in InventoryBalance.objects.filter(venue=VENUE, asset=ASSET).values_list("account", flat=True)
    }
    expected = minimum = into = ZERO
    for d in rows:
        e, m = expected_usdc(d)
        expected, minimum = expected + e, minimum + m
        if d.target_address.lower() in tracked:
            into += e
    return InFlight(len(rows), expected, minimum, into, [d.pk for d in rows])
