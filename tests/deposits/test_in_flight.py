"""Deposits in flight (sent, not yet credited) as an operator sees them: in the treasury, as
`pending_in` of the Safe's Ostium USDC balance (a Safe with an active delegation is inventory the
treasury tracks) until the deposit ends; on the control panel, the count and USDC expected of
every deposit in flight, a wallet user's too (their wallet is not desk inventory)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.deposits.conftest import create, send, submitted
from tests.deposits.test_end_to_end import NATIVE, sign_and_send
from tests.deposits.test_flow import delegated_mode, poll


def panel_line():
    from deposits.health import deposits_health

    return next(item for item in deposits_health() if item.name == "Deposits in flight")


@pytest.mark.django_db(transaction=True)
def test_in_flight_deposits_are_pending_in_the_treasury_and_counted_on_the_panel(
    lifi, one_owner_safe, chain_env, django_user_model
):
    from tests.delegations.conftest import new_owner, user_client
    from treasury.models import InventoryBalance
    from treasury.services.sync import treasury_sync

    net, owner, user, client, safe = one_owner_safe
    delegated_mode(client, owner, safe)
    net.fund(safe, eth=1)

    def safe_usdc() -> InventoryBalance:
        return InventoryBalance.objects.get(venue="ostium", account=safe, asset="USDC")

    # a first deposit, sent before the treasury first read the Safe: the sync that creates the
    # Safe's balance finds it on its way
    lifi.world.script_next(pending_for=None)  # LI.FI will keep this one PENDING until released
    early = create(client, token_address=NATIVE, amount="0.1")
    early_hash = sign_and_send(net, "safe", owner, early)
    submitted(client, early["id"], early_hash)
    assert treasury_sync(venue="ostium")["ok"]  # the active Safe's USDC is inventory now
    assert safe_usdc().pending_in == Decimal("299.1") and safe_usdc().credited == 0
    poll()  # LI.FI: PENDING
    lifi.world.transfers[early_hash.lower()].script.pending_for = 0.0  # the bridge delivers
    poll()
    assert safe_usdc().pending_in == 0 and panel_line().value == "0"
    assert treasury_sync(venue="ostium")["ok"] and safe_usdc().credited == Decimal("299.1")

    # quoted and awaiting the owners: nothing has left yet, nothing is pending
    lifi.world.script_next(pending_for=None)
    body = create(client, token_address=NATIVE, amount="0.2")
    assert safe_usdc().pending_in == 0 and panel_line().value == "0"

    # the owners executed the SafeTx and reported it: 598.2 USDC on its way to the Safe
    tx_hash = sign_and_send(net, "safe", owner, body)
    submitted(client, body["id"], tx_hash)
    assert safe_usdc().pending_in == Decimal("598.2")
    assert safe_usdc().spendable == Decimal("299.1")  # the first deposit's credit; pending is never spendable

    # a wallet user's deposit in flight: counted on the panel, not in the treasury
    wallet_owner = new_owner(net)
    net.fund(wallet_owner.address, eth=10)
    _, wallet_client = user_client(django_user_model, wallet_owner, username="walletuser")
    other = create(wallet_client, token_address=NATIVE)  # 0.1 ETH -> 299.1 USDC expected
    submitted(wallet_client, other["id"], send(net, wallet_owner, other["transaction"]))
    assert not InventoryBalance.objects.filter(account=wallet_owner.address).exists()
    line = panel_line()
    assert line.value == "2 · 897.30 USDC"
    assert "598.20 of it into accounts the treasury tracks" in line.detail
    assert f"#{body['id']}" in line.detail and f"#{other['id']}" in line.detail

    poll()  # LI.FI: the wallet's completes, the Safe's stays pending
    assert safe_usdc().pending_in == Decimal("598.2") and panel_line().value == "1 · 598.20 USDC"
    from deposits.health import deposits_health

    polling = next(item for item in deposits_health() if item.name == "Deposits LI.FI polling")
    assert (polling.status, polling.value) == ("ok", "ok · 1 followed")  # what it judged LI.FI by

    lifi.world.transfers[tx_hash.lower()].script.pending_for = 0.0  # the bridge delivers
    poll()
    assert safe_usdc().pending_in == 0 and panel_line().value == "0"
    assert treasury_sync(venue="ostium")["ok"]
    assert safe_usdc().credited == Decimal("897.3")  # what arrived is credited by the next sync
