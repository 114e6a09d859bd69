"""Slow clients: market data is dropped oldest-first and counted, ledger updates never are,
and a client that stops reading is closed with 4408 — real server, real sockets."""

import socket
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from providers.interface import PriceTick
from tests.conftest import wait_for
from tests.realtime.conftest import close_code, make_token, record, recv, send, subscribe, ws_connect
from trading.outbox import outbox_dispatch
from trading.realtime.connection import live_connections
from trading.realtime.publish import publish_price_tick


def slow_socket(server) -> socket.socket:
    """A client socket with a tiny receive buffer, so a client that stops reading pushes
    back on the server quickly instead of after megabytes of kernel buffering."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    return sock


def connection_of(user, endpoint="ws"):
    found = [c for c in live_connections() if c.user is not None and c.user.pk == user.pk and c.endpoint == endpoint]
    return found[0] if found else None


def tick(price, symbol="BTC-USD"):
    # a long source name makes big frames, which fill the socket buffers sooner
    return PriceTick(
        symbol=symbol, price=Decimal(price), timestamp=datetime.now(UTC), source="paper" + "-" * 2000, venue="paper"
    )


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the websocket transport
@pytest.mark.slow
def test_slow_reader_loses_old_prices_counted_but_never_an_order_update(ws_server, make_user, settings):
    settings.REALTIME_SEND_QUEUE_SIZE = 40
    settings.REALTIME_STATS_INTERVAL = 0
    user = make_user()
    ws = ws_connect(ws_server, token=make_token(user), sock=slow_socket(ws_server), max_queue=2, ping_interval=None)
    with ws:
        subscribe(ws, "prices", {"pairs": ["BTC-USD"]})
        subscribe(ws, "trades")
        conn = wait_for(lambda: connection_of(user))

        # given a client that stops reading while ticks keep coming
        published = 0

        def flood():
            nonlocal published
            for _ in range(50):
                published += 1
                publish_price_tick(tick(published))
            return conn.queue.dropped.get("prices", 0) > 0

        wait_for(flood, timeout=120, interval=0)
        # when order updates arrive behind a queue full of prices
        orders = [record("order.filled", user=user, aggregate_id=f"o-{n}", dispatch=False).id for n in range(25)]
        outbox_dispatch()
        published += 1
        final_price = published
        publish_price_tick(tick(final_price))

        # then, reading again, every order update arrives, in order; old prices were dropped
        updates, prices = [], []
        while len(updates) < len(orders) or not prices or prices[-1] != final_price:
            message = recv(ws)
            if message["type"] == "trade_update":
                updates.append(message["data"]["eventId"])
            elif message["type"] == "price_update":
                prices.append(int(message["data"]["price"]))
        assert updates == orders
        assert prices == sorted(prices)  # oldest dropped first: what is left is in order
        send(ws, {"type": "stats"})
        stats = recv(ws)
        assert stats["type"] == "stats"
        dropped = stats["data"]["dropped"]["prices"]
        assert dropped > 0 and dropped + len(prices) == published
        assert "ledger" not in stats["data"]["dropped"]


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the websocket transport
@pytest.mark.slow
def test_a_client_that_stops_reading_order_updates_is_closed_with_4408(ws_server, make_user, settings):
    settings.REALTIME_SEND_QUEUE_SIZE = 20
    user = make_user()
    ws = ws_connect(ws_server, token=make_token(user), sock=slow_socket(ws_server), max_queue=2, ping_interval=None)
    with ws:
        subscribe(ws, "trades")
        conn = wait_for(lambda: connection_of(user))
        padding = "x" * 16_000  # big frames fill the socket buffers sooner

        def flood():
            for n in range(10):
                record("order.filled", user=user, dispatch=False, n=n, note=padding)
            outbox_dispatch()
            return conn.closing

        wait_for(flood, timeout=120, interval=0)
        # the client reads again: whatever was already on the wire, then the close
        messages = []
        code = close_code_collecting(ws, messages)
        assert code == 4408
        assert messages[-1]["type"] == "error" and messages[-1]["data"]["code"] == "too_slow"
        assert all(m["type"] == "trade_update" for m in messages[:-1])
    wait_for(lambda: connection_of(user) is None)


def close_code_collecting(ws, into: list) -> int:
    import json

    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            into.append(json.loads(ws.recv(timeout=deadline - time.monotonic())))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
    return close_code(ws)
