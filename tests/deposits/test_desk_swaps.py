"""Treasury swaps: the desk's own wallet converts ETH into USDC through LI.FI and signs itself,
only while `treasury:swaps` is armed (checked when requested and again at the side effect)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.deposits.conftest import BASE, topics

NATIVE = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def desk_wallet(chain_env, settings, tmp_path):
    account = chain_env.net.traders[1]
    key_file = tmp_path / "desk.key"
    key_file.write_text(account.private_key)
    settings.OSTIUM_TRADER_KEY_FILE = str(key_file)
    return account


@pytest.mark.django_db(transaction=True)
def test_a_treasury_swap_runs_only_while_armed(lifi, chain_env, desk_wallet, django_user_model):
    from config.errors import ApplicationError
    from deposits.desk_swaps import desk_swap_request, desk_swap_send
    from deposits.models import Deposit
    from deposits.services import deposits_poll
    from trading.services.control import control_arm, control_disarm

    net = chain_env.net
    operator = django_user_model.objects.create_user(username="ops", email="ops@example.com", is_staff=True)

    # disarmed (the default): refused before anything is quoted
    with pytest.raises(ApplicationError) as refused:
        desk_swap_request(operator=operator, token_address=NATIVE, token_symbol="ETH", amount="0.5")
    assert refused.value.code == "VENUE_DISARMED" and refused.value.status_code == 503
    assert not Deposit.objects.exists() and not lifi.world.calls

    control_arm(component="treasury:swaps", actor="test", reason="convert the desk's ETH")
    swap = desk_swap_request(operator=operator, token_address=NATIVE, token_symbol="ETH", amount="0.5")
    assert swap.source == "desk" and swap.status == "awaiting_signature"
    assert swap.from_address == swap.target_address == desk_wallet.address

    # disarmed between the request and the send: refused at the side effect, nothing sent
    control_disarm(component="treasury:swaps", actor="test", reason="hold on")
    nonce = net.w3.eth.get_transaction_count(desk_wallet.address)
    with pytest.raises(ApplicationError) as held:
        desk_swap_send(deposit_id=swap.pk)
    assert held.value.code == "VENUE_DISARMED"
    assert net.w3.eth.get_transaction_count(desk_wallet.address) == nonce
    assert Deposit.objects.get(pk=swap.pk).relay_claimed_at is None

    control_arm(component="treasury:swaps", actor="test", reason="go")
    before = net.usdc_balance(desk_wallet.address)
    sent = desk_swap_send(deposit_id=swap.pk)
    assert sent.status == "submitted" and sent.transaction_hash.startswith("0x")
    with pytest.raises(ApplicationError) as again:  # once only
        desk_swap_send(deposit_id=swap.pk)
    assert again.value.code == "DEPOSIT_NOT_SUBMITTABLE"
    from trading.admin_panel.panel import component_views

    shown = next(c for c in component_views() if c.component == "treasury:swaps")  # the panel's last activity
    assert (shown.last_activity, shown.activity) == (Deposit.objects.get(pk=swap.pk).submitted_at, "swap sent")

    deposits_poll()
    done = Deposit.objects.get(pk=swap.pk)
    assert done.status == "completed" and done.credited_amount == Decimal("1495.5")
    assert net.usdc_balance(desk_wallet.address) - before == Decimal("1495.5")
    assert topics(swap.pk)[-2:] == ["swap.completed", "deposit.completed"]

    # not a user's deposit: the operator's own deposit endpoints do not show it
    from tests.trading.accounts_helpers import bearer
    from trading.tokens import access_encode

    client = bearer(access_encode(user=operator)[0])
    assert client.get(BASE).json() == []
    assert client.get(f"{BASE}/{swap.pk}").status_code == 404
