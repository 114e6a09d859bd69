"""The order status state machine: every legal transition writes its event; every illegal one raises."""

from decimal import Decimal

import pytest
from django.db import transaction

from trading.models import Event, IllegalTransition, Order
from trading.services.orders import order_event, order_transition

pytestmark = pytest.mark.django_db

S = Order.Status
LEGAL = [(src, dst) for src, targets in Order.TRANSITIONS.items() for dst in sorted(targets)]
ILLEGAL = [(src, dst) for src in S.values for dst in S.values if dst not in Order.TRANSITIONS[src]]


def _order(user, status) -> Order:
    with transaction.atomic():
        order = Order.objects.create(
            user=user,
            provider="paper",
            asset="BTC-USD",
            order_type=Order.Type.MARKET,
            side="long",
            collateral=Decimal("100"),
            leverage=Decimal("5"),
            status=status,
        )
        order_event(order=order, topic="order.accepted", payload={})
        if status != S.ACCEPTED:  # the move to the status it starts in, as its ledger says
            order_event(order=order, topic=f"order.{status.lower()}", payload={"from": S.ACCEPTED, "to": status})
    return order


def test_the_table_covers_every_status_and_terminal_states_lead_nowhere():
    assert set(Order.TRANSITIONS) == set(S.values)
    for status in Order.TERMINAL:
        assert Order.TRANSITIONS[status] == frozenset()
    # the main line and the protective path exist
    for src, dst in [
        (S.ACCEPTED, S.SUBMITTING),
        (S.SUBMITTING, S.SUBMITTED),
        (S.SUBMITTING, S.FILLED),
        (S.SUBMITTING, S.UNKNOWN),
        (S.UNKNOWN, S.FILLED),
        (S.UNKNOWN, S.REJECTED),
        (S.UNKNOWN, S.CANCELLED),
        (S.ACCEPTED, S.PENDING_TRIGGER),
        (S.PENDING_TRIGGER, S.TRIGGERED),
        (S.TRIGGERED, S.SUBMITTING),
    ]:
        assert (src, dst) in LEGAL


@pytest.mark.parametrize(("src", "dst"), LEGAL)
def test_legal_transition_moves_and_writes_its_event_caused_by_the_previous_one(trader, src, dst):
    order = _order(trader, src)
    previous = Event.objects.filter(correlation_id=f"order-{order.pk}").latest("id")

    with transaction.atomic():
        event = order_transition(order=order, to=dst, actor="test")

    order.refresh_from_db()
    assert order.status == dst
    assert event.topic == f"order.{dst.lower()}"
    assert event.correlation_id == f"order-{order.pk}"
    assert event.causation_id == previous.id
    assert event.payload["from"] == src and event.payload["to"] == dst
    assert event.aggregate_type == "order" and event.aggregate_id == str(order.pk)


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_illegal_transition_raises_and_changes_nothing(trader, src, dst):
    order = _order(trader, src)
    before = Event.objects.count()

    with pytest.raises(IllegalTransition), transaction.atomic():
        order_transition(order=order, to=dst)

    order.refresh_from_db()
    assert order.status == src
    assert Event.objects.count() == before


def test_the_causation_chain_walks_back_to_the_acceptance(trader):
    order = _order(trader, S.ACCEPTED)
    with transaction.atomic():
        for status in (S.SUBMITTING, S.UNKNOWN, S.FILLED):
            order_transition(order=order, to=status)

    chain, event = [], Event.objects.filter(correlation_id=f"order-{order.pk}").latest("id")
    while event is not None:
        chain.append(event.topic)
        event = Event.objects.filter(pk=event.causation_id).first()
    assert chain == ["order.filled", "order.unknown", "order.submitting", "order.accepted"]
