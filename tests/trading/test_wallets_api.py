"""`/api/v1/me` and `/api/v1/wallets`: only the caller's objects; another user's id is a 404."""

import pytest
from eth_account import Account
from rest_framework.test import APIClient

from tests.trading.accounts_helpers import UserFactory, bearer, get_nonce, login, sign, siwe_message
from trading.models import Event, Wallet

pytestmark = pytest.mark.django_db


def _add_wallet(client, account, **extra):
    issued = get_nonce(APIClient(), account.address)
    return client.post(
        "/api/v1/wallets",
        {"message": issued["message"], "signature": sign(account, issued["message"]), **extra},
        format="json",
    )


def test_add_list_and_deactivate_a_signed_wallet():
    user = UserFactory()
    client = bearer(login(user)["access_token"])
    account = Account.create()
    # when
    response = _add_wallet(client, account)
    # then
    assert response.status_code == 201, response.content
    wallet = response.json()
    assert wallet["wallet_address"] == account.address and wallet["verified"] and wallet["provider"] == "external"
    listed = client.get("/api/v1/wallets").json()
    assert [w["id"] for w in listed["results"]] == [wallet["id"]]
    # deactivate
    off = client.post(f"/api/v1/wallets/{wallet['id']}/deactivate")
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert Event.objects.filter(topic="wallet.deactivated", aggregate_id=str(wallet["id"])).count() == 1
    # again: idempotent, no second event
    assert client.post(f"/api/v1/wallets/{wallet['id']}/deactivate").status_code == 200
    assert Event.objects.filter(topic="wallet.deactivated", aggregate_id=str(wallet["id"])).count() == 1
    # and it can be linked again
    assert _add_wallet(client, account).status_code == 201
    assert Wallet.objects.get(pk=wallet["id"]).is_active


def test_adding_the_same_wallet_twice_is_a_conflict():
    client = bearer(login(UserFactory())["access_token"])
    account = Account.create()
    assert _add_wallet(client, account).status_code == 201
    again = _add_wallet(client, account)
    assert again.status_code == 409 and again.json()["error"]["code"] == "WALLET_EXISTS"


def test_adding_a_wallet_needs_its_signature():
    client = bearer(login(UserFactory())["access_token"])
    mine, theirs = Account.create(), Account.create()
    issued = get_nonce(APIClient(), theirs.address)
    response = client.post(
        "/api/v1/wallets", {"message": issued["message"], "signature": sign(mine, issued["message"])}, format="json"
    )
    assert response.status_code == 401
    assert not Wallet.objects.filter(wallet_address=theirs.address).exists()


def test_another_users_wallet_is_not_found():
    # given Bob's wallet
    alice, bob = UserFactory(), UserFactory()
    bob_wallet = Wallet.objects.create(user=bob, wallet_address=Account.create().address)
    alice_client = bearer(login(alice)["access_token"])
    # when Alice lists and tries to deactivate it
    assert alice_client.get("/api/v1/wallets").json()["results"] == []
    response = alice_client.post(f"/api/v1/wallets/{bob_wallet.pk}/deactivate")
    # then she gets the same 404 as for a wallet that does not exist
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert alice_client.post("/api/v1/wallets/999999/deactivate").status_code == 404
    bob_wallet.refresh_from_db()
    assert bob_wallet.is_active


def test_a_wallet_linked_by_signature_signs_in_to_that_account():
    # given a password user who linked a wallet by signing
    user = UserFactory()
    account = Account.create()
    assert _add_wallet(bearer(login(user)["access_token"]), account).status_code == 201
    # when that wallet signs in
    client = APIClient()
    message = siwe_message(address=account.address, nonce=get_nonce(client, account.address)["nonce"])
    response = client.post("/api/v1/auth/wallet/connect", {"message": message, "signature": sign(account, message)})
    # then it is the same account
    assert response.status_code == 200
    assert bearer(response.json()["access_token"]).get("/api/v1/me").json()["id"] == user.pk


def test_me_lists_only_own_wallets_and_permissions():
    alice, bob = UserFactory(), UserFactory()
    Wallet.objects.create(user=bob, wallet_address=Account.create().address)
    mine = Wallet.objects.create(user=alice, wallet_address=Account.create().address)
    me = bearer(login(alice)["access_token"]).get("/api/v1/me").json()
    assert [w["id"] for w in me["wallets"]] == [mine.pk]
    assert me["permissions"] == ["account", "read", "trade"]
    assert "password" not in me


def test_staff_only_endpoint_needs_staff_with_a_token():
    user, staff = UserFactory(), UserFactory(is_staff=True)
    assert bearer(login(user)["access_token"]).get("/api/v1/ledger/events").status_code == 403
    assert bearer(login(staff)["access_token"]).get("/api/v1/ledger/events").status_code == 200


def test_session_auth_still_works_for_the_admin_side(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/api/v1/me").json()["id"] == user.pk


def test_wallet_add_service_checksums_and_refuses_bad_addresses():
    from config.errors import ApplicationError
    from trading.services.accounts import wallet_add

    user = UserFactory()
    account = Account.create()
    wallet = wallet_add(user=user, wallet_address=account.address.lower(), wallet_type="smart_account", provider="safe")
    assert wallet.wallet_address == account.address and wallet.verified_at is None and wallet.provider == "safe"
    assert Event.objects.get(topic="wallet.added", aggregate_id=str(wallet.pk)).payload["verified"] is False
    with pytest.raises(ApplicationError) as exc:
        wallet_add(user=user, wallet_address="0xnot-an-address")
    assert exc.value.code == "VALIDATION_ERROR"
    # an unverified link does not let that address into this account: it signs in as its own user
    client = APIClient()
    issued = get_nonce(client, account.address)
    response = client.post(
        "/api/v1/auth/wallet/connect",
        {"message": issued["message"], "signature": sign(account, issued["message"])},
        format="json",
    )
    assert response.status_code == 200
    assert bearer(response.json()["access_token"]).get("/api/v1/me").json()["id"] != user.pk
