"""How long ago a timestamp was, for what the desk shows (panel, API, metrics)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def seconds_since(when: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds from `when` to `now` (default: this moment), None without `when`. Never negative:
    a timestamp another process wrote just after `now` was taken is 0 s old, not "-0.0 s"."""
    if when is None:
        return None
    return max(0.0, ((now or timezone.now()) - when).total_seconds())
