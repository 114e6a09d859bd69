"""The paper price feed: a seeded geometric Brownian motion per symbol.

Each step: P' = P · exp(−σ²·dt/2 + σ·√dt·Z), with σ the market's annualised volatility,
dt = PAPER_FEED_DT seconds expressed in years (365 days), and Z a standard normal drawn from
`random.Random(f"{PAPER_FEED_SEED}:{symbol}:{step}")` — so the walk is deterministic for a
seed and continues after a restart from the state kept in `PaperPriceState` (price + step).
The result is rounded to the market's `price_decimals`.
"""

from __future__ import annotations

import random
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from providers.interface import ErrorCode, PriceTick, VenueError, VenueException
from providers.models import PaperMarket, PaperPriceState

SECONDS_PER_YEAR = Decimal(365 * 24 * 3600)


def gbm_step(
    *, price: Decimal, sigma: Decimal, dt_seconds: Decimal, seed: str, symbol: str, step: int, decimals: int
) -> Decimal:
    """One GBM step (see the module docstring), pure and deterministic."""
    z = Decimal(repr(random.Random(f"{seed}:{symbol}:{step}").gauss(0.0, 1.0)))
    dt = Decimal(dt_seconds) / SECONDS_PER_YEAR
    exponent = -(sigma * sigma) * dt / 2 + sigma * dt.sqrt() * z
    new = price * exponent.exp()
    quantum = Decimal(1).scaleb(-decimals)
    new = new.quantize(quantum)
    return max(new, quantum)


def plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros (50000.000… → 50000, 1.080000 → 1.08)."""
    value = Decimal(value).normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _unavailable(symbol: str, why: str) -> VenueException:
    return VenueException(
        VenueError(code=ErrorCode.PRICE_UNAVAILABLE, message=f"no paper price for {symbol}: {why}", retryable=False)
    )


def reference_prices(symbols: list[str]) -> dict[str, tuple[Decimal, str] | None]:
    """For each symbol with a reference pair (BTC-USD: BTC/USD): (fair rate, "reference#<sample id>"),
    or None while the pair's fair rate may not be used."""
    from providers.reference.service import ReferenceUnavailable, reference_pair_for, reference_rate_use

    out: dict[str, tuple[Decimal, str] | None] = {}
    for symbol in symbols:
        pair = reference_pair_for(symbol)
        if pair is None:
            continue
        try:
            used = reference_rate_use(pair, purpose="mark")
        except ReferenceUnavailable:
            out[symbol] = None
        else:
            out[symbol] = (used.rate, f"reference#{used.sample_id}")
    return out


class PaperFeed:
    name = "paper"

    # --- reads -----------------------------------------------------------------------------------
    def get_price(self, symbol: str) -> PriceTick:
        symbol = symbol.strip().upper()
        ticks = self.get_prices([symbol])
        if symbol not in ticks:
            raise _unavailable(symbol, "unknown symbol")
        return ticks[symbol]

    def get_prices(self, symbols: list[str]) -> dict[str, PriceTick]:
        """The walk's current price, observed now (the simulated market is at it)."""
        symbols = [s.strip().upper() for s in symbols]
        markets = {m.symbol: m for m in PaperMarket.objects.filter(symbol__in=symbols)}
        states = {s.symbol: s for s in PaperPriceState.objects.filter(symbol__in=symbols)}
        now = timezone.now()
        ticks: dict[str, PriceTick] = {}
        for symbol in symbols:
            state = states.get(symbol)
            market = markets.get(symbol)
            if state is None:
                if market is None:
                    continue
                state = self._state_init(market)
            ticks[symbol] = self._tick(symbol, plain(state.price), market, now=now, source=self.name)
        return ticks

    # --- writes ----------------------------------------------------------------------------------
    def advance(self, symbols: list[str] | None = None) -> list[PriceTick]:
        """Take one walk step for each symbol (default: every open paper market) and persist it.
        With PAPER_FEED=reference a market with a reference pair takes the pair's fair rate instead
        (source `reference#<sample id>`), and none at all while that rate is unusable."""
        seed = str(settings.PAPER_FEED_SEED)
        dt = Decimal(str(settings.PAPER_FEED_DT))
        markets = PaperMarket.objects.filter(is_open=True)
        if symbols is not None:
            markets = markets.filter(symbol__in=[s.upper() for s in symbols])
        markets = {m.symbol: m for m in markets}
        known = set(PaperPriceState.objects.filter(symbol__in=markets).values_list("symbol", flat=True))
        for symbol in markets.keys() - known:
            self._state_init(markets[symbol])
        followed = reference_prices(list(markets)) if settings.PAPER_FEED == "reference" else {}
        now = timezone.now()
        ticks = []
        with transaction.atomic():
            for state in PaperPriceState.objects.select_for_update().filter(symbol__in=markets).order_by("symbol"):
                market = markets[state.symbol]
                if state.symbol in followed:
                    if followed[state.symbol] is None:
                        continue  # the reference is unusable: no price rather than an old one
                    rate, source = followed[state.symbol]
                    quantum = Decimal(1).scaleb(-market.price_decimals)
                    state.price, state.source, state.updated_at = rate.quantize(quantum), source, now
                    state.save(update_fields=["price", "source", "updated_at"])
                    ticks.append(self._tick(state.symbol, state.price, market, now=now, source=source))
                    continue
                state.price = gbm_step(
                    price=plain(state.price),
                    sigma=market.annual_volatility,
                    dt_seconds=dt,
                    seed=seed,
                    symbol=state.symbol,
                    step=state.step,
                    decimals=market.price_decimals,
                )
                state.step += 1
                state.source = self.name
                state.updated_at = now
                state.save(update_fields=["price", "step", "source", "updated_at"])
                ticks.append(self._tick(state.symbol, state.price, market, now=now, source=self.name))
        return ticks

    @classmethod
    def price_store(cls, symbol: str, price: Decimal, *, source: str = "manual") -> PriceTick:
        """Set the walk's price exactly (the walk continues from it); returns the tick."""
        if price <= 0:
            raise VenueException(VenueError(code=ErrorCode.INVALID_REQUEST, message="price must be positive"))
        market = PaperMarket.objects.filter(symbol=symbol).first()
        now = timezone.now()
        PaperPriceState.objects.update_or_create(
            symbol=symbol, defaults={"price": price, "source": source, "updated_at": now}
        )
        return cls._tick(symbol, price, market, now=now, source=source)

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _state_init(market: PaperMarket) -> PaperPriceState:
        state, _ = PaperPriceState.objects.get_or_create(
            symbol=market.symbol, defaults={"price": market.initial_price, "source": "paper"}
        )
        return state

    @staticmethod
    def _tick(symbol: str, price: Decimal, market: PaperMarket | None, *, now, source: str) -> PriceTick:
        bid = ask = None
        if market is not None:
            half = market.spread / 2
            bid, ask = plain(price * (1 - half)), plain(price * (1 + half))
        return PriceTick(symbol=symbol, price=price, timestamp=now, source=source, bid=bid, ask=ask, venue="paper")
