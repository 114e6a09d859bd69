"""The control panel shows the ETH the Ostium signers hold for gas (the delegate, the relayer, the
desk trader), read from the localnet, with a warning below OSTIUM_GAS_WARN_ETH."""

from __future__ import annotations

import pytest
from django.urls import reverse

from delegations import keys
from trading.admin_panel.health import DOWN, OK, WARN, health_collect


@pytest.mark.django_db
def test_the_signers_gas_is_on_the_control_panel_with_a_warning_when_low(chain_env, staff_client, settings, tmp_path):
    # given a funded delegate (10 ETH), a relayer with almost none, and the desk trader's key file
    settings.OSTIUM_GAS_WARN_ETH = "0.5"
    relayer = keys.relayer_key_create(network="localnet", replace=True)
    chain_env.net.fund(relayer.address, eth="0.1")
    trader = chain_env.net.traders[0]
    key_file = tmp_path / "trader.key"
    key_file.write_text(trader.private_key)
    settings.OSTIUM_TRADER_KEY_FILE = str(key_file)

    items = {item.name: item for item in health_collect() if item.name.startswith("Ostium")}

    assert items["Ostium delegate gas (localnet)"].status == OK
    assert items["Ostium delegate gas (localnet)"].value == "10.0000 ETH"
    low = items["Ostium relayer gas (localnet)"]
    assert (low.status, low.value) == (WARN, "0.1000 ETH") and relayer.address in low.detail
    assert items["Ostium trader gas (localnet)"].status == OK
    body = staff_client.get(reverse("admin:control_panel")).content.decode()
    assert "Ostium relayer gas (localnet)" in body and "0.1000 ETH" in body and "fund it with ETH" in body

    # a relayer with no ETH at all is down: execTransaction cannot be sent
    keys.relayer_key_create(network="localnet", replace=True)
    empty = {item.name: item for item in health_collect()}["Ostium relayer gas (localnet)"]
    assert empty.status == DOWN
