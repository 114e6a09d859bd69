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


def test_an_id_of_a_later_millisecond_carries_its_time_and_fresh_random_bits():
    """Within a millisecond an id is the last + 1 (no random bits drawn); the first id of a later
    one is that millisecond's, with random bits of its own, not a step past the last."""
    import time

    last = new_ulid()
    time.sleep(0.003)
    now_ms = time.time_ns() // 1_000_000
    ids = [new_ulid() for _ in range(50)]
    first = ULID.from_str(ids[0])
    assert first.milliseconds >= now_ms > ULID.from_str(last).milliseconds
    assert int(first) != int(ULID.from_str(last)) + 1
    assert [int(ULID.from_str(i)) for i in ids] == sorted({int(ULID.from_str(i)) for i in ids})


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the bulk event write
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


def test_ulid_blocks_numbered_in_sql_are_valid_and_sort_between_their_neighbours(db):
    from django.db import connection

    from trading.ulid import new_ulid_prefix, ulid_suffix_sql

    # given an id issued before, a block reserved, and an id issued after
    before = new_ulid()
    prefix = new_ulid_prefix()
    after = new_ulid()
    # when SQL numbers rows of the block (first, small, carrying into the next character, last)
    numbers = [0, 1, 31, 32, 12345, 32**6 - 1]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s || {ulid_suffix_sql('n')} FROM unnest(%s::bigint[]) AS n", [prefix, numbers])
        ids = [row[0] for row in cursor.fetchall()]
    # then row n is the block's first id plus n, every id valid, all between the neighbours
    first = int(ULID.from_str(prefix + "000000"))
    assert [int(ULID.from_str(i)) - first for i in ids] == numbers
    assert all(str(ULID.from_str(i)) == i for i in ids)
    assert before < ids[0] and ids[-1] < after
    # and the next block starts after this one
    assert new_ulid_prefix() > prefix
