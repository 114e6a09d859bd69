"""A quote through the whole loop against the doubles: ingest, pricing, decision, gate, hold,
signed quote_response (checked by the double's verifier), quote_status, settlement."""

from decimal import Decimal

from tests.conftest import wait_for
from tests.solver.conftest import BTC, BTC_RAW, EURE, EURE_RAW, SOLVER, arm, put_price


def chain_topics(quote_id):
    from trading.models import Event

    return list(
        Event.objects.filter(correlation_id=f"near-quote-{quote_id}").order_by("id").values_list("topic", flat=True)
    )


def test_an_armed_desk_answers_a_quote_the_verifier_accepts_and_the_intent_settles(desk, solver):
    from solver.models import QuoteCommand, QuoteDecision, RelayQuote
    from treasury.models import InventoryBalance, Reservation

    arm("strategy:near_intents", "executor:near_intents")
    relay = desk.world.relay
    quote_id = relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)

    command = wait_for(lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").first(), what="settled")
    decision = QuoteDecision.objects.get(quote_id=quote_id)
    # priced 2.5 % above the fair rate (60,000 EURe per BTC): 1000 / 61,500 BTC, rounded down
    assert (decision.pair, decision.direction, decision.decision, decision.decision_reason) == (
        "BTC/EURE",
        "sell",
        "quote",
        "QUOTED",
    )
    assert decision.reference_rate == Decimal("60000") and decision.amount_out == Decimal("0.01626016")
    assert Decimal("2.5") <= decision.gross_edge_pct < Decimal("2.51")
    assert decision.reference_sample_id and decision.inventory_snapshot["credited"] == "2"
    assert decision.inventory_snapshot_row_id is not None
    assert RelayQuote.objects.get(quote_id=quote_id).raw["data"]["quote_id"] == quote_id

    # the relay double picked our response; its verifier applied the diff to the balances
    rnd = relay.round(quote_id)
    assert rnd.winner["quote_output"] == {"amount_out": "1626016"}
    assert desk.world.balance(SOLVER, BTC) == 2 * BTC_RAW - 1626016
    assert desk.world.balance(SOLVER, EURE) == 51_000 * EURE_RAW
    assert command.intent_hash and command.tx_hash and command.relay_answer == {"result": "OK"}

    # inventory moved: the hold was consumed off credited
    reservation = Reservation.objects.get(pk=command.reservation_id)
    assert (reservation.status, reservation.amount) == ("consumed", Decimal("0.01626016"))
    btc = InventoryBalance.objects.get(venue="near_intents", asset=BTC)
    assert (btc.credited, btc.reserved) == (Decimal("1.98373984"), 0)

    assert chain_topics(quote_id) == [
        "near_intents.quote.received",
        "near_intents.quote.decided",
        "near_intents.command.created",
        "near_intents.quote.responded",
        "near_intents.quote.executed",
        "near_intents.quote.settled",
    ]


def test_a_disarmed_executor_records_the_decision_and_sends_nothing(desk, solver):
    from solver.models import QuoteCommand, QuoteDecision
    from treasury.models import Reservation

    arm("strategy:near_intents")
    quote_id = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
    decision = wait_for(lambda: QuoteDecision.objects.filter(quote_id=quote_id).first(), what="decision")
    assert (decision.decision, decision.decision_reason) == ("skip", "EXECUTOR_DISARMED")
    assert decision.reference_rate == Decimal("60000") and decision.gross_edge_pct is not None
    assert not QuoteCommand.objects.exists() and not Reservation.objects.exists()
    assert desk.world.relay.round(quote_id).responses == []


def test_the_other_direction_gives_eure_for_btc(desk, solver):
    from solver.models import QuoteCommand

    arm("strategy:near_intents", "executor:near_intents")
    # the user sells 0.1 BTC: the desk pays 2.5 % under the fair rate, 5850 EURe
    quote_id = desk.world.relay.quote(asset_in=BTC, asset_out=EURE, exact_amount_in=BTC_RAW // 10)
    command = wait_for(lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").first(), what="settled")
    assert command.give_asset == EURE and command.give_amount == Decimal("5850")
    assert command.decision.direction == "buy"
    assert desk.world.balance(SOLVER, EURE) == (50_000 - 5850) * EURE_RAW


def test_a_duplicate_quote_id_is_decided_once(desk, solver):
    from solver.models import QuoteCommand, QuoteDecision, RelayQuote

    arm("strategy:near_intents", "executor:near_intents")
    relay = desk.world.relay
    quote_id = relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=100 * EURE_RAW)
    wait_for(lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").exists(), what="settled")
    relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=100 * EURE_RAW, quote_id=quote_id)
    wait_for(lambda: solver.runner.counters["duplicate"] == 1, what="the duplicate counted")
    assert RelayQuote.objects.count() == QuoteDecision.objects.count() == QuoteCommand.objects.count() == 1


def test_a_stale_reference_price_is_not_quoted(desk, solver, settings):
    from solver.models import QuoteDecision

    arm("strategy:near_intents", "executor:near_intents")
    settings.REFERENCE_FALLBACK_ENABLED = False
    put_price("60000", age_ms=60_000)
    quote_id = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
    decision = wait_for(lambda: QuoteDecision.objects.filter(quote_id=quote_id).first(), what="decision")
    assert (decision.decision, decision.decision_reason) == ("skip", "REFERENCE_UNHEALTHY")
    assert decision.reference_sample_id is not None
    assert desk.world.relay.round(quote_id).responses == []


def test_the_log_lines_carry_the_stable_fields(desk, solver, caplog, settings):
    import json
    import logging

    from config.logging import STABLE_FIELDS, JsonFormatter, service_name
    from solver.models import QuoteCommand

    with caplog.at_level(logging.INFO, logger="tradedesk.near_intents"):
        arm("strategy:near_intents", "executor:near_intents")
        quote_id = desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=1000 * EURE_RAW)
        command = wait_for(
            lambda: QuoteCommand.objects.filter(quote_id=quote_id, status="settled").first(), what="settled"
        )
        wait_for(lambda: any(getattr(r, "event", "") == "arm" for r in caplog.records), what="arm logged")
    records = [r for r in caplog.records if r.name.startswith("tradedesk.near_intents") and hasattr(r, "event")]
    by_event = {}
    for r in records:
        by_event.setdefault(r.event, []).append(r)
    formatter = JsonFormatter()
    for r in records:
        assert r.venue == "near_intents"
        assert r.topic or r.event == "relay_connected"  # (the connection's line reports no ledger topic)
        line = json.loads(formatter.format(r))  # the process and the deployment, as on every line
        assert set(STABLE_FIELDS) <= set(line)
        assert (line["service"], line["namespace"]) == (service_name(), settings.LOG_NAMESPACE)
        assert line["component"] and (line["event"], line["venue"]) == (r.event, "near_intents")
    decision = by_event["decision"][0]
    assert (decision.component, decision.topic, decision.pair, decision.quote_id) == (
        "strategy",
        "decision.trade_decision",
        "BTC/EURE",
        quote_id,
    )
    assert decision.decision_id == command.decision_id
    submit = by_event["submit"][0]
    assert (submit.component, submit.topic, submit.command_id) == ("executor", "cmd.execute_trade", command.command_id)
    assert {r.status for r in by_event["result"]} >= {"sent", "settled"}
    assert {r.component for r in by_event["arm"]} >= {"strategy", "executor"}
