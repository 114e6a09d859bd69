"""Liquidation: at the exact threshold price, once, even when ticks race.

BTC-USD made frictionless (no spread, no impact) so the entry is the mid; maintenance margin
rate 0.005, taker fee 0.0005. A long of 995 USD x10 at 49,750: notional 9,950, size 0.2.
Liquidation price (long) = (size × entry − collateral + funding) / (size × (1 − mmr))
                         = (0.2 × 49,750 − 995 + 0) / (0.2 × 0.995) = 8,955 / 0.199 = 45,000.
"""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from providers.interface import ExecStatus, PriceTick, Side, VenueEventKind
from providers.models import PaperAccount, PaperFill, PaperPosition
from providers.paper.engine import paper_book_process_tick
from providers.prices import price_set
from providers.registry import get_venue
from tests.providers.helpers import ACCOUNT, close_request, frictionless, open_request


def _open_long_at_49750():
    frictionless()
    price_set("BTC-USD", Decimal("49750"))
    result = get_venue("paper").open_trade(open_request(collateral="995", leverage="10"))
    assert result.status == ExecStatus.FILLED, result.error
    assert result.fill.size == Decimal("0.2")
    return result


@pytest.mark.usefixtures("paper_markets")
def test_long_is_liquidated_at_its_liquidation_price_and_not_one_cent_above(
    venue_events, django_capture_on_commit_callbacks
):
    opened = _open_long_at_49750()
    [position] = get_venue("paper").get_positions(account=ACCOUNT)
    assert position.liquidation_price == Decimal("45000")
    # balance after open: 100,000 − 995 − 9,950 × 0.0005 (4.975) = 99,000.025
    assert PaperAccount.objects.get(name=ACCOUNT).balance == Decimal("99000.025")

    # one cent above: equity 995 + 0.2 × (45,000.01 − 49,750) = 45.002
    #                 maintenance 0.2 × 45,000.01 × 0.005 = 45.00001 → equity above: stays open
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("45000.01"))
    assert PaperPosition.objects.get().status == PaperPosition.Status.OPEN
    assert venue_events == []

    # at 45,000: equity 995 − 950 = 45 = maintenance 0.2 × 45,000 × 0.005 = 45 → liquidated
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("45000"))
    [event] = venue_events
    assert event.kind == VenueEventKind.POSITION_LIQUIDATED
    assert (event.account, event.symbol, event.trade_index) == (ACCOUNT, "BTC-USD", opened.trade_index)
    assert event.fill.price == Decimal("45000")
    assert event.fill.realized_pnl == Decimal("-950")  # 0.2 × (45,000 − 49,750)
    assert Decimal(event.details["collateral_lost"]) == Decimal("995")
    assert PaperPosition.objects.get().status == PaperPosition.Status.LIQUIDATED
    assert get_venue("paper").get_positions(account=ACCOUNT) == []
    # the margin is gone, nothing else moves
    assert PaperAccount.objects.get(name=ACCOUNT).balance == Decimal("99000.025")

    # further ticks do not liquidate again
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("40000"))
    assert len(venue_events) == 1


@pytest.mark.usefixtures("paper_markets")
def test_short_is_liquidated_at_its_liquidation_price():
    # short 995 x10 at 49,750: P_liq = (0.2 × 49,750 + 995) / (0.2 × 1.005) = 10,945 / 0.201
    #                                 = 54,452.736318407960199004975... → 54,452.736318407960199005 (ceil)
    frictionless()
    price_set("BTC-USD", Decimal("49750"))
    get_venue("paper").open_trade(open_request(side=Side.SHORT, collateral="995", leverage="10"))
    position = PaperPosition.objects.get()
    assert position.liquidation_price == Decimal("54452.736318407960199005")
    price_set("BTC-USD", Decimal("54452.73"))  # equity 995 − 940.546 = 54.454 > 54.4527 maintenance
    assert PaperPosition.objects.get().status == PaperPosition.Status.OPEN
    price_set("BTC-USD", Decimal("54452.74"))  # equity 54.452 < 54.45274
    assert PaperPosition.objects.get().status == PaperPosition.Status.LIQUIDATED


@pytest.mark.django_db(transaction=True)
def test_racing_ticks_liquidate_once_and_emit_once(paper_markets, venue_events):
    # given the long above
    _open_long_at_49750()
    tick = PriceTick(symbol="BTC-USD", price=Decimal("44000"), timestamp=timezone.now(), source="test", venue="paper")
    barrier = threading.Barrier(4)
    outcomes = []

    def process():
        try:
            barrier.wait()
            outcomes.append(paper_book_process_tick(tick=tick))
        finally:
            connection.close()

    # when four ticks through the liquidation price are processed at once
    threads = [threading.Thread(target=process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then exactly one liquidated it, with one fill and one event
    assert sum(len(o["liquidated"]) for o in outcomes) == 1
    assert PaperFill.objects.filter(reason="liquidation").count() == 1
    liquidations = [e for e in venue_events if e.kind == VenueEventKind.POSITION_LIQUIDATED]
    assert len(liquidations) == 1


@pytest.mark.usefixtures("paper_markets")
def test_funding_owed_moves_the_liquidation_price_closer():
    from datetime import timedelta

    from providers.paper.engine import paper_funding_accrue

    _open_long_at_49750()
    position = PaperPosition.objects.get()
    before = position.liquidation_price
    paper_funding_accrue(now=position.funding_at + timedelta(hours=5))
    position.refresh_from_db()
    assert position.funding_accrued > 0
    assert position.liquidation_price > before


@pytest.mark.django_db(transaction=True)
def test_racing_ticks_fill_a_resting_order_once(paper_markets, venue_events):
    from providers.interface import VenueOrderKind
    from providers.models import PaperOrder

    price_set("BTC-USD", Decimal("50000"))
    placed = get_venue("paper").open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("49000")))
    tick = PriceTick(symbol="BTC-USD", price=Decimal("48900"), timestamp=timezone.now(), source="test", venue="paper")
    barrier = threading.Barrier(4)
    outcomes = []

    def process():
        try:
            barrier.wait()
            outcomes.append(paper_book_process_tick(tick=tick))
        finally:
            connection.close()

    threads = [threading.Thread(target=process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(o["filled"]) for o in outcomes) == 1
    assert PaperPosition.objects.count() == 1
    assert PaperOrder.objects.get(pk=placed.venue_order_id).status == PaperOrder.Status.FILLED
    assert [e.kind for e in venue_events] == [VenueEventKind.ORDER_FILLED]
    assert PaperAccount.objects.get(name=ACCOUNT).balance == Decimal("98998")


@pytest.mark.django_db(transaction=True)
def test_a_close_racing_a_liquidation_settles_exactly_once(paper_markets, venue_events):
    from providers.prices import price_cache_put

    opened = _open_long_at_49750()
    # the cache says 45,000 (the liquidation price) but the book has not seen it yet
    tick = PriceTick(symbol="BTC-USD", price=Decimal("45000"), timestamp=timezone.now(), source="test", venue="paper")
    price_cache_put(tick)
    barrier = threading.Barrier(2)
    closes = []

    def liquidate():
        try:
            barrier.wait()
            paper_book_process_tick(tick=tick)
        finally:
            connection.close()

    def close():
        try:
            barrier.wait()
            closes.append(get_venue("paper").close_trade(close_request(trade_index=opened.trade_index)))
        finally:
            connection.close()

    threads = [threading.Thread(target=liquidate), threading.Thread(target=close)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # exactly one of them settled the position
    settlements = PaperFill.objects.filter(position__pk=opened.trade_index).exclude(reason="open")
    assert settlements.count() == 1
    [result] = closes
    balance = PaperAccount.objects.get(name=ACCOUNT).balance
    if settlements.get().reason == "liquidation":
        assert result.error.code.value == "POSITION_NOT_FOUND"
        assert balance == Decimal("99000.025")  # margin forfeited
        assert [e.kind for e in venue_events] == [VenueEventKind.POSITION_LIQUIDATED]
    else:
        # closed at 45,000: 995 − 950 − fee 0.2 × 45,000 × 0.0005 (4.5) = 40.5 back
        assert result.status == ExecStatus.FILLED
        assert balance == Decimal("99040.525")
        assert venue_events == []
