"""Coalesced kicks: a Celery task that drains rows (the outbox dispatcher, the webhook delivery
run) is enqueued only when none is queued or draining; a kick meanwhile is absorbed by the one
there is.

Two Redis keys per kind:
- a counter of kicks: a kick increments it, and only the kick that takes it from nothing to 1
  enqueues the task (the counter expires `ttl` seconds after that first kick unless a drainer
  refreshes it, so a queued task that was lost stands for later kicks no longer than that);
- a drainer lock: the task that takes it (`acquire`) is the drainer. It reads the counter,
  drains, then asks `finish`: if the counter is still what it read (no kick since), the counter
  and the lock are deleted in one step (a Lua script) and the task ends; otherwise it drains
  again (the kicks' rows were committed before they kicked). A task that finds the lock taken
  (a Beat sweep's, a retry's) does its work without touching the counter, so it never swallows
  kicks meant for the drainer. The drainer refreshes both keys while it works (`touch`); if it
  dies, the lock expires after `lock_ttl` and kicks enqueue tasks again after `ttl`.

So a burst of commits costs one task that stays alive while they keep coming, instead of one
task per commit queued behind the others. If the cache is not Redis (a test's local memory
cache), every kick enqueues and every task drains. If Redis cannot be reached, a kick enqueues
nothing (the broker is that Redis: a publish would only block) and the Beat sweeps publish.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("tradedesk.kicks")

_FINISH = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return false
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return v
"""
# A kick: count it, and give the counter its expiry when this kick started it (one round trip).
_KICK = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
# Take the drainer lock; when taken, start the counter if unkicked (Beat) and refresh it, and
# return it (nil when the lock was not taken: `false`). One round trip.
_ACQUIRE = """
if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[2]) then return false end
redis.call('SET', KEYS[1], 1, 'NX')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1])}
"""


class CoalescedKick:
    def __init__(self, name: str, ttl: int, lock_ttl: int = 30):
        self.name, self.ttl, self.lock_ttl = name, ttl, lock_ttl
        self._scripts: dict[str, object] = {}

    def _run(self, client, source: str, keys: list, args: list):
        """A Lua script (sent once, then called by its hash: EVALSHA)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script(keys=keys, args=args, client=client)

    def _redis(self):
        from django.core.cache import cache

        from config.cache import cache_redis

        return cache_redis(), cache.make_key(self.name), cache.make_key(f"{self.name}:drainer")

    def kick(self) -> bool:
        """Count a kick; True when the caller should enqueue the task (none queued or draining)."""
        try:
            client, key, _ = self._redis()
            if client is None:
                return True
            return self._run(client, _KICK, [key], [self.ttl]) == 1
        except Exception:  # Redis down: so is the broker (a publish would only block); Beat sweeps
            logger.warning("could not count a kick of %s; the Beat sweep will", self.name, exc_info=True)
            return False

    def acquire(self) -> tuple[bool, bytes | None]:
        """(drainer, token): whether this task is the drainer (no other one is), and the kicks it
        answers so far (a token for `finish`)."""
        try:
            client, key, lock = self._redis()
            if client is None:
                return True, None
            taken = self._run(client, _ACQUIRE, [key, lock], [self.ttl, self.lock_ttl])
            if not taken:
                return False, None
            return True, taken[0]  # (started unkicked, by Beat: later kicks count on it)
        except Exception:
            logger.warning("could not take the drainer lock of %s", self.name, exc_info=True)
            return True, None

    def touch(self) -> None:
        """The drainer is alive: keep its lock and the counter it answers."""
        try:
            client, key, lock = self._redis()
            if client is None:
                return
            pipe = client.pipeline(transaction=False)
            pipe.expire(key, self.ttl)
            pipe.expire(lock, self.lock_ttl)
            pipe.execute()
        except Exception:
            logger.warning("could not refresh the drainer lock of %s", self.name, exc_info=True)

    def finish(self, token: bytes | None) -> tuple[bool, bytes | None]:
        """(done, token): done when no kick came since `token` (the counter and the lock are gone
        then: the next kick enqueues a task, which drains); else drain again and finish with the
        new token."""
        try:
            client, key, lock = self._redis()
            if client is None:
                return True, None
            value = self._run(client, _FINISH, [key, lock], [token or b"", self.ttl, self.lock_ttl])
            return (value is None, value)
        except Exception:  # the keys expire on their own; the Beat sweeps cover the gap
            logger.warning("could not finish the kicks of %s", self.name, exc_info=True)
            return True, None

    def release(self) -> None:
        """The drainer hands over to a follow-up task it enqueued (the counter stays: it stands
        for that task)."""
        self._delete(lock_only=True)

    def clear(self) -> None:
        """Forget the counter and the lock: the queue was purged (the task they stood for is gone)."""
        self._delete(lock_only=False)

    def _delete(self, *, lock_only: bool) -> None:
        try:
            client, key, lock = self._redis()
            if client is None:
                return
            client.delete(lock) if lock_only else client.delete(key, lock)
        except Exception:
            logger.warning("could not clear the kicks of %s", self.name, exc_info=True)
