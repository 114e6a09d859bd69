"""Delegation tests run against the Ostium localnet (real Safe 1.4.1 contracts on anvil)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.providers.ostium.conftest import localnet, localnet_session, ostium  # noqa: F401  (shared fixtures)
from tests.trading.accounts_helpers import bearer


@dataclass
class ChainEnv:
    net: object
    delegate_address: str
    relayer_address: str


@pytest.fixture
def chain_env(localnet, settings, tmp_path, db):  # noqa: F811
    """Settings pointing at the localnet, a fresh key-encryption key, and Tradedesk's delegate
    and relayer keys (generated and stored encrypted, the relayer funded with ETH)."""
    from delegations import keys

    settings.OSTIUM_LOCALNET_CONFIG = str(localnet.write_config(tmp_path / "ostium-localnet.json"))
    settings.OSTIUM_NETWORK = "localnet"
    settings.OSTIUM_DELEGATE_KEY_SCOPE = "network"
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    delegate = keys.delegate_key_create(network="localnet")
    relayer = keys.relayer_key_create(network="localnet")
    localnet.fund(relayer.address, eth=10)
    localnet.fund(delegate.address, eth=10)
    relay_arm()
    return ChainEnv(localnet, delegate.address, relayer.address)


def relay_arm() -> None:
    """`delegations:relay` armed: the desk relays the owners' SafeTx (disarmed on deploy)."""
    from delegations.services import RELAY
    from trading.services.control import control_arm

    control_arm(component=RELAY, actor="test", reason="delegation tests relay")


def new_owner(net) -> LocalAccount:
    account = Account.create()
    net.fund(account.address, eth=1)
    return account


def user_client(django_user_model, owner: LocalAccount, username: str = "safeowner"):
    """A user who signed in with `owner`'s wallet, and a JWT client for them."""
    from trading.tokens import access_encode

    user = django_user_model.objects.create_user(
        username=username, email=f"{username}@example.com", auth_method="wallet", wallet_address=owner.address
    )
    token, _ = access_encode(user=user)
    return user, bearer(token)


@pytest.fixture
def one_owner_safe(chain_env, django_user_model):
    """(net, owner, user, client, safe): a funded owner wallet, the user who signed in with it
    and their JWT client, and a 1-of-1 Safe of that owner on the localnet."""
    net = chain_env.net
    owner = new_owner(net)
    user, client = user_client(django_user_model, owner)
    return net, owner, user, client, net.create_safe([owner.address], threshold=1)
