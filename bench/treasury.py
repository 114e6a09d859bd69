"""Treasury: (1) one inventory sync round of 200 assets on each of the 3 venues, through the real
clients (NEAR Intents: the doubles, one `mt_batch_balance_of` of 200 token ids; Ostium: 200
accounts on the localnet, chain + subgraph; paper: 200 accounts), and (2) a reservation under 32
concurrent consumers of one balance (each `inventory_reserve` in a transaction of its own: row
lock, checks, the hold, its event). Each beside a plain SELECT and UPDATE of the same rows in the
same run: (1) a SELECT and an UPDATE per balance in one transaction; (2) `SELECT ... FOR UPDATE`
+ `UPDATE reserved` per consumer transaction. Runs against `<DATABASE_URL's name>_bench`."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from bench._db import on_bench_database

ASSETS = 200
ROUNDS = 5
CONSUMERS = 32
PER_CONSUMER = 40


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _setup_near(settings, tmp: str):
    from delegations.keys import solver_key_create
    from providers.near_intents.client import clients_reset
    from providers.near_intents.sandbox import start_sandbox
    from providers.near_intents.sandbox.world import World

    world = World()
    for i in range(ASSETS):
        world.token_add(f"nep141:bench-token-{i}.near", f"T{i}", 18, "eth:1")
    sandbox = start_sandbox(solver_account="bench-solver.near", world=world)
    for i in range(ASSETS):
        world.balance_set("bench-solver.near", f"nep141:bench-token-{i}.near", (i + 1) * 10**18)
    settings.NEAR_INTENTS_NETWORK = "sandbox"
    settings.NEAR_INTENTS_SANDBOX_CONFIG = str(sandbox.write_config(Path(tmp) / "near.json"))
    settings.NEAR_INTENTS_TOKENS = [f"nep141:bench-token-{i}.near" for i in range(ASSETS)]
    clients_reset()
    from delegations.models import CustodyKey

    if not CustodyKey.objects.filter(purpose="near_solver", network="sandbox", is_active=True).exists():
        solver_key_create(network="sandbox", actor="bench")
    return sandbox


def _setup_ostium(settings, tmp: str):
    from eth_account import Account

    from providers.ostium.localnet import start_localnet

    net = start_localnet(keeper_interval=None, fund_traders_usdc=0)
    settings.OSTIUM_NETWORK = "localnet"
    settings.OSTIUM_LOCALNET_CONFIG = str(net.write_config(Path(tmp) / "ostium.json"))
    settings.OSTIUM_TRADER_KEY_FILE = ""
    settings.TREASURY_OSTIUM_ACCOUNTS = [Account.create().address for _ in range(ASSETS)]
    return net


def _setup_paper():
    from providers.models import PaperAccount

    PaperAccount.objects.filter(name__startswith="bench:").delete()
    PaperAccount.objects.bulk_create(PaperAccount(name=f"bench:{i}", balance=Decimal(1000 + i)) for i in range(ASSETS))


def _baseline_sync(venue: str) -> float:
    """The same balances written the plain way: a SELECT and an UPDATE per balance, one transaction."""
    from django.db import connection, transaction

    from treasury.models import InventoryBalance

    rows = list(InventoryBalance.objects.filter(venue=venue).values_list("account", "asset", "credited"))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        for account, asset, credited in rows:
            cur.execute(
                "SELECT id, credited FROM treasury_inventorybalance WHERE venue = %s AND account = %s AND asset = %s",
                [venue, account, asset],
            )
            (pk, _) = cur.fetchone()
            cur.execute(
                "UPDATE treasury_inventorybalance SET credited = %s, synced_at = now() WHERE id = %s", [credited, pk]
            )
    return _ms(started)


def _sync_rounds() -> None:
    from django.conf import settings

    from treasury.models import InventoryBalance, InventorySnapshot
    from treasury.services.sync import treasury_sync

    with tempfile.TemporaryDirectory() as tmp:
        sandbox = _setup_near(settings, tmp)
        net = _setup_ostium(settings, tmp)
        _setup_paper()
        try:
            treasury_sync(venue="near_intents"), treasury_sync(venue="ostium"), treasury_sync(venue="paper")  # warm up
            counts = {v: InventoryBalance.objects.filter(venue=v).count() for v in ("near_intents", "ostium", "paper")}
            assert min(counts.values()) >= ASSETS, counts
            per_venue = {v: [] for v in counts}
            rounds, baselines = [], []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                for venue in per_venue:
                    t = time.perf_counter()
                    result = treasury_sync(venue=venue)
                    assert result.get("ok"), result
                    per_venue[venue].append(_ms(t))
                rounds.append(_ms(started))
                t = time.perf_counter()
                for venue in per_venue:
                    _baseline_sync(venue)
                baselines.append(_ms(t))
            print(f"inventory sync, {ASSETS} assets x 3 venues per round; ms, median of {ROUNDS} [min]")
            for venue, values in per_venue.items():
                print(f"  {venue:<13} {statistics.median(values):8.1f} [{min(values):8.1f}]")
            r, b = statistics.median(rounds), statistics.median(baselines)
            print(f"  round         {r:8.1f} [{min(rounds):8.1f}]   (venue reads + balances, snapshots, event)")
            print(f"  baseline      {b:8.1f} [{min(baselines):8.1f}]   plain SELECT+UPDATE per balance, same 600+ rows")
            snapshots = InventorySnapshot.objects.count()
            print(f"  snapshots written so far: {snapshots}")
        finally:
            sandbox.stop()
            net.stop()


def _consumers(work) -> tuple[list[float], float]:
    """CONSUMERS threads, each calling work(i, j) PER_CONSUMER times; latencies (ms) and wall time."""
    from django.db import connection

    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CONSUMERS)

    def consumer(i: int):
        mine = []
        try:
            barrier.wait()
            for j in range(PER_CONSUMER):
                t = time.perf_counter()
                work(i, j)
                mine.append(_ms(t))
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=consumer, args=(i,)) for i in range(CONSUMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, _ms(started)


def _reservations() -> None:
    from django.db import connection, transaction

    from providers.interface import InventoryReading
    from treasury.models import InventoryBalance, Reservation
    from treasury.services.inventory import inventory_reserve, inventory_sync_apply

    reading = InventoryReading(
        venue="paper", account="bench:reserve", asset="USD", symbol="USD", decimals=2, credited=Decimal(10**9)
    )
    run_id = time.time_ns()

    def fresh():
        InventoryBalance.objects.filter(account="bench:reserve").update(reserved=0)
        inventory_sync_apply(venue="paper", readings=[reading], source="bench")

    def reserve(i, j):
        with transaction.atomic():
            inventory_reserve(
                venue="paper", account="bench:reserve", asset="USD", amount=Decimal(1), ref=f"bench:{run_id}:{i}:{j}"
            )

    pk = None

    def baseline(i, j):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT credited, reserved FROM treasury_inventorybalance WHERE id = %s FOR UPDATE", [pk])
            credited, reserved = cur.fetchone()
            assert credited - reserved >= 1
            cur.execute("UPDATE treasury_inventorybalance SET reserved = reserved + 1 WHERE id = %s", [pk])

    fresh()
    pk = InventoryBalance.objects.get(account="bench:reserve").pk
    results = []
    for label, work in (("baseline", baseline), ("reserve", reserve)):
        fresh()
        latencies, wall = _consumers(work)
        results.append((label, latencies, wall))
    held = Reservation.objects.filter(ref__startswith=f"bench:{run_id}:").count()
    assert held == CONSUMERS * PER_CONSUMER, held
    print(f"reservation of one balance under {CONSUMERS} concurrent consumers x {PER_CONSUMER}; ms per reservation")
    for label, latencies, wall in results:
        name = "inventory_reserve" if label == "reserve" else "plain SELECT FOR UPDATE + UPDATE"
        print(
            f"  {name:<33} p50 {_pct(latencies, 50):7.2f}  p99 {_pct(latencies, 99):7.2f}  "
            f"{len(latencies) / wall * 1000:7.0f}/s"
        )


def _run() -> None:
    _sync_rounds()
    _reservations()


def main() -> None:
    on_bench_database(_run)


if __name__ == "__main__":
    main()
