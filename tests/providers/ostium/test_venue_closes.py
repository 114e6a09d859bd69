"""A close Ostium made on its own (native SL/TP) is booked whatever arrives first: a stop hit on
chain right after the fill, before the poller read the fill; a close that reaches the desk before
the fill of the open it closes was booked. Through our API, the real Celery worker, the real SDK
and the localnet keeper."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from providers.tasks import ostium_sync_task
from tests.conftest import run_on_worker, wait_for
from tests.providers.ostium.helpers import order_status, sync_until
from trading.models import Event, ExecutionCommand, Order, Trade


def _webhooks(user, event_types):
    from webhooks import services as webhooks
    from webhooks.models import WebhookAllowlist

    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test")
    webhooks.endpoint_create(user=user, url="http://127.0.0.1:9/hook", event_types=event_types)


def _delivered(event_type):
    from trading import outbox
    from webhooks.models import WebhookDelivery

    return wait_for(
        lambda: outbox.outbox_dispatch() >= 0 and list(WebhookDelivery.objects.filter(event_type=event_type))
    )


@pytest.mark.celery
def test_a_stop_hit_on_chain_before_the_fill_was_read_is_booked(desk, ostium, celery_worker):
    user, api = desk
    _webhooks(user, ["trade.closed"])
    body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
    response = api.post("/api/v1/trading/trades", body | {"stop_price": "64000"}, format="json")
    order_id = response.json()["order_id"]
    assert order_status(order_id, "SUBMITTED", "REJECTED") == "SUBMITTED"
    # the keeper fills the open, then Ostium's price falls through the SL and the keeper closes
    # the trade, all before the poller looks
    assert [a.kind for a in ostium.run_keeper()] == ["fulfill"]
    ostium.set_price("BTC-USD", "63800")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]

    sync_until(lambda: Trade.objects.filter(orders__pk=order_id, status="closed").exists())
    trade = Trade.objects.get(orders__pk=order_id)
    stop = Order.objects.get(trade=trade, order_type="STOP_LOSS")
    assert Order.objects.get(pk=order_id).status == "FILLED"
    assert (trade.close_reason, stop.status, stop.filled_price) == ("stop_loss", "FILLED", D("64000"))
    assert trade.realized_pnl == D("-15.384615")  # (64,000 / 65,000 - 1) x 10 x 100 USDC, in USDC units
    assert (
        list(Event.objects.filter(aggregate_type="trade", aggregate_id=str(trade.pk)).values_list("topic", flat=True))[
            -1
        ]
        == "trade.closed"
    )
    [delivery] = _delivered("trade.closed")
    assert delivery.payload["data"]["trade_id"] == trade.pk


@pytest.mark.celery
def test_a_venue_close_arriving_before_the_open_was_booked_books_the_open_first(desk, ostium, celery_worker):
    from providers.models import OstiumOrder
    from providers.ostium.adapter import OstiumVenue

    user, api = desk
    body = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}
    order_id = api.post("/api/v1/trading/trades", body | {"take_profit_price": "66000"}, format="json").json()[
        "order_id"
    ]
    assert order_status(order_id, "SUBMITTED", "REJECTED") == "SUBMITTED"
    ostium.run_keeper()
    # a process read the fill at the venue (its row is settled there) and died before the desk
    # booked it: no ORDER_FILLED will come from the poller
    row = OstiumOrder.objects.get(action="open")
    assert OstiumVenue().get_order_status(idempotency_key=row.idempotency_key).status == "filled"
    assert Order.objects.get(pk=order_id).status == "SUBMITTED"
    # then the TP closes the trade on chain: the poller's close reaches a desk without the trade
    ostium.set_price("BTC-USD", "66100")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    run_on_worker(ostium_sync_task)

    order = Order.objects.get(pk=order_id)
    trade = Trade.objects.get(orders__pk=order_id)
    assert order.status == "FILLED" and trade.status == "closed" and trade.close_reason == "take_profit"
    tp = Order.objects.get(trade=trade, order_type="TAKE_PROFIT")
    assert (tp.status, tp.filled_price) == ("FILLED", D("66000"))
    assert ExecutionCommand.objects.filter(order_id=order_id).count() == 1  # nothing sent again
