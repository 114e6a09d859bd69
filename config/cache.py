"""Django's Redis cache with one client per process.

Django builds a cache object per thread, and under ASGI every request runs in a thread (and
context) of its own: each request got a new RedisCacheClient, so a new connection pool and a new
Redis connection, and every command built a new `redis.Redis`. Here the cache objects of a
process share one RedisCacheClient per configuration, with one pool per server (redis-py pools
are thread-safe and start afresh in a forked child) and one `redis.Redis` per pool."""

from __future__ import annotations

import threading

import redis
from django.core.cache.backends import redis as django_redis
from django.utils.functional import cached_property

# Redis being unreachable (down, restarting, loading its data): a temporary state, not a bug.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_lock = threading.Lock()
_clients: dict[tuple, SharedRedisCacheClient] = {}


class SharedRedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._redis_by_pool: dict[int, object] = {}

    def _get_connection_pool(self, write):
        index = self._get_connection_pool_index(write)
        pool = self._pools.get(index)
        if pool is None:
            with _lock:
                pool = self._pools.get(index)
                if pool is None:
                    pool = self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
        return pool

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._redis_by_pool.get(id(pool))
        if client is None:
            client = self._redis_by_pool.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(django_redis.RedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.get(key) or _clients.setdefault(
                    key, SharedRedisCacheClient(self._servers, **self._options)
                )
        return client


def cache_redis():
    """The `redis.Redis` client behind the default Django cache (for commands the cache API
    lacks: SET NX PX, pipelines, SCAN), or None when the cache is not Redis (a test's local
    memory cache)."""
    from django.core.cache import cache

    backend = getattr(cache, "_cache", None)
    return backend.get_client(write=True) if hasattr(backend, "get_client") else None


def cache_decode(raw):
    """A value read from Redis directly (a script's reply) as the default cache would return it:
    Django's Redis serializer (integers as they are, the rest pickled); None stays None."""
    from django.core.cache import cache

    return None if raw is None else cache._cache._serializer.loads(raw)
