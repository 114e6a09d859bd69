"""The worker's outbox listener: a new order's commit notifies it, and it kicks the dispatcher."""

import threading
from decimal import Decimal

import pytest
from django.db import transaction

from tests.conftest import wait_for
from trading.outbox_listener import KickListener, channel


@pytest.fixture
def listener(transactional_db):
    """A listener on the test database whose kicks are counted (no dispatcher behind it)."""
    kicks = []
    lock = threading.Lock()

    def kick():
        with lock:
            kicks.append(1)

    ear = KickListener(kick=kick, poll_seconds=0.2)
    ear.start()
    wait_for(ear.listening.is_set, what="LISTEN in place")
    yield ear, kicks
    ear.stop()


def test_a_placed_order_kicks_the_dispatcher_when_it_commits(listener, trader, markets):
    from trading.services.orders import order_place

    ear, kicks = listener
    assert kicks == [1]  # on connect: for whatever was committed while nobody listened
    with transaction.atomic():
        order_place(user=trader, asset="BTC-USD", side="long", collateral=Decimal(100), leverage=Decimal(10))
        order_place(user=trader, asset="BTC-USD", side="short", collateral=Decimal(100), leverage=Decimal(10))
    # the transaction's notifications are one (PostgreSQL folds identical ones), heard at commit
    wait_for(lambda: len(kicks) == 2, what="the commit's kick")


def test_a_listener_that_lost_its_connection_listens_again_and_kicks(listener, trader, markets):
    """PostgreSQL ended the listener's session (a restart): it reconnects, kicks once for what
    was committed meanwhile, and hears the next commit."""
    from django.db import connection

    from trading.services.orders import order_place

    ear, kicks = listener
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s"
            " AND datname = current_database() AND pid <> pg_backend_pid()",
            [f'LISTEN "{channel()}"'],
        )
    wait_for(lambda: len(kicks) == 2, what="the kick on reconnecting")
    wait_for(ear.listening.is_set, what="LISTEN in place again")
    order_place(user=trader, asset="BTC-USD", side="long", collateral=Decimal(100), leverage=Decimal(10))
    wait_for(lambda: len(kicks) == 3, what="the next commit's kick")
