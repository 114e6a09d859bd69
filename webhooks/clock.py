"""The webhooks' time source. Services take `now` (defaulting to `clock.now()`), so tests
drive retry schedules and grace periods without sleeping."""

from django.utils import timezone


def now():
    return timezone.now()
