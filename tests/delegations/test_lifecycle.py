"""Prepare → sign → execute → active → trade → revoke → revoked, against real Safe 1.4.1
contracts on the Ostium localnet, through the API."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hexbytes import HexBytes

from delegations import keys
from delegations.models import OstiumDelegation
from providers.ostium.localnet.config import MULTISEND_CALL_ONLY_ADDRESS
from tests.delegations.conftest import new_owner, user_client
from trading.models import Event, Wallet
from trading.risk import OrderIntent

BASE = "/api/v1/ostium/delegations"
BTC = 0


def sign_typed(owner, body) -> str:
    signed = Account.sign_typed_data(owner.key, full_message=body["typed_data"])
    assert HexBytes(signed.message_hash).to_0x_hex() == body["safe_tx_hash"]  # the typed data is the SafeTx
    return HexBytes(signed.signature).to_0x_hex()


def sign_hash(owner, safe_tx_hash: str) -> str:
    return HexBytes(Account.unsafe_sign_hash(HexBytes(safe_tx_hash), owner.key).signature).to_0x_hex()


def sign_eth_sign(owner, safe_tx_hash: str) -> str:
    """eth_sign / personal_sign of the hash; the Safe wants v + 4."""
    signed = Account.sign_message(encode_defunct(primitive=bytes(HexBytes(safe_tx_hash))), owner.key)
    raw = bytearray(signed.signature)
    raw[64] += 4
    return HexBytes(bytes(raw)).to_0x_hex()


def prepare(client, safe, **extra):
    response = client.post(f"{BASE}/prepare", {"network": "localnet", "safe_address": safe, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def add_signature(client, delegation_id, signature, expected=200):
    response = client.post(f"{BASE}/{delegation_id}/signatures", {"signature": signature}, format="json")
    assert response.status_code == expected, response.content
    return response.json()


def execute(client, delegation_id, expected=200):
    response = client.post(f"{BASE}/{delegation_id}/execute", format="json")
    assert response.status_code == expected, response.content
    return response.json()


def pretrade(user, collateral="100", reduces=False):
    from trading.services.orders import PRETRADE_CHECKS

    intent = OrderIntent(
        venue="ostium",
        asset="BTC-USD",
        side="long",
        order_type="MARKET",
        collateral=Decimal(collateral),
        leverage=Decimal(10),
        reduces_exposure=reduces,
        max_slippage=Decimal("0.01"),
    )
    return PRETRADE_CHECKS["ostium"](user=user, intent=intent)


def topics(delegation_id):
    return list(
        Event.objects.filter(correlation_id=f"delegation-{delegation_id}")
        .order_by("id")
        .values_list("topic", flat=True)
    )


def sdk_trade_for_safe(net, safe):
    """An SDK holding only our delegate key (loaded through delegate_key_load) trades for the Safe."""
    delegate = keys.delegate_key_load("localnet")
    sdk = net.sdk(delegate.key.to_0x_hex(), use_delegation=True)
    params = {
        "collateral": 100,
        "leverage": 10,
        "asset_type": BTC,
        "direction": True,
        "order_type": "MARKET",
        "trader_address": safe,
    }
    sent = sdk.ostium.perform_trade(params, at_price=65000)
    assert sent["receipt"]["status"] == 1
    net.run_keeper()

    async def open_trades():
        trades, who = await sdk.get_open_trades(trader_address=safe)
        return trades

    return asyncio.run(open_trades())


@pytest.mark.django_db(transaction=True)
def test_one_of_one_safe_full_cycle(one_owner_safe, chain_env):
    net, owner, user, client, safe = one_owner_safe
    net.fund(safe, usdc=1000)

    # prepare: the batch SafeTx (approve + setDelegate) for our delegate
    body = prepare(client, safe)
    assert body["status"] == "pending_signature"
    assert body["delegate_address"] == chain_env.delegate_address
    assert body["safe_tx"]["nonce"] == "0" and body["safe_tx"]["operation"] == 1
    assert body["threshold"] == 1 and body["signers"] == []
    d_id = body["id"]

    # before the threshold: not executable
    execute(client, d_id, expected=409)

    body = add_signature(client, d_id, sign_typed(owner, body))
    assert body["signers"] == [owner.address]
    body = execute(client, d_id)
    assert body["status"] == "active", body
    assert body["transaction_hash"].startswith("0x")
    trading = net.contract("trading")
    assert trading.functions.delegations(safe).call() == chain_env.delegate_address
    assert net.contract("usdc").functions.allowance(safe, net.addresses.tradingStorage).call() == 2**256 - 1

    # a replayed execute is refused; the chain is untouched
    replay = execute(client, d_id, expected=409)
    assert replay["error"]["code"] == "DELEGATION_NOT_EXECUTABLE"

    # trading: the pre-trade check puts the order on the Safe, delegated
    account = pretrade(user)
    assert account.account == safe and account.delegated is True
    trades = sdk_trade_for_safe(net, safe)
    assert len(trades) == 1 and trades[0]["trader"] == safe.lower()
    assert net.usdc_balance(safe) == 900

    # revoke through the same signing path
    response = client.post(f"{BASE}/{d_id}/revoke", format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "revoking" and body["action"] == "revoke"
    assert body["safe_tx"]["nonce"] == "1" and body["signers"] == []
    # one SafeTx (MultiSendCallOnly) removes the delegate and takes back the USDC allowance
    assert body["safe_tx"]["operation"] == 1 and body["safe_tx"]["to"] == MULTISEND_CALL_ONLY_ADDRESS
    assert [c["call"] for c in body["calls"]] == ["removeDelegate()", "approve(TradingStorage, 0)"]
    add_signature(client, d_id, sign_typed(owner, body))
    body = execute(client, d_id)
    assert body["status"] == "revoked", body
    assert trading.functions.delegations(safe).call() == "0x0000000000000000000000000000000000000000"
    assert net.contract("usdc").functions.allowance(safe, net.addresses.tradingStorage).call() == 0

    # after revocation, a delegated order is refused before anything is sent
    with pytest.raises(Exception) as denied:
        pretrade(user)
    assert denied.value.code == "DELEGATION_MISSING"

    assert topics(d_id) == [
        "delegation.prepared",
        "delegation.signed",
        "delegation.submitted",
        "delegation.active",
        "delegation.revoking",
        "delegation.signed",
        "delegation.submitted",
        "delegation.revoked",
    ]
    assert all(e.payload["user_id"] == user.pk for e in Event.objects.filter(correlation_id=f"delegation-{d_id}"))


@pytest.mark.django_db(transaction=True)
def test_two_of_three_safe_refuses_bad_signatures(chain_env, django_user_model):
    net = chain_env.net
    owners = [new_owner(net) for _ in range(3)]
    stranger = Account.create()
    user, client = user_client(django_user_model, owners[0])
    safe = net.create_safe([o.address for o in owners], threshold=2)
    net.fund(safe, usdc=500)
    body = prepare(client, safe)
    d_id, safe_tx_hash = body["id"], body["safe_tx_hash"]
    assert body["threshold"] == 2

    # a stranger's signature
    refused = add_signature(client, d_id, sign_hash(stranger, safe_tx_hash), expected=400)
    assert refused["error"]["code"] == "SIGNATURE_NOT_FROM_OWNER"
    # an owner's signature over another safeTxHash
    other_hash = "0x" + "ab" * 32
    refused = add_signature(client, d_id, sign_hash(owners[1], other_hash), expected=400)
    assert refused["error"]["code"] == "SIGNATURE_NOT_FROM_OWNER"
    # garbage
    refused = add_signature(client, d_id, "0x1234", expected=400)
    assert refused["error"]["code"] == "SIGNATURE_INVALID"

    add_signature(client, d_id, sign_typed(owners[0], body))
    dup = add_signature(client, d_id, sign_hash(owners[0], safe_tx_hash), expected=409)
    assert dup["error"]["code"] == "SIGNATURE_DUPLICATE"
    below = execute(client, d_id, expected=409)
    assert below["error"]["code"] == "THRESHOLD_NOT_MET"

    # the second owner signs eth_sign style (v + 4)
    body = add_signature(client, d_id, sign_eth_sign(owners[2], safe_tx_hash))
    assert sorted(body["signers"]) == sorted([owners[0].address, owners[2].address])
    body = execute(client, d_id)
    assert body["status"] == "active", body
    assert net.contract("trading").functions.delegations(safe).call() == chain_env.delegate_address
    assert execute(client, d_id, expected=409)["error"]["code"] == "DELEGATION_NOT_EXECUTABLE"

    trades = sdk_trade_for_safe(net, safe)
    assert len(trades) == 1 and net.usdc_balance(safe) == 400

    # revoke with two signatures, then orders are refused
    body = client.post(f"{BASE}/{d_id}/revoke", format="json").json()
    add_signature(client, d_id, sign_hash(owners[1], body["safe_tx_hash"]))
    add_signature(client, d_id, sign_typed(owners[2], body))
    assert execute(client, d_id)["status"] == "revoked"
    assert net.contract("trading").functions.delegations(safe).call() == "0x0000000000000000000000000000000000000000"
    assert net.contract("usdc").functions.allowance(safe, net.addresses.tradingStorage).call() == 0
    with pytest.raises(Exception) as denied:
        pretrade(user)
    assert denied.value.code == "DELEGATION_MISSING"


@pytest.mark.django_db(transaction=True)
def test_revocation_on_chain_is_noticed_on_read(one_owner_safe):
    net, owner, user, client, safe = one_owner_safe
    body = prepare(client, safe)
    add_signature(client, body["id"], sign_typed(owner, body))
    assert execute(client, body["id"])["status"] == "active"

    # the owner removes the delegate from another wallet, straight on chain
    trading = net.contract("trading")
    net.exec_safe_tx(safe, trading.address, trading.encode_abi("removeDelegate", []), [owner.key.to_0x_hex()])

    listed = client.get(f"{BASE}/?safe={safe}")
    assert listed.status_code == 200
    assert [d["status"] for d in listed.json()] == ["revoked"]
    detail = client.get(f"{BASE}/{body['id']}").json()
    assert detail["status"] == "revoked" and detail["revoked_at"]
    revoked = Event.objects.get(correlation_id=f"delegation-{body['id']}", topic="delegation.revoked")
    assert revoked.payload["reason"] == "chain_reconciled" and revoked.payload["user_id"] == user.pk
    # and it is noticed once only
    assert Event.objects.filter(correlation_id=f"delegation-{body['id']}", topic="delegation.revoked").count() == 1
    with pytest.raises(Exception) as denied:
        pretrade(user)
    assert denied.value.code == "DELEGATION_MISSING"
    # a new delegation of the same Safe can be prepared again
    assert prepare(client, safe)["status"] == "pending_signature"


@pytest.mark.django_db(transaction=True)
def test_allowance_below_collateral_is_refused(one_owner_safe):
    net, owner, user, client, safe = one_owner_safe
    body = prepare(client, safe, usdc_allowance=50 * 10**6)  # 50 USDC
    add_signature(client, body["id"], sign_typed(owner, body))
    assert execute(client, body["id"])["status"] == "active"
    assert pretrade(user, collateral="50").account == safe
    with pytest.raises(Exception) as denied:
        pretrade(user, collateral="100")
    assert denied.value.code == "ALLOWANCE_MISSING"
    assert pretrade(user, collateral="100", reduces=True).account == safe  # closes need no allowance


@pytest.mark.django_db(transaction=True)
def test_prepare_checks_ownership_and_nonce_moves(chain_env, django_user_model):
    net = chain_env.net
    owner, other = new_owner(net), new_owner(net)
    user, client = user_client(django_user_model, other, username="notowner")
    safe = net.create_safe([owner.address], threshold=1)

    refused = client.post(f"{BASE}/prepare", {"network": "localnet", "safe_address": safe}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "NOT_SAFE_OWNER"
    # an unverified wallet row does not count; a verified one does
    wallet = Wallet.objects.create(user=user, wallet_address=owner.address)
    assert client.post(f"{BASE}/prepare", {"safe_address": safe}, format="json").status_code == 403
    wallet.verified_at = wallet.created_at
    wallet.save()
    body = prepare(client, safe)
    # not a Safe at all
    eoa = client.post(f"{BASE}/prepare", {"safe_address": owner.address}, format="json")
    assert eoa.status_code == 400 and eoa.json()["error"]["code"] == "SAFE_NOT_FOUND"
    # one live delegation per (user, network, safe, delegate)
    again = client.post(f"{BASE}/prepare", {"safe_address": safe}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "DELEGATION_EXISTS"

    # the Safe moves its nonce with another transaction: the prepared SafeTx can never execute
    add_signature(client, body["id"], sign_typed(owner, body))
    usdc = net.contract("usdc")
    net.exec_safe_tx(safe, usdc.address, usdc.encode_abi("approve", [owner.address, 1]), [owner.key.to_0x_hex()])
    failed = execute(client, body["id"])
    assert failed["status"] == "failed" and failed["error_code"] == "SAFE_NONCE_MOVED"
    assert OstiumDelegation.objects.get(pk=body["id"]).transaction_hash == ""
    # and preparing again gives a fresh SafeTx at the new nonce
    assert prepare(client, safe)["safe_tx"]["nonce"] == "1"


@pytest.mark.django_db
def test_api_refuses_anything_like_a_private_key(django_user_model):
    owner = Account.create()
    _, client = user_client(django_user_model, owner)
    key_hex = owner.key.hex()
    for payload in (
        {"safe_address": owner.address, "private_key": "x"},
        {"safe_address": owner.address, "mnemonic": "test test"},
        {"safe_address": owner.address, "seed": "abc"},
        {"safe_address": owner.address, "note": key_hex},
        {"safe_address": owner.address, "nested": {"k": "0x" + key_hex}},
        {"safe_address": "0x" + key_hex},
    ):
        response = client.post(f"{BASE}/prepare", payload, format="json")
        assert response.status_code == 400, payload
        assert response.json()["error"]["code"] == "SECRET_REFUSED"
        assert key_hex not in response.content.decode()
    response = client.post(f"{BASE}/1/signatures", {"signature": "0x" + key_hex}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "SECRET_REFUSED"


@pytest.mark.django_db
def test_delegations_are_owner_only(django_user_model, settings):
    from rest_framework.test import APIClient

    assert APIClient().get(f"{BASE}/1").status_code == 401
    owner = Account.create()
    _, client = user_client(django_user_model, owner)
    response = client.get(f"{BASE}/999")
    assert response.status_code == 404 and response.json()["error"]["code"] == "DELEGATION_NOT_FOUND"


@pytest.mark.django_db(transaction=True)
def test_admin_check_chain_status_action(one_owner_safe, django_user_model, client):
    net, owner, _, api, safe = one_owner_safe
    body = prepare(api, safe)
    add_signature(api, body["id"], sign_typed(owner, body))
    assert execute(api, body["id"])["status"] == "active"
    trading = net.contract("trading")
    net.exec_safe_tx(safe, trading.address, trading.encode_abi("removeDelegate", []), [owner.key.to_0x_hex()])

    admin = django_user_model.objects.create_superuser(username="root", email="root@example.com", password="pw")
    client.force_login(admin)
    response = client.post(
        "/admin/delegations/ostiumdelegation/",
        {"action": "check_chain_status", "_selected_action": [body["id"]]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [f"delegation {body['id']}: active → revoked"], shown
    event = Event.objects.get(correlation_id=f"delegation-{body['id']}", topic="delegation.revoked")
    assert event.actor == f"admin:{admin.pk}"
    page = client.get(f"/admin/delegations/ostiumdelegation/{body['id']}/change/").content.decode()
    assert "delegation.revoked" in page


def test_the_endpoints_are_in_the_openapi_schema(staff_client):
    schema = staff_client.get("/api/schema/?format=json").json()
    for path, method in (
        ("/api/v1/ostium/delegations", "get"),
        ("/api/v1/ostium/delegations/prepare", "post"),
        ("/api/v1/ostium/delegations/{id}", "get"),
        ("/api/v1/ostium/delegations/{id}/signatures", "post"),
        ("/api/v1/ostium/delegations/{id}/execute", "post"),
        ("/api/v1/ostium/delegations/{id}/revoke", "post"),
    ):
        assert method in schema["paths"][path], path
    assert "/api/v1/ostium/delegations/" not in schema["paths"]
    assert "typed_data" in schema["components"]["schemas"]["DelegationOut"]["properties"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("then", ["read", "execute"])
def test_a_safetx_the_owners_executed_themselves_is_picked_up(one_owner_safe, chain_env, then):
    """The owners execute our prepared SafeTx themselves (their own wallet pays gas): the next
    read, or an execute with no read in between (the Safe nonce moved, but by our own SafeTx),
    finds the delegate set on chain and marks the delegation active. Never failed; our relayer
    sends nothing."""
    from delegations import chain
    from delegations.services import delegation_signers

    net, owner, user, client, safe = one_owner_safe
    body = prepare(client, safe)
    signature = sign_typed(owner, body)
    add_signature(client, body["id"], signature)
    d = OstiumDelegation.objects.get(pk=body["id"])
    assert delegation_signers(d) == [owner.address]

    network = chain.network_config("localnet")
    tx = chain.safe_tx(network, safe, d.safe_tx_fields(), signatures=bytes(HexBytes(signature)))
    tx_hash, _ = tx.execute(owner.key.to_0x_hex(), tx_gas=1_500_000)
    assert net.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1

    relayer_nonce = net.w3.eth.get_transaction_count(chain_env.relayer_address)
    if then == "read":
        assert client.get(f"{BASE}/{body['id']}").json()["status"] == "active"
        assert execute(client, body["id"], expected=409)["error"]["code"] == "DELEGATION_NOT_EXECUTABLE"
    else:
        after = execute(client, body["id"])
        assert after["status"] == "active" and after["error_code"] == ""
    assert net.w3.eth.get_transaction_count(chain_env.relayer_address) == relayer_nonce
    assert "delegation.failed" not in topics(body["id"]) and topics(body["id"])[-1] == "delegation.active"
    assert pretrade(user).account == safe


@pytest.mark.django_db(transaction=True)
def test_a_signature_for_a_safetx_whose_nonce_moved_is_refused(chain_env, django_user_model):
    """Collecting signatures for a SafeTx the Safe can no longer run is refused at once: the
    activation fails (prepare again), the signature is not stored."""
    from delegations.models import DelegationSignature

    net = chain_env.net
    owner, second = new_owner(net), new_owner(net)
    _, client = user_client(django_user_model, owner)
    safe = net.create_safe([owner.address, second.address], threshold=2)
    body = prepare(client, safe)
    add_signature(client, body["id"], sign_typed(owner, body))
    usdc = net.contract("usdc")  # the owners run another transaction at the same nonce
    net.exec_safe_tx(
        safe, usdc.address, usdc.encode_abi("approve", [owner.address, 1]), [k.key.to_0x_hex() for k in (owner, second)]
    )

    refused = add_signature(client, body["id"], sign_typed(second, body), expected=409)["error"]
    assert refused["code"] == "SAFE_NONCE_MOVED" and refused["details"]["status"] == "failed"
    assert DelegationSignature.objects.filter(delegation_id=body["id"]).count() == 1
    d = OstiumDelegation.objects.get(pk=body["id"])
    assert d.status == "failed" and d.error_code == "SAFE_NONCE_MOVED"
    assert topics(body["id"])[-1] == "delegation.failed"
    assert prepare(client, safe)["safe_tx"]["nonce"] == "1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signed_before", [True, False])
def test_a_revocation_whose_nonce_moved_leaves_the_delegation_active(one_owner_safe, chain_env, signed_before):
    """Another Safe transaction takes the revocation's nonce: found at execute (signed before
    the nonce moved), or at once when an owner signs after (409, the signature not stored)."""
    net, owner, user, client, safe = one_owner_safe
    body = prepare(client, safe)
    add_signature(client, body["id"], sign_typed(owner, body))
    assert execute(client, body["id"])["status"] == "active"
    revoke = client.post(f"{BASE}/{body['id']}/revoke", format="json").json()
    if signed_before:
        add_signature(client, body["id"], sign_typed(owner, revoke))
    usdc = net.contract("usdc")  # another Safe transaction takes the nonce first
    net.exec_safe_tx(safe, usdc.address, usdc.encode_abi("approve", [owner.address, 1]), [owner.key.to_0x_hex()])

    if signed_before:
        after = execute(client, body["id"])
        assert after["status"] == "active" and after["error_code"] == "SAFE_NONCE_MOVED"
    else:
        refused = add_signature(client, body["id"], sign_typed(owner, revoke), expected=409)["error"]
        assert refused["code"] == "SAFE_NONCE_MOVED" and refused["details"]["status"] == "active"
        d = OstiumDelegation.objects.get(pk=body["id"])
        assert d.status == "active" and d.error_code == "SAFE_NONCE_MOVED"
    assert net.contract("trading").functions.delegations(safe).call() == chain_env.delegate_address
    assert pretrade(user).account == safe  # still delegated on chain, still trading
    # the revoke can be prepared again, at the new nonce
    again = client.post(f"{BASE}/{body['id']}/revoke", format="json").json()
    assert again["status"] == "revoking" and again["safe_tx"]["nonce"] == "2"
