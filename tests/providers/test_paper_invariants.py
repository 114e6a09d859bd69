"""A seeded random session of opens, partial closes, resting entries, cancels, ticks and funding:
the account balance always equals the start plus every fill's balance change minus what
resting orders hold, and no position ever holds negative size or margin."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from providers.interface import ExecStatus, Side, VenueOrderKind
from providers.models import PaperAccount, PaperFill, PaperOrder, PaperPosition
from providers.paper.engine import paper_funding_accrue
from providers.prices import price_set
from providers.registry import get_venue
from tests.providers.helpers import ACCOUNT, close_request, open_request

pytestmark = pytest.mark.usefixtures("paper_markets")


def _check_books():
    balance = PaperAccount.objects.get(name=ACCOUNT).balance
    fills = PaperFill.objects.filter(position__account__name=ACCOUNT).aggregate(s=Sum("balance_change"))["s"] or 0
    held = PaperOrder.objects.filter(account__name=ACCOUNT, status="pending").aggregate(s=Sum("reserved"))["s"] or 0
    assert balance == Decimal("100000") + fills - held
    assert balance >= 0
    assert not PaperPosition.objects.filter(size__lt=0).exists()
    assert not PaperPosition.objects.filter(collateral__lt=0).exists()


def test_random_session_keeps_the_books_balanced():
    rng = random.Random(7)
    venue = get_venue("paper")
    price = Decimal("50000")
    price_set("BTC-USD", price)
    statuses = set()
    for _ in range(70):
        action = rng.choice(["open", "open", "close", "limit", "stop", "cancel", "tick", "tick", "funding"])
        if action == "open":
            result = venue.open_trade(
                open_request(
                    side=rng.choice([Side.LONG, Side.SHORT]),
                    collateral=str(rng.randint(50, 3000)),
                    leverage=str(rng.choice([1, 2, 5, 10, 25, 50])),
                )
            )
        elif action in ("limit", "stop"):
            side = rng.choice([Side.LONG, Side.SHORT])
            offset = Decimal(rng.randint(-1500, 1500))
            extra = (
                {"kind": VenueOrderKind.LIMIT, "limit_price": price + offset}
                if action == "limit"
                else {"kind": VenueOrderKind.STOP, "stop_price": price + offset}
            )
            result = venue.open_trade(open_request(side=side, collateral=str(rng.randint(50, 2000)), **extra))
        elif action == "close":
            positions = venue.get_positions(account=ACCOUNT)
            if not positions:
                continue
            target = rng.choice(positions)
            result = venue.close_trade(
                close_request(trade_index=target.trade_index, fraction=rng.choice(["0.1", "0.25", "0.5", "1"]))
            )
        elif action == "cancel":
            pending = list(
                PaperOrder.objects.filter(account__name=ACCOUNT, status="pending").values_list("pk", flat=True)
            )
            if not pending:
                continue
            result = venue.cancel_order(account=ACCOUNT, venue_order_id=str(rng.choice(pending)))
        elif action == "tick":
            price = max(Decimal("1000"), price * (1 + Decimal(rng.randint(-400, 400)) / 10000)).quantize(
                Decimal("0.01")
            )
            price_set("BTC-USD", price)
            continue
        else:
            oldest = PaperPosition.objects.filter(status="open").order_by("funding_at").first()
            if oldest:
                paper_funding_accrue(now=oldest.funding_at + timedelta(hours=rng.randint(1, 12)))
            _check_books()
            continue
        statuses.add(result.status)
        _check_books()
    # the session exercised fills, resting orders and (with 50x and ±4 % ticks) liquidations
    assert {ExecStatus.FILLED, ExecStatus.PENDING} <= statuses
    reasons = set(PaperFill.objects.values_list("reason", flat=True))
    assert reasons == {"open", "close", "liquidation"}, reasons
