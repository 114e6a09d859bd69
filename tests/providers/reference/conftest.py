"""Reference prices against the loopback doubles of Kraken (websocket v2 + REST) and CoinGecko."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

KRAKEN_BOOK = {
    "BTC/EUR": ("60000", "60002", "60001"),
    "BTC/USD": ("65000", "65002", "65001"),
    "ETH/USD": ("3200.0", "3200.4", "3200.2"),
}
GECKO_PRICES = {("bitcoin", "eur"): "60003", ("bitcoin", "usd"): "65004", ("ethereum", "usd"): "3200.5"}


@pytest.fixture
def kraken_sandbox():
    from providers.kraken.sandbox import KrakenSandbox

    double = KrakenSandbox(dict(KRAKEN_BOOK), heartbeat=0.2).start()
    yield double
    double.stop()


@pytest.fixture
def coingecko_sandbox():
    from providers.coingecko.sandbox import CoinGeckoSandbox

    double = CoinGeckoSandbox(dict(GECKO_PRICES)).start()
    yield double
    double.stop()


@dataclass
class Reference:
    kraken: object
    gecko: object


@pytest.fixture
def reference(settings, db, kraken_sandbox, coingecko_sandbox):
    """Settings pointing at both doubles (quick back-offs and ages for tests), an empty store, both
    sources running and the EURE basis."""
    from providers.models import ReferenceBasis, ReferenceSource
    from providers.reference.store import store_clear

    settings.KRAKEN_WS_URL = kraken_sandbox.ws_url
    settings.KRAKEN_REST_URL = kraken_sandbox.rest_url
    settings.COINGECKO_API_URL = coingecko_sandbox.url
    settings.COINGECKO_API_KEY = ""
    settings.REFERENCE_PAIRS = ["BTC/EUR", "BTC/USD", "ETH/USD", "BTC/EURE"]
    settings.COINGECKO_IDS = {"BTC": "bitcoin", "ETH": "ethereum"}
    settings.KRAKEN_RECONNECT_MIN_SECONDS = 0.05
    settings.KRAKEN_RECONNECT_MAX_SECONDS = 0.5
    settings.KRAKEN_IDLE_TIMEOUT_SECONDS = 2.0
    settings.KRAKEN_TIMEOUT = 2.0
    settings.COINGECKO_TIMEOUT = 1.0
    settings.COINGECKO_POLL_SECONDS = 30.0
    store_clear()
    for name in ("kraken", "coingecko"):
        ReferenceSource.objects.update_or_create(name=name, defaults={"paused": False, "reason": ""})
    ReferenceBasis.objects.update_or_create(
        asset="EURE", defaults={"equals": "EUR", "rate": 1, "source": "assumed peg", "set_by": "test"}
    )
    yield Reference(kraken_sandbox, coingecko_sandbox)
    store_clear()


class FeedsThread:
    """The feeds process's streams on an event loop in a thread of this process."""

    def __init__(self, names):
        self.names = list(names)
        self.loop = None
        self.stop_event = None
        self.error = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._main, name="feeds", daemon=True)

    def _main(self):
        from django.db import connections

        from providers.streams import streams_run

        async def main():
            self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await streams_run(self.stop_event, self.names)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            connections.close_all()

    def start(self):
        self.thread.start()
        assert self._started.wait(10)
        return self

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the feeds did not stop"
        assert self.error is None, self.error


@pytest.fixture
def feeds(transactional_db):
    """`feeds("kraken", ...)` starts those streams (committed data: use with transactional_db)."""
    running = []

    def start(*names):
        thread = FeedsThread(names or ["kraken"]).start()
        running.append(thread)
        return thread

    yield start
    for thread in running:
        thread.stop()
