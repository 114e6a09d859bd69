"""The treasury's Ostium inventory on the localnet, read without any key through the unmodified
SDK's subgraph client and the chain: the trader's USDC wallet balance, the collateral locked in
its open trades, the USDC of active Safes and of watched addresses."""

from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def test_ostium_sync_reads_usdc_locked_collateral_and_active_safes(ostium, settings, django_user_model):
    from delegations.models import OstiumDelegation
    from treasury.models import InventoryBalance
    from treasury.services.sync import treasury_sync

    trader, safe, watched = (t.address for t in ostium.traders[:3])
    user = django_user_model.objects.create_user(username="s", email="s@example.com", password="x")
    OstiumDelegation.objects.create(
        user=user,
        network="localnet",
        safe_address=safe,
        delegate_address=trader,
        status="active",
        tx_to=safe,
        tx_data="0x",
        safe_nonce=0,
        safe_tx_hash="0x" + "00" * 32,
    )
    settings.TREASURY_OSTIUM_ACCOUNTS = [watched]
    before = ostium.usdc_balance(trader)
    ostium.set_price("BTC-USD", Decimal("65000"))
    sdk = ostium.sdk(ostium.traders[0].private_key)
    params = {"collateral": 100, "leverage": 10, "asset_type": 0, "direction": True, "order_type": "MARKET"}
    assert sdk.ostium.perform_trade(params, at_price=65000)["receipt"]["status"] == 1
    assert [a.ok for a in ostium.run_keeper()] == [True]

    result = treasury_sync(venue="ostium")
    assert result["ok"], result
    rows = {b.account: b for b in InventoryBalance.objects.filter(venue="ostium", asset="USDC")}
    assert set(rows) == {trader, safe, watched}  # the trader from OSTIUM_TRADER_KEY_FILE
    assert rows[trader].credited == before - 100
    assert Decimal(90) < rows[trader].locked <= Decimal(100)  # collateral after the opening fee
    assert rows[safe].credited > 0 and rows[safe].locked == 0
    assert "balanceOf" in rows[trader].sync_source and rows[trader].status == "ok"


def test_an_unreachable_chain_leaves_ostium_inventory_stale(ostium, settings):
    from treasury.models import InventoryBalance
    from treasury.services.sync import treasury_sync

    assert treasury_sync(venue="ostium")["ok"]
    settings.OSTIUM_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.OSTIUM_READ_RETRIES = 0
    from providers.ostium.client import clients_reset

    clients_reset()
    result = treasury_sync(venue="ostium")
    assert not result["ok"] and result["code"] in ("RPC_UNAVAILABLE", "RPC_TIMEOUT")
    assert {b.effective_status() for b in InventoryBalance.objects.filter(venue="ostium")} == {"stale"}
