"""The NEAR Intents solver loop against the doubles: the relay (websocket), the NEAR RPC with
the verifier, reference prices in the store as the feeds process writes them, inventory synced
from the verifier, and the `near_solver` process's runner on an event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest

BTC = "nep141:btc.omft.near"
EURE = "nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near"
USDC = "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near"
SOLVER = "desk-solver.near"
BTC_RAW, EURE_RAW = 10**8, 10**18


@contextmanager
def rival_holding_btc(reserved):
    """A concurrent hold of the BTC balance: its transaction locks the row, sets `reserved` to
    `reserved(row)`, and commits only once another transaction waits on its lock (the quote's
    hold, inside the block). Leaving the block checks that the rival was let go by that wait."""
    from django.db import connection, transaction

    from tests.conftest import wait_for
    from treasury.models import InventoryBalance

    locked, release, done = threading.Event(), threading.Event(), threading.Event()
    released_by_the_wait = []

    def rival():
        try:
            with transaction.atomic():
                row = InventoryBalance.objects.select_for_update().get(venue="near_intents", asset=BTC)
                row.reserved = reserved(row)
                row.save(update_fields=["reserved"])
                locked.set()
                released_by_the_wait.append(release.wait(30))
        finally:
            connection.close()
            done.set()

    threading.Thread(target=rival, daemon=True).start()
    assert locked.wait(10)

    def hold_waits_on_the_lock():
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")
            return cur.fetchone()[0] > 0

    def let_go():
        wait_for(hold_waits_on_the_lock, what="the hold waiting on the rival's lock")
        release.set()

    threading.Thread(target=lambda: (let_go(), connection.close()), daemon=True).start()
    yield
    assert done.wait(10) and released_by_the_wait == [True], "the hold did not wait on the rival's lock"


def put_price(price="60000", *, age_ms=0, coingecko=None, gecko_age_ms=0):
    """Kraken's (and optionally CoinGecko's) BTC/EUR in the store, as the feeds process writes them."""
    from providers.reference.store import Quote, now_ms, quotes_put

    now = now_ms()
    p = Decimal(price)
    quotes = [Quote("kraken", "BTC/EUR", p, now - age_ms, now, "ws", p, p)]
    if coingecko is not None:
        quotes.append(Quote("coingecko", "BTC/EUR", Decimal(coingecko), now - gecko_age_ms, now, "poll"))
    quotes_put(quotes)


def arm(*components):
    from trading.services.control import control_arm

    for component in components or ("near_intents:ingest", "strategy:near_intents", "executor:near_intents"):
        control_arm(component=component, actor="test", reason="test")


def sync():
    from treasury.services.sync import treasury_sync

    return treasury_sync(venue="near_intents")


class SolverThread:
    """The `near_solver` process's runner in a thread of this process, on the event loop the
    process runs on (`config.aio`: uvloop's)."""

    def __init__(self, url: str, api_key: str = "", url_source=None):
        from config.aio import event_loop_new
        from solver.runner import SolverRunner

        self.runner = SolverRunner(url=url, api_key=api_key, workers=4, url_source=url_source)
        self.loop = event_loop_new()
        self.stop_event = None
        self.thread = threading.Thread(target=self._run, name="solver-test", daemon=True)
        self.error = None

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_event = asyncio.Event()
            await self.runner.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def crash(self):
        """Stop the event loop where it is (a killed process): nothing is finished or recorded."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=20)
        self.runner.pool.shutdown(wait=True)
        self.error = None

    def stop(self):
        if not self.thread.is_alive():
            return
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=20)
        if self.error:
            raise self.error


@pytest.fixture
def desk(near_sandbox, transactional_db, settings):
    """The doubles with the solver key registered, 2 BTC and 50,000 EURe credited and synced,
    BTC/EUR at 60,000 (BTC/EURE through the 1:1 basis), quick loop settings."""
    from delegations.keys import solver_key_create
    from providers.models import ReferenceBasis, ReferenceSource
    from providers.reference.store import store_clear
    from solver.services import loop
    from solver.services.state import state_clear

    settings.REFERENCE_PAIRS = ["BTC/EUR", "BTC/USD", "ETH/USD", "BTC/EURE"]
    settings.NEAR_SOLVER_PAIRS = ["BTC/EURE"]
    settings.NEAR_SOLVER_HOUSEKEEPING_SECONDS = 0.1
    settings.NEAR_SOLVER_RECONNECT_MIN_SECONDS = 0.05
    settings.NEAR_SOLVER_RECONNECT_MAX_SECONDS = 0.4
    settings.NEAR_SOLVER_RESPONSE_TIMEOUT = 1.0
    settings.NEAR_SOLVER_DEADLINE_EXTRA_MS = 2000
    store_clear()
    state_clear()
    loop.caches_forget()
    for name in ("kraken", "coingecko"):
        ReferenceSource.objects.update_or_create(name=name, defaults={"paused": False, "reason": ""})
    ReferenceBasis.objects.update_or_create(
        asset="EURE", defaults={"equals": "EUR", "rate": 1, "source": "assumed peg", "set_by": "test"}
    )
    key = solver_key_create(network="sandbox", actor="test")
    world = near_sandbox.world
    world.public_key_add(SOLVER, key.address)
    world.balance_set(SOLVER, BTC, 2 * BTC_RAW)
    world.balance_set(SOLVER, EURE, 50_000 * EURE_RAW)
    world.relay.window = 0.1
    put_price("60000")
    assert sync()["ok"]
    yield near_sandbox
    store_clear()
    state_clear()


@pytest.fixture
def solver(desk):
    """The runner connected to the relay double (ingest armed), stopped at teardown."""
    from tests.conftest import wait_for

    arm("near_intents:ingest")
    thread = SolverThread(desk.config()["relay_ws_url"]).start()
    try:
        wait_for(lambda: desk.world.relay.subscribed("quote_status") == 1, what="the solver subscribed")
        yield thread
    finally:
        thread.stop()
