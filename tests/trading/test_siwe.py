"""Sign-In with Ethereum (EIP-4361): messages signed by a standard library, and every refusal."""

from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from rest_framework.test import APIClient

from tests.trading.accounts_helpers import bearer, get_nonce, iso, sign, siwe_message
from trading.models import Event, SiweNonce, User, Wallet
from trading.tokens import sha256_hex

pytestmark = pytest.mark.django_db


def _connect(client, message, signature):
    return client.post("/api/v1/auth/wallet/connect", {"message": message, "signature": signature}, format="json")


def _refused(response, reason):
    assert response.status_code == 401, response.content
    err = response.json()["error"]
    assert err["code"] == "SIWE_INVALID" and err["details"]["reason"] == reason, err


def test_first_sign_in_creates_the_wallet_user_and_signs_in():
    # given a fresh key and a nonce issued for its address
    account = Account.create()
    client = APIClient()
    issued = get_nonce(client, account.address.lower())  # any case in, checksummed out
    assert issued["wallet_address"] == account.address and issued["chain_id"] == 42161
    assert issued["domain"] and issued["expires_at"] and len(issued["nonce"]) >= 8
    # when the server's ready-made message is signed with eth_account and posted
    response = _connect(client, issued["message"], sign(account, issued["message"]))
    # then tokens come back for a new wallet user with an external, verified wallet
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "bearer" and body["refresh_token"]
    user = User.objects.get(wallet_address=account.address)
    assert user.auth_method == "wallet" and user.email is None and not user.has_usable_password()
    wallet = Wallet.objects.get(user=user)
    assert wallet.provider == "external" and wallet.is_active and wallet.verified_at
    me = bearer(body["access_token"]).get("/api/v1/me").json()
    assert me["wallet_address"] == account.address and me["auth_method"] == "wallet"
    assert Event.objects.filter(topic="user.registered", aggregate_id=str(user.pk)).exists()
    # the nonce is stored hashed only
    assert not SiweNonce.objects.filter(nonce_hash=issued["nonce"]).exists()
    assert SiweNonce.objects.get(nonce_hash=sha256_hex(issued["nonce"])).used_at is not None


def test_second_sign_in_reuses_the_user_with_a_message_built_by_the_client():
    account = Account.create()
    client = APIClient()
    for _ in range(2):
        nonce = get_nonce(client, account.address)["nonce"]
        message = siwe_message(address=account.address, nonce=nonce, chain_id=421614, statement=None)
        assert _connect(client, message, sign(account, message)).status_code == 200
    assert User.objects.filter(wallet_address=account.address).count() == 1
    assert Wallet.objects.filter(wallet_address=account.address).count() == 1


def test_replaying_a_used_message_is_refused():
    account = Account.create()
    client = APIClient()
    issued = get_nonce(client, account.address)
    signature = sign(account, issued["message"])
    assert _connect(client, issued["message"], signature).status_code == 200
    _refused(_connect(client, issued["message"], signature), "nonce_used")


def test_wrong_domain_is_refused():
    account = Account.create()
    client = APIClient()
    message = siwe_message(
        address=account.address, nonce=get_nonce(client, account.address)["nonce"], domain="evil.example"
    )
    _refused(_connect(client, message, sign(account, message)), "domain_mismatch")


def test_wrong_chain_is_refused():
    account = Account.create()
    client = APIClient()
    message = siwe_message(address=account.address, nonce=get_nonce(client, account.address)["nonce"], chain_id=1)
    _refused(_connect(client, message, sign(account, message)), "chain_mismatch")


def test_expired_message_is_refused():
    account = Account.create()
    client = APIClient()
    past = datetime.now(UTC) - timedelta(minutes=10)
    message = siwe_message(
        address=account.address,
        nonce=get_nonce(client, account.address)["nonce"],
        issued_at=iso(past - timedelta(minutes=1)),
        expiration_time=iso(past),
    )
    _refused(_connect(client, message, sign(account, message)), "expired")


def test_expired_nonce_is_refused(settings):
    account = Account.create()
    client = APIClient()
    nonce = get_nonce(client, account.address)["nonce"]
    SiweNonce.objects.filter(nonce_hash=sha256_hex(nonce)).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    message = siwe_message(address=account.address, nonce=nonce)
    _refused(_connect(client, message, sign(account, message)), "expired")


def test_not_yet_valid_and_future_issued_messages_are_refused():
    account = Account.create()
    client = APIClient()
    soon = datetime.now(UTC) + timedelta(minutes=10)
    nb = siwe_message(address=account.address, nonce=get_nonce(client, account.address)["nonce"], not_before=iso(soon))
    _refused(_connect(client, nb, sign(account, nb)), "not_yet_valid")
    future = siwe_message(
        address=account.address,
        nonce=get_nonce(client, account.address)["nonce"],
        issued_at=iso(soon),
        expiration_time=iso(soon + timedelta(minutes=5)),
    )
    _refused(_connect(client, future, sign(account, future)), "issued_in_future")


def test_tampered_message_is_refused():
    # given a message signed for one chain id, edited afterwards to another allowed one
    account = Account.create()
    client = APIClient()
    issued = get_nonce(client, account.address)
    signature = sign(account, issued["message"])
    tampered = issued["message"].replace("Chain ID: 42161", "Chain ID: 421614")
    assert tampered != issued["message"]
    # then the signature no longer matches, and the nonce is still usable by its owner
    _refused(_connect(client, tampered, signature), "invalid_signature")
    assert _connect(client, issued["message"], signature).status_code == 200


def test_message_signed_by_another_key_is_refused():
    victim, attacker = Account.create(), Account.create()
    client = APIClient()
    issued = get_nonce(client, victim.address)
    _refused(_connect(client, issued["message"], sign(attacker, issued["message"])), "invalid_signature")
    assert not User.objects.filter(wallet_address=victim.address).exists()


def test_nonce_is_bound_to_the_address_it_was_issued_for():
    # given a nonce issued for A, used in a message for B signed by B
    a, b = Account.create(), Account.create()
    client = APIClient()
    nonce = get_nonce(client, a.address)["nonce"]
    message = siwe_message(address=b.address, nonce=nonce)
    _refused(_connect(client, message, sign(b, message)), "unknown_nonce")


def test_made_up_nonce_is_refused():
    account = Account.create()
    message = siwe_message(address=account.address, nonce="madeUpNonce12345")
    _refused(_connect(APIClient(), message, sign(account, message)), "unknown_nonce")


def test_malformed_message_and_signature():
    account = Account.create()
    client = APIClient()
    _refused(_connect(client, "hello", sign(account, "hello")), "malformed")
    issued = get_nonce(client, account.address)
    response = _connect(client, issued["message"], "0x1234")
    assert response.status_code == 400 and "signature" in response.json()["error"]["details"]
    _refused(_connect(client, issued["message"], "0x" + "00" * 65), "invalid_signature")


def test_long_or_misshapen_messages_are_refused_before_the_slow_parser():
    """The EIP-4361 parser took seconds of the web process's one synchronous thread for a few
    kilobytes of text, for an unauthenticated request: a message over SIWE_MAX_MESSAGE, or
    not opening as EIP-4361 messages do, is refused without parsing."""
    account = Account.create()
    client = APIClient()
    issued = get_nonce(client, account.address)
    resources = [f"https://example.com/{'r' * 60}/{i}" for i in range(16)]  # valid, but 1.2 KB
    message = siwe_message(address=account.address, nonce=issued["nonce"], resources=resources)
    assert len(message) > 1024
    _refused(_connect(client, message, sign(account, message)), "malformed")
    _refused(_connect(client, "0" * 4000, sign(account, "0" * 4000)), "malformed")


def test_nonce_request_validates_address_and_chain():
    client = APIClient()
    bad = client.post("/api/v1/auth/wallet/nonce", {"wallet_address": "0x123"}, format="json")
    assert bad.status_code == 400 and "wallet_address" in bad.json()["error"]["details"]
    chain = client.post(
        "/api/v1/auth/wallet/nonce", {"wallet_address": Account.create().address, "chain_id": 1}, format="json"
    )
    assert chain.status_code == 400 and "chain_id" in chain.json()["error"]["details"]


def test_inactive_wallet_user_cannot_sign_in():
    account = Account.create()
    client = APIClient()
    issued = get_nonce(client, account.address)
    assert _connect(client, issued["message"], sign(account, issued["message"])).status_code == 200
    User.objects.filter(wallet_address=account.address).update(is_active=False)
    again = get_nonce(client, account.address)
    response = _connect(client, again["message"], sign(account, again["message"]))
    assert response.status_code == 401 and response.json()["error"]["code"] == "ACCOUNT_DISABLED"


def test_a_squatted_username_does_not_block_the_wallets_first_sign_in():
    # given someone already holds the username a new wallet user would get
    from tests.trading.accounts_helpers import UserFactory

    account = Account.create()
    UserFactory(username=account.address)
    client = APIClient()
    issued = get_nonce(client, account.address)
    # when / then
    assert _connect(client, issued["message"], sign(account, issued["message"])).status_code == 200
    user = User.objects.get(wallet_address=account.address, auth_method="wallet")
    assert user.username.startswith(account.address + "-")


def test_register_refuses_wallet_like_usernames():
    response = APIClient().post(
        "/api/v1/auth/register",
        {"email": "sq@example.com", "username": Account.create().address, "password": "Correct-Horse-Battery-9"},
        format="json",
    )
    assert response.status_code == 400 and "username" in response.json()["error"]["details"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_connects_with_one_message_sign_in_once():
    # given one signed message posted by several clients at the same moment
    import threading

    from django.db import connections

    account = Account.create()
    issued = get_nonce(APIClient(), account.address)
    signature = sign(account, issued["message"])
    barrier, results = threading.Barrier(4), []

    def attempt():
        try:
            barrier.wait()
            results.append(_connect(APIClient(), issued["message"], signature).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then the nonce is consumed exactly once: one sign-in, one user
    assert sorted(results) == [200, 401, 401, 401]
    assert User.objects.filter(wallet_address=account.address).count() == 1
