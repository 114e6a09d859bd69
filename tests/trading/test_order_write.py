"""Writing a placed order on its way to the executor: the order, its `order.accepted` event and
the event's outbox rows in one statement. (Orders the protective engine holds keep the usual
transaction, accepted then pending_trigger: tests/trading/test_protective.py.)"""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.errors import ConflictError
from trading import outbox
from trading.models import Event, Order, OutboxMessage
from trading.services.orders import order_place

D = Decimal


def _place(user, **kw):
    return order_place(
        user=user, asset="BTC-USD", side="long", order_type="MARKET", collateral=D("50"), leverage=D("5"), **kw
    )


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "WITH", "BEGIN", "COMMIT"))]


@pytest.mark.django_db(transaction=True)
def test_market_order_and_its_event_are_one_statement_in_their_own_transaction(trader, markets):
    with CaptureQueriesContext(connection) as queries:
        order = _place(trader, client_order_id="c-1")
    writes = _writes(queries.captured_queries)
    assert len(writes) == 1 and "trading_order" in writes[0] and "trading_event" in writes[0], writes

    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.client_order_id, stored.collateral) == (Order.Status.ACCEPTED, "c-1", D("50"))
    assert stored.quantity == D("0.00416667")  # 50 * 5 / 60000, quantized
    event = Event.objects.get(correlation_id=f"order-{order.pk}")
    assert (event.topic, event.aggregate_type, event.aggregate_id) == ("order.accepted", "order", str(order.pk))
    assert (event.actor, event.causation_id) == (f"user:{trader.pk}", "")
    assert event.payload["order_id"] == order.pk and event.payload["user_id"] == trader.pk
    assert event.payload["reference_price"] == "60000" and event.payload["price_source"]
    handlers = outbox.handlers_for("order.accepted")
    assert sorted(OutboxMessage.objects.filter(event_id=event.pk).values_list("handler", flat=True)) == sorted(handlers)


@pytest.mark.django_db(transaction=True)
def test_order_written_in_a_callers_transaction_goes_with_its_rollback(trader, markets):
    with pytest.raises(RuntimeError), transaction.atomic():
        order = _place(trader)
        assert Event.objects.filter(correlation_id=f"order-{order.pk}").exists()
        raise RuntimeError("the caller fails after placing")
    assert not Order.objects.exists() and not Event.objects.filter(aggregate_type="order").exists()


@pytest.mark.django_db(transaction=True)
def test_duplicate_client_order_id_in_a_callers_transaction_leaves_it_usable(trader, markets):
    with transaction.atomic():
        first = _place(trader, client_order_id="dup")
        with pytest.raises(ConflictError) as err:
            _place(trader, client_order_id="dup")
        assert err.value.code == "DUPLICATE_CLIENT_ORDER_ID"
        assert Order.objects.filter(user=trader).count() == 1  # the transaction still answers
    assert list(Order.objects.values_list("pk", flat=True)) == [first.pk]
    assert Event.objects.filter(topic="order.accepted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_duplicate_client_order_id_outside_a_transaction_writes_nothing(trader, markets):
    _place(trader, client_order_id="dup")
    with pytest.raises(ConflictError):
        _place(trader, client_order_id="dup")
    assert Order.objects.count() == 1 and Event.objects.filter(topic="order.accepted").count() == 1
