"""Demo setup of the paper venue (idempotent): markets if missing, initial prices."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from providers.models import PaperMarket, PaperPriceState

# One row per market; edit the rows in the admin afterwards (this only creates missing ones).
# spread: full bid/ask spread (fraction); impact/depth/max_slip: slippage = min(impact × notional / depth,
# max_slip); funding_h: funding rate per hour; vol: annualised volatility of the paper price walk.
MARKET_TABLE = """
symbol   category   max_lev taker   maker    mmr     spread   impact depth max_slip funding_h decimals price  vol
BTC-USD  crypto     50      0.0005  0.0002   0.005   0.0002   0.5    1e7   0.01     0.0000125 2        60000  0.60
ETH-USD  crypto     50      0.0005  0.0002   0.005   0.0003   0.5    5e6   0.01     0.0000125 2        3000   0.75
SOL-USD  crypto     20      0.0006  0.0002   0.01    0.0005   0.5    1e6   0.02     0.0000125 3        150    0.90
EUR-USD  forex      100     0.0001  0.00005  0.0025  0.00004  0.2    5e7   0.002    0.000001  6        1.08   0.07
GBP-USD  forex      100     0.0001  0.00005  0.0025  0.00006  0.2    3e7   0.002    0.000001  6        1.27   0.08
XAU-USD  commodity  50      0.0003  0.0001   0.005   0.0002   0.3    2e7   0.005    0.000005  2        2400   0.15
"""
_COLUMNS = {
    "category": "category",
    "max_lev": "max_leverage",
    "taker": "taker_fee_rate",
    "maker": "maker_fee_rate",
    "mmr": "maintenance_margin_rate",
    "spread": "spread",
    "impact": "impact_coefficient",
    "depth": "depth",
    "max_slip": "max_slippage",
    "funding_h": "funding_rate_hourly",
    "decimals": "price_decimals",
    "price": "initial_price",
    "vol": "annual_volatility",
}


def _parse(table: str) -> dict[str, dict]:
    header, *rows = [line.split() for line in table.strip().splitlines()]
    markets = {}
    for row in rows:
        values = dict(zip(header, row, strict=True))
        fields = {}
        for column, field in _COLUMNS.items():
            raw = values[column]
            if field == "category":
                fields[field] = raw
            elif field == "price_decimals":
                fields[field] = int(raw)
            else:
                fields[field] = Decimal(raw)
        markets[values["symbol"]] = fields
    return markets


DEFAULT_MARKETS: dict[str, dict] = _parse(MARKET_TABLE)


def market_defaults(symbol: str) -> dict:
    return dict(DEFAULT_MARKETS[symbol])


def markets_ensure(model=PaperMarket) -> list[str]:
    """Create the default markets that are missing (existing rows are left as edited)."""
    created = []
    known = {f.name for f in model._meta.get_fields()}  # a migration's historical model may have fewer
    for symbol in DEFAULT_MARKETS:
        defaults = {k: v for k, v in market_defaults(symbol).items() if k in known}
        _, was_created = model.objects.get_or_create(symbol=symbol, defaults=defaults)
        if was_created:
            created.append(symbol)
    return created


@transaction.atomic
def seed_paper_demo() -> dict:
    """Markets if missing and a starting price for each (the walk continues from existing ones)."""
    created = markets_ensure()
    priced = []
    for market in PaperMarket.objects.all():
        _, was_created = PaperPriceState.objects.get_or_create(
            symbol=market.symbol, defaults={"price": market.initial_price, "source": "paper"}
        )
        if was_created:
            priced.append(market.symbol)
    return {"markets_created": created, "prices_initialised": priced}
