"""Venue events: things a venue does on its own (resting fills, liquidations, funding).

`trading` registers one listener in its AppConfig.ready; venues call `venue_events_emit_on_commit`
inside the transaction that changed their state, so listeners run only after it commits.
Listeners must be idempotent: the same VenueEvent may be delivered twice. A listener that
raises is logged and never stops the others or the venue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.db import transaction

from providers.interface import VenueEvent

logger = logging.getLogger("tradedesk.providers.events")

VenueListener = Callable[[VenueEvent], None]
_listeners: list[VenueListener] = []


def register_venue_listener(fn: VenueListener) -> None:
    """Call `fn(event)` for every VenueEvent any venue emits (once per fn, in registration order)."""
    if fn not in _listeners:
        _listeners.append(fn)


def unregister_venue_listener(fn: VenueListener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def venue_listeners() -> list[VenueListener]:
    return list(_listeners)


def venue_event_emit(event: VenueEvent) -> None:
    """Deliver one event to every listener now; errors are logged, never raised."""
    for fn in list(_listeners):
        try:
            fn(event)
        except Exception:
            logger.exception(
                "venue listener failed",
                extra={"listener": getattr(fn, "__qualname__", repr(fn)), "venue_event": event.kind.value},
            )


def venue_events_emit_on_commit(events: Iterable[VenueEvent]) -> None:
    """Deliver `events` after the current transaction commits (now, outside a transaction)."""
    events = list(events)
    if not events:
        return

    def _deliver():
        for event in events:
            venue_event_emit(event)

    transaction.on_commit(_deliver)
