"""The channel layer: channels-redis with a connection pool that waits instead of failing, and
that comes back by itself after Redis went away.

redis-py's asyncio pool raises `MaxConnectionsError` once `max_connections` (default 100)
commands are in flight at once — which a burst of websocket connects (every client
reconnecting after a deploy joins its groups at the same moment) reaches easily, crashing
those consumers. A `BlockingConnectionPool` makes the extra commands wait for a free
connection instead (up to `pool_timeout` seconds).

redis-py 8 also gives every connection a 5 s socket timeout by default, the same 5 s that
channels-redis blocks in BZPOPMIN waiting for a message: a consumer that receives nothing for
5 s then dies with "Timeout reading from Redis". The connections here have no socket timeout
(see `create_pool`: with one, a cancelled receive could outlive its consumer); TCP keepalive
finds a Redis that went away without closing them.

Redis going away (restart, failover, outage):
- `receive` waits and tries again (0.5 s, doubling to 5 s) instead of raising into the
  consumer, which killed the websocket connection or the price hub's receiver.
- Group memberships live in Redis only, and a restarted Redis has none: the price hub and
  every `/ws` / `/stream` connection would stay subscribed in name and receive nothing.
  The layer remembers the memberships made through this process (`group_add` /
  `group_discard`), and a watcher per event loop checks every `REALTIME_LAYER_CHECK_SECONDS`
  that its own sentinel membership still exists; when it is gone, it adds them all again.
- `memberships_intact()` says whether that holds right now (`/ready` is 503 until it does).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref

import redis
from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from django.conf import settings
from redis.asyncio import BlockingConnectionPool

from config.cache import REDIS_ERRORS

logger = logging.getLogger("tradedesk.realtime")

# idle 10 s, then a probe every 5 s, given up after 3 unanswered (Linux's names; where a
# platform lacks one, it keeps its default)
_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}

WATCH_GROUP = "realtime.watch"  # one sentinel member per process and event loop; nothing is sent to it
RECEIVE_RETRY_MAX = 5.0

_layers: weakref.WeakSet = weakref.WeakSet()


class LayerWatch:
    """Per event loop: keeps this process's group memberships in Redis."""

    def __init__(self, layer: RedisChannelLayer):
        self.layer = layer
        self.sentinel: str | None = None
        self.ok: bool | None = None  # None: not checked yet
        self.rejoin_pending = False  # a group_add failed: add everything again once Redis answers
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        layer = self.layer
        self.sentinel = await layer.new_channel("watch")
        while True:
            try:
                if self.ok is None and not self.rejoin_pending:
                    await _RedisChannelLayer.group_add(layer, WATCH_GROUP, self.sentinel)
                elif self.rejoin_pending or not await layer.is_member(WATCH_GROUP, self.sentinel):
                    self.rejoin_pending = False  # (a group_add failing meanwhile sets it again)
                    try:
                        count = await layer.rejoin()
                        await _RedisChannelLayer.group_add(layer, WATCH_GROUP, self.sentinel)
                    except BaseException:
                        self.rejoin_pending = True
                        raise
                    logger.warning("channel layer lost its group memberships (Redis restarted?); rejoined %d", count)
                if self.ok is False:
                    logger.info("channel layer reachable again")
                self.ok = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.ok is not False:
                    logger.warning("channel layer unreachable; will rejoin its groups when it is back: %s", exc)
                self.ok = False
            await asyncio.sleep(settings.REALTIME_LAYER_CHECK_SECONDS)


class RedisChannelLayer(_RedisChannelLayer):
    def __init__(self, *args, max_connections: int = 100, pool_timeout: float = 20.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.memberships: dict[str, set[str]] = {}  # channel -> groups, joined through this process
        self._watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> LayerWatch
        _layers.add(self)

    def create_pool(self, index):
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # sentinel or keyword hosts: channels-redis's own pool
            return super().create_pool(index)
        # No socket timeout: with one, redis-py sends every command through `asyncio.wait_for`,
        # which on Python 3.11 swallows a cancellation that lands as the send completes; a
        # consumer's receive, cancelled as its connection closed, then went on to block in
        # BZPOPMIN for good (a task and a Redis connection left behind). Reads still end: the
        # blocking pop returns after `brpop_timeout`; a Redis that vanished without closing the
        # connection is found by TCP keepalive (about 25 s) instead.
        host.setdefault("socket_timeout", None)
        host.setdefault("socket_connect_timeout", 5)
        if not address.startswith("unix:"):  # TCP only: unix-socket connections take no keepalive
            host.setdefault("socket_keepalive", True)
            host.setdefault("socket_keepalive_options", _KEEPALIVE)
        return BlockingConnectionPool.from_url(
            address, max_connections=self.max_connections, timeout=self.pool_timeout, **host
        )

    # -- surviving a Redis restart ---------------------------------------------------------------

    async def receive(self, channel):
        delay = 0.5
        while True:
            try:
                return await super().receive(channel)
            except REDIS_ERRORS + (OSError,):
                logger.debug("channel layer receive failed; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECEIVE_RETRY_MAX)

    async def group_add(self, group, channel):
        self.memberships.setdefault(channel, set()).add(group)
        watch = self._watch()
        try:
            await super().group_add(group, channel)
        except REDIS_ERRORS + (OSError,):
            # Redis away: the watcher adds it (with all the others) once Redis answers again,
            # instead of the error killing the connection that asked
            watch.rejoin_pending = True
            logger.debug("group_add %s deferred until Redis answers", group, exc_info=True)

    async def group_discard(self, group, channel):
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        try:
            await super().group_discard(group, channel)
        except REDIS_ERRORS + (OSError,):  # (a member left behind expires with the group)
            logger.debug("group_discard %s failed: Redis away", group, exc_info=True)

    def _watch(self) -> LayerWatch:
        loop = asyncio.get_running_loop()
        watch = self._watches.get(loop)
        if watch is None or watch.task is None or watch.task.done():
            watch = self._watches[loop] = LayerWatch(self)
            watch.task = loop.create_task(watch.run())
        return watch

    async def is_member(self, group: str, channel: str) -> bool:
        connection = self.connection(self.consistent_hash(group))
        return await connection.zscore(self._group_key(group), channel) is not None

    async def rejoin(self) -> int:
        """Add every membership made through this process again; how many."""
        count = 0
        for channel, groups in list(self.memberships.items()):
            for group in list(groups):
                await super().group_add(group, channel)
                count += 1
        return count

    def memberships_intact(self) -> tuple[bool, str]:
        """(True, "") when every watcher of this process last found Redis reachable and its
        sentinel membership is in Redis now (checked here, synchronously, with a client of
        its own: this runs outside the layer's event loops)."""
        watches = [w for w in list(self._watches.values()) if w.sentinel is not None and w.ok is not None]
        if not watches:
            return True, ""
        if not all(w.ok for w in watches):
            return False, "channel layer unreachable"
        if any(w.rejoin_pending for w in watches):
            return False, "group memberships not re-established yet"
        address = self.hosts[self.consistent_hash(WATCH_GROUP)].get("address")
        if address is None:
            return True, ""
        client = redis.Redis.from_url(address, socket_timeout=1, socket_connect_timeout=1)
        try:
            key = self._group_key(WATCH_GROUP)
            missing = [w for w in watches if client.zscore(key, w.sentinel) is None]
        finally:
            client.close()
        if missing:
            return False, "group memberships not re-established yet"
        return True, ""


def layers_intact() -> tuple[bool, str]:
    """`memberships_intact()` of every channel layer in this process."""
    for layer in list(_layers):
        ok, why = layer.memberships_intact()
        if not ok:
            return ok, why
    return True, ""
