import time

import pytest


def pytest_unconfigure(config):
    """Stop the embedded PostgreSQL/Redis if this test session started them."""
    from django.db import connections

    from config import embedded

    if embedded.started_here():
        connections.close_all()
        embedded.stop_started()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until `predicate()` is truthy; return its value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def celery_worker_session(django_db_blocker):
    """A real Celery worker (threads pool) consuming from the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.control.purge()
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    """Use with tests that commit: the worker threads see only committed data."""
    return celery_worker_session


@pytest.fixture
def operator_user(django_user_model):
    return django_user_model.objects.create_superuser(username="op", email="op@example.com", password="pw-Op-12345!")


@pytest.fixture
def staff_client(client, operator_user):
    client.force_login(operator_user)
    return client


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
