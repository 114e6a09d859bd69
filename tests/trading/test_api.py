"""The trading API end to end: real server code, real PostgreSQL/Redis, a real Celery worker
executing on the paper venue."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from threading import Barrier

import pytest
from django.db import connection
from rest_framework.test import APIClient

from providers.models import PaperOrder
from tests.conftest import ledger_events_for, wait_for
from trading.models import Event, ExecutionCommand, IdempotencyRecord, Order, Trade

OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "10"}


def _status(order_id, *statuses):
    def check():
        status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
        return status if status in statuses else None

    return wait_for(check, timeout=20)


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.celery
def test_open_fill_partial_close_close_through_the_api(markets, trader, armed, api, celery_worker):
    from providers.prices import price_set

    # open 100 USD × 10 at 60,000 (paper: half-spread 0.01 % + impact → fill a little above mid)
    opened = api.post("/api/v1/trading/trades", OPEN | {"stop_price": "55000"}, format="json")
    assert opened.status_code == 202, opened.content
    body = opened.json()
    assert body["status"] == "pending" and body["order_status"] == "ACCEPTED" and body["direction"] == "long"
    assert _status(body["order_id"], "FILLED", "REJECTED") == "FILLED"

    detail = api.get(f"/api/v1/trading/orders/{body['order_id']}").json()
    entry, size = D(detail["filled_price"]), D(detail["filled_quantity"])
    assert D("60000") < entry < D("60030")
    assert abs(size - D("1000") / entry) <= D("0.00000001")  # notional 1,000 USD at the fill price
    assert [e["topic"] for e in detail["events"]][:3] == ["order.accepted", "order.submitting", "order.filled"]
    pair_id, index = detail["pair_id"], detail["trade_index"]
    assert (pair_id, index) != ("", "")

    positions = api.get("/api/v1/trading/positions").json()["positions"]
    assert len(positions) == 1 and D(positions[0]["quantity"]) == size
    assert positions[0]["trades"][0]["stop_loss_price"] == "55000"

    # price up 1,000: close half
    price_set("BTC-USD", D("61000"))
    half = api.delete(f"/api/v1/trading/trades/{pair_id}/{index}?percentage=50")
    assert half.status_code == 202, half.content
    assert _status(half.json()["order_id"], "FILLED", "REJECTED") == "FILLED"
    half_order = Order.objects.get(pk=half.json()["order_id"])
    closed_half = size / 2
    assert abs(half_order.filled_quantity - closed_half) <= D("0.00000001")
    exit_half = half_order.filled_price
    assert D("60970") < exit_half < D("61000")  # a sell fills a little under mid
    assert abs(half_order.realized_pnl - (exit_half - entry) * half_order.filled_quantity) < D("0.0001")
    assert D("8") < half_order.realized_pnl < D("8.5")

    # price down to 59,500: close the rest at a loss
    price_set("BTC-USD", D("59500"))
    rest = api.delete(f"/api/v1/trading/trades/{pair_id}/{index}", format="json")
    assert _status(rest.json()["order_id"], "FILLED", "REJECTED") == "FILLED"
    rest_order = Order.objects.get(pk=rest.json()["order_id"])
    assert rest_order.filled_quantity == size - half_order.filled_quantity
    assert abs(rest_order.realized_pnl - (rest_order.filled_price - entry) * rest_order.filled_quantity) < D("0.0001")
    assert D("-4.5") < rest_order.realized_pnl < D("-4")

    trade = Trade.objects.get()
    assert trade.status == "closed" and trade.size == 0
    assert trade.realized_pnl == half_order.realized_pnl + rest_order.realized_pnl
    assert trade.fees_paid == sum(o.fee for o in Order.objects.filter(trade=trade, status="FILLED"))
    position = api.get("/api/v1/trading/positions?status=all").json()["positions"][0]
    assert position["status"] == "closed" and D(position["realized_pnl"]) == trade.realized_pnl
    assert Order.objects.get(order_type="STOP_LOSS").status == "CANCELLED"
    assert api.delete(f"/api/v1/trading/trades/{pair_id}/{index}").status_code == 404

    # the trade's events (a `trade.closed` is a webhook's data) name it as the API does: integers
    from trading.models import Event

    assert isinstance(pair_id, int) and isinstance(index, int)
    named = {
        (e.topic, e.payload["pair_id"], e.payload["trade_index"]) for e in Event.objects.filter(aggregate_type="trade")
    }
    assert {"trade.opened", "trade.closed"} <= {topic for topic, _, _ in named}
    assert {(p, i) for _, p, i in named} == {(pair_id, index)}


@pytest.mark.celery
def test_open_positions_are_shown_marked_at_the_latest_price(markets, trader, armed, api, celery_worker):
    from providers.prices import price_set
    from trading.models import Position

    opened = api.post("/api/v1/trading/trades", OPEN, format="json").json()
    assert _status(opened["order_id"], "FILLED", "REJECTED") == "FILLED"
    position = Position.objects.get()
    entry, size = position.avg_entry_price, position.quantity

    # when the price moves (a tick, no fill)
    price_set("BTC-USD", D("61000"))

    # then the API marks the open position and its trade at 61,000; the row keeps its fill's mark
    (shown,) = api.get("/api/v1/trading/positions").json()["positions"]
    pnl = (D("61000") - entry) * size
    assert pnl > 0 and D(shown["current_price"]) == D("61000")
    assert abs(D(shown["unrealized_pnl"]) - pnl) < D("0.00000001")
    assert D(shown["trades"][0]["current_price"]) == D("61000")
    assert abs(D(shown["trades"][0]["unrealized_pnl"]) - pnl) < D("0.00000001")
    position.refresh_from_db()
    assert position.current_price != D("61000")

    # a closed position shows its own figures, not the market's
    rest = api.delete(f"/api/v1/trading/trades/{opened['pair_id']}/{shown['trades'][0]['trade_index']}")
    assert _status(rest.json()["order_id"], "FILLED", "REJECTED") == "FILLED"
    price_set("BTC-USD", D("65000"))
    (closed,) = api.get("/api/v1/trading/positions?status=all").json()["positions"]
    assert closed["status"] == "closed" and D(closed["current_price"]) != D("65000")


@pytest.mark.celery
def test_twenty_concurrent_identical_requests_make_one_order_and_one_venue_call(
    markets, trader, armed, counting_venue, celery_worker, settings
):
    # idempotency is under test, not the `trade` rate limit (10/min: the 11th would be a 429)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.THROTTLE_RATES, "trade": "100/min"},
    }
    barrier = Barrier(20)

    def post(_):
        client = APIClient()
        client.force_authenticate(trader)
        try:
            barrier.wait()
            response = client.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="k-20")
            return response.status_code, response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(post, range(20)))

    statuses = sorted(code for code, _ in results)
    assert set(statuses) <= {202, 409}
    created = [body for code, body in results if code == 202]
    assert len({body["order_id"] for body in created}) == 1
    assert all(body["error"]["code"] == "IDEMPOTENCY_IN_PROGRESS" for code, body in results if code == 409)
    assert Order.objects.count() == 1
    order = Order.objects.get()
    assert _status(order.pk, "FILLED", "REJECTED") == "FILLED"
    assert ExecutionCommand.objects.count() == 1 and PaperOrder.objects.count() == 1
    assert counting_venue.calls == [("open_trade", f"order-{order.pk}-open-1")]
    # afterwards the key replays the stored response
    client = APIClient()
    client.force_authenticate(trader)
    again = client.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="k-20")
    assert again.status_code == 202 and again.json()["order_id"] == order.pk
    assert again["Idempotent-Replayed"] == "true"


# --- idempotency ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_same_key_same_body_replays_and_different_body_is_422(markets, trader, api):
    first = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    replay = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    other = api.post("/api/v1/trading/trades", OPEN | {"leverage": "5"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")

    assert first.status_code == replay.status_code == 202
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_errors_are_replayed_too_and_keys_are_per_user(markets, trader, other_trader, api):
    bad = OPEN | {"leverage": "500"}
    first = api.post("/api/v1/trading/trades", bad, format="json", HTTP_IDEMPOTENCY_KEY="k")
    replay = api.post("/api/v1/trading/trades", bad, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == replay.status_code == 400
    assert replay.json()["error"]["code"] == "INVALID_ORDER"

    other = APIClient()
    other.force_authenticate(other_trader)
    assert other.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 202


@pytest.mark.django_db
def test_a_key_still_in_progress_is_409(markets, trader, api):
    _trade_key_record(trader, "busy", OPEN)
    response = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="busy")
    assert response.status_code == 409 and response.json()["error"]["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_expired_keys_are_purged_and_reusable(markets, trader, api, settings):
    from datetime import timedelta

    from django.utils import timezone

    from trading.services.idempotency import idempotency_purge

    api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_purge() == 1 and not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_duplicate_client_order_id_is_409(markets, trader, api):
    body = OPEN | {"client_order_id": "mine-1"}
    assert api.post("/api/v1/trading/trades", body, format="json").status_code == 202
    dup = api.post("/api/v1/trading/trades", body, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID"


# --- reads, scoping, cancels, SL/TP ---------------------------------------------------------------


def _trade_for(user, **kw):
    from trading.models import Position

    position = Position.objects.create(user=user, provider="paper", asset="BTC-USD", side="long")
    values = {
        "user": user,
        "position": position,
        "provider": "paper",
        "asset": "BTC-USD",
        "pair_id": "BTC-USD",
        "trade_index": "41",
        "side": "long",
        "collateral": D("100"),
        "leverage": D("10"),
        "size": D("0.0166"),
        "initial_size": D("0.0166"),
        "entry_price": D("60000"),
        "current_price": D("60000"),
        "margin": D("100"),
    }
    trade = Trade.objects.create(**(values | kw))
    ledger_events_for(position, trade)
    return trade


@pytest.mark.django_db
def test_other_users_orders_and_trades_are_404(markets, trader, other_trader, api):
    mine = api.post("/api/v1/trading/trades", OPEN, format="json").json()["order_id"]
    theirs = Order.objects.create(
        user=other_trader, provider="paper", asset="BTC-USD", order_type="MARKET", side="long", collateral=D("1")
    )
    ledger_events_for(theirs)
    _trade_for(other_trader)

    assert api.get(f"/api/v1/trading/orders/{mine}").status_code == 200
    assert api.get(f"/api/v1/trading/orders/{theirs.pk}").status_code == 404
    assert api.post(f"/api/v1/trading/orders/{theirs.pk}/cancel").status_code == 404
    assert api.delete("/api/v1/trading/trades/BTC-USD/41").status_code == 404
    assert (
        api.patch("/api/v1/trading/trades/BTC-USD/41", {"stop_loss_price": "50000"}, format="json").status_code == 404
    )
    assert [o["id"] for o in api.get("/api/v1/trading/orders").json()["results"]] == [mine]
    assert api.get("/api/v1/trading/positions").json()["positions"] == []
    protective = OPEN | {"order_type": "STOP_LOSS", "stop_price": "55000", "pair_id": "BTC-USD", "trade_index": "41"}
    assert api.post("/api/v1/trading/trades", protective, format="json").status_code == 404


@pytest.mark.django_db
def test_order_list_filters_and_paginates(markets, trader, api):
    for _ in range(3):
        api.post("/api/v1/trading/trades", OPEN, format="json")
    api.post("/api/v1/trading/trades", OPEN | {"asset": "ETH-USD"}, format="json")
    api.post("/api/v1/trading/trades", OPEN | {"order_type": "LIMIT", "price": "59000"}, format="json")

    page = api.get("/api/v1/trading/orders?limit=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert api.get("/api/v1/trading/orders?asset=ETH-USD").json()["count"] == 1
    assert api.get("/api/v1/trading/orders?type=LIMIT").json()["count"] == 1
    assert api.get("/api/v1/trading/orders?status=ACCEPTED").json()["count"] == 5
    assert api.get("/api/v1/trading/orders?status=FILLED").json()["count"] == 0
    assert api.get("/api/v1/trading/orders?status=NOPE").status_code == 400


@pytest.mark.django_db
def test_protective_orders_on_a_trade_can_be_placed_and_cancelled(markets, trader, api):
    _trade_for(trader)
    body = {"asset": "BTC-USD", "direction": "long", "order_type": "TRAILING_STOP", "trailing_stop_percentage": "2",
            "pair_id": "BTC-USD", "trade_index": "41"}  # fmt: skip
    placed = api.post("/api/v1/trading/trades", body, format="json")
    assert placed.status_code == 202 and placed.json()["order_status"] == "PENDING_TRIGGER"

    cancelled = api.post(f"/api/v1/trading/orders/{placed.json()['order_id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "CANCELLED"
    again = api.post(f"/api/v1/trading/orders/{placed.json()['order_id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "ORDER_NOT_CANCELLABLE"


@pytest.mark.django_db
def test_patch_replaces_stop_loss_and_take_profit(markets, trader, api, django_capture_on_commit_callbacks):
    trade = _trade_for(trader)
    with django_capture_on_commit_callbacks():  # the venue sync is not run here
        first = api.patch("/api/v1/trading/trades/BTC-USD/41", {"stop_loss_price": "57000"}, format="json")
        second = api.patch(
            "/api/v1/trading/trades/BTC-USD/41",
            {"stop_loss_price": "56000", "take_profit_price": "65000"},
            format="json",
        )
        bad = api.patch("/api/v1/trading/trades/BTC-USD/41", {"take_profit_price": "50000"}, format="json")
        # a refused stop-loss names the field as it was sent, not its order's `stop_price`
        above = api.patch("/api/v1/trading/trades/BTC-USD/41", {"stop_loss_price": "61000"}, format="json")
        far = api.patch("/api/v1/trading/trades/BTC-USD/41", {"stop_loss_price": "1"}, format="json")

    assert first.status_code == second.status_code == 200
    assert second.json()["stop_loss_price"] == "56000"
    assert bad.status_code == 400 and "take_profit_price" in bad.json()["error"]["details"]
    assert above.status_code == 400 and list(above.json()["error"]["details"]) == ["stop_loss_price"]
    assert far.status_code == 422 and far.json()["error"]["details"]["field"] == "stop_loss_price"
    assert far.json()["error"]["message"].startswith("stop_loss_price is too far from the reference price")
    orders = Order.objects.filter(trade=trade).order_by("id")
    assert [(o.order_type, o.status, o.stop_price or o.take_profit_price) for o in orders] == [
        ("STOP_LOSS", "CANCELLED", D("57000")),
        ("STOP_LOSS", "PENDING_TRIGGER", D("56000")),
        ("TAKE_PROFIT", "PENDING_TRIGGER", D("65000")),
    ]
    trade.refresh_from_db()
    assert (trade.stop_loss_price, trade.take_profit_price) == (D("56000"), D("65000"))
    assert Event.objects.filter(topic="trade.protection_updated").count() == 2


@pytest.mark.celery
def test_patch_sends_the_levels_to_the_venue(markets, trader, armed, api, celery_worker):
    from providers.models import PaperPosition

    order_id = api.post("/api/v1/trading/trades", OPEN, format="json").json()["order_id"]
    assert _status(order_id, "FILLED", "REJECTED") == "FILLED"
    order = Order.objects.get(pk=order_id)

    api.patch(
        f"/api/v1/trading/trades/{order.pair_id}/{order.trade_index}", {"stop_loss_price": "57000"}, format="json"
    )

    wait_for(lambda: ExecutionCommand.objects.filter(action="update_sl", status="succeeded").exists())
    assert PaperPosition.objects.get(pk=int(order.trade_index)).stop_loss == D("57000")


@pytest.mark.celery
def test_levels_the_broker_refused_to_enqueue_reach_the_venue_through_reconciliation(
    markets, trader, armed, api, celery_worker
):
    """The broker is down when a SL change commits: the PATCH still answers 200 (not a 5xx for
    a change that was made), the trade stays due for a sync, and reconciliation sends the
    levels, but only once the venue's executor is armed (no refusal written on every run)."""
    from unittest import mock

    import redis
    from kombu.transport.redis import Channel

    from providers.models import PaperPosition
    from trading.services import execution
    from trading.services.control import control_arm, control_disarm

    order_id = api.post("/api/v1/trading/trades", OPEN, format="json").json()["order_id"]
    assert _status(order_id, "FILLED", "REJECTED") == "FILLED"
    order = Order.objects.get(pk=order_id)
    with mock.patch.object(Channel, "_put", side_effect=redis.ConnectionError("broker unavailable")):
        response = api.patch(
            f"/api/v1/trading/trades/{order.pair_id}/{order.trade_index}", {"stop_loss_price": "57000"}, format="json"
        )
    assert response.status_code == 200, response.content
    trade = Trade.objects.get(pk=order.trade_id)
    assert trade.stop_loss_price == D("57000") and trade.protection_sync_due_at is not None
    key = f"protection:{trade.pk}"
    assert key not in execution.execution_reconcile(grace_seconds=60)  # still in its grace

    control_disarm(component="executor:paper", actor="op", reason="incident")
    assert execution.execution_reconcile(grace_seconds=0)[key] == "executor-refuses"
    assert not Event.objects.filter(topic__endswith="_refused").exists()

    control_arm(component="executor:paper", actor="op", reason="resolved")
    assert execution.execution_reconcile(grace_seconds=0)[key] == "requeued"
    wait_for(lambda: Trade.objects.get(pk=trade.pk).protection_sync_due_at is None, timeout=30)
    assert PaperPosition.objects.get(pk=int(order.trade_index)).stop_loss == D("57000")
    assert key not in execution.execution_reconcile(grace_seconds=0)  # sent: not again
    assert ExecutionCommand.objects.filter(action="update_sl", status="succeeded").count() == 1


@pytest.mark.celery
def test_cancelling_a_resting_limit_through_the_api(markets, trader, armed, api, celery_worker):
    order_id = api.post(
        "/api/v1/trading/trades", OPEN | {"order_type": "LIMIT", "price": "58000"}, format="json"
    ).json()["order_id"]
    assert _status(order_id, "SUBMITTED", "REJECTED") == "SUBMITTED"

    response = api.post(f"/api/v1/trading/orders/{order_id}/cancel")

    assert response.status_code == 202 and response.json()["status"] == "SUBMITTED"
    assert _status(order_id, "CANCELLED") == "CANCELLED"


@pytest.mark.django_db
def test_prices(markets, api):
    one = api.get("/api/v1/prices/btc-usd?use_cache=true")
    many = api.get("/api/v1/prices?pairs=BTC-USD,ETH-USD")
    assert one.status_code == 200 and one.json()["price"] == "60000" and one.json()["source"]
    assert [p["pair"] for p in many.json()["prices"]] == ["BTC-USD", "ETH-USD"]
    assert api.get("/api/v1/prices/NOPE-USD").status_code in (404, 503)
    # market data is open, as seed 003 §4.3 shows it; a bad credential is still refused
    assert APIClient().get("/api/v1/prices/BTC-USD").status_code == 200
    assert APIClient().get("/api/v1/prices/BTC-USD", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


@pytest.mark.django_db
def test_the_endpoints_are_in_the_openapi_schema(staff_client):
    schema = staff_client.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/trading/trades",
        "/api/v1/trading/trades/{pair_id}/{index}",
        "/api/v1/trading/positions",
        "/api/v1/trading/orders",
        "/api/v1/trading/orders/{id}",
        "/api/v1/trading/orders/{id}/cancel",
        "/api/v1/prices",
        "/api/v1/prices/{pair}",
    ):
        assert path in schema["paths"], path
    post = schema["paths"]["/api/v1/trading/trades"]["post"]
    delete = schema["paths"]["/api/v1/trading/trades/{pair_id}/{index}"]["delete"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    # both shapes: the outcome the request waited for, and the pending 202 (Prefer: respond-async)
    for operation, done in ((post, "201"), (delete, "200")):
        assert {done, "202", "502", "504"} <= set(operation["responses"]), operation["responses"].keys()
        prefer = next(p for p in operation["parameters"] if p["name"] == "Prefer" and p["in"] == "header")
        assert {e["value"] for e in prefer["examples"].values()} == {"respond-async", "wait=5"}
        examples = {s: operation["responses"][s]["content"]["application/json"]["examples"] for s in (done, "202")}
        assert next(iter(examples["202"].values()))["value"]["status"] == "pending"
        assert next(iter(examples[done].values()))["value"]["status"] == ("success" if done == "201" else "closed")


@pytest.mark.django_db(transaction=True)
def test_a_placed_orders_response_is_stored_by_the_orders_own_statement(markets, trader, api):
    """Served outside a transaction (as the API runs), the 202 is stored with the order, in its
    INSERT's statement: no statement of its own; the replay answers it."""
    from django.test.utils import CaptureQueriesContext

    from trading.models import IdempotencyRecord

    with CaptureQueriesContext(connection) as queries:
        first = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="stored")
    assert first.status_code == 202, first.json()
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert updates == []  # the completion is a CTE of the order's INSERT
    record = IdempotencyRecord.objects.get(user=trader, key="stored")
    assert (record.status, record.response_status, record.response_body) == ("done", 202, first.json())
    replay = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="stored")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_trade_makes_no_statement_more_than_one_without_a_key(markets, trader, api):
    """The key rides the trade's two statements (the claim in the risk snapshot's read, the
    completion in the order's INSERT): as many statements as without a key, and the record holds
    the response served."""
    from django.test.utils import CaptureQueriesContext

    def statements(**headers):
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/api/v1/trading/trades", OPEN, format="json", **headers)
        assert response.status_code == 202, response.json()
        return response, [q["sql"] for q in queries.captured_queries if q["sql"] != "BEGIN"]

    statements(HTTP_IDEMPOTENCY_KEY="warm")  # the first request's look-ups, alike for both
    statements()
    served, keyed = statements(HTTP_IDEMPOTENCY_KEY="counted")
    _, plain = statements()
    assert len(keyed) == len(plain)
    touching = [sql.lstrip() for sql in keyed if "trading_idempotencyrecord" in sql]
    assert len(touching) == 2
    assert "FROM trading_position" in touching[0] and 'INSERT INTO "trading_order"' in touching[1]
    record = IdempotencyRecord.objects.get(user=trader, key="counted")
    assert (record.status, record.response_status) == ("done", served.status_code)
    assert record.response_body == served.json() and record.response_body["order_id"] == served.json()["order_id"]
    replay = api.post("/api/v1/trading/trades", OPEN, format="json", HTTP_IDEMPOTENCY_KEY="counted")
    assert replay.status_code == served.status_code and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == served.json()
    assert Order.objects.count() == 4


# --- the claim folded into the risk snapshot's read (served outside a transaction, as the API runs)


def _trade_key_record(user, key, body, **fields):
    """An Idempotency-Key record of a trade open with `body` (in progress unless `fields` say)."""
    from trading.services.idempotency import request_hash

    path = "/api/v1/trading/trades"
    return IdempotencyRecord.objects.create(
        user=user,
        key=key,
        method="POST",
        path=path,
        request_hash=request_hash(method="POST", path=path, body=body),
        **fields,
    )


def _post_with_key(api, body, key):
    return api.post("/api/v1/trading/trades", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db(transaction=True)
def test_the_key_is_claimed_by_the_risk_snapshots_read(markets, trader, api):
    """No statement of its own for the claim: the risk snapshot's read carries it, and the order's
    statement stores the 202."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        first = _post_with_key(api, OPEN, "folded")
    assert first.status_code == 202, first.json()
    statements = [q["sql"].lstrip() for q in queries.captured_queries]
    claims = [sql for sql in statements if "INSERT INTO trading_idempotencyrecord" in sql]
    assert len(claims) == 1 and claims[0].startswith("WITH") and "FROM trading_position" in claims[0]
    record = IdempotencyRecord.objects.get(user=trader, key="folded")
    assert (record.status, record.response_status, record.response_body) == ("done", 202, first.json())
    replay = _post_with_key(api, OPEN, "folded")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_replay_answers_the_stored_response_even_where_its_body_would_now_be_refused(markets, trader, api):
    """Validation runs before the deferred claim; when it fails, the key is claimed then, and a
    key already answered replays its answer, not this run's error."""
    bad = OPEN | {"leverage": "500"}  # 400 INVALID_ORDER before any read that could claim
    _trade_key_record(
        trader,
        "answered",
        bad,
        status=IdempotencyRecord.Status.DONE,
        response_status=202,
        response_body={"order_id": 7, "status": "pending"},
    )
    replay = _post_with_key(api, bad, "answered")
    assert replay.status_code == 202 and replay.json() == {"order_id": 7, "status": "pending"}
    assert replay["Idempotent-Replayed"] == "true"
    first = _post_with_key(api, bad, "fresh")  # a new key stores the error, and replays it
    again = _post_with_key(api, bad, "fresh")
    assert first.status_code == again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.get(key="fresh").response_body == first.json()


@pytest.mark.django_db(transaction=True)
def test_a_replayed_risk_denial_records_one_risk_rejected_event(markets, trader, api):
    from trading.models import RiskLimit

    RiskLimit.objects.create(instrument="BTC-USD", max_notional=D("500"))
    first = _post_with_key(api, OPEN, "denied")
    replay = _post_with_key(api, OPEN, "denied")
    assert first.status_code == replay.status_code == 422 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json() and first.json()["error"]["code"] == "RISK_MAX_NOTIONAL"
    assert Event.objects.filter(topic="risk.rejected").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_folded_claim_finding_the_key_held_is_409_reused_or_reclaimed(markets, trader, api):
    """In flight: 409 and no order; another body: 422; expired: claimed again and placed."""
    from datetime import timedelta

    from django.utils import timezone

    _trade_key_record(trader, "busy", OPEN)
    busy = _post_with_key(api, OPEN, "busy")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "IDEMPOTENCY_IN_PROGRESS"
    other = _post_with_key(api, OPEN | {"leverage": "5"}, "busy")
    assert other.status_code == 422 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert not Order.objects.exists()
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = _post_with_key(api, OPEN, "busy")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again
    assert Order.objects.count() == 1 and IdempotencyRecord.objects.get(key="busy").status == "done"


@pytest.mark.django_db
def test_slippage_and_price_band_refusals_speak_the_request_s_percentages(markets, trader, api):
    """`slippage_percentage` is in percent; the limits are fractions. A refusal of 1000 % read
    `requested: "10", limit: "0.05"` — as if 10 % had been asked against 0.05 %."""
    refused = api.post("/api/v1/trading/trades", {**OPEN, "slippage_percentage": "1000"}, format="json")
    error = refused.json()["error"]
    assert refused.status_code == 422 and error["code"] == "RISK_MAX_SLIPPAGE"
    assert error["message"] == "Requested slippage tolerance 1000 % exceeds the limit 5 %."
    assert (error["details"]["requested_percentage"], error["details"]["limit_percentage"]) == ("1000", "5")
    assert (error["details"]["requested"], error["details"]["limit"]) == ("10", "0.05")
    refused = api.post("/api/v1/trading/trades", {**OPEN, "order_type": "LIMIT", "price": "1"}, format="json")
    error = refused.json()["error"]
    assert refused.status_code == 422 and error["code"] == "RISK_PRICE_BAND"
    assert error["message"] == "price is too far from the reference price 60000: more than 10 % away."
    assert (error["details"]["band"], error["details"]["band_percentage"]) == ("0.1", "10")
