"""Writing a placed order on its way to the executor: the order, its `order.accepted` event and
the event's outbox rows in one statement. (Orders the protective engine holds keep the usual
transaction, accepted then pending_trigger: tests/trading/test_protective.py.)"""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Value
from django.db.models.functions import Upper
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from config.errors import ConflictError
from tests.conftest import ledger_events_for
from trading import outbox
from trading.models import Event, Order, OutboxMessage
from trading.services.ledger import insert_with_event
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


def _limit_order(user, **kw) -> Order:
    fields = {
        "user": user,
        "provider": "paper",
        "asset": "ETH-USD",
        "asset_type": "crypto",
        "order_type": Order.Type.LIMIT,
        "side": "short",
        "collateral": D("12.345678901"),  # more places than the column: Django rounds it
        "leverage": D("7.5"),
        "quantity": D("0.25"),
        "price": D("3100.5"),
        "take_profit_price": D("2900"),
        "max_slippage": D("0.01"),
        "reduce_only": True,
        "client_order_id": "lim-1",
    }
    return Order(**(fields | kw))


def _insert(order: Order) -> Order:
    with transaction.atomic():
        insert_with_event(
            order,
            topic="order.accepted",
            aggregate_type="order",
            correlation_prefix=Order.CORRELATION_PREFIX,
            id_key="order_id",
            payload={},
            kick=False,
        )
    return Order.objects.get(pk=order.pk)


def _row(order: Order) -> dict:
    return {k: v for k, v in model_to_dict(order).items() if k not in ("id", "created_at", "updated_at")}


@pytest.mark.django_db(transaction=True)
def test_each_insert_writes_what_the_orms_save_writes(trader, markets):
    """The INSERT is compiled once per model and reused: the first order and the ones after it
    are stored exactly as Django's own save stores the same values."""
    reference = _limit_order(trader, client_order_id="ref")
    reference.save(force_insert=True)
    ledger_events_for(reference)  # (the ORM's save writes no event; the placing service does)
    expected = _row(Order.objects.get(pk=reference.pk)) | {"client_order_id": "lim"}
    for n in range(3):
        stored = _insert(_limit_order(trader, client_order_id="lim"))
        assert _row(stored) == expected, n
        assert stored.created_at and stored.updated_at
        Order.objects.filter(pk=stored.pk).update(client_order_id=f"done-{n}")


@pytest.mark.django_db(transaction=True)
def test_a_field_given_as_an_expression_is_compiled_with_it(trader, markets):
    _insert(_limit_order(trader, client_order_id="plain"))  # the compiled INSERT exists
    stored = _insert(_limit_order(trader, client_order_id=Upper(Value("from-sql"))))
    assert stored.client_order_id == "FROM-SQL"
    assert _insert(_limit_order(trader, client_order_id="after")).client_order_id == "after"


@pytest.mark.django_db(transaction=True)
def test_inserts_with_different_null_columns_each_write_what_the_orms_save_writes(trader, markets):
    """NULL values are written into the statement (one statement text per pattern of NULL
    columns): orders alternating between patterns are each stored as the ORM stores them."""
    variants = [
        {},
        {"price": None, "take_profit_price": None, "order_type": Order.Type.MARKET},
        {"stop_price": D("3300"), "trailing_stop_distance": D("25"), "take_profit_price": None},
    ]
    expected = []
    for n, kw in enumerate(variants):
        reference = _limit_order(trader, **(kw | {"client_order_id": f"ref-{n}"}))
        reference.save(force_insert=True)
        ledger_events_for(reference)  # (the ORM's save writes no event; the placing service does)
        expected.append(_row(Order.objects.get(pk=reference.pk)))
    for round_ in range(2):
        for n, kw in enumerate(variants):
            stored = _insert(_limit_order(trader, **(kw | {"client_order_id": f"new-{round_}-{n}"})))
            assert _row(stored) | {"client_order_id": f"ref-{n}"} == expected[n], (round_, n)
