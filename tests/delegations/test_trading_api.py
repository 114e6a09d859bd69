"""Trading through a delegation via Tradedesk's API: the order runs in delegated mode with
`account = safe`, signed by the delegate key from our custody store; after revocation the
next order is refused before anything is sent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.delegations.conftest import new_owner, user_client
from tests.delegations.test_lifecycle import BASE, add_signature, execute, prepare, sign_hash, sign_typed
from tests.providers.ostium.conftest import route_btc_to_ostium
from tests.providers.ostium.test_trading_e2e import _status as _order_status
from tests.providers.ostium.test_trading_e2e import _sync_until
from trading.models import Event, ExecutionCommand, Order, Trade, Wallet


@pytest.fixture
def desk(ostium, chain_env):
    route_btc_to_ostium(ostium, reason="delegation e2e")
    return chain_env


def _sign_all(client, d_id, body, owners):
    for i, owner in enumerate(owners):
        signature = sign_typed(owner, body) if i % 2 == 0 else sign_hash(owner, body["safe_tx_hash"])
        add_signature(client, d_id, signature)


OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


@pytest.mark.celery
@pytest.mark.parametrize("owners_count,threshold", [(1, 1), (3, 2)])
def test_trade_through_the_api_for_a_safe_then_revoke(desk, celery_worker, django_user_model, owners_count, threshold):
    net = desk.net
    owners = [new_owner(net) for _ in range(owners_count)]
    user, client = user_client(django_user_model, owners[0])
    safe = net.create_safe([o.address for o in owners], threshold=threshold)
    net.fund(safe, usdc=1000)
    delegate_usdc = net.usdc_balance(desk.delegate_address)

    body = prepare(client, safe)
    _sign_all(client, body["id"], body, owners[:threshold])
    assert execute(client, body["id"])["status"] == "active"

    opened = client.post("/api/v1/trading/trades", OPEN, format="json")
    assert opened.status_code == 202, opened.content
    order_id = opened.json()["order_id"]
    assert _order_status(order_id, "SUBMITTED", "REJECTED", "UNKNOWN") == "SUBMITTED", Order.objects.get(
        pk=order_id
    ).error_message
    order = Order.objects.get(pk=order_id)
    assert order.wallet_address == safe
    # the order trades from the Safe, linked as the user's smart-account wallet
    assert (order.wallet.user, order.wallet.wallet_address) == (user, safe)
    assert (order.wallet.wallet_type, order.wallet.provider) == (Wallet.WalletType.SMART_ACCOUNT, "safe")
    assert client.get(f"/api/v1/trading/orders/{order_id}").json()["wallet_id"] == order.wallet_id
    command = ExecutionCommand.objects.get(order=order, action="open")
    assert command.request["account"] == safe and command.request["delegated"] is True
    assert net.usdc_balance(safe) == 900  # the Safe's USDC, pulled through its approval
    assert [a.ok for a in net.run_keeper()] == [True]
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    trade = Trade.objects.get(orders=order)
    assert trade.collateral == D("100") and trade.user_id == user.pk
    # the delegate signed (it is our custody key, not the desk trader) and paid only gas
    receipt = net.w3.eth.get_transaction(order.transaction_hash)
    assert receipt["from"] == desk.delegate_address
    assert net.usdc_balance(desk.delegate_address) == delegate_usdc

    # revoke → revoked, then the next order is refused before anything is sent
    revoke = client.post(f"{BASE}/{body['id']}/revoke", format="json").json()
    _sign_all(client, body["id"], revoke, owners[:threshold])
    assert execute(client, body["id"])["status"] == "revoked"
    refused = client.post("/api/v1/trading/trades", OPEN, format="json")
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["code"] == "DELEGATION_MISSING"
    assert Order.objects.count() == 1
    assert Event.objects.filter(topic="risk.rejected", payload__code="DELEGATION_MISSING").count() == 1


@pytest.mark.celery
def test_allowance_missing_through_the_api(desk, celery_worker, django_user_model):
    net = desk.net
    owner = new_owner(net)
    _, client = user_client(django_user_model, owner)
    safe = net.create_safe([owner.address], threshold=1)
    net.fund(safe, usdc=1000)
    body = prepare(client, safe, usdc_allowance=10 * 10**6)
    add_signature(client, body["id"], sign_typed(owner, body))
    assert execute(client, body["id"])["status"] == "active"
    refused = client.post("/api/v1/trading/trades", OPEN, format="json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "ALLOWANCE_MISSING"
    assert not Order.objects.exists()
