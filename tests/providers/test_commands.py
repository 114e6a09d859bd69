from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from providers.models import PaperMarket, PaperPriceState
from providers.prices import price_cached


@pytest.mark.django_db
def test_seed_paper_creates_missing_markets_and_prices_and_keeps_edits():
    PaperMarket.objects.filter(symbol="ETH-USD").delete()
    PaperMarket.objects.filter(symbol="BTC-USD").update(max_leverage=Decimal("7"))
    out = StringIO()
    call_command("seed_paper", stdout=out)
    assert "ETH-USD" in out.getvalue()
    assert PaperMarket.objects.get(symbol="BTC-USD").max_leverage == Decimal("7")
    assert PaperPriceState.objects.get(symbol="ETH-USD").price == Decimal("3000")
    call_command("seed_paper", stdout=StringIO())  # idempotent
    assert PaperMarket.objects.filter(symbol="ETH-USD").count() == 1


def test_paper_price_sets_and_shows(paper_markets):
    out = StringIO()
    call_command("paper_price", "btc-usd", "51234.5", stdout=out)
    assert "BTC-USD 51234.5 (manual" in out.getvalue()
    assert price_cached("BTC-USD").price == Decimal("51234.5")
    out = StringIO()
    call_command("paper_price", "BTC-USD", stdout=out)
    assert "BTC-USD 51234.5" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("paper_price", "BTC-USD", "lots")
    with pytest.raises(CommandError):
        call_command("paper_price", "NOPE-USD")
