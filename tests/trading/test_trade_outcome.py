"""Trade open / close answer with the venue's outcome (trading/api/outcome.py, docs/api.md):
against the live ASGI server with the real worker on the paper venue.

- no preference: the request waits for the outcome (201/200; 502 when the venue refuses);
- `Prefer: respond-async`: 202 pending at once, `Preference-Applied: respond-async`;
- the wait runs out (TRADE_SYNC_WAIT_SECONDS): 202 pending with the order as it stands;
- the venue's answer is lost (the order UNKNOWN until reconciled): 504 VENUE_TIMEOUT;
- an idempotent replay answers the outcome (the stored 202 goes through the same wait), or
  the stored 202 with `Prefer: respond-async`.
"""

from __future__ import annotations

import threading
from decimal import Decimal as D

import httpx
import pytest

from tests.conftest import wait_for
from trading.models import Order

pytestmark = [pytest.mark.celery]

OPEN = {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"}
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def http(ws_server, transactional_db, markets, trader, armed):
    from trading.tokens import access_encode

    token, _ = access_encode(user=trader)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{ws_server.port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _settled(order_id: int) -> str:
    return wait_for(
        lambda: (s := Order.objects.get(pk=order_id).status) in ("FILLED", "REJECTED") and s, what="order settled"
    )


def test_respond_async_answers_202_at_once_and_the_order_still_executes(http, celery_worker):
    placed = http.post("/api/v1/trading/trades", json=OPEN, headers=ASYNC)
    assert placed.status_code == 202, placed.text
    assert placed.headers["Preference-Applied"] == "respond-async"
    body = placed.json()
    assert body["status"] == "pending" and body["order_status"] == "ACCEPTED" and body["transaction_hash"] == ""
    assert _settled(body["order_id"]) == "FILLED"
    order = Order.objects.get(pk=body["order_id"])

    closed = http.delete(f"/api/v1/trading/trades/{order.pair_id}/{order.trade_index}", headers=ASYNC)
    assert closed.status_code == 202 and closed.headers["Preference-Applied"] == "respond-async", closed.text
    assert closed.json()["status"] == "pending"
    assert _settled(closed.json()["order_id"]) == "FILLED"


@pytest.fixture
def gated_venue():
    """The paper venue, whose opens wait until the test opens the gate."""
    from providers.paper.adapter import PaperVenue
    from providers.registry import venue_factory_register

    gate = threading.Event()
    inner = PaperVenue()

    class Gated:
        name = inner.name

        def __getattr__(self, item):
            return getattr(inner, item)

        def open_trade(self, request):
            gate.wait(30)
            return inner.open_trade(request)

    venue_factory_register("paper", Gated)
    yield gate
    gate.set()
    venue_factory_register("paper", PaperVenue)


def test_when_the_wait_runs_out_the_answer_is_202_pending_as_the_order_stands(
    http, celery_worker, settings, gated_venue
):
    settings.TRADE_SYNC_WAIT_SECONDS = 0.5
    placed = http.post("/api/v1/trading/trades", json=OPEN)
    assert placed.status_code == 202, placed.text
    assert "Preference-Applied" not in placed.headers
    body = placed.json()
    assert body["status"] == "pending" and body["order_status"] == "SUBMITTING", body
    gated_venue.set()  # the venue answers after the request's wait
    assert _settled(body["order_id"]) == "FILLED"


def test_a_venue_that_does_not_confirm_in_time_is_504_venue_timeout(http, celery_worker, counting_venue):
    counting_venue.fail_after_open = True  # the venue did the work but its answer was lost
    unknown = http.post("/api/v1/trading/trades", json=OPEN)
    assert unknown.status_code == 504, unknown.text
    error = unknown.json()["error"]
    assert error["code"] == "VENUE_TIMEOUT" and error["details"]["order_status"] == "UNKNOWN"


def test_a_venue_refusal_the_caller_waited_for_is_502_with_the_venues_code(http, celery_worker, trader):
    from providers.paper.engine import paper_account_set_balance

    paper_account_set_balance(name=f"user:{trader.pk}", balance=D("1"))  # the venue cannot take 100 USD
    refused = http.post("/api/v1/trading/trades", json=OPEN)
    assert refused.status_code == 502, refused.text
    error = refused.json()["error"]
    assert error["code"] == "TRADE_EXECUTION_FAILED"
    assert error["details"]["venue_code"] == "INSUFFICIENT_BALANCE"
    assert error["request_id"] == refused.headers["X-Request-ID"]
    assert Order.objects.get(pk=error["details"]["order_id"]).status == Order.Status.REJECTED


def test_an_idempotent_replay_answers_the_outcome_or_the_stored_202(http, celery_worker):
    key = {"Idempotency-Key": "sync-replay-1"}
    first = http.post("/api/v1/trading/trades", json=OPEN, headers=key | ASYNC)
    assert first.status_code == 202, first.text
    assert _settled(first.json()["order_id"]) == "FILLED"

    # the stored answer is the 202; asked again without the preference, the replay waits like
    # the first request would have (the order is settled: at once) and answers the outcome
    replay = http.post("/api/v1/trading/trades", json=OPEN, headers=key)
    assert replay.status_code == 201, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    body = replay.json()
    assert body["order_id"] == first.json()["order_id"] and body["status"] == "success"
    assert body["transaction_hash"].startswith("0x") and isinstance(body["trade_index"], int)

    # with the preference: the stored 202
    stored = http.post("/api/v1/trading/trades", json=OPEN, headers=key | ASYNC)
    assert stored.status_code == 202 and stored.headers["Idempotent-Replayed"] == "true", stored.text
    assert stored.json() == first.json()
    assert Order.objects.filter(order_type="MARKET", reduce_only=False).count() == 1  # one order, not two


def test_prefer_wait_shortens_the_servers_wait(http, celery_worker, settings, gated_venue):
    """`Prefer: wait=1` (RFC 7240): the answer comes after the client's bound, not the server's
    (here 120 s, four times the client's own 30 s timeout: a request that waited for it fails)."""
    settings.TRADE_SYNC_WAIT_SECONDS = 120
    placed = http.post("/api/v1/trading/trades", json=OPEN, headers={"Prefer": "wait=1"})
    assert placed.status_code == 202, placed.text
    assert placed.headers["Preference-Applied"] == "wait=1"
    assert placed.json()["order_status"] == "SUBMITTING"
    gated_venue.set()
    assert _settled(placed.json()["order_id"]) == "FILLED"


def test_prefer_parsing():
    from django.test import RequestFactory

    from trading.api.outcome import respond_async, wait_preferred

    def request(prefer):
        return RequestFactory().post("/", HTTP_PREFER=prefer)

    assert respond_async(request("respond-async")) and respond_async(request('wait=5, Respond-Async; x="y"'))
    assert not respond_async(request("wait=5")) and not respond_async(request("respond-asynchronously"))
    assert wait_preferred(request("respond-async, wait=7")) == 7
    assert wait_preferred(request("wait=²")) is None and wait_preferred(request("wait=-1")) is None
    assert wait_preferred(request("handling=lenient")) is None
