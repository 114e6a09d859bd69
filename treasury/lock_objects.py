"""Row locks of the treasury, in one place so every path takes them in the same order:
a liquidity action before the balance it touches; balances by primary key."""

from __future__ import annotations

from treasury.models import InventoryBalance, LiquidityAction, Reservation


def balances_of_venue_locked(venue: str):
    return InventoryBalance.objects.filter(venue=venue).order_by("pk").select_for_update()


def balance_locked(*, venue: str, account: str, asset: str) -> InventoryBalance | None:
    return InventoryBalance.objects.select_for_update().filter(venue=venue, account=account, asset=asset).first()


def balance_locked_by_pk(pk: int) -> InventoryBalance:
    return InventoryBalance.objects.select_for_update().get(pk=pk)


def action_locked(pk: int, *, skip_locked: bool = False) -> LiquidityAction | None:
    return LiquidityAction.objects.select_for_update(skip_locked=skip_locked).filter(pk=pk).first()


def reservation_locked(pk: int) -> Reservation:
    return Reservation.objects.select_for_update().get(pk=pk)
