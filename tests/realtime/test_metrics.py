"""Websocket connections on /metrics: counted while open, per endpoint (a live gauge in
prometheus_client's multiprocess mode), back down when the client leaves."""

from tests.conftest import wait_for
from tests.realtime.conftest import make_token, subscribe, ws_connect
from tests.trading.test_metrics import TOKEN, samples, value


def test_websocket_connections_are_counted_while_open(ws_server, make_user, client, settings):
    settings.METRICS_TOKEN = TOKEN

    def open_connections() -> float:
        scraped = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
        return value(samples(scraped), "tradedesk_websocket_connections", path="ws")

    before = open_connections()
    with ws_connect(ws_server, token=make_token(make_user())) as ws:
        assert subscribe(ws, "prices", {"pairs": ["BTC-USD"]})["type"] == "subscribed"
        wait_for(lambda: open_connections() == before + 1, what="the connection counted")
    wait_for(lambda: open_connections() == before, what="the connection no longer counted")
