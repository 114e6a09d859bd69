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


def ostium_inventory(accounts: list[str], *, chunk: int = 100) -> list[InventoryReading]:
    """One USDC reading per account: credited = the wallet's USDC (chain, one batch request per
    `chunk` accounts), locked = collateral in open trades (subgraph, one query per `chunk`).
    Raises VenueException (normalised) when the chain or the subgraph cannot be read."""
    from web3 import Web3

    from providers.ostium.client import reader_for

    net = network_config()
    reader = reader_for(net)
    addresses = [Web3.to_checksum_address(a) for a in accounts]
    out = []
    for i in range(0, len(addresses), chunk):
        part = addresses[i : i + chunk]
        balances = guarded_read(net.name, lambda p=part: reader.usdc_balances(p), during="treasury balances")
        locked = guarded_read(net.name, lambda p=part: reader.open_collateral(p), during="treasury open trades")
        for address, usdc in zip(part, balances, strict=True):
            out.append(
                InventoryReading(
                    venue="ostium",
                    account=address,
                    asset="USDC",
                    symbol="USDC",
                    decimals=6,
                    credited=Decimal(usdc) / E6,
                    locked=Decimal(locked.get(address.lower(), 0)) / E6,
                )
            )
    return out
