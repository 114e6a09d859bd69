import pytest
from django.db import connection, transaction
from django.db.utils import InternalError, ProgrammingError

from trading.models import Event
from trading.services.ledger import event_record
from trading.ulid import new_ulid

pytestmark = pytest.mark.django_db


def _record(**kw):
    with transaction.atomic():
        return event_record(topic=kw.pop("topic", "test.happened"), aggregate_type="test", aggregate_id=1, **kw)


def test_event_record_writes_all_fields():
    event = _record(payload={"amount": "1.5"}, actor="alice", correlation_id="order-1", causation_id="01X")
    stored = Event.objects.get(pk=event.pk)
    assert (stored.topic, stored.aggregate_type, stored.aggregate_id) == ("test.happened", "test", "1")
    assert (stored.actor, stored.correlation_id, stored.causation_id) == ("alice", "order-1", "01X")
    assert stored.payload == {"amount": "1.5"} and stored.version == 1
    assert len(stored.id) == 26 and stored.occurred_at.tzinfo is not None


@pytest.mark.django_db(transaction=True)
def test_event_record_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError):
        event_record(topic="x", aggregate_type="t", aggregate_id=1)


def test_database_rejects_update_of_an_event():
    event = _record()
    with pytest.raises((InternalError, ProgrammingError)) as err, transaction.atomic():
        Event.objects.filter(pk=event.pk).update(topic="tampered")
    assert "append-only" in str(err.value)
    assert Event.objects.get(pk=event.pk).topic == "test.happened"


def test_database_rejects_delete_of_an_event_even_in_raw_sql():
    event = _record()
    with pytest.raises((InternalError, ProgrammingError)), transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM trading_event WHERE id = %s", [event.pk])
    assert Event.objects.filter(pk=event.pk).exists()


def test_orm_save_of_an_existing_event_is_rejected():
    event = _record()
    event.payload = {"changed": True}
    with pytest.raises((InternalError, ProgrammingError)), transaction.atomic():
        event.save()


def test_ulids_sort_in_creation_order():
    ids = [new_ulid() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_events_sort_by_id_in_creation_order():
    recorded = [_record(payload={"n": n}).pk for n in range(50)]
    assert list(Event.objects.order_by("id").values_list("pk", flat=True)) == recorded
