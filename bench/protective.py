"""Protective engine: one tick for one asset with 10,000 and 100,000 pending protective
orders (1 % of them triggering), set-based engine vs a naive per-order Python loop over the
same book (load every pending order of the asset, check each in Python, update and write the
event of each triggered one individually).

Runs against a scratch database `<DATABASE_URL's name>_bench` on the same server (created and
migrated on first use, kept for the next run). Each timed evaluation runs in a transaction
that is rolled back, so every repetition sees the same book (execution is enqueued only on
commit, so no task is sent). Setup uses COPY.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal

from bench._db import on_bench_database

D = Decimal
ASSET = "BENCH-USD"
PRICE = D("100")


def _book(n: int, firing_count: int, rng: random.Random) -> list[dict]:
    """n orders at price 100: `firing_count` fire at 100 (levels on the wrong side), the rest do not."""
    firing = set(rng.sample(range(n), firing_count))
    rows = []
    for i in range(n):
        side = "long" if i % 2 == 0 else "short"
        sign = 1 if side == "long" else -1
        fire = i in firing
        kind = ("STOP_LOSS", "STOP_LOSS", "TAKE_PROFIT", "OCO", "TRAILING_STOP")[i % 5]
        far = D(rng.randint(100, 2000)) / 100  # 1..20 away, on the safe side
        row = {"type": kind, "side": side}
        if kind == "STOP_LOSS":
            row["stop_price"] = PRICE + sign * D("0.5") if fire else PRICE - sign * far
        elif kind == "TAKE_PROFIT":
            row["take_profit_price"] = PRICE - sign * D("0.5") if fire else PRICE + sign * far
        elif kind == "OCO":
            row["oco_stop_price"] = PRICE + sign * D("0.5") if fire else PRICE - sign * far
            row["oco_take_profit_price"] = PRICE + sign * (far + 5)
        else:  # trailing, already ratcheted at a better price: stop within the distance
            distance = D(5)
            row["trailing_stop_distance"] = distance
            row["stop_price"] = PRICE + sign * D("0.5") if fire else PRICE - sign * (distance - far / 10)
            row["activated"] = True
        rows.append(row)
    return rows


def _load(n: int, firing_count: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from trading.models import Order, Position, Trade, User

    with connection.cursor() as c:
        c.execute("TRUNCATE trading_order, trading_trade, trading_position CASCADE")
    user, _ = User.objects.get_or_create(username="bench", defaults={"email": "bench@example.com"})
    now = timezone.now()
    positions = {
        side: Position.objects.create(user=user, provider="paper", asset=ASSET, side=side, quantity=D(1))
        for side in ("long", "short")
    }
    rng = random.Random(n)
    book = _book(n, firing_count, rng)
    raw = connection.connection
    trade_cols = (
        "user_id, position_id, provider, asset, pair_id, trade_index, side, collateral, leverage, size, initial_size, "
        "entry_price, current_price, unrealized_pnl, realized_pnl, margin, fees_paid, funding_paid, status, opened_at, "
        "close_reason, updated_at"
    )
    with raw.cursor() as cur:
        with cur.copy(f"COPY trading_trade ({trade_cols}) FROM STDIN") as copy:
            for i, row in enumerate(book):
                copy.write_row(
                    (user.pk, positions[row["side"]].pk, "paper", ASSET, ASSET, str(i), row["side"], 10, 1, 1, 1)
                    + (100, 100, 0, 0, 10, 0, 0, "open", now, "", now)
                )
        cur.execute("SELECT id FROM trading_trade WHERE asset = %s ORDER BY id", [ASSET])
        trade_ids = [r[0] for r in cur.fetchall()]
        order_cols = (
            "user_id, provider, asset, asset_type, order_type, side, collateral, leverage, max_slippage, reduce_only, "
            "status, error_code, error_message, pair_id, trade_index, transaction_hash, venue_order_id, "
            "filled_quantity, fee, created_at, updated_at, triggered_leg, close_fraction, trade_id, stop_price, "
            "take_profit_price, oco_stop_price, oco_take_profit_price, trailing_stop_distance, trailing_activated_at, "
            "origin"
        )
        with cur.copy(f"COPY trading_order ({order_cols}) FROM STDIN") as copy:
            for trade_id, row in zip(trade_ids, book, strict=True):
                copy.write_row(
                    (user.pk, "paper", ASSET, "crypto", row["type"], row["side"], 0, 1, D("0.05"), False)
                    + (Order.Status.PENDING_TRIGGER, "", "", ASSET, "", "", "", 0, 0, now, now, "", 1, trade_id)
                    + (
                        row.get("stop_price"),
                        row.get("take_profit_price"),
                        row.get("oco_stop_price"),
                        row.get("oco_take_profit_price"),
                        row.get("trailing_stop_distance"),
                        now if row.get("activated") else None,
                        Order.Origin.PROTECTIVE,
                    )
                )
    with connection.cursor() as c:
        c.execute("ANALYZE trading_order")
        c.execute("ANALYZE trading_trade")
    assert Trade.objects.filter(asset=ASSET).count() == n


class _Rollback(Exception):
    pass


def _timed(fn) -> tuple[float, object]:
    """Run fn() in a transaction that is rolled back; return (milliseconds, result). The tables
    written are vacuumed first (as autovacuum would), so rolled-back runs do not pile up dead
    rows (in the orders, and in the ledger and outbox, whose rows are never dead otherwise)."""
    from django.db import connection, transaction

    with connection.cursor() as c:
        c.execute("VACUUM trading_order, trading_event, trading_outboxmessage")

    box = {}
    try:
        with transaction.atomic():
            started = time.perf_counter()
            box["result"] = fn()
            box["ms"] = (time.perf_counter() - started) * 1000
            raise _Rollback
    except _Rollback:
        pass
    return box["ms"], box["result"]


def engine_tick():
    from django.utils import timezone

    from trading.services.protective import protective_evaluate

    return len(
        protective_evaluate(venue="paper", asset=ASSET, price=PRICE, price_at=timezone.now(), source="bench").triggered
    )


def naive_tick():
    """The per-order loop the engine replaces (same semantics, same events)."""
    from django.utils import timezone

    from trading.models import Order
    from trading.services.orders import order_event

    price = PRICE
    fired = 0
    for o in Order.objects.filter(asset=ASSET, status=Order.Status.PENDING_TRIGGER):
        long = o.side == "long"
        if o.order_type == "TRAILING_STOP" and o.stop_price is not None:
            cand = price - o.trailing_stop_distance if long else price + o.trailing_stop_distance
            new = max(o.stop_price, cand) if long else min(o.stop_price, cand)
            if new != o.stop_price:
                o.stop_price = new
                o.save(update_fields=["stop_price", "updated_at"])
        leg = None
        if o.order_type in ("STOP_LOSS", "TRAILING_STOP"):
            if o.stop_price is not None and (price <= o.stop_price if long else price >= o.stop_price):
                leg = "stop"
        elif o.order_type == "TAKE_PROFIT":
            if price >= o.take_profit_price if long else price <= o.take_profit_price:
                leg = "take_profit"
        elif o.order_type == "OCO":
            if price <= o.oco_stop_price if long else price >= o.oco_stop_price:
                leg = "stop"
            elif price >= o.oco_take_profit_price if long else price <= o.oco_take_profit_price:
                leg = "take_profit"
        if leg:
            o.status, o.triggered_at, o.trigger_price, o.triggered_leg = "TRIGGERED", timezone.now(), price, leg
            o.save(update_fields=["status", "triggered_at", "trigger_price", "triggered_leg", "updated_at"])
            order_event(order=o, topic="order.triggered", payload={"price": price, "leg": leg, "source": "bench"})
            fired += 1
    return fired


def main() -> None:
    on_bench_database(_run)


def _run() -> None:
    from django.conf import settings

    settings.PROTECTIVE_NATIVE_SL_TP_VENUES = []
    print("one tick of one asset; times in ms, median of 9 (engine) / of 3 or 1 (naive), min in brackets;")
    print(
        "includes the trailing-stop check (no stop due at this tick), triggers, order.triggered events and their "
        "outbox rows; execution is enqueued after commit"
    )
    engine = {}
    for n, firing, naive_runs in ((10_000, 100, 3), (100_000, 1_000, 1), (100_000, 100, 0)):
        started = time.perf_counter()
        _load(n, firing)
        setup = time.perf_counter() - started
        # the naive runs are spread among the engine's, so both see the same (shared) machine
        naive_after = {round((j + 1) * 9 / (naive_runs + 1)) for j in range(naive_runs)}
        engine_runs, naive = [], []
        for i in range(1, 10):
            engine_runs.append(_timed(engine_tick))
            if i in naive_after:
                naive.append(_timed(naive_tick))
        fired = {r for _, r in engine_runs} | {r for _, r in naive}
        assert fired == {firing}, f"engine and naive loop disagree: {fired}"
        engine_ms = statistics.median(ms for ms, _ in engine_runs)
        engine[(n, firing)] = engine_ms
        line = (
            f"{n:>7,} pending, {firing:>5,} triggering (setup {setup:4.1f}s): "
            f"engine {engine_ms:7.1f} [{min(ms for ms, _ in engine_runs):6.1f}]"
        )
        if naive:
            naive_ms = statistics.median(ms for ms, _ in naive)
            line += f"   naive loop {naive_ms:8.1f} [{min(ms for ms, _ in naive):8.1f}]   x{naive_ms / engine_ms:.0f}"
        print(line)
    print(
        f"engine 100k/10k at 1 % triggering: {engine[(100_000, 1_000)] / engine[(10_000, 100)]:.2f}x "
        f"(triggered x10); at the same 100 triggering: {engine[(100_000, 100)] / engine[(10_000, 100)]:.2f}x "
        "(open orders x10)"
    )


if __name__ == "__main__":
    main()
