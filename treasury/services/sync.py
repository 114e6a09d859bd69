"""Inventory sync, one job per venue (Beat), each leaving a heartbeat (`InventorySync`):

- near_intents: the bridge service's recent deposits first (funding actions move: pending,
  credited, failed), then the verifier's `mt_batch_balance_of` for the solver account through
  NEAR RPC `query/call_function` (a deposit the bridge calls credited is in that reading).
- ostium: the USDC wallet balance of the desk's trader, of each active Safe and of
  TREASURY_OSTIUM_ACCOUNTS (chain), and the collateral locked in their open trades (subgraph).
- paper: the paper accounts.

A venue that cannot be read leaves every balance of it stale (consumers are refused) with the
reason; one run at a time per venue (a Redis lock)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from config.logging import log_event
from providers.interface import InventoryReading, VenueException
from treasury.models import InventoryBalance, InventorySync, Venue
from treasury.services import inventory

logger = logging.getLogger("tradedesk.treasury")
NOT_CONFIGURED = "NOT_CONFIGURED"


class SyncFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _near_readings() -> tuple[list[InventoryReading], str, list[str]]:
    from providers.near_intents.client import near_intents_client
    from providers.near_intents.config import NearIntentsConfigError, network_config
    from providers.near_intents.inventory import near_inventory, near_tokens
    from providers.near_intents.tokens import TokenInfo
    from treasury.services.liquidity import deposits_observe

    try:
        net = network_config()
    except NearIntentsConfigError as exc:
        raise SyncFailed(NOT_CONFIGURED, str(exc)) from None
    if not net.solver_account:
        raise SyncFailed(NOT_CONFIGURED, "no solver account (NEAR_INTENTS_SOLVER_ACCOUNT)")
    client = near_intents_client(net)
    notes = []
    try:  # the bridge first: a deposit it calls credited is in the verifier reading that follows
        observed = deposits_observe(client.recent_deposits(net.solver_account))
        if any(observed.values()):
            notes.append("deposits: " + ", ".join(f"{k} {v}" for k, v in observed.items() if v))
    except VenueException as exc:
        notes.append(f"bridge recent_deposits: {exc.error.code}: {exc.error.message}")
    known = {
        b.asset: TokenInfo(b.asset, b.symbol, b.decimals)
        for b in InventoryBalance.objects.filter(venue=Venue.NEAR_INTENTS, account=net.solver_account).exclude(
            symbol=""
        )
    }
    tokens, problems = near_tokens(client, list(settings.NEAR_INTENTS_TOKENS), known)
    readings, block = near_inventory(client, tokens)
    return readings, f"{net.name} verifier {net.verifier} mt_batch_balance_of @ block {block}", notes + problems


def ostium_accounts() -> list[str]:
    """The Ostium addresses whose USDC is inventory: TREASURY_OSTIUM_ACCOUNTS, the desk's trader
    (when its key is configured here) and the Safes of active delegations."""
    from web3 import Web3

    from delegations.selectors import ostium_active_safes
    from providers.ostium.inventory import ostium_trader_address

    accounts = [a.strip() for a in settings.TREASURY_OSTIUM_ACCOUNTS if a.strip()]
    trader = ostium_trader_address()
    if trader:
        accounts.append(trader)
    accounts += ostium_active_safes(network=settings.OSTIUM_NETWORK)
    out = []
    for account in accounts:
        if Web3.is_address(account) and Web3.to_checksum_address(account) not in out:
            out.append(Web3.to_checksum_address(account))
    return out


def _ostium_readings() -> tuple[list[InventoryReading], str, list[str]]:
    from providers.ostium.config import OstiumConfigError
    from providers.ostium.inventory import ostium_inventory

    accounts = ostium_accounts()
    if not accounts:
        raise SyncFailed(
            NOT_CONFIGURED, "no Ostium account to read (trader key, active Safes, TREASURY_OSTIUM_ACCOUNTS)"
        )
    try:
        readings = ostium_inventory(accounts)
    except OstiumConfigError as exc:
        raise SyncFailed(NOT_CONFIGURED, str(exc)) from None
    return readings, f"ostium {settings.OSTIUM_NETWORK} USDC balanceOf + open trades", []


def _paper_readings() -> tuple[list[InventoryReading], str, list[str]]:
    from providers.paper.engine import paper_inventory

    return paper_inventory(), "paper accounts", []


SOURCES: dict[str, Callable[[], tuple[list[InventoryReading], str, list[str]]]] = {
    Venue.NEAR_INTENTS: _near_readings,
    Venue.OSTIUM: _ostium_readings,
    Venue.PAPER: _paper_readings,
}


def _heartbeat(venue: str, **fields) -> None:
    InventorySync.objects.update_or_create(venue=venue, defaults=fields)


def treasury_sync(*, venue: str) -> dict:
    """One sync round of `venue` (skipped while another runs)."""
    if venue not in SOURCES:
        raise ValueError(f"unknown venue {venue!r}")
    lock = f"treasury:sync:{venue}"
    if not cache.add(lock, 1, timeout=max(30, int(settings.INVENTORY_SYNC_SECONDS * 4))):
        return {"venue": venue, "skipped": "another sync of this venue is running"}
    try:
        return _sync_round(venue)
    finally:
        cache.delete(lock)


def _sync_round(venue: str) -> dict:
    started, now = time.monotonic(), timezone.now()
    try:
        try:
            readings, source, notes = SOURCES[venue]()
        except VenueException as exc:
            raise SyncFailed(str(exc.error.code), exc.error.message) from None
    except SyncFailed as exc:
        with transaction.atomic():
            went = inventory.inventory_sync_failed(venue=venue, code=exc.code, message=exc.message, now=now)
            row = InventorySync.objects.select_for_update().filter(venue=venue).first()
            _heartbeat(
                venue,
                last_run_at=now,
                last_error_code=exc.code,
                last_error=exc.message[:2000],
                consecutive_failures=(row.consecutive_failures if row else 0) + 1,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        if exc.code != NOT_CONFIGURED:
            log_event(
                logger,
                "inventory.stale" if went else "inventory.sync_failed",
                "inventory sync failed",
                level=logging.WARNING,
                venue=venue,
                code=exc.code,
                stale=len(went),
                balances=went,
            )
        return {"venue": venue, "ok": False, "code": exc.code, "message": exc.message, "stale": went}
    with transaction.atomic():
        summary = inventory.inventory_sync_apply(venue=venue, readings=readings, source=source, now=now)
        _heartbeat(
            venue,
            last_run_at=now,
            last_success_at=now,
            last_error_code="",
            last_error="",
            consecutive_failures=0,
            assets=len(readings),
            duration_ms=int((time.monotonic() - started) * 1000),
            source=source[:200],
            notes="\n".join(notes)[:2000],
        )
    return {**summary, "ok": True, "notes": notes}
