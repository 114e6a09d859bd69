"""Seed 004's edge cases, each through the real relay client, the loop and the doubles."""

import logging
from decimal import Decimal

from django.utils import timezone

from tests.conftest import wait_for
from tests.solver.conftest import (
    BTC,
    BTC_RAW,
    EURE,
    EURE_RAW,
    SOLVER,
    SolverThread,
    arm,
    put_price,
    rival_holding_btc,
    sync,
)


def decided(quote_id):
    from solver.models import QuoteDecision

    return wait_for(lambda: QuoteDecision.objects.filter(quote_id=quote_id).first(), what=f"decision on {quote_id}")


def command_in(quote_id, *statuses, timeout=15):
    from solver.models import QuoteCommand

    return wait_for(
        lambda: QuoteCommand.objects.filter(quote_id=quote_id, status__in=statuses).first(),
        timeout=timeout,
        what=f"command {quote_id} in {statuses}",
    )


def buy_btc(relay, eure=1000, **kwargs):
    """A user gives `eure` EURe for BTC: the desk gives BTC."""
    return relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_in=eure * EURE_RAW, **kwargs)


def reserved(asset=BTC):
    from treasury.models import InventoryBalance

    return InventoryBalance.objects.get(venue="near_intents", asset=asset).reserved


# --- the relay connection ---------------------------------------------------------------------------
def test_the_flat_event_shape_and_the_bearer_key(desk, settings):
    from solver.models import QuoteDecision

    arm()
    relay = desk.world.relay
    relay.api_key = "relay-secret"
    wrong = SolverThread(desk.config()["relay_ws_url"], api_key="nope").start()
    try:
        wait_for(lambda: relay.refused_connections >= 1, what="refused")
        assert relay.subscribed("quote") == 0
    finally:
        wrong.stop()
    right = SolverThread(desk.config()["relay_ws_url"], api_key="relay-secret").start()
    try:
        wait_for(lambda: relay.subscribed("quote_status") == 1, what="subscribed")
        assert "Bearer relay-secret" in relay.auth_headers
        quote_id = buy_btc(relay, flat=True)
        command_in(quote_id, "settled")
        assert QuoteDecision.objects.get(quote_id=quote_id).decision == "quote"
    finally:
        right.stop()


def test_invalid_json_is_counted_and_the_connection_stays(desk, solver):
    relay = desk.world.relay
    relay.send_raw("{oops")
    relay.send_raw("[1, 2]")
    relay.send_raw("[" * 5000 + "]" * 5000)  # JSON, but too deep for Python's parser
    wait_for(lambda: solver.runner.stream.invalid_messages == 3, what="counted")
    assert solver.runner.stream.connected and solver.runner.stream.connections == 1
    arm("strategy:near_intents", "executor:near_intents")
    command_in(buy_btc(relay), "settled")


def test_a_disconnect_mid_quote_loses_the_status_and_the_verifier_settles_it(desk, solver):
    from solver.models import QuoteCommand

    arm("strategy:near_intents", "executor:near_intents")
    relay = desk.world.relay
    relay.window = 0.5  # the winner is picked after the connection dropped: its quote_status is lost
    quote_id = buy_btc(relay, min_deadline_ms=1000)
    command_in(quote_id, "sent")
    relay.disconnect()
    wait_for(lambda: solver.runner.stream.connections >= 2 and relay.subscribed("quote_status") == 1, what="back")
    command = command_in(quote_id, "settled")
    assert command.status_at is None and "nonce" in command.outcome_reason
    assert QuoteCommand.objects.get(pk=command.pk).reservation.status == "consumed"
    assert solver.runner.stream.reconnects >= 1


def test_a_reconnect_storm_is_capped(desk, settings, caplog):
    settings.NEAR_SOLVER_STORM_MAX = 3
    arm("near_intents:ingest")
    relay = desk.world.relay
    relay.storm_every = 0.05  # the relay closes every connection after 50 ms
    thread = SolverThread(desk.config()["relay_ws_url"]).start()
    try:
        with caplog.at_level(logging.WARNING, logger="tradedesk.near_intents.relay"):
            wait_for(lambda: any("storm" in r.getMessage() for r in caplog.records), what="storm noticed")
            connections = relay.connections
            import time

            time.sleep(1.0)
        assert connections == relay.connections == 3  # no fourth connection within the minute
        assert thread.runner.stream.errors >= 3
    finally:
        thread.stop()


def test_the_relays_address_is_asked_again_before_each_connection(desk):
    """The demo's relay double gets a new port each time it starts (the supervisor restarts a
    process that exits): a solver that kept the address it started with would knock on a dead port
    for good. Given a source, it asks before each connection; a source that fails is a failed try."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/ws"  # nothing listens there once closed
    answers = [dead, RuntimeError("the sandbox is writing its config"), dead]

    def source():
        answer = answers.pop(0) if answers else desk.config()["relay_ws_url"]
        if isinstance(answer, Exception):
            raise answer
        return answer

    arm("near_intents:ingest")
    thread = SolverThread(dead, url_source=source).start()
    try:
        wait_for(lambda: desk.world.relay.subscribed("quote_status") == 1, what="connected to the live address")
        assert thread.runner.stream.url == desk.config()["relay_ws_url"] and thread.runner.stream.errors >= 3
    finally:
        thread.stop()


def test_a_pair_silent_while_the_connection_is_healthy_is_shown(desk, solver, settings, staff_client):
    settings.NEAR_SOLVER_PAIR_SILENT_SECONDS = 0.3
    wait_for(lambda: solver.runner.silent == ["BTC/EURE"], what="silent")
    state = wait_for(
        lambda: (
            (s := staff_client.get("/api/v1/ops/near-intents").json())["components"]["ingest"]["silent_pairs"] and s
        ),
        what="shown",
    )
    assert state["components"]["ingest"]["connected"] is True
    buy_btc(desk.world.relay)
    wait_for(lambda: solver.runner.silent == [], what="heard again")


# --- the strategy -----------------------------------------------------------------------------------
def test_a_price_older_than_the_limit_is_stale(desk, solver):
    arm()
    put_price("60000", age_ms=7000)  # usable by the reference policy (10 s), too old to quote on (5 s)
    d = decided(buy_btc(desk.world.relay))
    assert (d.decision, d.decision_reason, d.price_freshness_ms >= 7000) == ("skip", "PRICE_STALE", True)


def test_sources_in_conflict_are_not_quoted(desk, solver):
    arm()
    put_price("60000", coingecko="63000")
    d = decided(buy_btc(desk.world.relay))
    assert (d.decision, d.decision_reason) == ("skip", "REFERENCE_CONFLICTED")


def test_stale_inventory_is_not_quoted(desk, solver, settings):
    from datetime import timedelta

    from treasury.models import InventoryBalance

    arm()
    InventoryBalance.objects.update(
        synced_at=timezone.now() - timedelta(seconds=settings.INVENTORY_MAX_AGE_SECONDS + 5)
    )
    d = decided(buy_btc(desk.world.relay))
    assert (d.decision, d.decision_reason) == ("skip", "INVENTORY_STALE")
    assert d.inventory_snapshot["status"] == "stale"


def test_only_credited_inventory_is_quoted_a_pending_deposit_is_not(desk, solver):
    from solver.services.config import config_set

    arm()
    config_set(actor="test", reason="test", max_notional_quote="1000000", max_notional_hour="1000000")
    world = desk.world
    world.deposit_script(account_id=SOLVER, token_id=BTC, amount_raw=5 * BTC_RAW)  # seen, not credited
    assert sync()["ok"]
    # 3 BTC asked: 2 credited (the 5 pending do not count)
    d = decided(desk.world.relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_out=3 * BTC_RAW))
    assert (d.decision, d.decision_reason) == ("skip", "INSUFFICIENT_INVENTORY")
    assert d.inventory_snapshot["spendable"] == "2"
    assert reserved() == 0


def test_an_edge_just_below_the_threshold_is_skipped_and_just_above_is_quoted(desk, solver):
    from solver.services.config import config_set

    arm()
    config_set(actor="test", reason="test", spread_pct="1.99", threshold_pct="2")
    below = decided(buy_btc(desk.world.relay))
    assert (below.decision, below.decision_reason) == ("skip", "EDGE_BELOW_THRESHOLD")
    assert Decimal("1.99") <= below.gross_edge_pct < 2
    config_set(actor="test", reason="test", spread_pct="2.01")
    above = decided(buy_btc(desk.world.relay))
    assert (above.decision, above.decision_reason) == ("quote", "QUOTED") and above.gross_edge_pct >= 2


def test_notional_caps_per_quote_and_per_hour(desk, solver):
    from solver.services.config import config_set

    arm()
    config_set(actor="test", reason="test", max_notional_quote="1500", max_notional_hour="2500")
    assert decided(buy_btc(desk.world.relay, eure=2000)).decision_reason == "NOTIONAL_CAP_QUOTE"
    first = buy_btc(desk.world.relay, eure=1400)
    assert decided(first).decision_reason == "QUOTED"
    assert decided(buy_btc(desk.world.relay, eure=1400)).decision_reason == "NOTIONAL_CAP_HOUR"


def test_a_paused_strategy_decides_skip_and_sends_nothing(desk, solver):
    from trading.services.control import control_pause

    arm()
    control_pause(component="strategy:near_intents", actor="test", reason="look")
    quote_id = buy_btc(desk.world.relay)
    assert decided(quote_id).decision_reason == "STRATEGY_PAUSED"
    assert desk.world.relay.round(quote_id).responses == []


def test_a_request_asking_too_long_a_deadline_is_skipped(desk, solver, settings):
    arm()
    d = decided(buy_btc(desk.world.relay, min_deadline_ms=settings.NEAR_SOLVER_MAX_DEADLINE_MS + 1))
    assert d.decision_reason == "DEADLINE_TOO_LONG"


def test_a_halted_venue_is_not_quoted(desk, solver):
    from trading.services.control import trading_state_set

    arm()
    trading_state_set(scope_type="venue", scope_key="near_intents", state="HALTED", actor="test", reason="stop")
    assert decided(buy_btc(desk.world.relay)).decision_reason == "TRADING_HALTED"


# --- the executor -----------------------------------------------------------------------------------
def test_a_draining_executor_finishes_what_is_in_flight_and_takes_nothing_new(desk, solver):
    from trading.services.control import control_drain

    arm()
    relay = desk.world.relay
    relay.window = 1.0
    first = buy_btc(relay)
    command_in(first, "sent")
    control_drain(component="executor:near_intents", actor="test", reason="wind down")
    second = buy_btc(relay)
    assert decided(second).decision_reason == "EXECUTOR_DRAINING"
    command_in(first, "settled")
    assert relay.round(second).responses == []


def test_a_relay_timeout_leaves_the_outcome_unknown_until_the_status_settles_it(desk, solver):
    from trading.models import Event

    arm()
    relay = desk.world.relay
    relay.answer = False  # quote_response is taken but never answered
    relay.window = 1.5  # the winner is picked after our response timed out (1 s)
    quote_id = buy_btc(relay)
    unknown = command_in(quote_id, "unknown")
    assert "no answer" in unknown.outcome_reason and unknown.relay_answer is None
    settled = command_in(quote_id, "settled")
    assert settled.intent_hash and len(relay.round(quote_id).responses) == 1  # never resent
    topics = list(Event.objects.filter(correlation_id=f"near-quote-{quote_id}").values_list("topic", flat=True))
    assert "near_intents.quote.unknown" in topics and topics[-1] == "near_intents.quote.settled"


def test_a_signer_the_verifier_does_not_know_is_rejected_and_the_hold_released(desk, solver):
    arm()
    relay = desk.world.relay
    desk.world.public_keys[SOLVER].clear()  # the solver key is not registered for the account
    quote_id = buy_btc(relay)
    command = command_in(quote_id, "rejected")
    assert "doesn't exist for account" in command.outcome_reason and command.reservation.status == "released"
    assert reserved() == 0


def test_a_restart_between_sending_and_the_answer_resends_nothing(desk, solver):
    from solver.models import QuoteCommand

    arm()
    relay = desk.world.relay
    relay.answer = False
    relay.settle = False
    quote_id = buy_btc(relay, min_deadline_ms=1000)
    command_in(quote_id, "signed")
    wait_for(lambda: len(relay.round(quote_id).responses) == 1, what="sent")
    solver.crash()  # killed before the answer was recorded
    assert QuoteCommand.objects.get(quote_id=quote_id).status == "signed"
    relay.settle = True
    relay.pick(quote_id)  # the relay executes it meanwhile
    again = SolverThread(desk.config()["relay_ws_url"]).start()
    try:
        unknown = command_in(quote_id, "unknown", "settled")
        assert unknown.status == "settled" or "stopped" in unknown.outcome_reason
        settled = command_in(quote_id, "settled")  # reconciled after the deadline: the nonce is used
        assert "nonce" in settled.outcome_reason
        assert len(relay.round(quote_id).responses) == 1  # nothing resent
    finally:
        again.stop()


def test_a_deadline_passed_unanswered_expires_and_releases_the_hold(desk, solver):
    arm()
    relay = desk.world.relay
    relay.settle = False  # the relay never picks a winner
    quote_id = buy_btc(relay, min_deadline_ms=1000)
    command_in(quote_id, "sent")
    assert reserved() > 0
    command = command_in(quote_id, "expired")
    assert command.reservation.status == "released" and reserved() == 0
    assert desk.world.balance(SOLVER, BTC) == 2 * BTC_RAW


def test_two_concurrent_quotes_that_together_exceed_inventory_only_one_is_answered(desk, solver):
    from solver.models import QuoteDecision
    from solver.services.config import config_set

    arm()
    config_set(actor="test", reason="test", max_notional_quote="1000000", max_notional_hour="1000000")
    relay = desk.world.relay
    ids = [relay.quote(asset_in=EURE, asset_out=BTC, exact_amount_out=3 * BTC_RAW // 2) for _ in range(2)]
    decisions = [decided(q) for q in ids]
    assert sorted(d.decision_reason for d in decisions) == ["INSUFFICIENT_INVENTORY", "QUOTED"]
    answered = [q for q in ids if relay.round(q).responses]
    assert len(answered) == 1
    assert QuoteDecision.objects.filter(decision="quote").count() == 1


def test_a_paused_ingest_stores_quotes_dropped_and_a_disarmed_one_holds_no_connection(desk, solver):
    from solver.models import QuoteDecision, RelayQuote
    from trading.services.control import control_disarm, control_pause

    arm()
    control_pause(component="near_intents:ingest", actor="test", reason="look")
    wait_for(lambda: not solver.runner.ingest_open(), what="paused seen")
    quote_id = buy_btc(desk.world.relay)
    quote = wait_for(lambda: RelayQuote.objects.filter(quote_id=quote_id).first(), what="stored")
    assert quote.status == "dropped" and not QuoteDecision.objects.exists()
    assert desk.world.relay.round(quote_id).responses == []
    control_disarm(component="near_intents:ingest", actor="test", reason="stop")
    wait_for(lambda: desk.world.relay.subscribed("quote") == 0, what="connection closed")
    # the relay sees the close before the solver's stream has finished its closing handshake
    wait_for(lambda: not solver.runner.stream.connected, what="the solver's stream closed")


def test_a_hold_lost_to_a_concurrent_one_after_the_decision_rolls_back_and_records_a_skip(desk):
    """The quote reads the balance, signs, and its hold (the last statement) waits on the row a
    concurrent hold has locked; that one takes everything: the quote's transaction is rolled back
    whole (no command, no hold row, nothing to send) and the quote recorded again as a skip."""
    import uuid

    from solver.models import QuoteCommand, QuoteDecision, RelayQuote
    from solver.services import loop
    from solver.services.config import config_set
    from treasury.models import Reservation

    arm()
    config_set(actor="test", reason="test", max_notional_quote="1000000", max_notional_hour="1000000")
    quote_id = str(uuid.uuid4())
    # a concurrent hold of all the BTC, committed once the quote's hold waits on its lock
    with rival_holding_btc(lambda row: row.credited):
        data = {
            "quote_id": quote_id,
            "defuse_asset_identifier_in": EURE,
            "defuse_asset_identifier_out": BTC,
            "exact_amount_in": str(1000 * EURE_RAW),
            "min_deadline_ms": 60000,
        }
        outcome = loop.quote_receive(data, {})
    assert (outcome.status, outcome.reason, outcome.plan) == ("skip", "INSUFFICIENT_INVENTORY", None)
    assert RelayQuote.objects.filter(quote_id=quote_id).count() == 1
    decision = QuoteDecision.objects.get(quote_id=quote_id)
    assert (decision.decision, decision.decision_reason) == ("skip", "INSUFFICIENT_INVENTORY")
    assert not QuoteCommand.objects.filter(quote_id=quote_id).exists()
    assert not Reservation.objects.filter(ref=f"quote:{quote_id}").exists()


def test_a_disarm_committed_after_the_decision_stops_the_hold_and_nothing_is_sent(desk):
    """The quote is decided on an armed executor; the executor is disarmed before the quote's
    last statement runs (held back here by a lock on the commands' table): the hold re-checks
    the arm state, the transaction is rolled back, and the quote is recorded as a skip."""
    import threading
    import uuid

    from django.db import connection, transaction

    from solver.models import QuoteCommand, QuoteDecision
    from solver.services import loop
    from solver.services.config import config_set
    from trading.services.control import control_disarm
    from treasury.models import Reservation

    arm()
    config_set(actor="test", reason="test", max_notional_quote="1000000", max_notional_hour="1000000")
    locked, release, done = threading.Event(), threading.Event(), threading.Event()
    released_by_the_wait = []

    def disarmer():  # the disarm, committed once the quote's last statement waits on the lock
        try:
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.execute(f"LOCK TABLE {QuoteCommand._meta.db_table} IN SHARE MODE")
                control_disarm(component="executor:near_intents", actor="test", reason="test")
                locked.set()
                released_by_the_wait.append(release.wait(30))
        finally:
            connection.close()
            done.set()

    threading.Thread(target=disarmer, daemon=True).start()
    assert locked.wait(10)

    def quote_waits_on_the_lock():
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'")
            return cur.fetchone()[0] > 0

    def let_go():
        wait_for(quote_waits_on_the_lock, what="the quote's last statement waiting on the lock")
        release.set()

    threading.Thread(target=lambda: (let_go(), connection.close()), daemon=True).start()
    quote_id = str(uuid.uuid4())
    data = {
        "quote_id": quote_id,
        "defuse_asset_identifier_in": EURE,
        "defuse_asset_identifier_out": BTC,
        "exact_amount_in": str(1000 * EURE_RAW),
        "min_deadline_ms": 60000,
    }
    outcome = loop.quote_receive(data, {})
    assert done.wait(10) and released_by_the_wait == [True]  # the quote did wait on the lock
    assert (outcome.status, outcome.reason, outcome.plan) == ("skip", "EXECUTOR_DISARMED", None)
    decision = QuoteDecision.objects.get(quote_id=quote_id)
    assert (decision.decision, decision.decision_reason) == ("skip", "EXECUTOR_DISARMED")
    assert not QuoteCommand.objects.filter(quote_id=quote_id).exists()
    assert not Reservation.objects.filter(ref=f"quote:{quote_id}").exists()
    assert reserved() == 0


def test_the_solver_freezes_once_started(desk):
    """A full collection would stall every quote in flight about 90 ms (config/gc_freeze.py)."""
    import gc

    from tests.solver.conftest import SolverThread, arm

    gc.unfreeze()
    arm("near_intents:ingest")
    thread = SolverThread(desk.config()["relay_ws_url"]).start()
    try:
        wait_for(lambda: thread.runner.stream.connected, what="the solver connected")
        assert gc.get_freeze_count() > 10_000
    finally:
        thread.stop()
        gc.unfreeze()
