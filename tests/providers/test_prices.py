"""Prices: the Redis cache, the paper random walk, price_set and tick listeners."""

import math
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.feeds.paper import PaperFeed, gbm_step
from providers.interface import ErrorCode, PriceFeed, PriceTick, VenueException
from providers.models import PaperPriceState
from providers.prices import (
    price_cache_put,
    price_cached,
    price_get,
    price_get_many,
    price_is_stale,
    price_set,
    prices_tick,
    register_tick_listener,
    unregister_tick_listener,
)
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("paper_markets")


def test_the_paper_venue_prices_at_its_own_feed_which_implements_the_protocol():
    from providers.prices import venue_feed

    assert isinstance(venue_feed("paper"), PriceFeed)
    assert isinstance(venue_feed("paper"), PaperFeed)


def test_price_get_caches_the_feed_answer_and_serves_the_cache_until_bypassed():
    # given a seeded price and an empty cache
    assert price_cached("ETH-USD") is None
    first = price_get("ETH-USD")
    assert first.price == Decimal("3000") and first.source == "paper"
    assert first.bid < first.price < first.ask
    # when the cache holds a different tick
    price_cache_put(
        PriceTick(symbol="ETH-USD", price=Decimal("1"), timestamp=timezone.now(), source="other", venue="paper")
    )
    # then price_get serves it, and use_cache=False asks the feed (and refreshes the cache)
    assert price_get("ETH-USD").price == Decimal("1")
    fresh = price_get("ETH-USD", use_cache=False)
    assert (fresh.price, fresh.source) == (Decimal("3000"), "paper")
    assert price_get("ETH-USD").price == Decimal("3000")


def test_cached_ticks_expire_after_the_ttl(settings):
    settings.PRICE_CACHE_TTL = 1
    price_set("XAU-USD", Decimal("2500.5"))
    assert price_cached("XAU-USD").price == Decimal("2500.5")
    wait_for(lambda: price_cached("XAU-USD") is None, timeout=5)
    # a miss goes to the feed, which continues from the price that was set
    tick = price_get("XAU-USD")
    assert (tick.price, tick.source) == (Decimal("2500.5"), "paper")


def test_unknown_symbol_is_price_unavailable():
    with pytest.raises(VenueException) as exc:
        price_get("NOPE-USD")
    assert exc.value.error.code == ErrorCode.PRICE_UNAVAILABLE


def test_price_get_many_mixes_cache_and_feed():
    price_set("BTC-USD", Decimal("61000"))
    ticks = price_get_many(["BTC-USD", "EUR-USD", "NOPE-USD"])
    assert set(ticks) == {"BTC-USD", "EUR-USD"}
    assert ticks["BTC-USD"].source == "manual" and ticks["BTC-USD"].price == Decimal("61000")
    assert ticks["EUR-USD"].price == Decimal("1.08")


def test_stale_detection_uses_the_tick_timestamp(settings):
    settings.PRICE_MAX_AGE = 10
    now = timezone.now()
    tick = PriceTick(symbol="BTC-USD", price=Decimal("1"), timestamp=now, source="x")
    assert not price_is_stale(tick, now=now + timezone.timedelta(seconds=10))
    assert price_is_stale(tick, now=now + timezone.timedelta(seconds=10.001))
    assert price_is_stale(tick, max_age=1, now=now + timezone.timedelta(seconds=2))


def test_price_set_publishes_to_listeners_after_caching_and_a_failing_listener_breaks_nothing():
    seen = []

    def boom(tick):
        raise RuntimeError("listener bug")

    def record(tick):
        seen.append((tick, price_cached(tick.symbol)))

    register_tick_listener(boom)
    register_tick_listener(record)
    try:
        tick = price_set("BTC-USD", Decimal("50123.45"))
    finally:
        unregister_tick_listener(boom)
        unregister_tick_listener(record)
    [(published, cached_then)] = seen
    assert published == tick
    assert cached_then == tick  # the tick was in the cache when listeners ran
    assert PaperPriceState.objects.get(symbol="BTC-USD").price == Decimal("50123.45")


def test_the_walk_is_deterministic_for_a_seed_and_continues_after_a_restart(settings):
    settings.PAPER_FEED_SEED = "determinism"
    # given the walk advanced 5 steps in one go
    straight = [PaperFeed().advance(["BTC-USD"])[0].price for _ in range(5)]
    # when it is reset to the start and advanced 2 steps, "restarted" (new feed objects), then 3 more
    PaperPriceState.objects.filter(symbol="BTC-USD").update(price=Decimal("60000"), step=0)
    resumed = [PaperFeed().advance(["BTC-USD"])[0].price for _ in range(2)]
    resumed += [PaperFeed().advance(["BTC-USD"])[0].price for _ in range(3)]
    # then the paths are identical, and a different seed gives a different path
    assert resumed == straight
    assert len(set(straight)) > 1
    settings.PAPER_FEED_SEED = "another"
    PaperPriceState.objects.filter(symbol="BTC-USD").update(price=Decimal("60000"), step=0)
    other = [PaperFeed().advance(["BTC-USD"])[0].price for _ in range(5)]
    assert other != straight


def test_gbm_step_matches_the_formula_and_the_volatility_is_realistic():
    # one step by hand: Z from the documented seed string, dt = 1 s in years
    import random

    z = Decimal(repr(random.Random("s:BTC-USD:0").gauss(0.0, 1.0)))
    sigma, dt = Decimal("0.60"), Decimal(1) / Decimal(365 * 24 * 3600)
    expected = (Decimal("60000") * (-(sigma**2) * dt / 2 + sigma * dt.sqrt() * z).exp()).quantize(Decimal("0.01"))
    step = gbm_step(
        price=Decimal("60000"), sigma=sigma, dt_seconds=Decimal(1), seed="s", symbol="BTC-USD", step=0, decimals=2
    )
    assert step == expected
    # over 20,000 steps the per-step log-return deviation is σ·√dt (within 5%, deterministic seed)
    price, logs = Decimal("60000"), []
    for n in range(20000):
        new = gbm_step(
            price=price, sigma=sigma, dt_seconds=Decimal(1), seed="vol", symbol="BTC-USD", step=n, decimals=8
        )
        logs.append(math.log(float(new / price)))
        price = new
    mean = sum(logs) / len(logs)
    std = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    assert std == pytest.approx(0.60 / math.sqrt(365 * 24 * 3600), rel=0.05)


def test_a_tick_round_advances_every_open_market_and_publishes():
    seen = []
    register_tick_listener(seen.append)
    try:
        ticks = prices_tick()
    finally:
        unregister_tick_listener(seen.append)
    symbols = {t.symbol for t in ticks}
    assert {"BTC-USD", "ETH-USD", "EUR-USD", "XAU-USD"} <= symbols
    assert {t.symbol for t in seen} == symbols
    assert all(PaperPriceState.objects.get(symbol=s).step == 1 for s in symbols)
    assert price_cached("EUR-USD") == next(t for t in ticks if t.symbol == "EUR-USD")


# --- prices per venue ---------------------------------------------------------------------------


class _OtherVenueFeed:
    """The price feed of a second venue (as Ostium's price API would answer): a fixed book."""

    name = "elsewhere"
    asked: list = []

    def get_price(self, symbol):
        return self.get_prices([symbol])[symbol]

    def get_prices(self, symbols):
        self.asked.append(sorted(symbols))
        book = {"BTC-USD": Decimal("65000"), "USD-JPY": Decimal("150.5")}
        return {
            s: PriceTick(symbol=s, price=book[s], timestamp=timezone.now(), source="elsewhere-api", venue="elsewhere")
            for s in symbols
            if s in book
        }


@pytest.fixture
def other_venue():
    import dataclasses

    from providers import registry
    from providers.interface import Market

    class Venue:
        name = "elsewhere"

        def get_pairs(self):
            return [
                Market(symbol="BTC-USD", pair_id="0", category="crypto", max_leverage=Decimal(50)),
                Market(symbol="USD-JPY", pair_id="4", category="forex", max_leverage=Decimal(100)),
            ]

    _OtherVenueFeed.asked = []
    spec = dataclasses.replace(registry.venue_spec("paper"), factory=Venue, price_feed=_OtherVenueFeed)
    registry.venue_register("elsewhere", spec)
    yield _OtherVenueFeed
    registry._specs.pop("elsewhere", None)
    registry.venues_reset()


def test_a_symbol_is_priced_by_the_venue_it_routes_to_and_each_venue_keeps_its_own(other_venue):
    from providers.models import ProviderRoute

    price_set("BTC-USD", Decimal("60000"))
    assert price_get("BTC-USD").venue == "paper"
    ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="elsewhere")
    tick = price_get("BTC-USD")
    assert (tick.price, tick.venue, tick.source) == (Decimal("65000"), "elsewhere", "elsewhere-api")
    # both venues' prices are kept apart: the paper one is still there, for what paper holds
    assert price_cached("BTC-USD", venue="paper").price == Decimal("60000")
    assert price_cached("BTC-USD").price == Decimal("65000")
    assert {s: t.venue for s, t in price_get_many(["BTC-USD", "ETH-USD"]).items()} == {
        "BTC-USD": "elsewhere",
        "ETH-USD": "paper",
    }
    # a market only the other venue lists is priced once routed there (here: by its category)
    with pytest.raises(VenueException):
        price_get("USD-JPY")
    ProviderRoute.objects.create(match_type="category", value="forex", venue="elsewhere")
    assert price_get("USD-JPY").price == Decimal("150.5")


def test_market_data_listeners_get_only_the_routed_venues_ticks_others_get_every_venues(other_venue):
    from providers.models import ProviderRoute

    ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="elsewhere")
    routed, every = [], []
    register_tick_listener(routed.append, routed_only=True)
    register_tick_listener(every.append)
    try:
        price_set("BTC-USD", Decimal("60000"))  # a paper tick of a symbol routed elsewhere
        ticks = prices_tick()
    finally:
        unregister_tick_listener(routed.append)
        unregister_tick_listener(every.append)
    assert {(t.venue, t.symbol) for t in ticks} >= {("paper", "BTC-USD"), ("elsewhere", "BTC-USD")}
    assert ("paper", "BTC-USD") in {(t.venue, t.symbol) for t in every}
    assert [t.venue for t in routed if t.symbol == "BTC-USD"] == ["elsewhere"]
    assert ("paper", "ETH-USD") in {(t.venue, t.symbol) for t in routed}
    # the other venue was asked only for what routes to it
    assert other_venue.asked == [["BTC-USD"]]


def test_the_price_job_asks_no_venue_nothing_routes_to_and_nothing_is_held_at(other_venue):
    prices_tick()
    assert other_venue.asked == []
