"""`/ws`: subscriptions, per-user isolation, marks, malformed messages — real server, real client."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosed

from providers.interface import PriceTick
from tests.realtime.conftest import make_token, record, recv, recv_until, send, subscribe, ws_connect
from trading.realtime.publish import publish_position_marks, publish_price_tick


def tick(symbol="BTC-USD", price="65000.5", **kw):
    return PriceTick(
        symbol=symbol, price=Decimal(price), timestamp=datetime.now(UTC), source="paper", **{"venue": "paper", **kw}
    )


def test_price_subscribe_receives_ticks_of_its_pairs_only_and_unsubscribe_stops_them(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        ack = subscribe(ws, "prices", {"pairs": ["btc/usd", "ETH-USD"]})
        assert ack["type"] == "subscribed" and ack["data"] == {"pairs": ["BTC-USD", "ETH-USD"]}

        publish_price_tick(tick("SOL-USD", "150"))
        publish_price_tick(tick("BTC-USD", "65000.50", bid=Decimal("65000.25"), ask=Decimal("65000.75")))
        update = recv(ws)
        assert update["type"] == "price_update" and update["channel"] == "prices"
        assert update["data"]["pair"] == "BTC-USD"
        assert (update["data"]["price"], update["data"]["bid"], update["data"]["ask"]) == (
            "65000.50",
            "65000.25",
            "65000.75",
        )
        assert update["timestamp"].endswith("Z")

        send(ws, {"type": "unsubscribe", "channel": "prices", "data": {"pairs": ["BTC-USD"]}})
        assert recv(ws)["data"] == {"pairs": ["ETH-USD"]}
        publish_price_tick(tick("BTC-USD", "1"))
        publish_price_tick(tick("ETH-USD", "3000"))
        assert recv(ws)["data"]["pair"] == "ETH-USD"  # the BTC tick sent before it never came


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the websocket transport
def test_trade_updates_reach_only_their_own_user(ws_server, make_user):
    alice, bob = make_user(), make_user()
    with ws_connect(ws_server, token=make_token(alice)) as a, ws_connect(ws_server, token=make_token(bob)) as b:
        subscribe(a, "trades")
        subscribe(b, "trades")
        record("trade.opened", user=bob, aggregate_type="trade", aggregate_id="t-bob", pair="BTC-USD")
        record("order.filled", user=alice, aggregate_type="order", aggregate_id="o-alice", trade_id="t-alice")

        got = recv(a)
        assert got["type"] == "trade_update" and got["channel"] == "trades"
        assert got["data"]["topic"] == "order.filled" and got["data"]["payload"]["user_id"] == alice.pk
        assert got["data"]["aggregateId"] == "o-alice"
        assert recv(b)["data"]["aggregateId"] == "t-bob"

        # a marker for alice after bob's event: had bob's event reached her, it came first
        record("trade.closed", user=alice, aggregate_type="trade", aggregate_id="t-alice")
        assert recv(a)["data"]["topic"] == "trade.closed"


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the websocket transport
def test_trade_updates_carry_the_seed_fields(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user), via="header", origin=None) as ws:
        subscribe(ws, "trades")
        record("order.filled", user=user, aggregate_id="9", trade_id=None, transaction_hash="0xab", entry_price="45000")
        record("trade.opened", user=user, aggregate_type="trade", aggregate_id="12", entry_price="45000.5")
        record("trade.closed", user=user, aggregate_type="trade", aggregate_id="12", transaction_hash="0xcd")
        got = [recv(ws)["data"] for _ in range(3)]
        seed = [{k: d[k] for k in ("trade_id", "status", "transaction_hash", "entry_price")} for d in got]
        assert seed == [
            {"trade_id": None, "status": "executed", "transaction_hash": "0xab", "entry_price": "45000"},
            {"trade_id": 12, "status": "executed", "transaction_hash": None, "entry_price": "45000.5"},
            {"trade_id": 12, "status": "closed", "transaction_hash": "0xcd", "entry_price": None},
        ]
        assert got[0]["topic"] == "order.filled" and got[0]["payload"]["user_id"] == user.pk  # the ledger's too


@pytest.mark.ledger_drift  # made-up order and trade events (no rows): a test of the websocket transport
def test_trade_ids_filter_and_other_user_channels(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user), via="subprotocol") as ws:
        assert ws.subprotocol == "bearer"
        assert subscribe(ws, "trades", {"trade_ids": ["t-2"]})["data"] == {"trade_ids": ["t-2"]}
        subscribe(ws, "positions")
        subscribe(ws, "deposits")
        record("trade.opened", user=user, aggregate_type="trade", aggregate_id="t-1")
        record("order.filled", user=user, aggregate_type="order", aggregate_id="o-9", trade_id="t-2")
        record("position.updated", user=user, aggregate_type="position", aggregate_id="p-1", size="2")
        record("deposit.completed", user=user, aggregate_type="deposit", aggregate_id="d-1", amount="100.00")
        record("risk.rejected", user=user, aggregate_type="order", aggregate_id="o-10")

        kinds = [(m["type"], m["data"]["aggregateId"]) for m in (recv(ws), recv(ws), recv(ws))]
        assert kinds == [("trade_update", "o-9"), ("position_update", "p-1"), ("deposit_update", "d-1")]

        send(ws, {"type": "unsubscribe", "channel": "deposits"})
        assert recv(ws)["type"] == "unsubscribed"
        record("deposit.completed", user=user, aggregate_type="deposit", aggregate_id="d-2")
        record("position.liquidated", user=user, aggregate_type="position", aggregate_id="p-1")
        assert recv(ws)["data"]["topic"] == "position.liquidated"


def test_position_marks_go_to_the_user_subscribed_to_positions(ws_server, make_user):
    alice, bob = make_user(), make_user()
    mark = {
        "position_id": "p-1",
        "pair": "BTC-USD",
        "side": "long",
        "size": Decimal("0.5"),
        "entry_price": Decimal("60000"),
        "current_price": Decimal("61000.5"),
        "unrealized_pnl": Decimal("500.25"),
    }
    with ws_connect(ws_server, token=make_token(alice)) as a, ws_connect(ws_server, token=make_token(bob)) as b:
        subscribe(a, "positions")
        subscribe(b, "positions")
        publish_position_marks(alice.pk, [mark])
        publish_position_marks(bob.pk, [{**mark, "position_id": "p-b"}])
        update = recv(a)
        assert update["type"] == "position_update" and update["data"]["reason"] == "mark"
        assert update["data"]["current_price"] == "61000.5" and update["data"]["unrealized_pnl"] == "500.25"
        assert recv(b)["data"]["position_id"] == "p-b"
        publish_position_marks(alice.pk, [{**mark, "current_price": Decimal("62000")}])
        assert recv(a)["data"]["current_price"] == "62000"


def test_malformed_messages_get_errors_and_the_connection_stays_usable(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        cases = [
            ("{not json", "bad_json"),
            ("[1, 2]", "bad_message"),
            ({"type": "dance"}, "unknown_type"),
            ({"type": "subscribe", "channel": "weather"}, "unknown_channel"),
            ({"type": "subscribe", "channel": "prices", "data": {"pairs": "BTC-USD"}}, "invalid_pairs"),
            ({"type": "subscribe", "channel": "prices", "data": {"pairs": ["$$$"]}}, "invalid_pairs"),
            ({"type": "subscribe", "channel": "prices", "data": []}, "bad_message"),
            ({"type": "subscribe", "channel": "trades", "data": {"trade_ids": "x"}}, "invalid_trade_ids"),
        ]
        for message, code in cases:
            send(ws, message)
            reply = recv(ws)
            assert (reply["type"], reply["data"]["code"]) == ("error", code), message
        ws.send(b"\x00binary")
        assert recv(ws)["data"]["code"] == "bad_message"
        send(ws, {"type": "ping"})
        assert recv(ws)["type"] == "pong"


def test_subscription_limit(ws_server, make_user, settings):
    settings.REALTIME_MAX_PAIRS = 3
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        assert subscribe(ws, "prices", {"pairs": ["A-USD", "B-USD"]})["type"] == "subscribed"
        refused = subscribe(ws, "prices", {"pairs": ["C-USD", "D-USD"]})
        assert refused["type"] == "error" and refused["data"]["code"] == "too_many_subscriptions"
        assert subscribe(ws, "prices", {"pairs": ["B-USD", "C-USD"]})["data"]["pairs"] == ["A-USD", "B-USD", "C-USD"]


def test_flooding_client_gets_errors_then_is_closed(ws_server, make_user, settings):
    settings.REALTIME_RATE_LIMIT = 5
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        replies = []
        code = None
        try:
            for _ in range(30):  # the server may close before all 30 are sent
                send(ws, {"type": "ping"})
            while True:
                replies.append(recv(ws))
        except ConnectionClosed as exc:
            code = exc.rcvd.code
        assert code == 4429
        # what was read before the close (the client library may drop frames queued behind a
        # failed send): pongs while under the limit, then the rate_limited error
        assert all(m["type"] == "pong" for m in replies[:5])
        assert all(m["type"] in ("pong", "error") for m in replies)
        assert all(m["data"]["code"] == "rate_limited" for m in replies if m["type"] == "error")


def test_ping_pong_reports_stats(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        send(ws, {"type": "stats"})
        stats = recv_until(ws, lambda m: m["type"] == "stats")
        assert stats["data"]["dropped"] == {} and stats["data"]["queueSize"] > 0


@pytest.mark.celery
def test_the_celery_worker_publishes_committed_events_to_the_client(celery_worker, ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user)) as ws:
        subscribe(ws, "deposits")
        # no explicit dispatch: the commit kicks the outbox task, the worker publishes
        event = record("deposit.completed", user=user, aggregate_type="deposit", aggregate_id="d-7", dispatch=False)
        update = recv(ws, timeout=30)
        assert update["type"] == "deposit_update" and update["data"]["eventId"] == event.id


def test_prices_by_the_seeds_pair_names(ws_server, make_user, paper_markets):
    """Seed 003 §4.6.2: subscribe with BTCUSDT, ETHUSDT, EURUSD; each tick comes under the name
    the client used (twice when it asked for one market by two names)."""
    with ws_connect(ws_server, token=make_token(make_user()), via="header", origin=None) as ws:
        ack = subscribe(ws, "prices", {"pairs": ["BTCUSDT", "ETHUSDT", "EURUSD", "BTC-USD"]})
        assert ack["type"] == "subscribed", ack
        assert ack["data"] == {"pairs": ["BTC-USD", "BTCUSDT", "ETHUSDT", "EURUSD"]}
        publish_price_tick(tick("EUR-USD", "1.085"))
        got = recv(ws)["data"]
        assert (got["pair"], got["price"]) == ("EURUSD", "1.085") and got["timestamp"] and got["source"]
        publish_price_tick(tick("BTC-USD", "45000"))
        assert sorted(recv(ws)["data"]["pair"] for _ in range(2)) == ["BTC-USD", "BTCUSDT"]

        send(ws, {"type": "unsubscribe", "channel": "prices", "data": {"pairs": ["BTCUSDT"]}})
        assert recv(ws)["data"] == {"pairs": ["BTC-USD", "ETHUSDT", "EURUSD"]}
        publish_price_tick(tick("BTC-USD", "45001"))
        assert recv(ws)["data"]["pair"] == "BTC-USD"

        assert subscribe(ws, "prices", {"pairs": ["NOPEUSDT"]})["data"]["code"] == "invalid_pairs"
