"""Router precedence, the venue registry and the market lookups."""

from decimal import Decimal

import pytest

from providers.interface import ErrorCode, VenueAdapter, VenueException
from providers.markets import market_get, markets_list
from providers.models import PaperMarket, ProviderRoute
from providers.registry import (
    VenueCapabilities,
    get_venue,
    venue_capabilities,
    venue_factory_register,
    venue_names,
    venues_reset,
)
from providers.router import route

pytestmark = pytest.mark.usefixtures("paper_markets")


def test_route_precedence_symbol_then_category_then_default(settings):
    settings.DEFAULT_VENUE = "paper"
    assert route("BTC-USD") == "paper"
    ProviderRoute.objects.create(match_type="category", value="crypto", venue="ostium")
    assert route("BTC-USD") == "ostium"
    assert route("EUR-USD") == "paper"  # forex: no category route
    ProviderRoute.objects.create(match_type="symbol", value="btc-usd", venue="near_intents")
    assert route("BTC-USD") == "near_intents"  # symbol beats category
    assert route("ETH-USD") == "ostium"
    settings.DEFAULT_VENUE = "elsewhere"
    assert route("EUR-USD") == "elsewhere"


def test_disabled_routes_are_ignored_and_priority_breaks_ties():
    ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="a", priority=1)
    high = ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="b", priority=5)
    assert route("BTC-USD") == "b"
    high.enabled = False
    high.save()
    assert route("BTC-USD") == "a"


def test_category_can_be_given_for_symbols_the_default_venue_does_not_list():
    ProviderRoute.objects.create(match_type="category", value="stock", venue="ostium")
    assert route("AAPL-USD") == "paper"
    assert route("AAPL-USD", category="stock") == "ostium"


def test_get_venue_returns_one_instance_per_process_and_refuses_unknown_names():
    venue = get_venue("paper")
    assert get_venue("paper") is venue
    assert isinstance(venue, VenueAdapter)
    assert "paper" in venue_names()
    with pytest.raises(VenueException) as exc:
        get_venue("nowhere")
    assert exc.value.error.code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("venue", "capabilities"),
    [
        ("paper", VenueCapabilities(native_sl_tp=False, native_limit_orders=True, two_phase_market_orders=False)),
        ("ostium", VenueCapabilities(native_sl_tp=True, native_limit_orders=True, two_phase_market_orders=True)),
    ],
)
def test_each_venue_declares_its_capabilities_readable_without_building_its_client(venue, capabilities, settings):
    from providers import registry
    from trading.services.protective import limit_orders_held_here, native_sl_tp_venues

    # no Ostium network, key or service: nothing could be built
    settings.OSTIUM_LOCALNET_CONFIG = "/nonexistent/ostium-localnet.json"
    settings.OSTIUM_TRADER_KEY_FILE = ""
    venues_reset()
    assert venue_capabilities(venue) == capabilities
    assert (venue in native_sl_tp_venues()) is capabilities.native_sl_tp
    assert limit_orders_held_here(venue) is not capabilities.native_limit_orders
    assert registry._instances == {}  # no adapter was built to answer


def test_every_venue_declares_its_capabilities_and_an_unknown_one_has_none():
    from providers.registry import venue_spec

    assert all(venue_spec(name) is not None for name in venue_names())
    assert venue_capabilities("nowhere") == VenueCapabilities(native_sl_tp=False)


def test_a_venue_factory_can_be_registered_as_an_extension_point():
    from providers.paper.adapter import PaperVenue

    class Other(PaperVenue):
        name = "other"

    venue_factory_register("other", Other)
    try:
        assert get_venue("other").name == "other"
    finally:
        from providers import registry

        registry._specs.pop("other", None)
        venues_reset()


def test_market_get_uses_the_routed_venue_and_sees_admin_edits():
    btc = market_get("btc-usd")
    assert (btc.symbol, btc.max_leverage, btc.maintenance_margin_rate) == ("BTC-USD", Decimal("50"), Decimal("0.005"))
    market = PaperMarket.objects.get(symbol="BTC-USD")
    market.max_leverage = Decimal("20")
    market.save()  # as the admin does
    assert market_get("BTC-USD").max_leverage == Decimal("20")
    assert {"BTC-USD", "ETH-USD", "EUR-USD", "XAU-USD"} <= {m.symbol for m in markets_list()}


def test_unknown_market_is_invalid_market():
    with pytest.raises(VenueException) as exc:
        market_get("DOGE-USD")
    assert exc.value.error.code == ErrorCode.INVALID_MARKET


def test_a_symbol_routed_to_an_unknown_venue_raises_a_venue_error():
    ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="nowhere")
    with pytest.raises(VenueException):
        market_get("BTC-USD")
