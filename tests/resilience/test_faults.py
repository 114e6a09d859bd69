"""Fault injection against a running desk (web, worker, Beat under the `make run` supervisor):
its own Redis restarted and stopped for 20 s, its own PostgreSQL stopped for 20 s, and the
worker SIGKILLed while a venue call is in flight. After each: every process is still up (none
exited: the supervisor saw no exit), `/ready` is back to 200, websockets deliver, and nothing
accepted is lost."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import wait_for
from tests.resilience.desk import ROOT, next_frame, order_status, place_order, ws_connect

OUTAGE = 20  # seconds a service stays down

pytestmark = pytest.mark.timeout(600)


def _after(moment: datetime):
    """A `price_update` frame for a tick taken after `moment`."""

    def check(frame):
        if frame.get("type") != "price_update":
            return False
        return datetime.fromisoformat(frame["data"]["timestamp"].replace("Z", "+00:00")) > moment

    return check


def _subscribed_to_prices(desk, token, pair="BTC-USD"):
    ws = ws_connect(desk, token)
    ws.send(json.dumps({"type": "subscribe", "channel": "prices", "data": {"pairs": [pair]}}))
    assert next_frame(ws, lambda f: f["type"] == "price_update", 15), "no price tick before the fault"
    return ws


def _error(response) -> dict:
    return response.json()["error"]


def _unavailable(response) -> bool:
    if response.status_code != 503:
        return False
    error = _error(response)
    return error["code"] == "SERVICE_UNAVAILABLE" and error["details"]["retryable"] is True


def _filled(desk, token, order_id, timeout=45):
    filled = lambda: order_status(desk, token, order_id) == "FILLED"  # noqa: E731
    return wait_for(filled, timeout, 0.25, what=f"order {order_id} FILLED")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_a_redis_restart_during_a_websocket_session(live_desk, desk_user):
    desk, (_email, token) = live_desk, desk_user
    ws = _subscribed_to_prices(desk, token)
    ws.send(json.dumps({"type": "subscribe", "channel": "trades"}))
    with ws:
        desk.stop_redis()
        desk.start_redis()
        back = datetime.now(UTC)

        # the same session gets ticks again (the price hub rejoined its groups) ...
        assert next_frame(ws, _after(back), 10), "no price_update within 10 s of Redis coming back"
        # ... and its own subscriptions too (the user's group): an order's events arrive
        desk.wait_ready(30)
        placed = place_order(desk, token)
        assert placed.status_code == 202, placed.text
        order_id = str(placed.json()["order_id"])
        event = next_frame(ws, lambda f: f["type"] == "trade_update" and f["data"]["aggregateId"] == order_id, 20)
        assert event, "no trade_update for an order placed after the restart"
    assert desk.exits() == [], desk.log_text()[-4000:]


def test_redis_down_for_20_seconds(live_desk, desk_user):
    desk, (_email, token) = live_desk, desk_user
    with desk.client(token) as c:
        orders_before = c.get("/api/v1/trading/orders").json()["count"]
    key = uuid.uuid4().hex

    desk.stop_redis()
    down_until = time.monotonic() + OUTAGE
    try:
        time.sleep(2)
        with desk.client(token) as c:
            listed = c.get("/api/v1/trading/orders")
            assert listed.status_code == 200, listed.text  # a database-only read keeps working
            assert listed.json()["count"] == orders_before
            assert c.get("/api/v1/trading/positions").status_code == 200  # (marks as stored)
            price = c.get("/api/v1/prices/BTC-USD")
            assert _unavailable(price), price.text  # the price cache is Redis
            assert price.headers["Retry-After"]
        refused = place_order(desk, token, key=key)
        assert _unavailable(refused), refused.text  # its rate limit cannot be counted: refused
        assert desk.ready()[0] == 503
        assert httpx.get(f"{desk.base}/health").status_code == 200
    finally:
        _sleep_until(down_until)
        desk.start_redis()

    desk.wait_ready(60)
    with desk.client(token) as c:
        assert c.get("/api/v1/trading/orders").json()["count"] == orders_before  # nothing half-written
    accepted = place_order(desk, token, key=key)  # the same request, sent again
    assert accepted.status_code == 202, accepted.text
    _filled(desk, token, accepted.json()["order_id"])
    with _subscribed_to_prices(desk, token):
        pass
    assert desk.exits() == [], desk.log_text()[-4000:]


class _LateBeat:
    """Another Beat, started while the database is down, sending to a queue nobody reads."""

    def __init__(self, desk):
        env = {**desk.env, "CELERY_QUEUE": f"late-beat-{uuid.uuid4().hex[:6]}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO", "--pidfile", ""],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"Beat did not stop on SIGTERM:\n{self.output()[-3000:]}") from None


def test_connections_the_server_dropped_are_not_handed_to_a_request(live_desk, desk_user):
    """PostgreSQL ends every idle session (as a restart does): the web processes' pooled
    connections are dead while they wait, and each is checked and replaced before a request
    gets it, so no request answers 503 for a connection that broke while nobody used it."""
    desk, (_email, token) = live_desk, desk_user
    with desk.client(token) as c:
        for _ in range(4):  # every web process has used (and pooled) a connection
            assert c.get("/api/v1/trading/orders").status_code == 200
    ended = desk.shell(
        "from django.db import connection\n"
        "with connection.cursor() as cur:\n"
        '    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "\n'
        "                \"datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'\")\n"
        "    print('ended', cur.fetchone()[0])\n"
    )
    assert int(ended.split()[-1]) >= 1, ended
    with desk.client(token) as c:
        answers = [c.get("/api/v1/trading/orders").status_code for _ in range(8)]
    assert answers == [200] * 8, answers
    placed = place_order(desk, token)
    assert placed.status_code == 202, placed.text
    _filled(desk, token, placed.json()["order_id"])
    assert desk.exits() == [], desk.log_text()[-4000:]


def test_postgres_down_for_20_seconds(live_desk, desk_user):
    desk, (_email, token) = live_desk, desk_user
    placed = place_order(desk, token)  # accepted just before the outage
    assert placed.status_code == 202, placed.text

    desk.stop_postgres()
    down_until = time.monotonic() + OUTAGE
    late_beat, stopped_beat = _LateBeat(desk), _LateBeat(desk)
    try:
        try:
            time.sleep(3)
            with desk.client(token) as c:
                listed = c.get("/api/v1/trading/orders")
                assert _unavailable(listed), listed.text
            assert desk.ready()[0] == 503
            assert httpx.get(f"{desk.base}/health").status_code == 200
            for beat in (late_beat, stopped_beat):
                wait_for(lambda b=beat: "schedule paused" in b.output(), OUTAGE, what="a late Beat waiting")
            stopped_beat.stop()  # a Beat waiting for the database still stops when told
        finally:
            _sleep_until(down_until)
            desk.start_postgres()

        desk.wait_ready(60)
        _filled(desk, token, placed.json()["order_id"])  # accepted before: not lost
        again = place_order(desk, token)  # and the desk trades again
        assert again.status_code == 202, again.text
        _filled(desk, token, again.json()["order_id"])
        wait_for(lambda: "schedule resumed" in late_beat.output(), 30, what="the late Beat resuming")
        assert late_beat.proc.poll() is None, late_beat.output()[-3000:]
    finally:
        late_beat.stop()
        if stopped_beat.proc.poll() is None:
            stopped_beat.stop()
    # The desk's own Beat says both too (its lines reach the log through the supervisor's pipe,
    # which a loaded machine may deliver a little after the late Beat's)
    wait_for(
        lambda: "schedule paused" in desk.log_text() and "schedule resumed" in desk.log_text(),
        30,
        what="the desk's Beat pausing and resuming",
    )
    assert desk.exits() == [], desk.log_text()[-4000:]


def _ostium_route(desk, asset: str, *, on: bool) -> None:
    if on:
        code = (
            "from providers.models import ProviderRoute\n"
            "from trading.services.control import control_arm\n"
            f"ProviderRoute.objects.create(match_type='symbol', value='{asset}', venue='ostium')\n"
            "control_arm(component='executor:ostium', actor='test', reason='resilience: worker kill')\n"
        )
    else:
        code = (
            "from providers.models import ProviderRoute\n"
            "from trading.services.control import control_disarm\n"
            f"ProviderRoute.objects.filter(value='{asset}').delete()\n"
            "control_disarm(component='executor:ostium', actor='test', reason='resilience: done')\n"
        )
    desk.shell(code)


def test_worker_killed_while_a_venue_call_is_in_flight(live_desk, desk_user):
    """The Ostium open is broadcast to the chain, and the answer withheld: the worker is
    SIGKILLed waiting for it. The order's outcome is unknown (SUBMITTING, its command without
    a result); the supervisor starts a new worker and reconciliation finds the transaction on
    chain by the signer's nonce: FILLED, from the one submission, never a second one."""
    desk, (_email, token) = live_desk, desk_user
    asset = "ETH-USD"
    with desk.client(token) as c:
        desk.net.set_price(asset, c.get(f"/api/v1/prices/{asset}").json()["price"])
    _ostium_route(desk, asset, on=True)
    trading = desk.net.addresses.trading
    desk.rpc.hold_to = trading
    try:
        placed = place_order(desk, token, asset=asset)
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["order_id"]
        assert desk.rpc.holding.wait(60), desk.log_text()[-4000:]  # the open is on its way to the chain

        assert order_status(desk, token, order_id) == "SUBMITTING"  # outcome unknown
        worker = desk.supervisor.pid("worker")
        os.killpg(worker, signal.SIGKILL)
        wait_for(lambda: desk.exits() == [("worker", -signal.SIGKILL)], 10, what="the supervisor saw the kill")
        wait_for(lambda: desk.supervisor.pid("worker") not in (None, worker), 15, what="a new worker")
        assert order_status(desk, token, order_id) in ("SUBMITTING", "UNKNOWN")
    finally:
        desk.rpc.hold_to = None
        desk.rpc.release.set()  # (the killed worker's connection is gone: nobody reads it)

    try:
        _filled(desk, token, order_id, timeout=90)
        with desk.client(token) as c:
            order = c.get(f"/api/v1/trading/orders/{order_id}").json()
        assert order["status"] == "FILLED"
        opens = [to for to in desk.rpc.submissions if to == trading.lower()]
        assert len(opens) == 1, desk.rpc.submissions  # one submission: never a second
        topics = [e["topic"] for e in order["events"]]
        assert topics.count("order.submitting") == 1 and topics.count("order.filled") == 1, topics
        desk.wait_ready(60)
    finally:
        _ostium_route(desk, asset, on=False)
    desk.supervisor.exits.clear()  # (the one exit, ours)
