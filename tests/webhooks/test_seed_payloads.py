"""A trade opened and closed on the paper venue through the API: the `trade.executed` webhook
and the `/ws` `trade_update` carry the seed API's fields (seed 003 §4.6, §4.7.4) next to the
ledger's."""

from decimal import Decimal as D

import pytest

from tests.conftest import wait_for
from tests.realtime.conftest import (  # noqa: F401 (fixtures)
    make_token,
    make_user,
    recv_until,
    subscribe,
    ws_connect,
)
from trading.models import Order, Trade
from webhooks.models import WebhookDelivery

SEED_FIELDS = ("trade_id", "asset", "direction", "entry_price", "collateral", "leverage", "transaction_hash")


@pytest.fixture
def paper(transactional_db, settings):
    from providers.markets import markets_cache_clear
    from providers.paper.seed import seed_paper_demo
    from providers.prices import price_cache_clear, price_set
    from trading.services.control import control_arm

    settings.RISK_LIMITS_CACHE_SECONDS = 0
    settings.TRADING_MARKET_CACHE_SECONDS = 0
    seed_paper_demo()
    markets_cache_clear()
    price_cache_clear()
    price_set("BTC-USD", D("60000"))
    control_arm(component="executor:paper", actor="test", reason="tests trade on paper")


@pytest.mark.celery
def test_trade_executed_and_trade_update_carry_the_seed_fields(paper, ws_server, celery_worker, make_user):  # noqa: F811
    from rest_framework.test import APIClient

    from trading import outbox
    from webhooks.models import WebhookAllowlist
    from webhooks.sandbox import Receiver
    from webhooks.services import endpoint_create

    user = make_user()
    api = APIClient()
    api.force_authenticate(user)
    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test")
    with Receiver() as receiver, ws_connect(ws_server, token=make_token(user), via="header", origin=None) as ws:
        endpoint, _ = endpoint_create(user=user, url=receiver.url(), event_types=["trade.executed"])
        subscribe(ws, "trades")
        body = {"collateral": 100.0, "leverage": 10, "asset_type": 0, "asset": "BTC", "direction": True}
        opened = api.post("/api/v1/trading/trades", body, format="json").json()
        order = wait_for(lambda: Order.objects.filter(pk=opened["order_id"], status="FILLED").first(), timeout=20)
        trade = Trade.objects.get(pk=order.trade_id)

        update = recv_until(ws, lambda m: m["type"] == "trade_update" and m["data"]["topic"] == "order.filled")
        assert update["data"]["status"] == "executed" and D(update["data"]["entry_price"]) == trade.entry_price
        assert update["data"]["transaction_hash"] == (order.transaction_hash or None)
        opened_update = recv_until(ws, lambda m: m["type"] == "trade_update" and m["data"]["topic"] == "trade.opened")
        assert opened_update["data"]["trade_id"] == trade.pk and opened_update["data"]["status"] == "executed"

        outbox.outbox_dispatch()
        delivery = wait_for(lambda: WebhookDelivery.objects.filter(endpoint=endpoint).first(), timeout=20)
        data = delivery.payload["data"]
        assert set(SEED_FIELDS) <= set(data), data
        assert (data["trade_id"], data["asset"], data["direction"], data["transaction_hash"]) == (
            trade.pk,
            "BTC-USD",
            "long",
            order.transaction_hash,
        )
        assert (D(data["entry_price"]), D(data["collateral"]), D(data["leverage"])) == (
            trade.entry_price,
            D(100),
            D(10),
        )
        assert data["order_id"] == order.pk and data["user_id"] == user.pk  # the ledger's payload too
