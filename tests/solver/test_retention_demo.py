"""Raw quote retention, and the relay double's demo generator feeding the loop."""

from datetime import timedelta

from django.utils import timezone

from tests.conftest import wait_for
from tests.solver.conftest import arm


def test_the_demo_generator_feeds_both_directions_to_the_loop(desk, solver):
    from providers.management.commands.near_intents_sandbox import demo_quote
    from solver.models import QuoteCommand, QuoteDecision

    arm()
    ids = [demo_quote(desk.world, n) for n in range(4)]
    wait_for(lambda: QuoteCommand.objects.filter(quote_id__in=ids, status="settled").count() == 4, what="settled")
    assert {d.direction for d in QuoteDecision.objects.filter(quote_id__in=ids)} == {"buy", "sell"}


def test_raw_quotes_past_the_retention_go_answered_ones_stay(desk, solver, settings):
    from solver.models import QuoteCommand, QuoteDecision, RelayQuote
    from solver.services.retention import quotes_purge
    from tests.solver.conftest import BTC, EURE, EURE_RAW

    arm("strategy:near_intents")
    skipped = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=100 * EURE_RAW)
    wait_for(lambda: QuoteDecision.objects.filter(quote_id=skipped).exists(), what="decided")
    arm("executor:near_intents")
    answered = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=100 * EURE_RAW)
    wait_for(lambda: QuoteCommand.objects.filter(quote_id=answered, status="settled").exists(), what="settled")
    old = timezone.now() - timedelta(days=settings.NEAR_SOLVER_QUOTE_RETENTION_DAYS + 1)
    RelayQuote.objects.update(received_at=old)
    assert quotes_purge() == 1
    assert list(RelayQuote.objects.values_list("quote_id", flat=True)) == [answered]
    assert not QuoteDecision.objects.filter(quote_id=skipped).exists()
