"""The channel layer: channels-redis with a connection pool that waits instead of failing.

redis-py's asyncio pool raises `MaxConnectionsError` once `max_connections` (default 100)
commands are in flight at once — which a burst of websocket connects (every client
reconnecting after a deploy joins its groups at the same moment) reaches easily, crashing
those consumers. A `BlockingConnectionPool` makes the extra commands wait for a free
connection instead (up to `pool_timeout` seconds).

redis-py 8 also gives every connection a 5 s socket timeout by default, the same 5 s that
channels-redis blocks in BZPOPMIN waiting for a message: a consumer that receives nothing for
5 s then dies with "Timeout reading from Redis". The socket timeout here is longer than the
blocking pop.
"""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(_RedisChannelLayer):
    def __init__(self, *args, max_connections: int = 100, pool_timeout: float = 20.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout

    def create_pool(self, index):
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # sentinel or keyword hosts: channels-redis's own pool
            return super().create_pool(index)
        host.setdefault("socket_timeout", self.brpop_timeout + 10)
        host.setdefault("socket_connect_timeout", 5)
        if not address.startswith("unix:"):  # TCP only: unix-socket connections take no keepalive
            host.setdefault("socket_keepalive", True)
        return BlockingConnectionPool.from_url(
            address, max_connections=self.max_connections, timeout=self.pool_timeout, **host
        )
