"""Inventory: credited − reserved is what consumers read; stale balances are refused; reservations
are taken in the consumer's transaction, and two concurrent ones cannot spend the same unit."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ApplicationError
from providers.interface import InventoryReading
from trading.models import Event
from treasury.models import InventoryBalance, InventorySnapshot, Reservation
from treasury.services.inventory import (
    inventory_consume,
    inventory_release,
    inventory_reserve,
    inventory_spendable,
    inventory_sync_apply,
    inventory_sync_failed,
)

pytestmark = pytest.mark.django_db


def reading(credited, *, asset="USD", account="desk", venue="paper", locked="0"):
    return InventoryReading(
        venue=venue,
        account=account,
        asset=asset,
        symbol=asset,
        decimals=2,
        credited=Decimal(credited),
        locked=Decimal(locked),
    )


def test_a_sync_writes_balances_snapshots_and_one_event():
    summary = inventory_sync_apply(venue="paper", readings=[reading("100", locked="5")], source="test")
    row = InventoryBalance.objects.get()
    assert (row.credited, row.locked, row.status, row.sync_source) == (Decimal(100), Decimal(5), "ok", "test")
    assert InventorySnapshot.objects.filter(balance=row).count() == 1
    assert summary["created"] == ["paper:desk:USD"]
    inventory_sync_apply(venue="paper", readings=[reading("90")], source="test")
    assert list(InventorySnapshot.objects.filter(balance=row).order_by("id").values_list("credited", flat=True)) == [
        Decimal(100),
        Decimal(90),
    ]
    assert Event.objects.filter(topic="inventory.synced").count() == 2


def test_spendable_is_credited_minus_reserved_and_reservations_release_and_consume():
    inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    first = inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(30), ref="order:1")
    assert inventory_spendable(venue="paper", account="desk", asset="USD") == Decimal(70)
    assert inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(30), ref="order:1") == first
    with pytest.raises(ApplicationError) as caught:
        inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal("70.01"), ref="order:2")
    assert caught.value.code == "INSUFFICIENT_INVENTORY" and caught.value.details["spendable"] == "70"
    inventory_release(reservation=first, reason="order rejected")
    inventory_release(reservation=first, reason="twice")  # idempotent
    assert inventory_spendable(venue="paper", account="desk", asset="USD") == Decimal(100)
    second = inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(40), ref="order:3")
    inventory_consume(reservation=second, reason="filled")
    row = InventoryBalance.objects.get()
    assert (row.credited, row.reserved) == (Decimal(60), Decimal(0))
    topics = list(Event.objects.filter(aggregate_type="reservation").values_list("topic", flat=True))
    assert topics == ["inventory.reserved", "inventory.released", "inventory.reserved", "inventory.consumed"]


def test_a_reservation_rolls_back_with_the_consumers_transaction():
    inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    with pytest.raises(RuntimeError), transaction.atomic():
        inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(50), ref="quote:1")
        raise RuntimeError("the decision failed")
    assert InventoryBalance.objects.get().reserved == 0 and not Reservation.objects.exists()


def test_a_stale_balance_is_refused_with_the_reason(settings):
    with pytest.raises(ApplicationError) as caught:
        inventory_spendable(venue="paper", account="desk", asset="USD")
    assert caught.value.code == "INVENTORY_UNKNOWN"
    inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    InventoryBalance.objects.update(
        synced_at=timezone.now() - timedelta(seconds=settings.INVENTORY_MAX_AGE_SECONDS + 1)
    )
    with pytest.raises(ApplicationError) as caught:
        inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(1), ref="q")
    assert caught.value.code == "INVENTORY_STALE" and "last synced" in caught.value.details["reason"]
    inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    inventory_sync_failed(venue="paper", code="RPC_UNAVAILABLE", message="node down")
    with pytest.raises(ApplicationError) as caught:
        inventory_spendable(venue="paper", account="desk", asset="USD")
    assert caught.value.code == "INVENTORY_STALE" and "node down" in caught.value.message
    assert Event.objects.filter(topic="inventory.stale").count() == 1
    inventory_sync_failed(venue="paper", code="RPC_UNAVAILABLE", message="node down")  # no new event while stale
    assert Event.objects.filter(topic="inventory.stale").count() == 1
    summary = inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    assert summary["recovered"] == ["paper:desk:USD"]
    assert inventory_spendable(venue="paper", account="desk", asset="USD") == Decimal(100)


def test_a_balance_the_sync_no_longer_reports_goes_stale():
    inventory_sync_apply(venue="paper", readings=[reading("100"), reading("5", account="other")], source="test")
    summary = inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    assert summary["stale"] == ["paper:other:USD"]
    assert InventoryBalance.objects.get(account="other").effective_status() == "stale"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reservations_exceeding_credited_exactly_one_succeeds():
    """Real concurrent transactions: each thread opens its own, reserves 60 of 100, then waits
    (holding its transaction open) so both are in flight at once."""
    inventory_sync_apply(venue="paper", readings=[reading("100")], source="test")
    barrier = threading.Barrier(2)
    outcomes = {}

    def consumer(name):
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                inventory_reserve(venue="paper", account="desk", asset="USD", amount=Decimal(60), ref=f"quote:{name}")
                threading.Event().wait(0.3)  # the decision's other work, inside the same transaction
            outcomes[name] = "reserved"
        except ApplicationError as exc:
            outcomes[name] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=consumer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes.values()) == ["INSUFFICIENT_INVENTORY", "reserved"]
    row = InventoryBalance.objects.get()
    assert row.reserved == Decimal(60) and Reservation.objects.filter(status="held").count() == 1
