"""The Django cache on Redis: one client per process (config/cache.py)."""

import threading

from django.core.cache import caches


def test_cache_objects_of_every_thread_share_one_redis_client():
    seen = []

    def use(n):
        cache = caches["default"]
        cache.set(f"cache-test:{n}", n, timeout=30)
        seen.append((cache, cache._cache, cache._cache.get_client(), cache.get(f"cache-test:{n}")))

    threads = [threading.Thread(target=use, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    use(3)
    assert sorted(value for *_, value in seen) == [0, 1, 2, 3]
    assert len({id(cache) for cache, *_ in seen}) == 4  # Django's own per-thread cache objects
    assert len({id(client) for _, client, _, _ in seen}) == 1  # one client, one pool, one redis.Redis
    assert len({id(redis) for _, _, redis, _ in seen}) == 1
    caches["default"].delete_many([f"cache-test:{n}" for n in range(4)])
