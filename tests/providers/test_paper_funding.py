"""Funding: per whole hour, side × size × mid × hourly rate; accrues on the position, settled on close.

BTC-USD frictionless, funding rate 0.0000125 per hour (seeded), taker fee 0.0005.
A long and a short of 1,000 x10 at mid 50,000: notional 10,000, size 0.2 each.
"""

from datetime import timedelta
from decimal import Decimal

import pytest

from providers.interface import Side, VenueEventKind
from providers.models import PaperAccount, PaperFundingCharge, PaperPosition
from providers.paper.engine import paper_funding_accrue
from providers.prices import price_set
from providers.registry import get_venue
from tests.providers.helpers import close_request, frictionless, open_request

pytestmark = pytest.mark.usefixtures("paper_markets")


def test_three_hours_of_funding_long_pays_short_receives(venue_events, django_capture_on_commit_callbacks):
    frictionless()
    price_set("BTC-USD", Decimal("50000"))
    venue = get_venue("paper")
    long = venue.open_trade(open_request(account="user:1"))
    short = venue.open_trade(open_request(account="user:2", side=Side.SHORT))
    opened_at = PaperPosition.objects.get(pk=long.trade_index).funding_at

    # when the job runs 3 h 40 min later
    now = opened_at + timedelta(hours=3, minutes=40)
    with django_capture_on_commit_callbacks(execute=True):
        charges = paper_funding_accrue(now=now)

    # then 3 whole hours are charged: 0.2 × 50,000 × 0.0000125 × 3 = 0.375
    assert len(charges) == 2
    long_pos = PaperPosition.objects.get(pk=long.trade_index)
    short_pos = PaperPosition.objects.get(pk=short.trade_index)
    assert long_pos.funding_accrued == Decimal("0.375")
    assert short_pos.funding_accrued == Decimal("-0.375")
    assert long_pos.funding_at == long_pos.opened_at + timedelta(hours=3)
    funding_events = [e for e in venue_events if e.kind == VenueEventKind.FUNDING_CHARGED]
    assert sorted(Decimal(e.details["amount"]) for e in funding_events) == [Decimal("-0.375"), Decimal("0.375")]
    assert {e.details["hours"] for e in funding_events} == {3}

    # and running again at the same moment charges nothing more (the 40 minutes wait)
    assert paper_funding_accrue(now=now) == []
    assert PaperFundingCharge.objects.count() == 2

    # one more hour later: one more hour, 0.125
    paper_funding_accrue(now=now + timedelta(hours=1))
    long_pos.refresh_from_db()
    assert long_pos.funding_accrued == Decimal("0.5")
    assert long_pos.funding_paid == Decimal("0.5")


def test_accrued_funding_is_settled_from_the_margin_on_close():
    frictionless()
    price_set("BTC-USD", Decimal("50000"))
    venue = get_venue("paper")
    opened = venue.open_trade(open_request())  # balance 100,000 − 1,000 − 5 = 98,995
    position = PaperPosition.objects.get()
    paper_funding_accrue(now=position.funding_at + timedelta(hours=3))  # 0.375 owed
    closed = venue.close_trade(close_request(trade_index=opened.trade_index))
    # returned = 1,000 + pnl 0 − fee 10,000 × 0.0005 (5) − funding 0.375 = 994.625
    assert closed.fill.realized_pnl == Decimal("0")
    assert PaperAccount.objects.get(name="user:1").balance == Decimal("99989.625")
    [fill_row] = PaperPosition.objects.get().fills.filter(reason="close")
    assert fill_row.funding_settled == Decimal("0.375")


def test_half_close_settles_half_the_accrued_funding():
    frictionless()
    price_set("BTC-USD", Decimal("50000"))
    venue = get_venue("paper")
    opened = venue.open_trade(open_request())
    position = PaperPosition.objects.get()
    paper_funding_accrue(now=position.funding_at + timedelta(hours=2))  # 0.25 owed
    venue.close_trade(close_request(trade_index=opened.trade_index, fraction="0.5"))
    position.refresh_from_db()
    assert position.funding_accrued == Decimal("0.125")
    # returned = 500 − fee 5,000 × 0.0005 (2.5) − 0.125 = 497.375 → 98,995 + 497.375
    assert PaperAccount.objects.get(name="user:1").balance == Decimal("99492.375")


def test_closed_positions_are_not_charged():
    frictionless()
    price_set("BTC-USD", Decimal("50000"))
    venue = get_venue("paper")
    opened = venue.open_trade(open_request())
    venue.close_trade(close_request(trade_index=opened.trade_index))
    position = PaperPosition.objects.get()
    assert paper_funding_accrue(now=position.funding_at + timedelta(hours=10)) == []
