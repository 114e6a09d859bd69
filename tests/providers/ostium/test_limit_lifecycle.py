"""A resting Ostium limit open's life, read by the adapter from the trading contract's logs
(placement, keeper triggers, cancel, a later limit in the same slot) and the subgraph's
orders by id, on the localnet: no field of the subgraph's `Limit` entity is needed."""

from __future__ import annotations

import json
from decimal import Decimal as D

import httpx
import pytest

from providers.interface import ErrorCode, ExecStatus, OpenTradeRequest, Side, VenueOrderKind
from providers.models import OstiumOrder

pytestmark = pytest.mark.django_db


def _limit(key="l-1", price="64000"):
    return OpenTradeRequest(
        idempotency_key=key,
        account="user:1",
        symbol="BTC-USD",
        side=Side.LONG,
        collateral=D("100"),
        leverage=D("10"),
        kind=VenueOrderKind.LIMIT,
        limit_price=D(price),
    )


def _status(venue, key):
    return venue.get_order_status(idempotency_key=key)


@pytest.fixture
def proxied(ostium, http_sandbox, settings):
    """`proxied(subgraph=answer, rpc=answer)`: a fresh venue (BTC-USD at 65,000), reading the
    subgraph and/or the chain through sandboxes in front of the localnet's (see conftest) when
    given; writes go straight on."""
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.client import clients_reset

    def start(*, subgraph=None, rpc=None):
        if subgraph is not None:
            settings.OSTIUM_SUBGRAPH_URL = http_sandbox(ostium.subgraph_url, subgraph)
        if rpc is not None:
            settings.OSTIUM_SUBMIT_RPC_URL = ostium.rpc_url
            settings.OSTIUM_RPC_URL = http_sandbox(ostium.rpc_url, rpc)
        clients_reset()
        ostium.set_price("BTC-USD", "65000")
        return OstiumVenue()

    yield start
    clients_reset()


def _no_limit_entity(body: bytes):
    """A subgraph without the `Limit` fields we once read: any `limits` query is refused."""
    if b"limits" in body:
        return {"errors": [{"message": "Type `Query` has no field `limits`"}]}
    return None


def _cancel_at_venue(ostium, row):
    sdk = ostium.sdk(ostium.traders[0].private_key)
    info = row.result["limit"]
    assert sdk.ostium.cancel_limit_order(int(info["pair_id"]), int(info["index"]))["status"] == 1


def test_fill_and_cancel_are_read_from_the_chain_not_the_subgraph_limit(ostium, proxied):
    venue = proxied(subgraph=_no_limit_entity)
    assert venue.open_trade(_limit("l-1")).status == ExecStatus.PENDING
    row = OstiumOrder.objects.get(idempotency_key="l-1")
    assert row.venue_order_id == f"limit:{row.tx_hash}" and row.result["limit"]["index"] == "0"
    assert _status(venue, "l-1").status == ExecStatus.PENDING  # resting: the price has not come
    assert ostium.run_keeper() == []

    ostium.set_price("BTC-USD", "63500")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    filled = _status(venue, "l-1")
    assert filled.status == ExecStatus.FILLED, filled.error
    assert filled.fill.price == D("63500") and filled.trade_index == "0"
    row.refresh_from_db()
    assert row.status == "executed" and [e["event"] for e in row.limit_scan["events"]] == ["placed", "triggered"]

    # a second limit takes slot 0 again (the first one left it); cancelled at the venue
    ostium.set_price("BTC-USD", "65000")
    assert venue.open_trade(_limit("l-2", price="62000")).status == ExecStatus.PENDING
    second = OstiumOrder.objects.get(idempotency_key="l-2")
    assert second.result["limit"]["index"] == "0"
    assert _status(venue, "l-2").status == ExecStatus.PENDING
    _cancel_at_venue(ostium, second)
    cancelled = _status(venue, "l-2")
    assert cancelled.status == ExecStatus.CANCELLED and cancelled.error.code == ErrorCode.VENUE_CANCELLED
    assert _status(venue, "l-1").status == ExecStatus.FILLED  # the first is not confused with it


def test_a_trigger_the_callback_cancels_leaves_the_limit_resting_until_one_fills(ostium, proxied):
    venue = proxied()
    assert venue.open_trade(_limit("l-1")).status == ExecStatus.PENDING
    # the keeper triggers at 63900, but the price is back above the limit when it is answered
    ostium.set_price("BTC-USD", "63900")
    assert [a.kind for a in ostium.keeper.check_triggers()] == ["trigger"]
    assert _status(venue, "l-1").status == ExecStatus.PENDING  # the trigger is being priced
    ostium.set_price("BTC-USD", "64100")
    assert [a.kind for a in ostium.keeper.fulfill_pending()] == ["fulfill"]
    assert _status(venue, "l-1").status == ExecStatus.PENDING  # NotHit: still resting
    ostium.set_price("BTC-USD", "63800")
    assert [a.kind for a in ostium.run_keeper()] == ["trigger", "fulfill"]
    filled = _status(venue, "l-1")
    assert filled.status == ExecStatus.FILLED and filled.fill.price == D("63800")
    row = OstiumOrder.objects.get(idempotency_key="l-1")
    assert [e["event"] for e in row.limit_scan["events"]] == ["placed", "triggered", "triggered"]


def test_a_fill_the_subgraph_has_not_indexed_is_pending_then_filled(ostium, proxied):
    hide = {"orders": True}

    def lagging(body):
        return {"data": {"orders": []}} if hide["orders"] and b"GetOrder" in body else None

    venue = proxied(subgraph=lagging)
    assert venue.open_trade(_limit("l-1")).status == ExecStatus.PENDING
    ostium.set_price("BTC-USD", "63000")
    ostium.run_keeper()
    result = _status(venue, "l-1")
    assert result.status == ExecStatus.PENDING and result.error.code == ErrorCode.SUBGRAPH_LAGGING
    hide["orders"] = False
    assert _status(venue, "l-1").status == ExecStatus.FILLED


def _node(rpc_url: str, *, behind=lambda: 0, keep: int | None = None):
    """A JSON-RPC node in front of the localnet's: `behind()` blocks behind the chain (its head
    older, later blocks unknown), and keeping the state of its last `keep` blocks only, like a
    full node that is not an archive (None: every block). Its eth_calls at blocks it lacks fail
    as real nodes' do."""

    def chain_head() -> int:
        answer = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        return int(answer.json()["result"], 16)

    def answer(body: bytes):
        request = json.loads(body)
        if not isinstance(request, dict):
            return None
        method, params = request.get("method"), request.get("params") or []
        lag = behind()
        if method == "eth_blockNumber" and lag:
            return {"jsonrpc": "2.0", "id": request["id"], "result": hex(chain_head() - lag)}
        tag = params[1] if method == "eth_call" and len(params) > 1 else None
        if not (isinstance(tag, str) and tag.startswith("0x")):
            return None
        block, head = int(tag, 16), chain_head() - lag
        if block > head:
            message = "header not found"
        elif keep is not None and block < head - keep:
            message = "missing trie node"
        else:
            return None
        return {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32000, "message": message}}

    return answer


def test_the_logs_are_read_in_bounded_ranges_each_block_once(ostium, proxied, settings):
    settings.OSTIUM_LOG_BLOCK_RANGE = 3
    settings.OSTIUM_LOG_SCAN_RANGES = 2
    venue = proxied(rpc=_node(ostium.rpc_url, keep=2))
    assert venue.open_trade(_limit("l-1")).status == ExecStatus.PENDING
    row = OstiumOrder.objects.get(idempotency_key="l-1")
    placed = row.result["limit"]["block"]
    ostium.mine(10)
    head = ostium.w3.eth.block_number

    def scanned_to():
        return OstiumOrder.objects.get(pk=row.pk).limit_scan["to"]

    # not caught up: undecided (and the slot is not read at the old block a pruned node lacks)
    assert _status(venue, "l-1").status == ExecStatus.PENDING
    assert scanned_to() == placed + 5  # two ranges of three blocks
    polls = 0
    while scanned_to() < head:
        before = scanned_to()
        assert _status(venue, "l-1").status == ExecStatus.PENDING
        assert 0 < scanned_to() - before <= 6
        polls += 1
    assert polls >= 1
    ostium.set_price("BTC-USD", "63000")
    ostium.run_keeper()
    assert _status(venue, "l-1").status == ExecStatus.FILLED
    row.refresh_from_db()
    assert [e["event"] for e in row.limit_scan["events"]] == ["placed", "triggered"]  # each log once


def test_a_read_node_behind_is_waited_for(ostium, proxied):
    """Reads may go to another node than the one the transaction went through (OSTIUM_RPC_URL and
    OSTIUM_SUBMIT_RPC_URL), or to another node than the last read: one that has not seen the
    placing block, or the block read last, yet is not an anomaly."""
    behind = {"blocks": 0}
    venue = proxied(rpc=_node(ostium.rpc_url, behind=lambda: behind["blocks"]))
    assert venue.open_trade(_limit("l-1")).status == ExecStatus.PENDING
    behind["blocks"] = 3
    waiting = _status(venue, "l-1")
    assert waiting.status == ExecStatus.PENDING and waiting.error.code == ErrorCode.RPC_UNAVAILABLE
    behind["blocks"] = 0
    resting = _status(venue, "l-1")
    assert resting.status == ExecStatus.PENDING and resting.error is None
    # later reads land on nodes behind the last one: the slot is read at their own head
    ostium.mine(5)
    assert _status(venue, "l-1").status == ExecStatus.PENDING
    for blocks in (2, 7):  # past the last block read; before the placing block too
        behind["blocks"] = blocks
        assert _status(venue, "l-1").status == ExecStatus.PENDING, blocks
