"""Coalesced kicks on the real Redis (config/kicks.py): one task per kind enqueued while none is
queued or draining; the draining task drains again for kicks made meanwhile; a task that finds
another draining never swallows kicks meant for it."""

import uuid

import pytest
from django.core.cache import cache

from config.cache import cache_redis
from config.kicks import CoalescedKick


@pytest.fixture
def kicks():
    k = CoalescedKick(f"kicks-test:{uuid.uuid4().hex}", ttl=30)
    yield k
    k.clear()


def _exists(k: CoalescedKick) -> tuple[bool, bool]:
    redis = cache_redis()
    return bool(redis.exists(cache.make_key(k.name))), bool(redis.exists(cache.make_key(f"{k.name}:drainer")))


def test_only_the_first_kick_enqueues_until_the_mark_is_cleared(kicks):
    assert [kicks.kick() for _ in range(4)] == [True, False, False, False]
    kicks.clear()  # the queue was purged: the task the mark stood for is gone
    assert kicks.kick() is True


def test_the_drainer_ends_when_no_kick_came_and_the_next_kick_enqueues_again(kicks):
    assert kicks.kick() is True  # the queued task
    drainer, token = kicks.acquire()
    assert drainer
    done, _ = kicks.finish(token)
    assert done
    assert _exists(kicks) == (False, False)
    assert kicks.kick() is True


def test_kicks_while_draining_enqueue_nothing_and_make_the_drainer_drain_again(kicks):
    kicks.kick()
    drainer, token = kicks.acquire()
    assert drainer
    assert [kicks.kick() for _ in range(3)] == [False, False, False]  # absorbed by the drainer
    done, token = kicks.finish(token)
    assert not done  # it drains again: their rows were committed before they kicked
    assert _exists(kicks) == (True, True)
    kicks.kick()
    done, token = kicks.finish(token)
    assert not done
    done, _ = kicks.finish(token)
    assert done
    assert kicks.kick() is True


def test_a_drainer_started_without_a_kick_still_answers_later_ones(kicks):
    drainer, token = kicks.acquire()  # e.g. a Beat sweep's task, nothing kicked
    assert drainer
    assert kicks.kick() is False  # a drainer is there: it takes this one
    done, token = kicks.finish(token)
    assert not done
    done, _ = kicks.finish(token)
    assert done


def test_a_second_task_is_not_the_drainer_and_leaves_the_kicks_to_it(kicks):
    kicks.kick()
    assert kicks.acquire()[0] is True
    assert kicks.acquire() == (False, None)  # a spare: works, but never finishes the kicks
    assert _exists(kicks) == (True, True)


def test_a_handover_keeps_the_kicks_for_the_follow_up_task(kicks):
    kicks.kick()
    _, token = kicks.acquire()
    kicks.kick()
    kicks.release()  # the drainer enqueued a follow-up and ends
    assert _exists(kicks) == (True, False)
    assert kicks.kick() is False  # the follow-up stands for it
    drainer, token = kicks.acquire()
    assert drainer
    done, _ = kicks.finish(token)
    assert done


def test_a_lost_drainers_lock_expires(kicks):
    short = CoalescedKick(kicks.name, ttl=30, lock_ttl=1)
    assert short.acquire()[0] is True
    assert cache_redis().ttl(cache.make_key(f"{kicks.name}:drainer")) <= 1


def test_with_redis_unreachable_a_kick_enqueues_nothing_and_a_task_drains(settings, tmp_path):
    """The broker is that Redis too: a publish would only block the committing request; the
    Beat sweeps publish once it is back. A task that runs anyway drains and ends."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"unix://{tmp_path}/gone.sock"}}
    k = CoalescedKick("kicks-test:unreachable", ttl=30)
    assert k.kick() is False
    assert k.acquire() == (True, None)
    assert k.finish(None) == (True, None)
