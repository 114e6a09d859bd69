"""The venues, by name: what each one can do, its price feed, and one adapter instance per process.

Every venue is declared once, as a `VenueSpec`: its adapter factory ("module:attribute" of a
zero-argument callable), its `VenueCapabilities`, and its price feed. Capabilities and the feed
are read from the spec, never from an adapter instance, so asking "does Ostium hold SL/TP
natively?" builds no client and needs no key or network. "paper" and "ostium" are built in;
another venue is added with a line in `_BUILTIN` or at start-up with
`venue_register(name, spec)`; `venue_factory_register(name, factory)` swaps the adapter
factory of a venue and keeps what it declared (tests, sandboxes).
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from providers.interface import ErrorCode, PriceFeed, VenueAdapter, VenueError, VenueException


@dataclass(frozen=True)
class VenueCapabilities:
    """What a venue does by itself (the desk must not do it as well)."""

    # the venue holds a trade's stop-loss / take-profit and closes the trade itself when its
    # price reaches them (the protective engine leaves STOP_LOSS/TAKE_PROFIT orders to it and
    # pushes trailing-stop levels with update_sl)
    native_sl_tp: bool = False
    # the venue rests LIMIT entries itself; False: the protective engine holds them and fires them
    native_limit_orders: bool = True
    # market orders answer PENDING and are filled (or cancelled) later by the venue's keeper
    two_phase_market_orders: bool = False


@dataclass(frozen=True)
class VenueSpec:
    factory: str | Callable[[], VenueAdapter]
    capabilities: VenueCapabilities = VenueCapabilities()
    # the venue's own price feed ("module:attribute" of a zero-argument factory); None: the
    # adapter itself is the feed (it implements `PriceFeed`)
    price_feed: str | Callable[[], PriceFeed] | None = None


_BUILTIN: dict[str, VenueSpec] = {
    "paper": VenueSpec(
        factory="providers.paper.adapter:PaperVenue",
        capabilities=VenueCapabilities(native_sl_tp=False, native_limit_orders=True),
        price_feed="providers.feeds.paper:PaperFeed",  # the simulated walk the paper book trades at
    ),
    "ostium": VenueSpec(
        # the signer service's HTTP client when OSTIUM_SERVICE_BASE_URL is set, else in-process
        factory="providers.ostium.service_client:ostium_venue",
        # SL/TP live on chain and Ostium's keepers fire them; limit/stop entries rest on chain
        capabilities=VenueCapabilities(native_sl_tp=True, native_limit_orders=True, two_phase_market_orders=True),
        price_feed=None,  # Ostium's price API (the localnet's on the localnet), read by the adapter
    ),
    # "near_intents": VenueSpec(factory="providers.near_intents.adapter:NearIntentsVenue", ...),
}

_specs: dict[str, VenueSpec] = {}
_instances: dict[str, VenueAdapter] = {}
_feeds: dict[str, PriceFeed] = {}
_lock = threading.Lock()


def _load(target):
    if not isinstance(target, str):
        return target
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def venue_register(name: str, spec: VenueSpec) -> None:
    """Declare (or replace) venue `name`."""
    with _lock:
        _specs[name] = spec
        _instances.pop(name, None)
        _feeds.pop(name, None)


def venue_factory_register(name: str, factory: Callable[[], VenueAdapter]) -> None:
    """Make `get_venue(name)` build its instance with `factory()`; the venue keeps the
    capabilities and price feed it declared (a new name gets the defaults)."""
    spec = venue_spec(name) or VenueSpec(factory=factory)
    venue_register(name, dataclasses.replace(spec, factory=factory))


def venue_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_specs))


def venue_spec(name: str) -> VenueSpec | None:
    return _specs.get(name) or _BUILTIN.get(name)


def venue_capabilities(name: str) -> VenueCapabilities:
    """What venue `name` does by itself (an unknown venue: nothing)."""
    spec = venue_spec(name)
    return spec.capabilities if spec else VenueCapabilities()


def _unknown(name: str) -> VenueException:
    return VenueException(
        VenueError(
            code=ErrorCode.INVALID_REQUEST,
            message=f"unknown venue {name!r}",
            details={"venue": name, "known": venue_names()},
        )
    )


def _built(built: dict, name: str, target):
    """`built[name]`, made from `target` once per process."""
    instance = built.get(name)
    if instance is None:
        with _lock:
            instance = built.get(name)
            if instance is None:
                instance = built[name] = _load(target)()
    return instance


def get_venue(name: str) -> VenueAdapter:
    """The process-wide adapter for venue `name`. Unknown names raise
    `VenueException(VenueError(INVALID_REQUEST))`."""
    instance = _instances.get(name)
    if instance is not None:
        return instance
    spec = venue_spec(name)
    if spec is None:
        raise _unknown(name)
    return _built(_instances, name, spec.factory)


def venue_price_feed(name: str) -> PriceFeed:
    """The price feed venue `name` trades at (the process-wide instance)."""
    spec = venue_spec(name)
    if spec is None:
        raise _unknown(name)
    if spec.price_feed is None:
        return get_venue(name)  # type: ignore[return-value]  (the adapter implements PriceFeed)
    return _built(_feeds, name, spec.price_feed)


def venues_reset() -> None:
    """Forget built instances (tests)."""
    with _lock:
        _instances.clear()
        _feeds.clear()
