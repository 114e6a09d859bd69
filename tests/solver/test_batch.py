"""Group commit: the quotes waiting to be decided are decided together (`loop.quotes_receive`),
in order against the running balance and the hour's notional, written in one transaction; a
refused hold rolls the batch back and it is decided again on a fresh read, losing none of it."""

import uuid
from decimal import Decimal

from tests.solver.conftest import BTC, BTC_RAW, EURE, EURE_RAW, arm, rival_holding_btc


def request(asset_in, asset_out, **amount):
    return {
        "quote_id": str(uuid.uuid4()),
        "defuse_asset_identifier_in": asset_in,
        "defuse_asset_identifier_out": asset_out,
        "min_deadline_ms": 60000,
        **{key: str(value) for key, value in amount.items()},
    }


def buy_btc(eure=1000):
    """A user gives `eure` EURe for BTC: the desk gives BTC (1000 EURe: 0.01626016 BTC)."""
    return request(EURE, BTC, exact_amount_in=eure * EURE_RAW)


def balance(asset):
    from treasury.models import InventoryBalance

    return InventoryBalance.objects.get(venue="near_intents", asset=asset)


def caps(**limits):
    from solver.services.config import config_set

    config_set(
        actor="test", reason="test", **{"max_notional_quote": "1000000", "max_notional_hour": "1000000", **limits}
    )


def test_two_quotes_of_one_batch_that_together_exceed_inventory_only_the_first_is_answered(desk):
    from solver.models import QuoteCommand, QuoteDecision, RelayQuote
    from solver.services import loop

    arm()
    caps()
    first, second = (request(EURE, BTC, exact_amount_out=3 * BTC_RAW // 2) for _ in range(2))  # 1.5 BTC each, 2 held
    outcomes = loop.quotes_receive([loop.Received(first, {}), loop.Received(second, {})])

    assert [(o.status, o.reason) for o in outcomes] == [("quote", "QUOTED"), ("skip", "INSUFFICIENT_INVENTORY")]
    assert outcomes[0].plan is not None and outcomes[1].plan is None
    assert RelayQuote.objects.count() == QuoteDecision.objects.count() == 2
    assert list(QuoteCommand.objects.values_list("quote_id", flat=True)) == [first["quote_id"]]
    assert balance(BTC).reserved == Decimal("1.5")
    # the second was decided on what the first left: its record shows the running balance
    skipped = QuoteDecision.objects.get(quote_id=second["quote_id"])
    assert skipped.inventory_snapshot["spendable"] == "0.5" and skipped.inventory_snapshot["reserved"] == "1.5"
    assert skipped.inventory_snapshot_row_id is not None and skipped.reference_sample_id is not None


def test_the_hour_cap_counts_the_earlier_quotes_of_the_batch(desk):
    from solver.services import loop

    arm()
    caps(max_notional_hour="1500")  # EURe: one 1000 EURe quote fits, two do not
    outcomes = loop.quotes_receive([loop.Received(buy_btc(), {}), loop.Received(buy_btc(), {})])
    assert [(o.status, o.reason) for o in outcomes] == [("quote", "QUOTED"), ("skip", "NOTIONAL_CAP_HOUR")]


def test_a_duplicate_within_a_batch_and_a_filtered_quote_are_recorded_beside_the_others(desk):
    from solver.models import QuoteDecision, RelayQuote
    from solver.services import loop

    arm()
    caps()
    quote = buy_btc()
    usdc = request(EURE, "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near", exact_amount_in=10**18)
    outcomes = loop.quotes_receive([loop.Received(quote, {}), loop.Received(dict(quote), {}), loop.Received(usdc, {})])
    assert [o.status for o in outcomes] == ["quote", "duplicate", "filtered"]
    assert RelayQuote.objects.count() == 2 and QuoteDecision.objects.count() == 1


def test_a_refused_hold_loses_none_of_the_batch_it_is_decided_again_on_a_fresh_read(desk):
    """The batch is decided on 2 BTC and 50,000 EURe: two quotes give BTC, one gives EURe. Its
    holds (its statement's last part) wait on the BTC row a concurrent hold has locked; that one
    leaves 0.02 BTC: the batch's BTC hold (0.0325) is refused, the whole batch is rolled back and
    decided again: the first BTC quote fits what is left, the second does not, the EURe one is
    answered as before."""

    from solver.models import QuoteCommand, QuoteDecision, RelayQuote
    from solver.services import loop

    arm()
    caps()
    # a concurrent hold leaving 0.02 BTC, committed once the batch's holds wait on its lock
    with rival_holding_btc(lambda row: row.credited - Decimal("0.02")):
        first, second = buy_btc(), buy_btc()
        sell_btc = request(BTC, EURE, exact_amount_in=BTC_RAW // 10)  # the desk gives 5850 EURe
        outcomes = loop.quotes_receive([loop.Received(q, {}) for q in (first, second, sell_btc)])

    assert [(o.status, o.reason) for o in outcomes] == [
        ("quote", "QUOTED"),
        ("skip", "INSUFFICIENT_INVENTORY"),
        ("quote", "QUOTED"),
    ]
    ids = [q["quote_id"] for q in (first, second, sell_btc)]
    assert RelayQuote.objects.filter(quote_id__in=ids).count() == 3
    assert QuoteDecision.objects.filter(quote_id__in=ids).count() == 3
    assert set(QuoteCommand.objects.values_list("quote_id", flat=True)) == {first["quote_id"], sell_btc["quote_id"]}
    assert balance(BTC).reserved == balance(BTC).credited - Decimal("0.02") + Decimal("0.01626016")
    assert balance(EURE).reserved == Decimal("5850")
    # each answered quote is on the record before it is sent: decision, command, hold and events
    for outcome, quote_id in ((outcomes[0], ids[0]), (outcomes[2], ids[2])):
        command = QuoteCommand.objects.get(quote_id=quote_id)
        assert command.command_id == outcome.plan.command_id and command.reservation.status == "held"


def test_a_quote_the_database_refuses_loses_none_of_its_batch(desk):
    """A request the database cannot store (a NUL character in its raw JSON) fails its batch's
    transaction: the batch is decided again one quote at a time, and only that one is lost."""
    from solver.models import QuoteCommand, RelayQuote
    from solver.services import loop

    arm()
    caps()
    good, poisoned, other = buy_btc(), {**buy_btc(), "memo": "a\x00b"}, buy_btc()
    outcomes = loop.quotes_receive([loop.Received(q, {}) for q in (good, poisoned, other)])
    assert [o.status for o in outcomes] == ["quote", "error", "quote"]
    assert set(RelayQuote.objects.values_list("quote_id", flat=True)) == {good["quote_id"], other["quote_id"]}
    assert QuoteCommand.objects.count() == 2


def test_the_log_lines_of_a_batch_can_wait_until_its_responses_are_sent(desk, caplog):
    import logging

    from solver.services import loop

    arm()
    caps()
    logs = []
    quote = buy_btc()
    with caplog.at_level(logging.INFO, logger="tradedesk.near_intents.solver"):
        (outcome,) = loop.quotes_receive([loop.Received(quote, {})], logs_later=logs)
        assert outcome.status == "quote"
        assert not [r for r in caplog.records if getattr(r, "event", "") in ("decision", "submit")]
        for write in logs:
            write()
    events = {r.event: r for r in caplog.records if getattr(r, "quote_id", "") == quote["quote_id"]}
    assert events["decision"].decision_reason == "QUOTED"
    assert events["submit"].command_id == outcome.plan.command_id


def test_a_fair_rate_past_three_quarters_of_its_window_is_evaluated_again_ahead_of_time(
    desk, settings, django_assert_num_queries
):
    from solver.services import loop

    settings.NEAR_SOLVER_FAIR_RATE_MS = 1000
    first = loop.fair_rate("BTC/EURE")
    loop.caches_refresh()  # the settings and the hour's notional read; the rate is fresh
    with django_assert_num_queries(0):
        loop.caches_refresh()  # nothing is old: nothing is read
    # the cached rate past ¾ of its window: still used as it is (its age counts on) ...
    value, at = loop._fair["BTC/EURE"]
    loop._fair["BTC/EURE"] = (value, at - 0.8)
    old = loop.fair_rate("BTC/EURE")
    assert old.sample_id == first.sample_id and old.age_ms >= first.age_ms + 800
    # ... until the refresh evaluates it again ahead of time (not when told to leave the rates)
    loop.caches_refresh(fair_rates=False)
    assert loop._fair["BTC/EURE"][1] == at - 0.8
    loop.caches_refresh()
    assert loop._fair["BTC/EURE"][1] > at  # evaluated again, now
    assert loop.fair_rate("BTC/EURE").age_ms < old.age_ms


def test_the_hours_notional_past_three_quarters_of_its_second_is_read_again_ahead_of_time(
    desk, django_assert_num_queries
):
    from django.utils import timezone

    from solver.services import loop

    arm()
    caps()
    assert loop.quotes_receive([loop.Received(buy_btc(), {})])[0].status == "quote"  # 1000 EURe answered
    now = timezone.now()
    assert loop.hour_notional_cached(now) == Decimal(1000)
    # read 0.8 s ago, past ¾ of its second: still used as it is, with no read
    loop._hour[0], loop._hour[1] = Decimal(0), loop._hour[1] - 0.8
    with django_assert_num_queries(0):
        assert loop.hour_notional_cached(now) == Decimal(0)
    loop.caches_refresh(fair_rates=False)  # read again from the commands, ahead of time
    assert loop.hour_notional_cached(now) == Decimal(1000)
    loop._hour_add(Decimal(5))  # a batch committed since: counted on
    assert loop.hour_notional_cached(now) == Decimal(1005)
    # past its second, a batch would read it itself (the refresh has stopped, say)
    loop._hour[1] -= 1.5
    with django_assert_num_queries(1):
        assert loop.hour_notional_cached(now) == Decimal(1000)


def test_a_solver_thread_keeps_its_connection_past_its_max_age_and_replaces_a_broken_one(transactional_db):
    """The solver's threads keep their connection (and the statements prepared on it) past
    CONN_MAX_AGE; the check once a second still replaces one the server has closed."""
    import time

    from django.db import connection

    from solver import runner

    def check_now():
        runner._thread.checked = 0.0  # the next call checks the connection

    check_now()
    runner.SolverRunner._call(connection.ensure_connection)
    raw = connection.connection
    connection.close_at = time.monotonic() - 1  # past its max age
    check_now()
    runner.SolverRunner._call(connection.ensure_connection)
    assert connection.connection is raw

    with connection.cursor() as cur:  # the server ends the connection
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    check_now()
    assert runner.SolverRunner._call(lambda: connection.cursor().execute("SELECT 1") or True)
    assert connection.connection is not raw
