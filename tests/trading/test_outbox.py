"""The outbox dispatcher, driven by a real Celery worker over the real Redis broker."""

import threading

import pytest
from django.db import transaction
from django.test import override_settings

from tests.conftest import wait_for
from trading import outbox
from trading.models import OutboxMessage
from trading.services.ledger import event_record


@pytest.fixture
def recorder():
    """Register two handlers that record what they receive; unregister afterwards."""
    seen = {"a": [], "b": []}
    lock = threading.Lock()

    def make(name):
        def handle(event):
            with lock:
                seen[name].append(event.id)

        return handle

    outbox.register_handler("test-a", make("a"), topics=["order.*"])
    outbox.register_handler("test-b", make("b"), topics=["*"])
    yield seen
    outbox.unregister_handler("test-a")
    outbox.unregister_handler("test-b")


def _record(topic, n):
    with transaction.atomic():
        return event_record(topic=topic, aggregate_type="order", aggregate_id=n, payload={"n": n})


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.celery
def test_committed_events_reach_each_matching_handler_once_in_order(celery_worker, recorder):
    ids = [_record("order.accepted", n).id for n in range(20)]
    other = _record("risk.rejected", 99).id

    pending = OutboxMessage.objects.filter(handler__startswith="test-", status="pending")
    # handlers see the events before the dispatcher's transaction marks them delivered
    wait_for(lambda: len(recorder["b"]) == 21 and len(recorder["a"]) == 20 and not pending.exists())
    outbox.outbox_dispatch()  # a second pass must not publish anything again
    assert recorder["a"] == ids
    assert recorder["b"] == [*ids, other]
    assert not OutboxMessage.objects.filter(handler__startswith="test-", status="pending").exists()


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
def test_commits_while_a_dispatch_drains_enqueue_nothing_and_the_drainer_publishes_them(transactional_db, recorder):
    """The draining dispatch absorbs the kicks of commits made while it runs and publishes them
    before it ends; a dispatch task that finds it draining publishes what it can and leaves the
    kicks to it; once the drainer ends, the next commit kicks a task again."""
    from config.celery import app
    from tests.conftest import tasks_published

    app.control.purge()
    outbox.kick_mark_clear()
    try:
        drainer, token = outbox.DISPATCH_KICKS.acquire()  # this test is the running dispatch
        assert drainer
        with tasks_published("trading.tasks.outbox_dispatch_task") as published:
            for n in range(3):
                _record("order.accepted", n)
            assert published == []
            outbox.outbox_dispatch_while_kicked()  # another dispatch task: not the drainer
            done, token = outbox.DISPATCH_KICKS.finish(token)
            assert not done  # the kicks are still the drainer's: it publishes again
            outbox.outbox_dispatch()
            done, _ = outbox.DISPATCH_KICKS.finish(token)
            assert done
            assert not OutboxMessage.objects.filter(handler__startswith="test-", status="pending").exists()
            assert published == []
            _record("order.accepted", 3)
            assert len(published) == 1
    finally:
        app.control.purge()
        outbox.kick_mark_clear()
    pending = OutboxMessage.objects.filter(handler__startswith="test-", status="pending")
    wait_for(lambda: outbox.outbox_dispatch() >= 0 and not pending.exists(), what="every test message published")
    assert sorted(recorder["a"]) == sorted(set(recorder["a"])) and len(recorder["a"]) == 4


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
def test_commits_while_a_dispatch_waits_in_the_queue_enqueue_no_more(transactional_db, recorder):
    """A burst of commits costs one dispatch run, not one per commit: while a kicked dispatch
    waits in the queue (its mark is set) kicks publish nothing; once the mark is gone (the queue
    was purged) the next commit kicks again. No worker here: the queue is purged before and after."""
    from django.core.cache import cache

    from config.celery import app
    from tests.conftest import tasks_published

    app.control.purge()
    try:
        with tasks_published("trading.tasks.outbox_dispatch_task") as published:
            cache.set(outbox.KICK_QUEUED, 1, 60)  # a kicked dispatch is waiting in the queue
            for n in range(5):
                _record("order.accepted", n)
            assert published == []
            outbox.kick_mark_clear()  # purged: the run the mark stood for is gone
            _record("order.accepted", 5)
            assert len(published) == 1
    finally:
        app.control.purge()
        outbox.kick_mark_clear()
    # whatever was kicked or not, every message is there for the dispatcher (here, or the
    # session worker's, if one runs and took the kicked run before the purge)
    # (the session worker runs in this process, so it may be the one calling the handlers: what
    # counts is the rows it committed, not what the handlers saw inside its transaction)
    pending = OutboxMessage.objects.filter(handler__startswith="test-", status="pending")
    wait_for(lambda: outbox.outbox_dispatch() >= 0 and not pending.exists(), what="every test message published")
    assert len(recorder["a"]) == 6


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.celery
def test_rolled_back_transaction_publishes_nothing(celery_worker, recorder):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        event_record(topic="order.accepted", aggregate_type="order", aggregate_id=1)
        1 / 0  # noqa: B018
    kept = _record("order.accepted", 2).id
    wait_for(lambda: recorder["b"])
    assert recorder["b"] == [kept] and recorder["a"] == [kept]


def _dispatch_until(handler, condition):
    """Make the handler's waiting messages due now and dispatch, until `condition()` holds.
    (A worker from another test may be dispatching too; the result must be the same.)"""

    def step():
        OutboxMessage.objects.filter(handler=handler, status="pending").update(next_attempt_at="2000-01-01T00:00Z")
        outbox.outbox_dispatch()
        return condition()

    wait_for(step)


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.django_db(transaction=True)
def test_a_failing_handler_is_retried_and_blocks_later_events_until_it_succeeds():
    calls = []
    state = {"fail": 2}

    def flaky(event):
        calls.append(event.id)
        if event.payload["n"] == 0 and state["fail"]:
            state["fail"] -= 1
            raise ConnectionError("receiver down")

    outbox.register_handler("test-flaky", flaky, topics=["order.*"])
    try:
        first, second = _record("order.accepted", 0).id, _record("order.accepted", 1).id
        first_attempt = OutboxMessage.objects.filter(handler="test-flaky", event_id=first, attempts=1)
        wait_for(lambda: outbox.outbox_dispatch() is not None and first_attempt.exists())
        msg = OutboxMessage.objects.get(handler="test-flaky", event_id=first)
        assert (msg.status, msg.attempts) == ("pending", 1) and "receiver down" in msg.last_error
        assert calls == [first]  # the second waits behind the first: order is kept

        # make each retry due now instead of waiting for the backoff
        flaky_rows = OutboxMessage.objects.filter(handler="test-flaky")
        _dispatch_until("test-flaky", lambda: not flaky_rows.filter(status="pending").exists())
        assert calls == [first, first, first, second]
        assert set(OutboxMessage.objects.filter(handler="test-flaky").values_list("status", flat=True)) == {"delivered"}
    finally:
        outbox.unregister_handler("test-flaky")


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.django_db(transaction=True)
@override_settings(OUTBOX_MAX_ATTEMPTS=2)
def test_a_message_that_keeps_failing_goes_dead_and_unblocks_the_rest():
    received = []

    def picky(event):
        if event.payload["n"] == 0:
            raise ValueError("poison")
        received.append(event.payload["n"])

    outbox.register_handler("test-picky", picky, topics=["order.*"])
    try:
        _record("order.accepted", 0)
        _record("order.accepted", 1)
        rows = OutboxMessage.objects.filter(handler="test-picky")
        _dispatch_until("test-picky", lambda: not rows.filter(status="pending").exists())
        statuses = dict(rows.values_list("event__payload__n", "status"))
        assert statuses == {0: "dead", 1: "delivered"}
        assert received == [1]
    finally:
        outbox.unregister_handler("test-picky")


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.django_db(transaction=True)
def test_handler_database_writes_roll_back_with_its_failure(django_user_model):
    def writes_then_fails(event):
        django_user_model.objects.create(username=f"side-effect-{event.id}")
        raise RuntimeError("after writing")

    outbox.register_handler("test-writer", writes_then_fails, topics=["order.*"])
    try:
        _record("order.accepted", 0)
        outbox.outbox_dispatch()
        assert not django_user_model.objects.filter(username__startswith="side-effect-").exists()
    finally:
        outbox.unregister_handler("test-writer")


@pytest.mark.celery
@pytest.mark.parametrize("arm", [True, False], ids=["armed", "disarmed"])
def test_an_order_for_the_executor_is_published_from_accepted_on(celery_worker, recorder, markets, trader, arm):
    """Placing a MARKET order publishes no task of its own and leaves nothing to do after its
    commit: its INSERT notifies the worker's outbox listener, which kicks the dispatcher
    (debounced); the dispatcher hands the order to the executor, whose claim writes the order's
    next event (submitting, or rejected when the venue is disarmed), and `order.accepted` goes
    out first."""
    from decimal import Decimal

    from django.db import connection

    from config import metrics
    from trading.models import Event
    from trading.services.control import control_arm
    from trading.services.orders import order_place

    if arm:
        control_arm(component="executor:paper", actor="test", reason="tests trade on paper")
    with transaction.atomic():
        order = order_place(user=trader, asset="BTC-USD", side="long", collateral=Decimal(100), leverage=Decimal(10))
        hooks = [hook for _, hook, _ in connection.run_on_commit if not isinstance(hook, metrics.AfterCommitCount)]
    assert hooks == []  # no kick after commit (besides the metrics' counts): the commit notifies

    def published():
        topics = dict(Event.objects.filter(id__in=recorder["a"]).values_list("id", "topic"))
        return [topics[i] for i in recorder["a"] if i in topics]

    after = "order.submitting" if arm else "order.rejected"
    wait_for(lambda: after in published())
    assert published()[:2] == ["order.accepted", after]
    assert Event.objects.filter(id__in=recorder["a"], correlation_id=order.correlation_id).count() >= 2


@pytest.mark.ledger_drift  # made-up order events (no rows): a test of the event transport
@pytest.mark.django_db(transaction=True)
@override_settings(OUTBOX_MAX_ATTEMPTS=2)
def test_a_batch_handler_takes_the_ready_messages_at_once_and_a_failing_batch_goes_one_by_one(django_user_model):
    """A handler with a `batch` gets every ready message of a round in one call; when the batch
    raises, its writes roll back and the messages go through `fn` one at a time (a poison event
    goes dead alone, the others are delivered once, in order)."""
    batches, singles = [], []

    def one(event):
        if event.payload["n"] == 2:
            raise ValueError("poison")
        singles.append(event.payload["n"])

    def many(events):
        django_user_model.objects.create(username=f"batch-{len(batches)}")
        batches.append([e.payload["n"] for e in events])
        if any(e.payload["n"] == 2 for e in events):
            raise ValueError("poison in the batch")

    outbox.register_handler("test-batch", one, topics=["order.*"], batch=many)
    try:
        with transaction.atomic():  # both committed at once: one round finds both ready
            for n in (0, 1):
                _record("order.accepted", n)
        rows = OutboxMessage.objects.filter(handler="test-batch")
        _dispatch_until("test-batch", lambda: not rows.filter(status="pending").exists())
        assert batches == [[0, 1]] and singles == []  # both in one call, `fn` not used
        with transaction.atomic():
            for n in (2, 3):
                _record("order.accepted", n)
        _dispatch_until("test-batch", lambda: not rows.filter(status="pending").exists())
        assert batches[1] == [2, 3]  # raised: rolled back, then one at a time
        assert singles == [3]
        assert dict(rows.values_list("event__payload__n", "status")) == {
            0: "delivered",
            1: "delivered",
            2: "dead",
            3: "delivered",
        }
        assert list(
            django_user_model.objects.filter(username__startswith="batch-").values_list("username", flat=True)
        ) == ["batch-0"]  # the failed batch's write was rolled back
    finally:
        outbox.unregister_handler("test-batch")


def test_a_hot_loop_kicks_the_dispatcher_from_one_thread_not_once_per_commit(transactional_db):
    """`kick_soon_after_commit` (the NEAR Intents solver's): the first commit's kick goes at once,
    the commits made while the kicker waits are covered by one more kick, from the kicker thread.
    Each commit here clears the queued-dispatch mark (as a dispatch starting would), so per-commit
    kicks would publish one task per commit."""
    from config.celery import app
    from tests.conftest import tasks_published

    app.control.purge()
    try:
        with tasks_published("trading.tasks.outbox_dispatch_task") as published:
            for _ in range(20):
                before = len(published)
                with transaction.atomic():
                    outbox.kick_soon_after_commit()
                    outbox.kick_soon_after_commit()  # once per transaction
                outbox.kick_mark_clear()
            # the last commit is covered: a kick follows it
            wait_for(lambda: len(published) > before, what="a kick after the last commit")
        assert 1 <= len(published) < 20
        assert {thread.name for thread in published} == {"outbox-kicker"}
    finally:
        app.control.purge()
        outbox.kick_mark_clear()
