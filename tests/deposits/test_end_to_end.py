"""A deposit end to end, for a wallet (EOA) user and for a Safe user, on the localnet with the
LI.FI double: each deposits USDT (an ERC-20, so an approve goes first: the wallet sends it, the
Safe batches it with the call through MultiSendCallOnly); ETH is in test_flow. Each gets a route,
the user's side signs and sends, reports the hash, sees `deposit_update`
on the `deposits` websocket channel at each transition and the `deposit.completed` /
`swap.completed` webhooks once each (real outbox, Celery worker, Channels, webhook delivery).
The credit is read on chain (the target's USDC rose by at least `toAmountMin`), and the user then
opens an Ostium trade with that USDC through the unmodified ostium-python-sdk:
- the EOA user from their own wallet (their key signs; the desk never holds it);
- the Safe user through the delegation, by the desk's delegate key (`delegatedAction`)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from eth_account import Account
from hexbytes import HexBytes
from standardwebhooks.webhooks import Webhook

from tests.conftest import wait_for
from tests.delegations.test_lifecycle import BTC, sdk_trade_for_safe
from tests.deposits.conftest import create, send, submitted
from tests.deposits.test_flow import delegated_mode
from tests.realtime.conftest import make_token, recv, subscribe, ws_connect
from tests.webhooks.conftest import allow_loopback, beat, receiver  # noqa: F401

pytestmark = [pytest.mark.celery, pytest.mark.usefixtures("beat")]

NATIVE = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def usdt(lifi, chain_env):
    """An ERC-20 on the localnet that LI.FI lists as USDT (a second MockUSDC: 6 decimals, public mint)."""
    from providers.ostium.localnet.deploy import Deployer

    net = chain_env.net
    deployer = Deployer(net.w3, net.deployer.address)
    address = deployer.deploy("MockUSDC")
    deployer.flush()
    lifi.world.token_add(net.chain_id, address, "USDT", 6)
    token = deployer.contract("MockUSDC", address)

    def mint(to: str, amount: int) -> None:
        deployer.transact(token.functions.mint(to, amount * 10**6))
        deployer.flush()

    token.mint = mint
    return token


def sdk_trade_from_wallet(net, owner) -> list[dict]:
    """The wallet's own key drives the SDK: it approves TradingStorage and opens a market long."""
    sdk = net.sdk(owner.key.to_0x_hex())
    params = {"collateral": 100, "leverage": 10, "asset_type": BTC, "direction": True, "order_type": "MARKET"}
    sent = sdk.ostium.perform_trade(params, at_price=65000)
    assert sent["receipt"]["status"] == 1
    net.run_keeper()

    async def open_trades():
        trades, _ = await sdk.get_open_trades(trader_address=owner.address)
        return trades

    return asyncio.run(open_trades())


def sign_and_send(net, kind: str, owner, body: dict) -> str:
    """What the user's side does with the answer: the wallet sends `approval` (if any) then
    `transaction`; a Safe's owner signs the SafeTx hash and executes it."""
    from delegations import chain as safe_chain

    if kind == "eoa":
        if body["approval"]:
            send(net, owner, body["approval"])
        return send(net, owner, body["transaction"])
    out = body["safe"]
    signature = Account.unsafe_sign_hash(HexBytes(out["safe_tx_hash"]), owner.key).signature
    tx = safe_chain.safe_tx(
        safe_chain.network_config("localnet"),
        out["safe_address"],
        out["safe_tx"],
        signatures=safe_chain.signatures_pack([(owner.address, bytes(signature))]),
    )
    tx_hash, _ = tx.execute(owner.key.to_0x_hex(), tx_gas=600_000)
    assert net.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)["status"] == 1
    return HexBytes(tx_hash).to_0x_hex()


@pytest.mark.parametrize("kind", ["eoa", "safe"])
def test_deposit_end_to_end_then_an_ostium_trade(
    kind,
    request,
    lifi,
    usdt,
    chain_env,
    celery_worker,
    ws_server,
    receiver,  # noqa: F811
    allow_loopback,  # noqa: F811
):
    from deposits.services import deposits_poll
    from webhooks import services as webhooks
    from webhooks.models import WebhookDelivery

    net = chain_env.net
    if kind == "eoa":
        owner, user, client = request.getfixturevalue("eoa")
        target = owner.address
    else:
        net, owner, user, client, target = request.getfixturevalue("one_owner_safe")
        delegated_mode(client, owner, target)
    usdt.mint(target, 500)  # the wallet or the Safe holds the USDT it deposits
    endpoint, secret = webhooks.endpoint_create(
        user=user, url=receiver.url(), event_types=["deposit.completed", "swap.completed"]
    )
    before = net.usdc_balance(target)

    with ws_connect(ws_server, token=make_token(user)) as ws:
        subscribe(ws, "deposits")
        body = create(client, token_address=usdt.address, token_symbol="USDT", amount="300")  # a swap through LI.FI
        assert body["source"] == ("wallet" if kind == "eoa" else "safe") and body["target_address"] == target
        if kind == "eoa":
            assert body["approval"]["to"] == usdt.address and body["approval"]["data"].startswith("0x095ea7b3")
        else:
            assert body["safe"]["safe_tx"]["operation"] == 1  # approve + call, batched (MultiSendCallOnly)
        assert (body["status"], body["status_detail"]) == ("pending", "awaiting_signature")
        minimum = Decimal(body["quote"]["to_amount_min"]) / 10**6
        tx_hash = sign_and_send(net, kind, owner, body)
        answer = submitted(client, body["id"], tx_hash)
        assert (answer["status"], answer["status_detail"]) == ("processing", "submitted")
        deposits_poll()  # Beat's job (the kicked poll on the worker may have got there first)

        updates = []
        while not updates or updates[-1]["status_detail"] != "completed":
            message = recv(ws, timeout=30)
            assert message["type"] == "deposit_update" and message["channel"] == "deposits"
            assert message["data"]["deposit_id"] == body["id"]
            updates.append(message["data"])

    details = [u["status_detail"] for u in updates]
    assert details[:3] == ["quoted", "awaiting_signature", "submitted"] and details[-1] == "completed"
    # the seed's four names in `status`, ours in `status_detail`, on every message
    assert [u["status"] for u in updates[:3]] == ["pending", "pending", "processing"]
    assert {u["status"] for u in updates[2:-1]} <= {"processing"}
    last = updates[-1]
    assert last["status"] == "completed" and last["swap_status"] == "completed" and last["swap_progress"] == 100.0

    # credited on chain: the target's USDC rose by at least toAmountMin
    shown = client.get(f"/api/v1/deposits/{body['id']}").json()
    assert shown["status"] == "completed" and Decimal(shown["credited_amount"]) >= minimum
    assert net.usdc_balance(target) - before >= minimum

    wait_for(lambda: len(receiver.requests) >= 2, timeout=30, what="two webhooks")
    delivered = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(d["event_type"] for d in delivered) == ["deposit.completed", "swap.completed"]
    completed = next(d for d in delivered if d["event_type"] == "deposit.completed")
    assert completed["data"]["status"] == "completed" and completed["data"]["status_detail"] == "completed"
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2

    # and the credited USDC trades on Ostium (100 USDC collateral)
    funded = net.usdc_balance(target)
    trades = sdk_trade_from_wallet(net, owner) if kind == "eoa" else sdk_trade_for_safe(net, target)
    assert len(trades) == 1 and trades[0]["trader"] == target.lower()
    assert net.usdc_balance(target) == funded - 100
