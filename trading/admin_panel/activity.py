"""Each component's last activity on the control panel: when it last did something, and what (its
newest side effect or message). The app that owns a component registers how to read it in
`AppConfig.ready()` with `activity_provider_register(component, fn)`; this module imports nothing
else, so any process's apps may register (the Ostium signer service runs with a few apps only).
An executor of a venue without one shows its last command sent to the venue (`panel.py`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

logger = logging.getLogger("tradedesk.admin")

Activity = tuple[datetime | None, str]
_activity: dict[str, Callable[[], Activity]] = {}


def activity_provider_register(component: str, fn: Callable[[], Activity]) -> None:
    _activity[component] = fn


def activity_read(component: str) -> Activity | None:
    """(when, what) of `component`, None when nothing is registered for it; a probe that fails
    shows as failed, never as an error page."""
    fn = _activity.get(component)
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:
        logger.warning("activity provider failed", extra={"component": component}, exc_info=True)
        return None, f"probe failed: {type(exc).__name__}"
