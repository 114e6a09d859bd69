"""Which wallet an order traded from: the Wallet link set when placing (the address kept too),
its backfill from the address for orders written before the link existed, and its exposure in
the orders API."""

from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.conftest import ledger_events_for
from tests.trading.conftest import make_order
from trading.models import Event, Order, Wallet
from trading.services import execution
from trading.services.accounts import wallet_for_order
from trading.services.orders import order_place

ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 test vector
OTHER = "0x8617E340B3D01FA5F11F306F4090FD50E238070D"
BEFORE = [("trading", "0009_merge_protective")]
AFTER = [("trading", "0011_order_wallet_backfill")]


@pytest.mark.ledger_drift  # rows made through a past migration's models, which wrote no events
@pytest.mark.django_db(transaction=True)
def test_the_migration_links_orders_to_their_users_wallet_by_address_and_marks_protective_origins(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        User, Wallet_, Order_ = (apps.get_model("trading", m) for m in ("User", "Wallet", "Order"))
        alice = User.objects.create(username="alice", email="alice@example.com")
        bob = User.objects.create(username="bob", email="bob@example.com")
        wallet = Wallet_.objects.create(user=alice, wallet_address=ADDRESS)
        Wallet_.objects.create(user=bob, wallet_address=OTHER)

        def order(user, address, order_type="MARKET"):
            return Order_.objects.create(
                user=user,
                wallet_address=address,
                provider="ostium",
                asset="BTC-USD",
                order_type=order_type,
                side="long",
            ).pk

        ids = {
            "own_lowercase": order(alice, ADDRESS.lower()),  # written before addresses were checksummed
            "own_stop": order(alice, ADDRESS, "STOP_LOSS"),
            "someone_elses": order(alice, OTHER),  # bob's wallet: never linked to alice's order
            "no_wallet_row": order(bob, ADDRESS),
            "no_address": order(alice, None),
            "empty_address": order(alice, ""),
        }

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)

        rows = {
            name: Order.objects.values("wallet_id", "wallet_address", "origin").get(pk=pk) for name, pk in ids.items()
        }
        assert rows["own_lowercase"] == {"wallet_id": wallet.pk, "wallet_address": ADDRESS.lower(), "origin": "user"}
        assert rows["own_stop"] == {"wallet_id": wallet.pk, "wallet_address": ADDRESS, "origin": "protective"}
        assert rows["someone_elses"] == {"wallet_id": None, "wallet_address": OTHER, "origin": "user"}
        assert rows["no_wallet_row"] == {"wallet_id": None, "wallet_address": ADDRESS, "origin": "user"}
        assert rows["no_address"]["wallet_id"] is None and rows["empty_address"]["wallet_id"] is None
    finally:
        MigrationExecutor(connection).loader.build_graph()
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_placing_links_the_wallet_of_the_trading_address_and_keeps_the_address(markets, trader):
    # given a trader whose sign-in address is one of their wallets (deactivated: still the fact)
    trader.wallet_address = ADDRESS
    trader.save()
    wallet = Wallet.objects.create(user=trader, wallet_address=ADDRESS, is_active=False)

    order = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))

    assert (order.wallet, order.wallet_address, order.origin) == (wallet, ADDRESS, Order.Origin.USER)
    accepted = Event.objects.get(correlation_id=order.correlation_id, topic="order.accepted")
    assert accepted.payload["order_id"] == order.pk


@pytest.mark.django_db
def test_placing_from_an_address_that_is_no_wallet_of_the_user_keeps_only_the_address(markets, trader, other_trader):
    Wallet.objects.create(user=other_trader, wallet_address=ADDRESS)
    trader.wallet_address = ADDRESS
    trader.save()

    order = order_place(user=trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))

    assert (order.wallet, order.wallet_address) == (None, ADDRESS)
    # and a user without any address trades on paper from no wallet at all
    plain = order_place(user=other_trader, asset="BTC-USD", side="long", collateral=D(100), leverage=D(5))
    assert (plain.wallet, plain.wallet_address) == (None, None)


@pytest.mark.django_db
def test_a_safe_trading_in_delegated_mode_becomes_a_safe_wallet_once(trader):
    # the delegated venue account is the user's Safe: linked on first use, reused afterwards
    first = wallet_for_order(user=trader, address=OTHER.lower(), safe=True)
    again = wallet_for_order(user=trader, address=OTHER, safe=True)

    assert first == again and first.wallet_address == OTHER
    assert (first.wallet_type, first.provider, first.user) == ("smart_account", "safe", trader)
    assert first.verified_at is not None
    assert Event.objects.filter(topic="wallet.added", aggregate_id=str(first.pk)).count() == 1
    # an address that is not the Safe is never created as a wallet; junk is no wallet
    assert wallet_for_order(user=trader, address=ADDRESS) is None
    assert wallet_for_order(user=trader, address="user:7", safe=True) is None
    assert Wallet.objects.filter(user=trader).count() == 1


@pytest.mark.django_db(transaction=True)
def test_protective_orders_attached_at_open_trade_from_the_parents_wallet(markets, trader, armed):
    wallet = Wallet.objects.create(user=trader, wallet_address=ADDRESS)
    order = make_order(trader, wallet=wallet, wallet_address=ADDRESS, stop_price=D("55000"))

    assert execution.order_execute(order_id=order.pk) == "FILLED"

    children = list(Order.objects.filter(parent=order))
    assert len(children) == 1
    assert (children[0].wallet, children[0].wallet_address, children[0].origin) == (wallet, ADDRESS, "protective")


@pytest.mark.django_db
def test_the_orders_api_shows_wallet_and_origin_and_filters_by_origin(markets, trader, api):
    wallet = Wallet.objects.create(user=trader, wallet_address=ADDRESS)
    trader.wallet_address = ADDRESS
    trader.save()
    placed = api.post(
        "/api/v1/trading/trades",
        {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"},
        format="json",
    )
    assert placed.status_code == 202, placed.content
    order_id = placed.json()["order_id"]
    by_venue = Order.objects.create(
        user=trader, provider="paper", asset="BTC-USD", order_type="MARKET", side="long", origin="venue"
    )
    ledger_events_for(by_venue)

    detail = api.get(f"/api/v1/trading/orders/{order_id}").json()
    assert (detail["wallet_id"], detail["wallet_address"], detail["origin"]) == (wallet.pk, ADDRESS, "user")
    listed = api.get("/api/v1/trading/orders?origin=user").json()["results"]
    assert [o["id"] for o in listed] == [order_id]
    assert api.get("/api/v1/trading/orders?origin=nonsense").status_code == 400
