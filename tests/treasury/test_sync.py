"""Inventory sync per venue through the real clients: NEAR Intents against the doubles
(`mt_batch_balance_of` over NEAR RPC), paper from its accounts, Ostium on the localnet."""

from decimal import Decimal

import pytest

from config.errors import ApplicationError
from tests.treasury.conftest import BTC, SOLVER, USDC, balance, sync
from trading.models import Event
from treasury.models import InventorySync, Reservation
from treasury.services.inventory import inventory_reserve, inventory_spendable

pytestmark = pytest.mark.django_db


def test_near_intents_sync_reads_the_solver_accounts_balances(near):
    result = sync()
    assert result["ok"], result
    btc, usdc = balance(BTC), balance(USDC)
    assert (btc.credited, btc.symbol, btc.decimals, btc.status) == (Decimal(2), "BTC", 8, "ok")
    assert usdc.credited == Decimal(50_000)
    assert "mt_batch_balance_of" in btc.sync_source and btc.snapshots.count() == 1
    beat = InventorySync.objects.get(venue="near_intents")
    assert beat.last_success_at and beat.assets >= 2 and not beat.last_error_code
    assert inventory_spendable(venue="near_intents", account=SOLVER, asset=BTC) == Decimal(2)
    assert ("rpc", "mt_batch_balance_of") in near.world.calls


def test_only_the_configured_tokens_are_read(near, settings):
    settings.NEAR_INTENTS_TOKENS = [BTC, "nep141:unknown-token.near", "bogus"]
    result = sync()
    assert result["ok"] and result["assets"] == 1
    assert any("decimals unknown" in n for n in result["notes"]) and any("bogus" in n for n in result["notes"])


def test_the_inventory_surface_unavailable_makes_balances_stale_refused_and_nothing_spent(near):
    """Edge case: the internal inventory surface is unavailable."""
    sync()
    near.world.down.add("rpc")
    result = sync()
    assert not result["ok"] and result["code"] == "RPC_UNAVAILABLE"
    assert balance(BTC).effective_status() == "stale" and "RPC_UNAVAILABLE" in balance(BTC).stale_reason
    with pytest.raises(ApplicationError) as caught:
        inventory_reserve(venue="near_intents", account=SOLVER, asset=BTC, amount=Decimal("0.1"), ref="quote:x")
    assert caught.value.code == "INVENTORY_STALE" and "RPC_UNAVAILABLE" in caught.value.details["reason"]
    assert not Reservation.objects.exists() and balance(BTC).reserved == 0
    assert Event.objects.filter(topic="inventory.stale").count() == 1
    beat = InventorySync.objects.get(venue="near_intents")
    assert beat.consecutive_failures == 1 and beat.last_error_code == "RPC_UNAVAILABLE"
    near.world.down.clear()
    from providers.near_intents.client import breaker_reset
    from providers.near_intents.config import network_config

    breaker_reset(network_config())
    assert sync()["recovered"]
    assert inventory_spendable(venue="near_intents", account=SOLVER, asset=BTC) == Decimal(2)


def test_a_bridge_outage_does_not_stop_the_balance_sync(near):
    sync()
    near.world.down.add("bridge")
    result = sync()
    assert result["ok"] and any("bridge" in n for n in result["notes"])
    assert balance(BTC).effective_status() == "ok" and balance(BTC).decimals == 8


def test_near_intents_not_configured_is_reported_not_crashed(settings, tmp_path):
    settings.NEAR_INTENTS_NETWORK = "sandbox"
    settings.NEAR_INTENTS_SANDBOX_CONFIG = str(tmp_path / "missing.json")
    result = sync()
    assert result["code"] == "NOT_CONFIGURED"
    assert InventorySync.objects.get(venue="near_intents").last_error_code == "NOT_CONFIGURED"


def test_paper_sync_reads_accounts_and_locked_collateral(paper_markets):
    from providers.models import PaperAccount, PaperMarket, PaperPosition

    account = PaperAccount.objects.create(name="user:7", balance=Decimal("900"))
    PaperPosition.objects.create(
        account=account,
        market=PaperMarket.objects.first(),
        side="long",
        size=Decimal(1),
        entry_price=Decimal(100),
        collateral=Decimal(100),
        leverage=Decimal(1),
    )
    assert sync("paper")["ok"]
    row = balance("USD", venue="paper", account="user:7")
    assert (row.credited, row.locked, row.status) == (Decimal(900), Decimal(100), "ok")


def test_ostium_without_accounts_is_not_configured(settings):
    settings.TREASURY_OSTIUM_ACCOUNTS = []
    settings.OSTIUM_TRADER_KEY_FILE = ""
    assert sync("ostium")["code"] == "NOT_CONFIGURED"
