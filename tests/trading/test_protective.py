"""The protective-order engine: triggers, trailing stops, OCO, held limits, native SL/TP
venues, staleness, liquidation watch, stop coverage, races, and the path to the executor."""

import threading
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import ledger_events_for, wait_for
from trading.models import EngineHeartbeat, Event, ExecutionCommand, Order, Position, PositionRiskState, Trade
from trading.services.protective import protective_evaluate, protective_monitor_run, risk_watch_run

D = Decimal
ASSET = "BTC-USD"
PT = Order.Status.PENDING_TRIGGER


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="pu", email="pu@example.com", password="pw")


def pending(user, order_type, side="long", asset=ASSET, provider="paper", trade=None, **levels):
    order = Order.objects.create(
        user=user,
        provider=provider,
        asset=asset,
        order_type=order_type,
        side=side,
        status=PT,
        close_fraction=D(1),
        trade=trade,
        **levels,
    )
    ledger_events_for(order)
    return order


def tick(price, *, asset=ASSET, age=0.0, door="tick", venue="paper", **kw):
    return protective_evaluate(
        venue=venue,
        asset=asset,
        price=D(str(price)),
        price_at=timezone.now() - timedelta(seconds=age),
        source="test",
        door=door,
        **kw,
    )


def make_trade(user, *, side="long", entry=D("100"), asset=ASSET, provider="paper", liq=None, index="0"):
    position, created = Position.objects.get_or_create(
        user=user,
        provider=provider,
        asset=asset,
        side=side,
        status="open",
        defaults={"quantity": D(1), "avg_entry_price": entry, "liquidation_price": liq},
    )
    trade = Trade.objects.create(
        user=user,
        position=position,
        provider=provider,
        asset=asset,
        pair_id=asset,
        trade_index=index,
        side=side,
        collateral=D(100),
        leverage=D(1),
        size=D(1),
        initial_size=D(1),
        entry_price=entry,
        current_price=entry,
        margin=D(100),
        liquidation_price=liq,
    )
    ledger_events_for(*([position] if created else []), trade)
    return trade


# --- the worked example ----------------------------------------------------------------------------


def test_trailing_ten_percent_worked_example(db, user):
    # given a long trailing stop of 10 %
    order = pending(user, Order.Type.TRAILING_STOP, trailing_stop_percentage=D(10))
    stops = []
    # when the price goes 100 → 103.5 → 101 → 93
    for price in ("100", "103.5", "101"):
        assert tick(price).triggered == []
        order.refresh_from_db()
        stops.append(order.stop_price)
    result = tick("93")
    # then the stop goes 90 → 93.15, holds at 93.15, and triggers at 93
    assert stops == [D("90"), D("93.15"), D("93.15")]
    assert result.triggered == [order.pk]
    order.refresh_from_db()
    assert order.status == Order.Status.TRIGGERED
    assert order.stop_price == D("93.15")
    assert order.trigger_price == D("93")
    event = Event.objects.get(correlation_id=f"order-{order.pk}", topic="order.triggered")
    assert event.payload["price"] == "93"
    assert event.payload["source"] == "test"
    assert event.payload["leg"] == "stop"
    assert D(event.payload["level"]) == D("93.15")


# --- property: engine == reference model -------------------------------------------------------------

Q18 = D("1e-18")


def reference(book: list[dict], path: list[D]) -> tuple[dict, list[dict]]:
    """A plain model of the engine: per tick, trailing stops activate then ratchet (never
    loosening), then every pending order whose level the price reached fires."""
    state = {i: {"stop": o.get("stop_price"), "active": o.get("activation") is None} for i, o in enumerate(book)}
    fired: dict[int, tuple[int, str]] = {}
    stops_per_tick = []
    for t, p in enumerate(path):
        for i, o in enumerate(book):
            if i in fired or o["type"] != "TRAILING_STOP":
                continue
            s, long = state[i], o["side"] == "long"
            if not s["active"]:
                act = o["activation"]
                s["active"] = p >= act if long else p <= act
            if s["active"]:
                if o.get("distance") is not None:
                    cand = p - o["distance"] if long else p + o["distance"]
                else:
                    f = o["pct"] / 100
                    cand = (p * (1 - f) if long else p * (1 + f)).quantize(Q18, rounding=ROUND_HALF_UP)
                if s["stop"] is None:
                    s["stop"] = cand
                else:
                    s["stop"] = max(s["stop"], cand) if long else min(s["stop"], cand)
        for i, o in enumerate(book):
            if i in fired:
                continue
            long = o["side"] == "long"
            kind = o["type"]
            leg = None
            if kind in ("STOP_LOSS", "TRAILING_STOP"):
                stop = state[i]["stop"]
                if stop is not None and (p <= stop if long else p >= stop):
                    leg = "stop"
            elif kind == "TAKE_PROFIT":
                tp = o["take_profit_price"]
                if p >= tp if long else p <= tp:
                    leg = "take_profit"
            elif kind == "OCO":
                sl, tp = o["oco_stop_price"], o["oco_take_profit_price"]
                if p <= sl if long else p >= sl:
                    leg = "stop"
                elif p >= tp if long else p <= tp:
                    leg = "take_profit"
            if leg:
                fired[i] = (t, leg)
        stops_per_tick.append({i: state[i]["stop"] for i, o in enumerate(book) if o["type"] == "TRAILING_STOP"})
    return fired, stops_per_tick


price_st = st.integers(min_value=8000, max_value=12000).map(lambda c: D(c) / 100)
order_specs = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("STOP_LOSS"), "side": st.sampled_from(["long", "short"]), "stop_price": price_st}
    ),
    st.fixed_dictionaries(
        {"type": st.just("TAKE_PROFIT"), "side": st.sampled_from(["long", "short"]), "take_profit_price": price_st}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("OCO"),
            "side": st.sampled_from(["long", "short"]),
            "oco_stop_price": price_st,
            "oco_take_profit_price": price_st,
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("TRAILING_STOP"),
            "side": st.sampled_from(["long", "short"]),
            "distance": st.one_of(st.none(), st.integers(min_value=50, max_value=1500).map(lambda c: D(c) / 100)),
            "pct": st.integers(min_value=5, max_value=150).map(lambda c: D(c) / 10),
            "activation": st.one_of(st.none(), price_st),
        }
    ),
)


@pytest.mark.ledger_drift  # each example deletes the last one's orders; their events stay (append-only)
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(book=st.lists(order_specs, min_size=1, max_size=12), path=st.lists(price_st, min_size=1, max_size=12))
def test_engine_matches_reference_model(db, user, book, path):
    # given a fresh random book (tables cleaned, one DB for every example)
    Order.objects.all().delete()
    for spec in book:
        if spec["type"] == "OCO" and spec["side"] == "long":
            lo, hi = sorted([spec["oco_stop_price"], spec["oco_take_profit_price"]])
            spec["oco_stop_price"], spec["oco_take_profit_price"] = lo, hi
        elif spec["type"] == "OCO":
            lo, hi = sorted([spec["oco_stop_price"], spec["oco_take_profit_price"]])
            spec["oco_stop_price"], spec["oco_take_profit_price"] = hi, lo
        if spec["type"] == "TRAILING_STOP" and spec["distance"] is not None:
            spec["pct"] = None
    ids = []
    for spec in book:
        levels = {
            k: spec.get(k) for k in ("stop_price", "take_profit_price", "oco_stop_price", "oco_take_profit_price")
        }
        if spec["type"] == "TRAILING_STOP":
            levels.update(
                trailing_stop_distance=spec["distance"],
                trailing_stop_percentage=spec["pct"],
                trailing_activation_price=spec["activation"],
            )
        ids.append(pending(user, spec["type"], side=spec["side"], **levels).pk)
    index = {pk: i for i, pk in enumerate(ids)}
    trailing = [pk for pk, spec in zip(ids, book, strict=True) if spec["type"] == "TRAILING_STOP"]
    # when the engine sees the path tick by tick
    fired, stops = {}, []
    for t, p in enumerate(path):
        for pk in tick(p, native=[]).triggered:
            fired[index[pk]] = t
        levels = dict(Order.objects.filter(pk__in=trailing).values_list("pk", "stop_price"))
        stops.append({index[pk]: levels[pk] for pk in trailing})
    # then the same orders fire at the same ticks, on the same legs, with the same trailing stops
    expected_fired, expected_stops = reference(book, path)
    assert fired == {i: t for i, (t, _leg) in expected_fired.items()}
    legs = dict(Order.objects.filter(pk__in=ids, status=Order.Status.TRIGGERED).values_list("pk", "triggered_leg"))
    assert {index[pk]: leg for pk, leg in legs.items()} == {i: leg for i, (_t, leg) in expected_fired.items()}
    assert stops == expected_stops


# --- OCO, siblings, held limits ------------------------------------------------------------------------


def test_oco_fires_the_leg_hit_first_and_records_the_other_cancelled(db, user):
    # given a long and a short OCO
    long = pending(user, "OCO", oco_stop_price=D("95"), oco_take_profit_price=D("110"))
    short = pending(user, "OCO", side="short", oco_stop_price=D("105"), oco_take_profit_price=D("90"))
    # when the price jumps to 111
    result = tick("111")
    # then the long's take-profit leg fires and the short's stop leg fires
    assert sorted(result.triggered) == sorted([long.pk, short.pk])
    long.refresh_from_db()
    short.refresh_from_db()
    assert (long.triggered_leg, short.triggered_leg) == ("take_profit", "stop")
    payload = Event.objects.get(correlation_id=f"order-{long.pk}", topic="order.triggered").payload
    assert payload["cancelled_leg"] == "stop"
    # and nothing fires twice on the next tick
    assert tick("80").triggered == []


def test_triggered_events_are_written_as_order_event_writes_them(db, user):
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    from trading import outbox
    from trading.models import OutboxMessage
    from trading.services.orders import order_event
    from trading.ulid import new_ulid

    # given an OCO on a trade whose order has a later event of its own, and a short stop without a trade
    trade = make_trade(user)
    oco = pending(user, "OCO", trade=trade, oco_stop_price=D("95"), oco_take_profit_price=D("110"))
    earlier = order_event(order=oco, topic="order.accepted")
    stop = pending(user, "STOP_LOSS", side="short", stop_price=D("104.5"))
    stop_last = Event.objects.filter(correlation_id=stop.correlation_id).latest("id").id
    price_at = timezone.now()
    # when the price jumps to 111
    result = protective_evaluate(
        venue="paper", asset=ASSET, price=D("111"), price_at=price_at, source="feed", door="tick"
    )
    later = new_ulid()
    # then each order has one `order.triggered` event with the full payload, chained to its last event
    assert result.triggered == [oco.pk, stop.pk]
    shared = {
        "from": "PENDING_TRIGGER",
        "to": "TRIGGERED",
        "price": "111",
        "price_at": json.loads(json.dumps(price_at, cls=DjangoJSONEncoder)),
        "source": "feed",
        "venue": "paper",
        "door": "tick",
    }
    events = {e.aggregate_id: e for e in Event.objects.filter(topic="order.triggered")}
    assert set(events) == {str(oco.pk), str(stop.pk)}
    assert events[str(oco.pk)].payload == {
        "order_id": oco.pk,
        "order_type": "OCO",
        "side": "long",
        "trade_id": trade.pk,
        "leg": "take_profit",
        "level": "110.000000000000000000",
        "cancelled_leg": "stop",
        **shared,
    }
    assert events[str(stop.pk)].payload == {
        "order_id": stop.pk,
        "order_type": "STOP_LOSS",
        "side": "short",
        "trade_id": None,
        "leg": "stop",
        "level": "104.500000000000000000",
        **shared,
    }
    for order, causation in ((oco, earlier.id), (stop, stop_last)):
        event = events[str(order.pk)]
        assert (event.aggregate_type, event.correlation_id, event.causation_id) == (
            "order",
            f"order-{order.pk}",
            causation,
        )
        assert (event.actor, event.version) == ("system", 1)
        assert earlier.id < event.id < later
        # and one outbox message per handler of the topic
        assert sorted(OutboxMessage.objects.filter(event=event).values_list("handler", flat=True)) == sorted(
            outbox.handlers_for("order.triggered")
        )


def test_one_protective_close_per_trade(db, user):
    # given a trade with a stop-loss and a trailing stop that both sit above the next price
    trade = make_trade(user)
    sl = pending(user, "STOP_LOSS", trade=trade, stop_price=D("95"))
    trailing = pending(user, "TRAILING_STOP", trade=trade, trailing_stop_distance=D("2"), stop_price=D("97"))
    tp = pending(user, "TAKE_PROFIT", trade=trade, take_profit_price=D("120"))
    # when the price gaps down through both stops
    result = tick("90")
    # then exactly one of them closes the trade (the lower id among the stops)
    assert result.triggered == [sl.pk]
    # and while that close is under way no sibling fires, even on a later tick
    assert tick("89").triggered == []
    assert tick("130").triggered == []
    trailing.refresh_from_db()
    tp.refresh_from_db()
    assert (trailing.status, tp.status) == (PT, PT)
    # once the close failed (rejected), the siblings protect the trade again
    from django.db import transaction

    from trading.services.orders import order_transition

    with transaction.atomic():  # the venue refused it: the order's own transition
        order_transition(order=Order.objects.get(pk=sl.pk), to=Order.Status.REJECTED)
    assert tick("89").triggered == [trailing.pk]


def test_held_limit_entries_fire_when_the_price_reaches_them(db, user):
    buy = pending(user, "LIMIT", price=D("95"))
    sell = pending(user, "LIMIT", side="short", price=D("105"))
    assert tick("100").triggered == []
    assert tick("95.5").triggered == []
    assert tick("95").triggered == [buy.pk]
    assert tick("105.01").triggered == [sell.pk]


def test_paper_limit_orders_are_the_venues_not_ours(db, user):
    # a plain LIMIT placed on paper goes to the executor (the venue rests it), never PENDING_TRIGGER
    order = Order.objects.create(
        user=user, provider="paper", asset=ASSET, order_type="LIMIT", side="long", price=D("95"), collateral=D(10)
    )
    ledger_events_for(order)
    assert tick("90").triggered == []
    order.refresh_from_db()
    assert order.status == Order.Status.ACCEPTED


def test_trailing_with_activation_waits_then_never_loosens_short(db, user):
    order = pending(
        user, "TRAILING_STOP", side="short", trailing_stop_distance=D("5"), trailing_activation_price=D("95")
    )
    tick("100")
    order.refresh_from_db()
    assert (order.stop_price, order.trailing_activated_at) == (None, None)
    tick("94")  # activation reached: stop 99
    tick("90")  # 95
    tick("93")  # holds at 95 (never loosens)
    order.refresh_from_db()
    assert order.stop_price == D("95")
    assert Event.objects.filter(correlation_id=f"order-{order.pk}", topic="order.trailing_started").count() == 1
    assert tick("95").triggered == [order.pk]


# --- stale prices ---------------------------------------------------------------------------------------


def test_no_trigger_on_a_stale_price_and_one_stale_event(db, user, settings):
    settings.PROTECTIVE_MAX_PRICE_AGE_SECONDS = 5
    order = pending(user, "STOP_LOSS", stop_price=D("95"))
    # when two old prices below the stop arrive
    first = tick("90", age=6)
    second = tick("89", age=60)
    # then nothing fires, the asset is stale, and `price.stale` is written once (on entering)
    assert first.stale and second.stale and first.triggered == second.triggered == []
    assert (first.stale_entered, second.stale_entered) == (True, False)
    order.refresh_from_db()
    assert order.status == PT
    assert Event.objects.filter(topic="price.stale", aggregate_id=ASSET).count() == 1
    # and a fresh price fires it and leaves staleness; entering again raises a new event
    assert tick("90", door="beat").triggered == [order.pk]
    tick("90", age=10)
    assert Event.objects.filter(topic="price.stale", aggregate_id=ASSET).count() == 2


def test_no_price_at_all_is_stale(db, user):
    pending(user, "STOP_LOSS", stop_price=D("95"))
    result = protective_evaluate(venue="paper", asset=ASSET, price=None, price_at=None)
    assert result.stale and result.triggered == []


# --- native SL/TP venues --------------------------------------------------------------------------------


def test_native_venue_holds_sl_tp_and_pushed_trailing_stops_but_oco_stays_here(db, user, settings):
    # given the paper venue treated as holding SL/TP natively (capability override setting)
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    sl = pending(user, "STOP_LOSS", stop_price=D("95"))
    tp = pending(user, "TAKE_PROFIT", take_profit_price=D("80"), side="short")
    oco = pending(user, "OCO", oco_stop_price=D("95"), oco_take_profit_price=D("120"))
    unpushed = pending(user, "TRAILING_STOP", trailing_stop_distance=D("5"), stop_price=D("96"))
    pushed = pending(user, "TRAILING_STOP", trailing_stop_distance=D("5"), stop_price=D("96"), venue_stop_price=D("96"))
    # when the price falls through every level
    result = tick("79")
    # then the venue's SL/TP and the trailing stop whose level it holds are left to the venue;
    # OCO and a trailing stop the venue has no level of yet fire here
    assert sorted(result.triggered) == sorted([oco.pk, unpushed.pk])
    for order in (sl, tp, pushed):
        order.refresh_from_db()
        assert order.status == PT


def test_a_tick_evaluates_only_the_orders_held_at_its_venue(db, user):
    # given stops on the same asset at two venues
    here = pending(user, "STOP_LOSS", stop_price=D("95"))
    there = pending(user, "STOP_LOSS", provider="elsewhere", stop_price=D("95"))
    # when the paper venue's price falls through them, then only the paper venue's stop fires
    assert tick("90").triggered == [here.pk]
    there.refresh_from_db()
    assert there.status == PT
    # and the other venue's stop fires at the other venue's price only
    assert tick("94", venue="elsewhere").triggered == [there.pk]


def test_trailing_push_to_native_venue_is_throttled_by_min_step(db, user, settings):
    # given a native-SL/TP venue and a 1 % minimum step
    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    settings.TRAILING_MIN_STEP_PCT = "0.01"
    order = pending(user, "TRAILING_STOP", trailing_stop_distance=D("10"))
    pushes = []
    for price in ("100", "100.5", "100.9", "101", "103", "103.5"):
        result = tick(price)
        pushes.append(result.pushes == [order.pk])
    order.refresh_from_db()
    # then the first level is pushed, small moves are not, a ≥1 % move is
    # stops: 90 (push), 90.5 (+0.56 %), 90.9 (+1.0 %: push), 91, 93 (+2.3 %: push), 93.5 (+0.5 %)
    assert pushes == [True, False, True, False, True, False]
    assert order.stop_price == D("93.5")
    assert order.venue_stop_price == D("93")


def test_trailing_push_on_paper_venue_without_override_never_pushes(db, user):
    order = pending(user, "TRAILING_STOP", trailing_stop_distance=D("10"))
    assert tick("100").pushes == []
    order.refresh_from_db()
    assert order.venue_stop_price is None


# --- races ----------------------------------------------------------------------------------------------


@pytest.mark.celery
def test_racing_ticks_and_beat_trigger_an_order_once(celery_worker, user):
    # given many stops below the current price
    orders = [pending(user, "STOP_LOSS", stop_price=D("95")) for _ in range(30)]
    barrier = threading.Barrier(6)
    fired: list[int] = []
    lock = threading.Lock()
    errors = []

    def run(price, door):
        try:
            barrier.wait()
            result = tick(price, door=door)
            with lock:
                fired.extend(result.triggered)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections["default"].close()

    # when ticks and a Beat run evaluate the asset at once, each on its own connection
    threads = [threading.Thread(target=run, args=(p, d)) for p, d in [("94", "tick")] * 3 + [("93", "beat")] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then every order fired exactly once, with one triggered event each
    assert errors == []
    assert sorted(fired) == sorted(o.pk for o in orders)
    for o in orders:
        assert Event.objects.filter(correlation_id=f"order-{o.pk}", topic="order.triggered").count() == 1
    # and their execution was handed to the executor (disarmed here: it refuses, once each)
    wait_for(lambda: not Order.objects.filter(status=Order.Status.TRIGGERED).exists())
    assert set(Order.objects.values_list("status", "error_code")) == {(Order.Status.REJECTED, "VENUE_DISARMED")}


def test_racing_statements_without_the_advisory_lock_still_trigger_once(transactional_db, user):
    # given two raw connections running the trigger UPDATE alone (no per-asset advisory lock)
    import psycopg

    from trading import protective_sql as Q
    from trading.services.protective import _events_params

    order = pending(user, "STOP_LOSS", stop_price=D("95"))

    def params():
        return {
            "venue": "paper",
            "asset": ASSET,
            "price": D("90"),
            "native": [],
            **_events_params("order.triggered", {"from": "PENDING_TRIGGER", "to": "TRIGGERED", "door": "raw"}),
        }

    conn_params = connection.get_connection_params()
    first_conn = psycopg.connect(**conn_params)
    second_conn = psycopg.connect(**conn_params, autocommit=True)
    second_pid = second_conn.info.backend_pid
    second_rows = []
    try:
        first = first_conn.execute(Q.TRIGGER, params()).fetchall()  # open transaction, row locked
        second_params = params()
        t = threading.Thread(
            target=lambda: second_rows.extend(second_conn.execute(Q.TRIGGER, second_params).fetchall())
        )
        t.start()
        # when the second waits on the first's row lock, and the first commits
        watcher = psycopg.connect(**conn_params, autocommit=True)
        wait_for(
            lambda: (
                watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [second_pid]).fetchone()[
                    0
                ]
                == "Lock"
            )
        )
        watcher.close()
        first_conn.commit()
        t.join(10)
    finally:
        first_conn.close()
        second_conn.close()
    # then only the first triggered it: the second re-checked the status on the locked row
    assert [row[0] for row in first] == [order.pk]
    assert second_rows == []
    order.refresh_from_db()
    assert order.status == Order.Status.TRIGGERED
    assert Event.objects.filter(correlation_id=f"order-{order.pk}", topic="order.triggered").count() == 1


# --- liquidation watch, stop coverage, heartbeat ------------------------------------------------------


def test_near_liquidation_raised_once_on_entering(db, user, settings):
    settings.LIQUIDATION_WARN_PCT = "0.05"
    trade = make_trade(user, liq=D("90"))
    pending(user, "STOP_LOSS", trade=trade, stop_price=D("80"))
    assert risk_watch_run(prices={("paper", ASSET): D("100")}) == (0, 0)
    assert risk_watch_run(prices={("paper", ASSET): D("94")}) == (1, 0)
    assert risk_watch_run(prices={("paper", ASSET): D("93")}) == (0, 0)
    assert risk_watch_run(prices={("paper", ASSET): D("100")}) == (0, 0)  # left the condition
    assert risk_watch_run(prices={("paper", ASSET): D("94")}) == (1, 0)  # entered again
    events = Event.objects.filter(topic="risk.near_liquidation", aggregate_id=str(trade.position_id))
    assert events.count() == 2
    assert D(events.first().payload["liquidation_price"]) == D("90")


def test_stop_missing_after_grace_once_and_not_for_opted_out_users(db, user, other_trader, settings):
    settings.STOP_COVERAGE_GRACE_SECONDS = 0
    bare = make_trade(user)
    covered = make_trade(other_trader, index="1")
    pending(other_trader, "STOP_LOSS", trade=covered, stop_price=D("90"))
    opted = make_trade(other_trader, asset="ETH-USD", index="2")
    other_trader.stop_coverage_opt_out = True
    other_trader.save()
    pending(other_trader, "STOP_LOSS", trade=covered, stop_price=D("90"))
    assert risk_watch_run(prices={}) == (0, 0)  # first seen uncovered
    PositionRiskState.objects.update(uncovered_since=timezone.now() - timedelta(seconds=5))
    assert risk_watch_run(prices={}) == (0, 1)
    assert risk_watch_run(prices={}) == (0, 0)  # not repeated
    events = Event.objects.filter(topic="risk.stop_missing")
    assert [e.aggregate_id for e in events] == [str(bare.position_id)]
    assert not PositionRiskState.objects.filter(position_id=opted.position_id, uncovered_since__isnull=False).exists()
    # a stop placed clears the flag
    pending(user, "TRAILING_STOP", trade=bare, trailing_stop_distance=D("5"), stop_price=D("95"))
    risk_watch_run(prices={})
    assert PositionRiskState.objects.get(position_id=bare.position_id).stop_missing_flagged_at is None


def test_untriggered_trailing_without_level_is_not_a_working_stop(db, user, settings):
    settings.STOP_COVERAGE_GRACE_SECONDS = 0
    trade = make_trade(user)
    pending(user, "TRAILING_STOP", trade=trade, trailing_stop_distance=D("5"), trailing_activation_price=D("150"))
    risk_watch_run(prices={})
    assert PositionRiskState.objects.get(position_id=trade.position_id).uncovered_since is not None


def test_monitor_run_evaluates_cached_prices_and_records_heartbeat(db, user, markets):
    # given a stop above the cached BTC price and nothing priced for an unknown asset
    stop = pending(user, "STOP_LOSS", stop_price=D("61000"))
    pending(user, "STOP_LOSS", asset="NOPE-USD", stop_price=D("1"))
    # when the Beat job runs
    beat = protective_monitor_run()
    # then the stop fired on the cached price and the heartbeat says what happened
    stop.refresh_from_db()
    assert stop.status == Order.Status.TRIGGERED
    assert stop.trigger_price == D("60000")
    assert beat.triggered == 1 and beat.runs == 1 and beat.orders_evaluated == 2
    assert beat.stale_assets == ["paper:NOPE-USD"]
    assert protective_monitor_run().runs == 2
    assert EngineHeartbeat.objects.filter(name="beat").count() == 1


def test_tick_listener_writes_a_throttled_heartbeat_that_the_control_panel_reads(db, user, markets, settings):
    from providers.prices import price_set
    from trading.admin_panel.health import DOWN, OK, engine_heartbeat_health

    # given the tick door has just written its heartbeat, and may write again only after an hour
    settings.PROTECTIVE_TICK_HEARTBEAT_SECONDS = 0
    price_set(ASSET, D("60000"))
    before = EngineHeartbeat.objects.get(name="tick")
    settings.PROTECTIVE_TICK_HEARTBEAT_SECONDS = 3600
    stop = pending(user, "STOP_LOSS", stop_price=D("59000"))
    # when two ticks are evaluated (the second fires the stop)
    price_set(ASSET, D("59500"))
    price_set(ASSET, D("58900"))
    stop.refresh_from_db()
    assert stop.status == Order.Status.TRIGGERED
    # then nothing was written for them yet
    beat = EngineHeartbeat.objects.get(name="tick")
    assert (beat.runs, beat.last_run_at) == (before.runs, before.last_run_at)
    # when the interval has passed, the next tick writes everything counted since the last write
    settings.PROTECTIVE_TICK_HEARTBEAT_SECONDS = 0
    price_set(ASSET, D("58800"))
    beat.refresh_from_db()
    assert beat.runs == before.runs + 3
    assert (beat.triggered, beat.total_triggered) == (1, before.total_triggered + 1)
    assert (beat.assets_evaluated, beat.stale_assets, beat.last_error) == (1, [], "")
    assert beat.last_run_at > before.last_run_at
    # and the control panel shows the engine alive from the tick heartbeat alone
    assert not EngineHeartbeat.objects.filter(name="beat").exists()
    [health] = engine_heartbeat_health()
    assert (health.status, health.last_seen) == (OK, beat.last_run_at)
    EngineHeartbeat.objects.update(last_run_at=timezone.now() - timedelta(minutes=5))
    assert engine_heartbeat_health()[0].status == DOWN


def test_tick_heartbeat_lists_assets_the_ticks_found_stale(db, user, settings):
    from providers.interface import PriceTick
    from trading.services.protective import protective_on_tick

    # given a pending stop, and the tick heartbeat just written after a fresh tick
    settings.PROTECTIVE_TICK_HEARTBEAT_SECONDS = 0
    settings.PROTECTIVE_MAX_PRICE_AGE_SECONDS = 5
    stop = pending(user, "STOP_LOSS", asset="SOL-USD", stop_price=D("150"))
    protective_on_tick(
        PriceTick(symbol="SOL-USD", price=D("200"), timestamp=timezone.now(), source="test", venue="paper")
    )
    before = EngineHeartbeat.objects.get(name="tick")
    assert before.stale_assets == []
    # when the tick listener evaluates a tick far older than the allowed price age
    old = PriceTick(
        symbol="sol-usd", price=D("100"), timestamp=timezone.now() - timedelta(minutes=1), source="test", venue="paper"
    )
    protective_on_tick(old)
    # then nothing fired and the tick heartbeat names the stale asset
    stop.refresh_from_db()
    assert stop.status == PT
    beat = EngineHeartbeat.objects.get(name="tick")
    assert (beat.stale_assets, beat.triggered, beat.runs) == (["paper:SOL-USD"], 0, before.runs + 1)


# --- end to end: tick → trigger → executor close on the paper venue ---------------------------------


@pytest.mark.celery
def test_stop_loss_closes_the_trade_through_the_executor(celery_worker, markets, armed, trader):
    from providers.prices import price_set
    from trading.services.orders import order_place

    # given a long BTC trade opened on paper with a stop-loss
    opened = order_place(
        user=trader, asset=ASSET, side="long", collateral=D("100"), leverage=D("2"), stop_price=D("59000")
    )
    trade = wait_for(lambda: Trade.objects.filter(orders__pk=opened.pk, status="open").first())
    stop = wait_for(lambda: Order.objects.filter(trade=trade, order_type="STOP_LOSS", status=PT).first())
    # when the price falls through the stop (published like the feed does)
    price_set(ASSET, D("58900"))
    # then the stop triggers once, the executor closes the trade with one close command
    wait_for(lambda: Trade.objects.get(pk=trade.pk).status == "closed", timeout=20)
    trade.refresh_from_db()
    stop.refresh_from_db()
    assert trade.close_reason == Trade.CloseReason.STOP_LOSS
    assert stop.status == Order.Status.FILLED
    assert ExecutionCommand.objects.filter(order=stop, action="close").count() == 1
    assert Event.objects.filter(correlation_id=f"order-{stop.pk}", topic="order.triggered").count() == 1


@pytest.mark.celery
def test_held_limit_entry_opens_at_market_once_triggered(celery_worker, markets, armed, trader, settings):
    from providers.prices import price_set
    from trading.services.orders import order_place

    # given a venue treated as unable to rest limits: the engine holds the LIMIT entry
    settings.PROTECTIVE_HELD_LIMIT_VENUES = ["paper"]
    order = order_place(
        user=trader, asset=ASSET, side="long", order_type="LIMIT", price=D("59500"), collateral=D("100"), leverage=D(2)
    )
    order.refresh_from_db()
    assert order.status == PT
    # when the price does not reach it, nothing happens; when it does, it fires and opens
    price_set(ASSET, D("59600"))
    order.refresh_from_db()
    assert order.status == PT
    price_set(ASSET, D("59450"))
    wait_for(lambda: Order.objects.get(pk=order.pk).status == Order.Status.FILLED, timeout=20)
    command = ExecutionCommand.objects.get(order=order, action="open")
    assert command.request["kind"] == "market"
    assert D(str(command.request["reference_price"])) == D("59450")
    assert Trade.objects.filter(orders__pk=order.pk, status="open").count() == 1


@pytest.mark.celery
def test_a_trailing_push_the_broker_refused_is_sent_by_reconciliation(db, user, settings, celery_worker):
    """The broker is down when the trail moves: the tick still completes (the level is kept in
    `venue_stop_price`), and reconciliation pushes that level once the trail has rested for the
    grace period; a level already pushed is not pushed again."""
    from unittest import mock

    import redis
    from kombu.transport.redis import Channel

    from trading.services import execution
    from trading.services.control import control_arm

    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = ["paper"]
    control_arm(component="executor:paper", actor="test", reason="push")
    order = pending(user, "TRAILING_STOP", trailing_stop_distance=D("10"), trade=make_trade(user))
    with mock.patch.object(Channel, "_put", side_effect=redis.ConnectionError("broker unavailable")):
        assert tick("100").pushes == [order.pk]
    order.refresh_from_db()
    assert order.venue_stop_price == D("90")
    assert not ExecutionCommand.objects.filter(order=order).exists()

    key = f"push:{order.pk}"
    assert key not in execution.execution_reconcile(grace_seconds=60)  # the trail moved just now
    assert execution.execution_reconcile(grace_seconds=0)[key] == "requeued"
    wait_for(lambda: ExecutionCommand.objects.filter(order=order, action="update_sl").exists(), timeout=30)
    assert D(ExecutionCommand.objects.get(order=order).request["price"]) == D("90")
    assert key not in execution.execution_reconcile(grace_seconds=0)  # that level was sent
