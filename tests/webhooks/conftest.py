import threading

import pytest
from django.db import transaction

from trading.services.ledger import event_record
from webhooks import services
from webhooks.models import WebhookAllowlist
from webhooks.sandbox import Receiver


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def allow_loopback(db):
    """The operator allowlists the test receiver's address (plain http allowed)."""
    return WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test receiver")


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", email="alice@example.com")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="bob", email="bob@example.com")


@pytest.fixture
def make_endpoint(allow_loopback, receiver):
    def make(user, event_types=("*",), url=None):
        return services.endpoint_create(user=user, url=url or receiver.url(), event_types=list(event_types))

    return make


def record(topic: str, user_id, **payload):
    """A producer's state change: one ledger event, committed (or in the test's transaction)."""
    with transaction.atomic():
        return event_record(topic=topic, aggregate_type="test", aggregate_id=1, payload={"user_id": user_id, **payload})


@pytest.fixture
def beat(transactional_db):
    """Stand-in for Celery Beat's outbox-dispatch entry (every 2 s in production, faster here):
    a dispatch kicked while another dispatcher holds the handler's lock is picked up by Beat."""
    from django.db import connection

    from trading import outbox

    stop = threading.Event()

    def run():
        try:
            while not stop.wait(0.3):
                outbox.outbox_dispatch()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True, name="test-beat")
    thread.start()
    yield
    stop.set()
    thread.join(10)
