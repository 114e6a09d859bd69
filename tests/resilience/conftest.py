"""The resilience suite's desk: one for this folder's tests (starting it costs ~20 s), shared by
the bad-input corpus, schemathesis, the log check and the fault tests, and stopped when they are
done (not left running under the rest of the suite). Each test leaves it running and ready, and
starts by checking that it is."""

import uuid

import pytest

from config import embedded
from tests.resilience.desk import Desk


@pytest.fixture(scope="package")
def resilience_localnet():
    from providers.ostium.localnet import start_localnet

    net = start_localnet(keeper_interval=0.2)
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="package")
def desk(resilience_localnet):
    d = Desk(embedded.VAR_DIR / f"resilience-{uuid.uuid4().hex[:8]}", resilience_localnet)
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture
def live_desk(desk):
    """The desk, ready (every check of /ready passing) before the test starts."""
    desk.wait_ready(90)
    return desk


@pytest.fixture(scope="package")
def desk_user(desk):
    """(email, access token) of a registered user of the desk."""
    return desk.register()
