"""Rate limits shared by every web process (counters live in Redis, the Django cache's server).

Attach a scope to a view and the limit applies per user AND per client IP:

    from trading.throttling import ScopedUserAndIpThrottle

    class TradeCreate(APIView):
        throttle_classes = [ScopedUserAndIpThrottle]
        throttle_scope = "trade"          # rates: settings.THROTTLE_RATES / env THROTTLE_RATES

A view may instead define `get_throttle_scope(request) -> str | None` (e.g. `prices` for GET and
`trade` for POST). A view without a scope is not limited by this class. Over the limit the API
answers 429 in the error envelope with `Retry-After`.

Counters are fixed windows (`<scope>:<who>:<window number>`, INCR is atomic in Redis), so
concurrent requests from many processes are counted exactly; a client can burst up to twice the
rate across a window boundary. A request's buckets (its IP and its user) are counted in one Redis
round trip (a Lua script: per key SET NX EX, then INCR). A view may name cache keys it reads next
(`throttle_prefetch(request) -> list[str]`): the script reads them too, and the values wait on the
request (`request.cache_prefetched`), saving the view its own round trip. The client IP is REMOTE_ADDR unless
`API_NUM_PROXIES` says how many trusted proxies append to X-Forwarded-For."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.cache import REDIS_ERRORS, cache_decode, cache_redis

KEY_NAMESPACE = "throttle"
logger = logging.getLogger("tradedesk.throttling")


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'10/min' → (10, 60). Periods: s, sec, second, m, min, minute, h, hour, d, day; an
    optional multiplier: '100/5min'."""
    if not rate:
        return None
    num, period = rate.split("/")
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period[len(digits) :].strip().lower()[:1]
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return int(num), seconds * (int(digits) if digits else 1)


def rate_for(scope: str) -> tuple[int, int] | None:
    return parse_rate(api_settings.DEFAULT_THROTTLE_RATES.get(scope))


def _hit_with_cache(key: str, duration: int) -> int:
    for _ in range(3):
        cache.add(key, 0, timeout=duration + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            continue
    return 1


# Per bucket key (the first ARGV[2] keys): start the counter at 0 for this window (expiring with
# it) unless it exists, then count. One script, so one round trip for all of a request's
# buckets, and atomic, so that a key cannot expire between the two. The keys after the buckets
# are only read (GET): cache entries the request needs next (a trade's price), in the same
# round trip.
_HIT_SCRIPT = """
local buckets = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  if i <= buckets then
    redis.call('SET', key, 0, 'EX', ARGV[1], 'NX')
    out[i] = redis.call('INCR', key)
  else
    out[i] = redis.call('GET', key)
  end
end
return out
"""
# sent as EVALSHA; loaded again when Redis forgot it
_HIT_SHA = hashlib.sha1(_HIT_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_own = threading.local()  # this thread's connection for the script (see _evalsha)


def _evalsha(client, keys: list[str], args: list) -> list:
    """The script's reply, sent on a connection this thread keeps for it (taken from the client's
    pool once): a command through the pool checks a connection out and back in, with its locks
    and checks, which cost the web process as much again as the round trip itself (about 50 µs
    of a trade's). One request at a time runs on a thread, so the connection is never shared;
    it closes when its thread ends (an idle web thread shut down). A broken connection (Redis
    restarted) is dropped and the command sent once more on a new one; a Redis that forgot the
    script (restart, SCRIPT FLUSH) is given it again."""
    pool = client.connection_pool
    conn = getattr(_own, "conn", None)
    if conn is None or _own.pool is not pool or _own.pid != os.getpid():
        # built like the pool's own, but outside its count: the pool's `make_connection` counts
        # every connection against its cap for good, and threads that come and go (a server
        # with a thread per request) would use the cap up; this one closes with its thread
        conn = _own.conn = pool.connection_class(**pool.connection_kwargs)
        _own.pool, _own.pid = pool, os.getpid()
    # A restarted Redis needs both: the first send finds the connection broken, the second finds
    # the script forgotten. Each is put right once; a second time of either is raised.
    reconnected = loaded = False
    while True:
        try:
            conn.send_command("EVALSHA", _HIT_SHA, len(keys), *keys, *args)
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            if loaded:
                raise
            loaded = True
            conn.send_command("SCRIPT", "LOAD", _HIT_SCRIPT)  # on this connection: the pool's may be broken too
            conn.read_response()
        except redis.exceptions.ResponseError:
            raise  # Redis answered (the script failed): the connection is in step
        except REDIS_ERRORS:
            conn.disconnect()
            if reconnected:
                raise
            reconnected = True
        except BaseException:
            conn.disconnect()  # a reply may be left unread on it: never reuse it
            raise


def _hits(keys: list[str], duration: int, reads: list[str] = ()) -> tuple[list[int], dict]:
    """Count one request in each bucket; the counts so far in their windows, and the cache
    values of `reads` (cache keys; None when absent)."""
    client = cache_redis()
    if client is None:
        return [_hit_with_cache(key, duration) for key in keys], {key: cache.get(key) for key in reads}
    full_keys = [cache.make_key(key) for key in (*keys, *reads)]  # ours: nothing to validate
    out = _evalsha(client, full_keys, [duration + 1, len(keys)])
    return [int(count) for count in out[: len(keys)]], {
        key: cache_decode(raw) for key, raw in zip(reads, out[len(keys) :], strict=True)
    }


def counter_hits_reading(*, scope: str, whos: list[str], reads: list[str] = ()) -> tuple[float | None, dict]:
    """`counter_hits`, reading the cache values of `reads` in the same round trip: (the seconds
    to wait or None, {cache key: value or None}). No limit for `scope`: nothing counted or read
    ({})."""
    rate = rate_for(scope)
    if rate is None or not whos:
        return None, {}
    num, duration = rate
    now = time.time()
    window = int(now // duration)
    counts, values = _hits([f"{KEY_NAMESPACE}:{scope}:{who}:{window}" for who in whos], duration, list(reads))
    return (max(duration - (now % duration), 1.0) if max(counts) > num else None), values


def counter_hits(*, scope: str, whos: list[str]) -> float | None:
    """Count one event for each of `whos` under `scope` (one Redis round trip for all); the
    seconds to wait when any of them is over the limit, else None."""
    return counter_hits_reading(scope=scope, whos=whos)[0]


def counter_hit(*, scope: str, who: str) -> float | None:
    """Count one event for `who` under `scope`; the seconds to wait when over the limit, else None."""
    return counter_hits(scope=scope, whos=[who])


def counter_wait(*, scope: str, who: str) -> float | None:
    """Without counting: the seconds to wait if `who` is already over the limit, else None."""
    rate = rate_for(scope)
    if rate is None:
        return None
    num, duration = rate
    now = time.time()
    count = cache.get(f"{KEY_NAMESPACE}:{scope}:{who}:{int(now // duration)}") or 0
    return max(duration - (now % duration), 1.0) if count >= num else None


class ScopedUserAndIpThrottle(BaseThrottle):
    """Limit a view's `throttle_scope` per authenticated user and per client IP."""

    def __init__(self):
        self._wait: float | None = None

    @staticmethod
    def scope_for(request, view) -> str | None:
        getter = getattr(view, "get_throttle_scope", None)
        if callable(getter):
            return getter(request)
        return getattr(view, "throttle_scope", None)

    def allow_request(self, request, view):
        scope = self.scope_for(request, view)
        if not scope:
            return True
        whos = [f"ip:{self.get_ident(request)}"]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            whos.append(f"user:{user.pk}")
        reads = self._reads(request, view)
        try:
            self._wait, values = counter_hits_reading(scope=scope, whos=whos, reads=reads)
        except REDIS_ERRORS:
            if request.method not in SAFE_METHODS:
                raise  # a write is refused (503 SERVICE_UNAVAILABLE) when its limit cannot be counted
            # a read is let through uncounted: Redis down must not take down reads that only
            # need the database (GET /orders); they stay limited by whatever else they need
            logger.warning("rate limit %s not counted: Redis unavailable", scope)
            return True
        if reads:
            request.cache_prefetched = values
        return self._wait is None

    @staticmethod
    def _reads(request, view) -> list[str]:
        """The cache keys the view will read next (`throttle_prefetch(request)`), read in the rate
        limit's round trip and left on the request as `cache_prefetched` ({key: value or None})."""
        prefetch = getattr(view, "throttle_prefetch", None)
        return list(prefetch(request)) if callable(prefetch) else []

    def wait(self):
        return self._wait


def _email_who(email: str) -> str:
    return "email:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class LoginFailureLimiter:
    """Failed password logins per email address (scope `login_failures`). Once over the limit
    every login for that email is refused with 429 until the window ends, right password or not,
    so guessing is capped whatever IPs it comes from."""

    scope = "login_failures"

    @classmethod
    def check(cls, email: str) -> None:
        wait = counter_wait(scope=cls.scope, who=_email_who(email))
        if wait is not None:
            raise exceptions.Throttled(wait=wait)

    @classmethod
    def record_failure(cls, email: str) -> None:
        counter_hit(scope=cls.scope, who=_email_who(email))


def throttle_reset() -> int:
    """Delete every throttle counter (tests; an operator clearing a lockout), leaving the rest of
    Redis alone (`cache.clear()` would flush the broker and channel layer sharing the database)."""
    client = cache_redis()
    if client is None:
        cache.clear()
        return 0
    # ours are `throttle:...`, DRF's built-in throttles use `throttle_<scope>_<ident>`
    pattern = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:*:{KEY_NAMESPACE}*"
    keys = list(client.scan_iter(match=pattern, count=500))
    if keys:
        client.delete(*keys)
    return len(keys)
