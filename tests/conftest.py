import contextlib
import os
import threading
import time
import uuid

import pytest


def pytest_unconfigure(config):
    """Stop the embedded PostgreSQL/Redis if this test session started them."""
    from django.db import connections

    from config import embedded

    if embedded.started_here():
        connections.close_all()
        embedded.stop_started()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, with every other session on it closed before it is
    dropped: threads that ran queries during the run (the Celery worker's pool, live servers,
    executors of async code) each keep their own connection, and one still open made the drop
    fail ("is being accessed by other users") and left the database behind."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def minute_with_room(needed: float = 5.0) -> None:
    """Rate limits count in fixed windows (a minute for `N/min`): a test that spends a
    per-minute limit waits for the next minute when fewer than `needed` seconds are left in
    this one, so that its requests all land in one window."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, *, what: str = "condition"):
    """Poll until `predicate()` is truthy; return its value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout}s")
        time.sleep(interval)


@contextlib.contextmanager
def tasks_published(task_name: str):
    """The threads that published the Celery task `task_name` while the block ran, in order
    (Celery's before_task_publish signal: counted whether or not a worker runs them)."""
    from celery.signals import before_task_publish

    published: list[threading.Thread] = []

    def record(sender=None, **_):
        if sender == task_name:
            published.append(threading.current_thread())

    before_task_publish.connect(record, weak=False)
    try:
        yield published
    finally:
        before_task_publish.disconnect(record)


def run_on_worker(task, *args, timeout: float = 20.0) -> None:
    """Send `task` to the test worker and return once the worker has finished running it.

    Results are ignored (no result backend), so `.get()` would return at once; the worker runs in
    this process, so its task_postrun / task_revoked signals tell when this one is done."""
    from celery.signals import task_postrun, task_revoked

    wanted = str(uuid.uuid4())
    done = threading.Event()

    def finished(task_id=None, request=None, **_):
        if (task_id or getattr(request, "id", None)) == wanted:
            done.set()

    task_postrun.connect(finished, weak=False)
    task_revoked.connect(finished, weak=False)
    try:
        task.apply_async(args, task_id=wanted)
        if not done.wait(timeout):
            pytest.fail(f"{task.name} did not run within {timeout}s")
    finally:
        task_postrun.disconnect(finished)
        task_revoked.disconnect(finished)


def _queued_marks_clear() -> None:
    """After a purge: the queued outbox dispatch and webhook run the marks stood for are gone,
    so they no longer stand for the kicks after them (no Beat here)."""
    from trading.outbox import kick_mark_clear
    from webhooks.services import run_mark_clear

    kick_mark_clear()
    run_mark_clear()


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker):
    """A real Celery worker (threads pool) consuming from the real Redis broker, with its
    outbox listener on the test database (set up first: the listener connects at start)."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.control.purge()
    _queued_marks_clear()
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ) as worker:
        yield worker


_worker_started = False


def _drain_worker(timeout: float = 30.0) -> None:
    """Drop queued tasks and wait until the in-process worker runs none: a task still
    querying while the test database is flushed (TRUNCATE) can deadlock the flush. Tasks the
    worker holds for later (a countdown: a webhook retry's run) are revoked too: they are in
    neither the queue nor the worker's reserved requests, and one would otherwise run in the
    middle of a later test."""
    from celery.worker import state

    from config.celery import app

    app.control.purge()
    for request in list(state.scheduled_requests):
        state.revoked.add(request.id)  # skipped (and acknowledged) when it comes due
    _queued_marks_clear()
    deadline = time.monotonic() + timeout
    while (state.active_requests or state.reserved_requests) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _quiet_worker_before_flush(request):
    """Tests that commit (transactional_db) get their database flushed at teardown; let the
    session worker go idle first. Requesting transactional_db from here orders its teardown
    (the flush) after this fixture's."""
    marker = request.node.get_closest_marker("django_db")
    commits = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    if "transactional_db" in request.fixturenames:
        request.getfixturevalue("transactional_db")  # (the django_db marker is set up before us anyway)
    yield
    if commits and _worker_started:
        _drain_worker()


@pytest.fixture(autouse=True)
def _ledger_verified_after_test(request):
    """Every test that used the database ends with the ledger replay check
    (trading/services/ledger_verify.py): whatever the test's flows left, the ledger re-derives it.
    A test that leaves rows behind the ledger on purpose (a test of the check itself) says so with
    `@pytest.mark.ledger_drift`. LEDGER_VERIFY_AFTER_TESTS=0 turns the check off."""
    enabled = os.environ.get("LEDGER_VERIFY_AFTER_TESTS", "1") != "0"
    if request.node.get_closest_marker("ledger_drift"):
        enabled = False
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if enabled and uses_db:
        for name in ("transactional_db", "db"):  # set up first: torn down (flushed) after the check
            if name in request.fixturenames:
                request.getfixturevalue(name)
                break
    yield
    if not (enabled and uses_db):
        return
    from django.db import connection, transaction

    from trading.services.ledger_verify import ledger_verify

    if connection.in_atomic_block:  # the test's own transaction: nothing else writes into it
        report = ledger_verify()
    else:  # committed rows, maybe still being written by a worker or a server: one snapshot
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            report = ledger_verify()
    assert report.ok, "the ledger does not re-derive the rows:\n" + "\n".join(map(str, report.mismatches[:20]))


def ledger_events_for(*rows) -> None:
    """Write the ledger events a row made by hand (a test's factory) stands for, as the services
    would have written them, so the after-test ledger check re-derives the row: an order's
    `order.accepted` and the move to its status, a trade's `trade.opened` (and `trade.reduced` /
    `trade.closed`, `trade.funding_charged`), a position's snapshot. Their outbox messages are
    marked delivered: no handler (the executor, webhooks, realtime) acts on a made-up history."""
    from django.db import transaction

    from trading.models import Order, OutboxMessage, Position, Trade
    from trading.services.ledger import event_record
    from trading.services.ledger_verify import _POSITION_FIELDS
    from trading.services.orders import order_snapshot

    def stands_for(row):
        if isinstance(row, Order):
            yield "order.accepted", order_snapshot(row)
            if row.status != Order.Status.ACCEPTED:
                moved = {"from": Order.Status.ACCEPTED, "to": row.status}
                if row.status == Order.Status.FILLED and row.filled_quantity is not None:
                    moved |= {"size": row.filled_quantity, "price": row.filled_price, "fee": row.fee}
                yield f"order.{row.status.lower()}", moved
        elif isinstance(row, Trade):
            yield "trade.opened", {"size": row.size, "fee": row.fees_paid}
            if row.status == Trade.Status.CLOSED or row.realized_pnl:
                topic = "trade.closed" if row.status == Trade.Status.CLOSED else "trade.reduced"
                yield topic, {"remaining_size": row.size, "trade_realized_pnl": row.realized_pnl, "fee": 0}
            if row.funding_paid:
                yield "trade.funding_charged", {"funding_paid": row.funding_paid}
        elif isinstance(row, Position):
            yield "position.opened", {field: getattr(row, field) for field in _POSITION_FIELDS}
        else:
            raise TypeError(f"no ledger events for {type(row).__name__}")

    with transaction.atomic():
        ids = [
            event_record(
                topic=topic,
                aggregate_type=type(row).__name__.lower(),
                aggregate_id=row.pk,
                correlation_id=f"{type(row).__name__.lower()}-{row.pk}",
                actor="test",
                payload=payload,
                kick=False,
            ).id
            for row in rows
            for topic, payload in stands_for(row)
        ]
        OutboxMessage.objects.filter(event_id__in=ids).update(status=OutboxMessage.Status.DELIVERED)


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    """Use with tests that commit: the worker threads see only committed data."""
    global _worker_started
    _worker_started = True
    return celery_worker_session


@pytest.fixture
def operator_user(django_user_model):
    return django_user_model.objects.create_superuser(username="op", email="op@example.com", password="pw-Op-12345!")


@pytest.fixture
def staff_client(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.fixture(autouse=True)
def _runtime_config_fresh():
    """The runtime configuration snapshot is per process: start each test reading its database."""
    from configuration.runtime import cache_clear

    cache_clear()
    yield
    cache_clear()


@pytest.fixture(autouse=True)
def _reset_throttles():
    """Rate-limit counters live in Redis and outlive a test: start each test with none."""
    from trading.throttling import throttle_reset

    throttle_reset()
    yield


def _database_url_for_tests() -> str:
    """A URL for the test database (pytest-django's), for a child process."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "") + (":" + quote(s["PASSWORD"]) if s.get("PASSWORD") else "")
    host = s.get("HOST") or ""
    if host.startswith("/"):
        return f"postgres://{auth}@/{s['NAME']}?host={quote(host)}"
    return f"postgres://{auth}@{host}:{s.get('PORT') or 5432}/{s['NAME']}"


@pytest.fixture
def beat_process(transactional_db):
    """A real `celery beat` process on the test database and the same Redis (cache prefix
    included), sending to a queue of its own that nobody reads. Returns an object with
    `start()` and `stop()` (SIGTERM, waited for); stopped at teardown."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile

    from django.conf import settings

    queue = f"beat-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "CELERY_QUEUE": queue,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "WARNING",
    }

    class Beat:
        proc = None
        log = None

        def start(self):
            assert self.proc is None, "Beat is already running"
            self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING", "--pidfile", ""],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def output(self) -> str:
            self.log.seek(0)
            return self.log.read().decode(errors="replace")

        def stop(self):
            if self.proc is None:
                return
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.log.close()
            self.proc = self.log = None

    beat = Beat()
    yield beat
    beat.stop()
    import redis

    redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).delete(queue)


@pytest.fixture
def asgi_server(transactional_db):
    """Start `uvicorn config.asgi:application` as a real second process against the test
    database and the same Redis; returns a function `start(env=None) -> base_url`.
    Use with data committed by the test (transactional_db)."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    import httpx
    from django.conf import settings

    procs = []

    def start(env: dict | None = None) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        child_env = {
            **os.environ,
            "DATABASE_URL": _database_url_for_tests(),
            "REDIS_URL": settings.REDIS_URL,
            "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
            "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
            "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "DB_POOL_MAX_SIZE": "4",  # as the Procfile's web process runs
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed at teardown) a file, not a pipe: never blocks
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        base = f"http://127.0.0.1:{port}"

        def up():
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"uvicorn exited: {log.read().decode()[-2000:]}")
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30)
        return base

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def paper_markets(db):
    """The paper venue's default markets and starting prices, with no cached ticks or market
    lists left over from earlier tests (transactional tests flush the seeded rows)."""
    from providers.markets import markets_cache_clear
    from providers.paper.seed import seed_paper_demo
    from providers.prices import price_cache_clear

    price_cache_clear()
    markets_cache_clear()
    seed_paper_demo()
    yield
    price_cache_clear()
    markets_cache_clear()


@pytest.fixture
def venue_events():
    """Every VenueEvent emitted while the test runs (after commit), in order."""
    from providers.events import register_venue_listener, unregister_venue_listener

    received = []
    register_venue_listener(received.append)
    yield received
    unregister_venue_listener(received.append)


@pytest.fixture
def near_sandbox(settings, tmp_path):
    """The NEAR Intents doubles (NEAR RPC with the verifier, bridge service, relay) on loopback,
    with Tradedesk pointed at them (NEAR_INTENTS_NETWORK=sandbox). Returns the `Sandbox`; its
    `world` is the state to script. Stopped at teardown."""
    from providers.near_intents.client import breaker_reset, clients_reset
    from providers.near_intents.config import network_config
    from providers.near_intents.sandbox import start_sandbox

    sandbox = start_sandbox(solver_account="desk-solver.near")
    settings.NEAR_INTENTS_NETWORK = "sandbox"
    settings.NEAR_INTENTS_SANDBOX_CONFIG = str(sandbox.write_config(tmp_path / "near-intents-sandbox.json"))
    settings.NEAR_INTENTS_SOLVER_ACCOUNT = ""
    settings.NEAR_INTENTS_RPC_URL = settings.NEAR_INTENTS_BRIDGE_URL = settings.NEAR_INTENTS_RELAY_URL = ""
    settings.NEAR_INTENTS_TOKENS = []
    settings.NEAR_INTENTS_TIMEOUT = 2.0
    settings.NEAR_INTENTS_READ_RETRIES = 0
    clients_reset()
    breaker_reset(network_config())
    yield sandbox
    clients_reset()
    breaker_reset(network_config())
    sandbox.stop()


# --- the live ASGI server (HTTP and websockets) --------------------------------------------------


@pytest.fixture(scope="session")
def live_server_ws(django_db_setup):
    """One uvicorn server for the whole session, defined here only: a module importing this
    fixture would get a server of its own, and two servers in one process share its channel
    layer from two event loops (channels_redis refuses: "Two event loops are trying to
    receive()")."""
    from tests.realtime.conftest import LiveServer

    server = LiveServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ws_server(live_server_ws, transactional_db):
    """The live server, for a test whose data is committed (the server reads it)."""
    return live_server_ws
