"""One venue adapter instance per process, by name.

Extension point: a venue is a factory registered under its name. "paper" is built in;
"ostium" and "near_intents" register themselves here when their adapters land (add a line to
`_BUILTIN_FACTORIES` pointing at `providers.<venue>.adapter:<Class>`), or at start-up with
`venue_factory_register(name, factory)`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from providers.interface import ErrorCode, VenueAdapter, VenueError, VenueException

# name -> "module:attribute" of a zero-argument factory (usually the adapter class).
_BUILTIN_FACTORIES: dict[str, str] = {
    "paper": "providers.paper.adapter:PaperVenue",
    "ostium": "providers.ostium.service_client:ostium_venue",
    # "near_intents": "providers.near_intents.adapter:NearIntentsVenue",
}

_factories: dict[str, Callable[[], VenueAdapter]] = {}
_instances: dict[str, VenueAdapter] = {}
_lock = threading.Lock()


def venue_factory_register(name: str, factory: Callable[[], VenueAdapter]) -> None:
    """Make `get_venue(name)` build its instance with `factory()` (replaces any earlier one)."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def venue_names() -> list[str]:
    return sorted(set(_BUILTIN_FACTORIES) | set(_factories))


def _factory_for(name: str) -> Callable[[], VenueAdapter] | None:
    if name in _factories:
        return _factories[name]
    target = _BUILTIN_FACTORIES.get(name)
    if not target:
        return None
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def get_venue(name: str) -> VenueAdapter:
    """The process-wide adapter for venue `name`. Unknown names raise
    `VenueException(VenueError(INVALID_REQUEST))`."""
    instance = _instances.get(name)
    if instance is not None:
        return instance
    with _lock:
        instance = _instances.get(name)
        if instance is None:
            factory = _factory_for(name)
            if factory is None:
                raise VenueException(
                    VenueError(
                        code=ErrorCode.INVALID_REQUEST,
                        message=f"unknown venue {name!r}",
                        details={"venue": name, "known": venue_names()},
                    )
                )
            instance = factory()
            _instances[name] = instance
    return instance


def venues_reset() -> None:
    """Forget built instances (tests)."""
    with _lock:
        _instances.clear()
