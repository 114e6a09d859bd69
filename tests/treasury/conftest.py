"""Treasury fixtures: the NEAR Intents doubles with the desk's solver key registered on the
verifier, two operators (four eyes), and helpers."""

from decimal import Decimal

import pytest

BTC = "nep141:btc.omft.near"
USDC = "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near"
SOLVER = "desk-solver.near"


@pytest.fixture
def near(near_sandbox, db):
    """The doubles, the solver key created (server side) and registered on the verifier, and
    2 BTC + 50,000 USDC credited to the solver account."""
    from delegations.keys import solver_key_create

    key = solver_key_create(network="sandbox", actor="test")
    world = near_sandbox.world
    world.public_key_add(SOLVER, key.address)
    world.balance_set(SOLVER, BTC, 2 * 10**8)
    world.balance_set(SOLVER, USDC, 50_000 * 10**6)
    return near_sandbox


@pytest.fixture
def operators(django_user_model):
    """Two operators (the `operator` role) who may request and approve withdrawals."""
    from django.contrib.auth.models import Group

    from trading.admin_panel.roles import roles_and_rows_ensure

    roles_and_rows_ensure()
    group = Group.objects.get(name="operator")
    users = []
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(
            username=name, email=f"{name}@example.com", password="pw-Op-12345!", is_staff=True
        )
        user.groups.add(group)
        users.append(django_user_model.objects.get(pk=user.pk))  # fresh permission cache
    return users


def sync(venue="near_intents"):
    from treasury.services.sync import treasury_sync

    return treasury_sync(venue=venue)


def balance(asset=BTC, venue="near_intents", account=SOLVER):
    from treasury.models import InventoryBalance

    return InventoryBalance.objects.get(venue=venue, account=account, asset=asset)


def arm_withdrawals():
    from trading.services.control import control_arm

    control_arm(component="treasury:withdrawals", actor="test", reason="test")


def allow(address="0x1111111111111111111111111111111111111111", chain="eth:42161", asset=""):
    from treasury.models import AllowlistEntry

    return AllowlistEntry.objects.create(chain=chain, address=address, asset=asset, label="test")


D = Decimal
