"""Retention of raw quotes: the relay sends every solver every quote of the network."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from solver.models import QuoteCommand, RelayQuote


def quotes_purge(*, now=None, batch: int = 5000) -> int:
    """Delete raw quotes (and their decisions) older than the retention that no command answered."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NEAR_SOLVER_QUOTE_RETENTION_DAYS)
    answered = QuoteCommand.objects.values("quote_id")
    total = 0
    while True:
        ids = list(
            RelayQuote.objects.filter(received_at__lt=cutoff)
            .exclude(quote_id__in=answered)
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return total
        RelayQuote.objects.filter(pk__in=ids).delete()
        total += len(ids)
