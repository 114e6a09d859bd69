"""A deposit from quote to credit, for a wallet and for a Safe, on the localnet with the LI.FI double."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from eth_account import Account
from hexbytes import HexBytes

from delegations import chain as safe_chain
from tests.conftest import run_on_worker, wait_for
from tests.delegations.test_lifecycle import sdk_trade_for_safe
from tests.deposits.conftest import BASE, create, send, submitted, topics

SEED_CREATE_KEYS = {
    "id",
    "status",
    "token_symbol",
    "chain",
    "amount",
    "target_token",
    "target_chain",
    "swap_provider",
    "swap_status",
    "created_at",
}
SEED_SWAP_KEYS = {"id", "status", "from_token", "to_token", "from_chain", "to_chain", "amount", "estimated_output"}


def delegated_mode(client, owner, safe) -> None:
    """The Safe delegates Ostium trading (prepare, sign, execute): the user trades in delegated mode."""
    prepare = {"network": "localnet", "safe_address": safe}
    d = client.post("/api/v1/ostium/delegations/prepare", prepare, format="json").json()
    sig = HexBytes(Account.unsafe_sign_hash(HexBytes(d["safe_tx_hash"]), owner.key).signature).to_0x_hex()
    client.post(f"/api/v1/ostium/delegations/{d['id']}/signatures", {"signature": sig}, format="json")
    assert client.post(f"/api/v1/ostium/delegations/{d['id']}/execute").json()["status"] == "active"


def poll():
    from deposits.services import deposits_poll

    return deposits_poll()


@pytest.mark.django_db(transaction=True)
def test_a_wallet_deposit_of_eth_ends_credited_in_usdc(lifi, eoa, chain_env):
    from deposits.models import Deposit
    from providers.lifi.sandbox.world import DIAMOND
    from trading.models import Event

    owner, user, client = eoa
    net = chain_env.net
    before = net.usdc_balance(owner.address)

    body = create(client, token_address="0x0000000000000000000000000000000000000000")
    assert set(body) >= SEED_CREATE_KEYS  # seed 003 §4.4.1, plus what the wallet needs next
    assert (body["status"], body["status_detail"]) == ("pending", "awaiting_signature")  # seed name, ours
    assert body["swap_needed"] is True and body["swap_provider"] == "lifi" and body["swap_status"] == "pending"
    assert body["target_token"] == "USDC" and body["target_chain"] == "arbitrum"
    assert body["target_address"] == owner.address and body["source"] == "wallet"
    assert body["approval"] is None  # native ETH needs no approve
    assert body["safe"] is None
    tx = body["transaction"]
    assert tx["to"] == DIAMOND and int(tx["value"], 16) == 10**17 and tx["chainId"] == lifi.chain_id
    quote = body["quote"]
    assert Decimal(quote["estimated_output"]) == Decimal("299.1")  # 0.1 ETH at 3000, 0.3 % fee
    assert int(quote["to_amount_min"]) < int(quote["to_amount"])

    tx_hash = send(net, owner, tx)
    body = submitted(client, body["id"], tx_hash)
    assert (body["status"], body["status_detail"]) == ("processing", "submitted")
    assert body["transaction_hash"] == tx_hash
    assert body["transaction"] is None

    poll()
    d = Deposit.objects.get(pk=body["id"])
    assert d.status == "completed", (d.status, d.poll_error)
    assert d.credited_amount == Decimal("299.1")
    assert net.usdc_balance(owner.address) - before == Decimal("299.1")

    status = client.get(f"{BASE}/{d.pk}/swap-status").json()
    assert status["deposit_id"] == d.pk and status["swap_needed"] is True
    assert set(status) == {"deposit_id", "swap_needed", "swaps"}  # seed 003 §4.4.2
    [swap] = status["swaps"]
    assert set(swap) >= SEED_SWAP_KEYS
    assert swap["status"] == "completed" and swap["from_token"] == "ETH" and swap["to_token"] == "USDC"
    assert swap["from_chain"] == "arbitrum" and swap["to_chain"] == "arbitrum" and swap["amount"] == "0.1"
    assert swap["estimated_output"] == "299.100000" and swap["actual_output"] == "299.100000"
    assert swap["substatus"] == "COMPLETED" and swap["swap_transaction_hash"] == tx_hash

    # every step on the ledger, each once; polling again changes nothing
    poll()
    assert topics(d.pk) == [
        "deposit.quoted",
        "deposit.awaiting_signature",
        "deposit.submitted",
        "swap.completed",
        "deposit.completed",
    ]
    assert all(e.payload["user_id"] == user.pk for e in Event.objects.filter(correlation_id=f"deposit-{d.pk}"))
    [listed] = client.get(BASE).json()
    assert listed["id"] == d.pk and listed["status"] == "completed" and listed["credited_amount"] == "299.100000"


@pytest.mark.django_db(transaction=True)
def test_a_safe_deposit_is_a_safetx_the_owners_sign(lifi, one_owner_safe, chain_env):
    """A user trading through a Safe: the SafeTx (hashed and typed as a delegation's) is signed by
    the owners and executed by one of them; the USDC lands in the Safe."""
    from delegations import chain as safe_chain
    from deposits.models import Deposit
    from providers.lifi.sandbox.world import DIAMOND

    net, owner, user, client, safe = one_owner_safe
    delegated_mode(client, owner, safe)
    net.fund(safe, eth=1)

    body = create(client, token_address="0x0000000000000000000000000000000000000000", amount="0.2")
    assert body["source"] == "safe" and body["from_address"] == safe and body["target_address"] == safe
    assert body["transaction"] is None and body["approval"] is None
    safe_out = body["safe"]
    fields = safe_out["safe_tx"]
    assert fields["to"] == DIAMOND and fields["value"] == str(2 * 10**17) and fields["operation"] == 0
    assert safe_out["threshold"] == 1 and safe_out["owners"] == [owner.address]
    assert safe_out["typed_data"]["primaryType"] == "SafeTx"

    # an owner signs the hash and executes the SafeTx (the desk sends nothing)
    signature = Account.unsafe_sign_hash(HexBytes(safe_out["safe_tx_hash"]), owner.key).signature
    tx = safe_chain.safe_tx(
        safe_chain.network_config("localnet"),
        safe,
        fields,
        signatures=safe_chain.signatures_pack([(owner.address, bytes(signature))]),
    )
    assert tx.safe_tx_hash.to_0x_hex() == safe_out["safe_tx_hash"]
    tx_hash, _ = tx.execute(owner.key.to_0x_hex(), tx_gas=600_000)
    net.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)
    before = net.usdc_balance(safe)

    submitted(client, body["id"], HexBytes(tx_hash).to_0x_hex())
    poll()
    deposit = Deposit.objects.get(pk=body["id"])
    assert deposit.status == "completed", (deposit.status, deposit.poll_error)
    assert before == 0 and net.usdc_balance(safe) == Decimal("598.2")

    # the credited USDC trades: an Ostium trade for the Safe through the delegation
    trades = sdk_trade_for_safe(net, safe)
    assert len(trades) == 1 and trades[0]["trader"] == safe.lower()
    assert net.usdc_balance(safe) == Decimal("498.2")


@pytest.mark.django_db(transaction=True)
def test_the_worker_follows_a_submitted_deposit_to_the_end(lifi, eoa, chain_env, celery_worker):
    """Reporting the hash kicks the poll on the worker; LI.FI's pending steps each reach the ledger."""
    from deposits.models import Deposit
    from deposits.tasks import deposits_poll_task

    owner, user, client = eoa
    lifi.world.script_next(pending_for=None)  # pending until released below
    body = create(client, token_address="0x0000000000000000000000000000000000000000")
    tx_hash = send(chain_env.net, owner, body["transaction"])
    submitted(client, body["id"], tx_hash)

    # the kick: the worker asks LI.FI once, which says PENDING
    wait_for(lambda: Deposit.objects.get(pk=body["id"]).status == "pending", what="kicked poll on the worker")

    lifi.world.transfers[tx_hash.lower()].script.pending_for = 0.0  # the bridge delivers

    def ended():  # then Beat's job, on the worker, until LI.FI says DONE
        run_on_worker(deposits_poll_task)
        return Deposit.objects.get(pk=body["id"]).status == "completed"

    wait_for(ended, timeout=20, interval=0.1, what="deposit completed")
    seen = topics(body["id"])
    assert seen[:3] == ["deposit.quoted", "deposit.awaiting_signature", "deposit.submitted"]
    assert "deposit.pending" in seen
    assert seen[-2:] == ["swap.completed", "deposit.completed"]
    assert seen.count("deposit.completed") == 1 and seen.count("swap.completed") == 1


@pytest.mark.django_db(transaction=True)
def test_the_desk_relays_a_signed_safetx_only_while_armed(lifi, one_owner_safe, chain_env):
    """As for a delegation: owners POST signatures, the desk's relayer executes (gas on the desk),
    only while `deposits:relay` is armed; disarmed, nothing is sent and the signatures stay."""
    from deposits.models import Deposit
    from trading.services.control import control_arm

    net, owner, user, client, safe = one_owner_safe
    delegated_mode(client, owner, safe)
    net.fund(safe, eth=1)
    body = create(client, token_address="0x0000000000000000000000000000000000000000", amount="0.2")
    safe_tx_hash = body["safe"]["safe_tx_hash"]
    nonce = net.w3.eth.contract(address=safe, abi=NONCE_ABI).functions.nonce().call()

    stranger = Account.create()
    bad = HexBytes(Account.unsafe_sign_hash(HexBytes(safe_tx_hash), stranger.key).signature).to_0x_hex()
    response = client.post(f"{BASE}/{body['id']}/signatures", {"signature": bad}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "SIGNATURE_NOT_FROM_OWNER"
    early = client.post(f"{BASE}/{body['id']}/execute")
    assert early.status_code == 409 and early.json()["error"]["code"] == "THRESHOLD_NOT_MET"

    good = HexBytes(Account.unsafe_sign_hash(HexBytes(safe_tx_hash), owner.key).signature).to_0x_hex()
    signed = client.post(f"{BASE}/{body['id']}/signatures", {"signature": good}, format="json").json()
    assert signed["safe"]["signers"] == [owner.address]
    again = client.post(f"{BASE}/{body['id']}/signatures", {"signature": good}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "SIGNATURE_DUPLICATE"

    # disarmed (the default): refused at the side effect, nothing sent, the signatures kept
    refused = client.post(f"{BASE}/{body['id']}/execute")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "VENUE_DISARMED"
    assert net.w3.eth.contract(address=safe, abi=NONCE_ABI).functions.nonce().call() == nonce
    shown = client.get(f"{BASE}/{body['id']}").json()
    assert shown["status_detail"] == "awaiting_signature" and shown["safe"]["signers"] == [owner.address]

    control_arm(component="deposits:relay", actor="test", reason="relay deposits")
    before = net.usdc_balance(safe)
    executed = client.post(f"{BASE}/{body['id']}/execute")
    assert executed.status_code == 200, executed.content
    assert executed.json()["status_detail"] == "submitted" and executed.json()["transaction_hash"].startswith("0x")
    assert net.w3.eth.contract(address=safe, abi=NONCE_ABI).functions.nonce().call() == nonce + 1
    replay = client.post(f"{BASE}/{body['id']}/execute")
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "DEPOSIT_NOT_SIGNABLE"

    poll()
    deposit = Deposit.objects.get(pk=body["id"])
    assert deposit.status == "completed", (deposit.status, deposit.poll_error)
    assert net.usdc_balance(safe) - before == Decimal("598.2")
    assert topics(deposit.pk)[:4] == [
        "deposit.quoted",
        "deposit.awaiting_signature",
        "deposit.signed",
        "deposit.submitted",
    ]


NONCE_ABI = [
    {
        "name": "nonce",
        "type": "function",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    }
]


@pytest.mark.django_db(transaction=True)
def test_a_relay_that_died_after_sending_is_found_in_the_safes_logs(lifi, one_owner_safe, chain_env):
    """The relay's claim is left behind (the process died after `execTransaction` left, before it
    recorded the hash): Beat's job finds the execution in the Safe's logs and follows it."""
    from deposits.models import Deposit
    from deposits.relay import relay_recover

    net, owner, user, client, safe = one_owner_safe
    delegated_mode(client, owner, safe)
    net.fund(safe, eth=1)
    body = create(client, token_address="0x0000000000000000000000000000000000000000", amount="0.2")
    safe_out = body["safe"]
    signature = Account.unsafe_sign_hash(HexBytes(safe_out["safe_tx_hash"]), owner.key).signature
    client.post(f"{BASE}/{body['id']}/signatures", {"signature": HexBytes(signature).to_0x_hex()}, format="json")

    # what the relay had done when it died: claimed, then sent (here by an owner's key), nothing recorded
    Deposit.objects.filter(pk=body["id"]).update(relay_claimed_at=timezone.now())
    tx = safe_chain.safe_tx(
        safe_chain.network_config("localnet"),
        safe,
        safe_out["safe_tx"],
        signatures=safe_chain.signatures_pack([(owner.address, bytes(signature))]),
    )
    tx_hash, _ = tx.execute(owner.key.to_0x_hex(), tx_gas=600_000)
    net.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)

    assert relay_recover()["submitted"] == 1
    d = Deposit.objects.get(pk=body["id"])
    assert (
        d.status == "submitted" and d.transaction_hash == HexBytes(tx_hash).to_0x_hex() and d.relay_claimed_at is None
    )
    poll()
    assert Deposit.objects.get(pk=body["id"]).status == "completed"

    # a claim with nothing on chain is released once stale: the signatures can execute again
    second = create(client, token_address="0x0000000000000000000000000000000000000000", amount="0.1")
    stale = timezone.now() - timedelta(minutes=10)
    Deposit.objects.filter(pk=second["id"]).update(relay_claimed_at=stale)
    assert relay_recover()["released"] == 1
    assert Deposit.objects.get(pk=second["id"]).relay_claimed_at is None
    assert "deposit.relay_released" in topics(second["id"])
