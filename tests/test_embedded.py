"""The embedded PostgreSQL and Redis: started once, reused, stopped only by who started them."""

import shutil
import uuid

import psycopg
import pytest
import redis

from config import embedded


@pytest.fixture
def var_dir():
    """A private folder beside the project's own embedded services (not the shared temp dir,
    which concurrent pytest runs prune)."""
    path = embedded.VAR_DIR / f"test-embedded-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_services_start_once_and_stop(var_dir, monkeypatch):
    monkeypatch.setattr(embedded, "_started", [])
    var = var_dir
    try:
        pg_url = embedded.postgres_url(var)
        rd_url = embedded.redis_url(var)
        pg_pid = embedded._postmaster_pid(var / "pg")
        rd_pid = embedded._redis_pid(var)
        assert pg_pid and rd_pid
        assert len(embedded.started_here()) == 2

        # Asking again reuses the running servers: same pids, nothing new started.
        assert embedded.postgres_url(var) == pg_url and embedded.redis_url(var) == rd_url
        assert (embedded._postmaster_pid(var / "pg"), embedded._redis_pid(var)) == (pg_pid, rd_pid)
        assert len(embedded.started_here()) == 2

        socket_dir = pg_url.split("host=")[1]
        with psycopg.connect(dbname="tradedesk", user="postgres", host=socket_dir) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(rd_url).ping()
        assert rd_url.startswith("unix://")  # never a TCP port
    finally:
        assert sorted(embedded.stop_started(var)) == ["pg", "redis"]
    assert embedded._postmaster_pid(var / "pg") is None and embedded._redis_pid(var) is None


def test_a_second_process_does_not_stop_what_it_did_not_start(var_dir, monkeypatch):
    monkeypatch.setattr(embedded, "_started", [])
    var = var_dir
    try:
        embedded.redis_url(var)
        first_owner = embedded.started_here()
        monkeypatch.setattr(embedded, "_started", [])  # as seen by another process
        embedded.redis_url(var)
        assert embedded.stop_started(var) == []
        assert embedded._redis_pid(var) is not None
    finally:
        monkeypatch.setattr(embedded, "_started", first_owner)
        embedded.stop_started(var)
    assert embedded._redis_pid(var) is None
