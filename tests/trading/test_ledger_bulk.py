"""Bulk ledger writes (used by the protective engine): ids, outbox rows, transaction rule."""

import pytest
from django.db import transaction
from ulid import ULID

from trading import outbox
from trading.models import Event, OutboxMessage
from trading.services.ledger import event_record, event_record_many
from trading.ulid import new_ulid, new_ulids


def test_bulk_ulids_are_valid_monotonic_and_unique():
    before = new_ulid()
    batch = new_ulids(500)
    after = new_ulid()
    ids = [before, *batch, after]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(str(ULID.from_str(i)) == i for i in batch)
    assert new_ulids(0) == []


def test_bulk_events_are_stored_in_order_with_outbox_rows_for_matching_handlers(db):
    outbox.register_handler("bulk-test", lambda event: None, topics=["order.*"])
    try:
        with transaction.atomic():
            single = event_record(topic="order.accepted", aggregate_type="order", aggregate_id=1)
            ids = event_record_many(
                [
                    {"topic": "order.triggered", "aggregate_type": "order", "aggregate_id": 1, "payload": {"a": 1}},
                    {
                        "topic": "price.stale",
                        "aggregate_type": "asset",
                        "aggregate_id": "X",
                        "payload_json": '{"b": 2}',
                    },
                ]
            )
    finally:
        outbox.unregister_handler("bulk-test")
    events = list(Event.objects.order_by("id"))
    assert [e.id for e in events] == [single.id, *ids]
    assert [e.payload for e in events[1:]] == [{"a": 1}, {"b": 2}]
    assert set(OutboxMessage.objects.filter(handler="bulk-test").values_list("event_id", flat=True)) == {
        single.id,
        ids[0],
    }


def test_bulk_events_need_the_state_change_transaction(transactional_db):
    with pytest.raises(RuntimeError):
        event_record_many([{"topic": "x", "aggregate_type": "y", "aggregate_id": 1}])
    assert Event.objects.count() == 0
