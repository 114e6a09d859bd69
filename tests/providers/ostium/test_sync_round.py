"""One round of the Ostium poller (`ostium_sync`) on the localnet: its reads come first, and
the timeout writes it sends last stop at the first one the signer cannot take (busy with
another write), so a busy signer neither holds the round's settlements back nor costs a lock
wait per stale order."""

from __future__ import annotations

import logging
from decimal import Decimal as D

import pytest

from providers.interface import ExecStatus, VenueOrderKind
from providers.models import OstiumOrder
from providers.ostium.localnet.deploy import MARKET_ORDERS_TIMEOUT_BLOCKS
from tests.providers.ostium.test_adapter_errors import _open
from tests.providers.ostium.test_limit_lifecycle import _cancel_at_venue

pytestmark = pytest.mark.django_db


@pytest.fixture
def executor_armed(db):
    from trading.services.control import control_arm

    control_arm(component="executor:ostium", actor="test", reason="the poller may send timeouts")


def test_a_busy_signer_defers_the_timeouts_not_the_settlements(ostium, settings, caplog, executor_armed):
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.client import _signer_lock
    from providers.ostium.sync import ostium_sync

    ostium.set_price("BTC-USD", "65000")
    venue = OstiumVenue()
    # two market opens the keeper never answers, and a limit the trader cancels at the venue
    for key in ("m-1", "m-2"):
        assert venue.open_trade(_open(key)).status == ExecStatus.PENDING
    limit = _open("l-1", kind=VenueOrderKind.LIMIT, limit_price=D("60000"))
    assert venue.open_trade(limit).status == ExecStatus.PENDING
    _cancel_at_venue(ostium, OstiumOrder.objects.get(idempotency_key="l-1"))
    ostium.mine(MARKET_ORDERS_TIMEOUT_BLOCKS)
    settings.OSTIUM_ORDER_TIMEOUT_SECONDS = 0
    settings.OSTIUM_LOCK_TIMEOUT = 0.5

    signer = _signer_lock(ostium.traders[0].address)
    assert signer.acquire(timeout=5)  # another write of this signer is in flight
    try:
        with caplog.at_level(logging.WARNING, logger="tradedesk.providers.ostium.sync"):
            counts = ostium_sync()
    finally:
        signer.release()
    assert counts == {"filled": 0, "cancelled": 1, "closed": 0, "timed_out": 0, "errors": 0}
    assert OstiumOrder.objects.get(idempotency_key="l-1").status == "cancelled"  # read all the same
    not_sent = [r for r in caplog.records if r.getMessage() == "ostium market timeout not sent"]
    assert len(not_sent) == 1  # one lock wait, not one per stale order
    assert set(OstiumOrder.objects.filter(idempotency_key__startswith="m-").values_list("status", flat=True)) == {
        "pending"
    }

    # the signer free again, the next round times both out
    assert ostium_sync()["timed_out"] == 2
    assert set(OstiumOrder.objects.filter(idempotency_key__startswith="m-").values_list("status", flat=True)) == {
        "cancelled"
    }


def test_a_disarmed_executor_lets_the_poller_read_but_send_no_timeout(ostium, settings):
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.sync import ostium_sync
    from trading.services.control import control_arm

    ostium.set_price("BTC-USD", "65000")
    assert OstiumVenue().open_trade(_open("m-9")).status == ExecStatus.PENDING
    ostium.mine(MARKET_ORDERS_TIMEOUT_BLOCKS)
    settings.OSTIUM_ORDER_TIMEOUT_SECONDS = 0
    nonce = ostium.w3.eth.get_transaction_count(ostium.traders[0].address)
    assert ostium_sync()["timed_out"] == 0  # executor:ostium starts disarmed: nothing sent
    assert ostium.w3.eth.get_transaction_count(ostium.traders[0].address) == nonce
    assert OstiumOrder.objects.get(idempotency_key="m-9").status == "pending"
    control_arm(component="executor:ostium", actor="test", reason="go")
    assert ostium_sync()["timed_out"] == 1


@pytest.fixture
def polled_limit(ostium, settings):
    """A venue with limit `l-1` resting, read once by a poller round, and a poll interval of
    60 s (OSTIUM_LIMIT_POLL_SECONDS)."""
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.sync import ostium_sync

    ostium.set_price("BTC-USD", "65000")
    venue = OstiumVenue()
    limit = _open("l-1", kind=VenueOrderKind.LIMIT, limit_price=D("60000"))
    assert venue.open_trade(limit).status == ExecStatus.PENDING
    settings.OSTIUM_LIMIT_POLL_SECONDS = 60
    assert ostium_sync() == {"filled": 0, "cancelled": 0, "closed": 0, "timed_out": 0, "errors": 0}
    return venue


def test_a_resting_limit_is_read_at_most_every_limit_poll_interval(ostium, polled_limit):
    """OSTIUM_LIMIT_POLL_SECONDS spares the RPC calls of reading each resting limit every
    round; market orders are still read every round, and a status read always reads."""
    from providers.ostium.sync import ostium_sync

    read_at = OstiumOrder.objects.get(idempotency_key="l-1").limit_scan["read_at"]
    _cancel_at_venue(ostium, OstiumOrder.objects.get(idempotency_key="l-1"))
    assert polled_limit.open_trade(_open("m-1")).status == ExecStatus.PENDING
    assert [a.kind for a in ostium.run_keeper()] == ["fulfill"]  # the market order is answered
    counts = ostium_sync()
    assert counts["filled"] == 1 and counts["cancelled"] == 0  # the limit, read less than 60 s ago, is not
    row = OstiumOrder.objects.get(idempotency_key="l-1")
    assert row.status == "pending" and row.limit_scan["read_at"] == read_at

    # the interval over, the next round reads it
    OstiumOrder.objects.filter(pk=row.pk).update(limit_scan={**row.limit_scan, "read_at": read_at - 60})
    assert ostium_sync()["cancelled"] == 1
    assert OstiumOrder.objects.get(idempotency_key="l-1").status == "cancelled"


def test_a_status_read_reads_a_resting_limit_whatever_the_poll_interval(ostium, polled_limit):
    _cancel_at_venue(ostium, OstiumOrder.objects.get(idempotency_key="l-1"))
    assert polled_limit.get_order_status(idempotency_key="l-1").status == ExecStatus.CANCELLED
