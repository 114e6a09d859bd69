"""The NEAR Intents solver's metrics on /metrics, counted where the loop does each thing: a quote
received (per pair), its decision (outcome and reason), the quote response and the settlement."""

from tests.conftest import wait_for
from tests.solver.conftest import BTC, EURE, EURE_RAW, arm
from tests.trading.test_metrics import TOKEN, samples, value


def test_a_settled_quote_is_counted_at_each_step(desk, solver, client, settings):
    from solver.models import QuoteCommand

    settings.METRICS_TOKEN = TOKEN

    def scrape():
        return samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())

    before = scrape()
    arm("strategy:near_intents", "executor:near_intents")
    quote_id = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
    wait_for(lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").exists(), what="settled")

    def grew(found, name, **labels):
        return value(found, name, **labels) - value(before, name, **labels)

    def settled_counted():
        found = scrape()
        return found if grew(found, "tradedesk_near_settlements_total", outcome="settled") >= 1 else None

    after = wait_for(settled_counted, what="the settlement counted")
    assert grew(after, "tradedesk_near_quotes_total", pair="BTC/EURE", status="accepted") >= 1
    assert grew(after, "tradedesk_near_decisions_total", outcome="quote", reason="QUOTED") >= 1
    assert grew(after, "tradedesk_near_quote_responses_total", status="responded") >= 1
