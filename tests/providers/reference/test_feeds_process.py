"""The feeds process (`manage.py feeds`) and the demo's doubles (`manage.py reference_sandbox`) as
the Procfile runs them: real processes, the test database and Redis."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings

from providers.models import ReferenceSample
from providers.reference.service import evaluate_pairs, reference_state
from providers.streams import stream_register, streams_run
from tests.conftest import _database_url_for_tests, wait_for


@pytest.fixture
def processes(tmp_path, transactional_db):
    from providers.models import ReferenceBasis
    from providers.reference.store import store_clear

    store_clear()
    ReferenceBasis.objects.update_or_create(asset="EURE", defaults={"equals": "EUR", "rate": 1, "set_by": "test"})
    config = tmp_path / "reference-sandbox.json"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "WARNING",
        "REFERENCE_ENDPOINTS": "sandbox",
        "REFERENCE_SANDBOX_CONFIG": str(config),
        "KRAKEN_RECONNECT_MIN_SECONDS": "0.1",
        "KRAKEN_RECONNECT_MAX_SECONDS": "1",
    }
    procs = []

    def start(*args):
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    start.config, start.env = config, env
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store_clear()


def test_feeds_follow_the_demo_sandbox_and_stop_cleanly(processes):
    feeds = processes("feeds")  # before the sandbox: it waits for the sandbox's address file
    kraken = lambda: next(s for s in reference_state()["sources"] if s["name"] == "kraken")  # noqa: E731
    wait_for(lambda: "waiting for its address" in kraken()["health_reason"], timeout=30)
    assert "reference_sandbox" in kraken()["health_reason"]  # what to start
    sandbox = processes("reference_sandbox")
    wait_for(lambda: processes.config.exists(), timeout=30)
    wait_for(lambda: evaluate_pairs(["BTC/EUR"])["BTC/EUR"].source == "kraken", timeout=30)
    first = evaluate_pairs(["BTC/EUR"])["BTC/EUR"].rate
    wait_for(lambda: evaluate_pairs(["BTC/EUR"])["BTC/EUR"].rate != first, timeout=10)  # the walk streams
    assert evaluate_pairs(["BTC/EURE"])["BTC/EURE"].outcome == "ok"
    wait_for(lambda: ReferenceSample.objects.exists(), timeout=10)  # the sampler stores as it goes
    # waiting for the address was no error: nothing counted, nothing left to read as one
    assert (kraken()["errors"], kraken()["reconnects"], kraken()["last_error"]) == (0, 0, "")
    assert kraken()["health_reason"] == ""

    script = subprocess.run(
        [sys.executable, "manage.py", "reference_sandbox", "--script", "kraken", "disconnect"],
        cwd=settings.BASE_DIR,
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0, script.stdout + script.stderr
    assert json.loads(script.stdout)["result"] == 1  # one connection dropped
    wait_for(lambda: kraken()["reconnects"] >= 1 and kraken()["connected"], timeout=15)

    for proc in (feeds, sandbox):
        proc.send_signal(signal.SIGTERM)
    for proc in (feeds, sandbox):
        out = proc.communicate(timeout=30)[0].decode()
        assert proc.returncode == 0, out[-2000:]
    assert not processes.config.exists()
    assert not kraken()["connected"]


def test_a_failing_stream_is_restarted_without_touching_the_others(monkeypatch):
    import providers.streams as streams

    monkeypatch.setattr(streams, "RESTART_MIN", 0.01)
    runs = {"flaky": 0, "steady": 0}

    class Flaky:
        async def run(self, stop):
            runs["flaky"] += 1
            raise RuntimeError("boom")

    class Steady:
        async def run(self, stop):
            runs["steady"] += 1
            await stop.wait()

    stream_register("test-flaky", Flaky)
    stream_register("test-steady", Steady)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(streams_run(stop, ["test-flaky", "test-steady"]))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        streams._STREAMS.pop("test-flaky")
        streams._STREAMS.pop("test-steady")
    assert runs["flaky"] >= 3 and runs["steady"] == 1


def test_an_unknown_stream_is_refused():
    with pytest.raises(ValueError, match="unknown streams: nope"):
        asyncio.run(streams_run(asyncio.Event(), ["nope"]))


def test_the_sandbox_scripting_door_calls_only_scripting_actions(coingecko_sandbox):
    import httpx

    base = coingecko_sandbox.url.removesuffix("/api/v3")
    ok = httpx.post(f"{base}/_sandbox/set_price", json={"coin": "bitcoin", "vs": "eur", "price": "1.5"})
    assert ok.status_code == 200 and coingecko_sandbox.prices[("bitcoin", "eur")] == Decimal("1.5")
    assert httpx.post(f"{base}/_sandbox/stop", json={}).status_code == 404
    assert httpx.post(f"{base}/_sandbox/set_price", json={"nope": 1}).status_code == 400
