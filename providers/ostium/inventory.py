"""Ostium inventory for the treasury: each account's USDC wallet balance (chain) and the
collateral locked in its open trades (subgraph, through the SDK), read without any key."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from providers.interface import InventoryReading
from providers.ostium.config import network_config
from providers.ostium.resilience import guarded_read

E6 = Decimal(10) ** 6


def ostium_trader_address() -> str | None:
    """The desk's own trader (OSTIUM_TRADER_KEY_FILE), None when no key is configured here."""
    from eth_account import Account

    from providers.ostium.adapter import _read_key

    key = _read_key(settings.OSTIUM_TRADER_KEY_FILE)
    return Account.from_key(key).address if key else None


def ostium_inventory(accounts: list[str]) -> list[InventoryReading]:
    """One USDC reading per account: credited = the wallet's USDC, locked = collateral in open
    trades. Raises VenueException (normalised) when the chain or the subgraph cannot be read."""
    from web3 import Web3

    from providers.ostium.client import reader_for

    net = network_config()
    reader = reader_for(net)
    out = []
    for account in accounts:
        address = Web3.to_checksum_address(account)
        usdc = guarded_read(net.name, lambda a=address: reader.usdc_balance(a), during="treasury balance")
        trades = guarded_read(net.name, lambda a=address: reader.open_trades(a), during="treasury open trades")
        locked = sum((Decimal(str(t.get("collateral") or 0)) for t in trades), Decimal(0)) / E6
        out.append(
            InventoryReading(
                venue="ostium",
                account=address,
                asset="USDC",
                symbol="USDC",
                decimals=6,
                credited=Decimal(usdc) / E6,
                locked=locked,
            )
        )
    return out
