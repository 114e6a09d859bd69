"""The one lookup of runtime configuration: database → environment → code default.

    from configuration.runtime import config_value
    timeout = config_value("OSTIUM_READ_TIMEOUT")

The database part is an in-process snapshot of the active rows (secrets decrypted, in memory
only). Every change bumps a version counter in Redis after it commits; a reader checks the
counter at most every `CHECK_SECONDS` (so a running web process, worker, Beat or feeds process
sees a change within about a second, without restart) and reloads the snapshot when it moved.
The snapshot is also reloaded after `MAX_AGE_SECONDS` whatever the counter says, and kept as it
is while Redis or PostgreSQL is unreachable (the last known configuration stays in force).

The environment / code-default part is read at each call from `django.conf.settings`, so the
environment's kill switches (`*_ENABLED=false`) keep winning: see `provider_enabled`."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from configuration.registry import APP_KEYS, KEYS, PROVIDERS, Key, from_text

logger = logging.getLogger("tradedesk.configuration")

CHECK_SECONDS = 0.5
MAX_AGE_SECONDS = 30.0
VERSION_KEY = "runtime-config:version"

SOURCE_DATABASE, SOURCE_ENVIRONMENT = "database", "environment"


@dataclass(frozen=True)
class Snapshot:
    counter: Any = None
    loaded_at: float = 0.0
    app: dict[str, Any] = field(default_factory=dict)  # key -> typed value (active rows only)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> field -> value (active)


_lock = threading.Lock()
_snapshot: Snapshot | None = None
_checked_at = 0.0
_dirty = False
_stale_logged = False
_listeners: list[Callable[[], None]] = []
_loader: tuple[int, ThreadPoolExecutor] | None = None  # (pid, executor): a forked child makes its own
_UNLOADED = object()  # the counter of a snapshot that could not be loaded: retry at the next check


def _loader_pool() -> ThreadPoolExecutor:
    global _loader
    if _loader is None or _loader[0] != os.getpid():
        _loader = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="config-load"))
    return _loader[1]


def register_change_listener(fn: Callable[[], None]) -> None:
    """`fn()` runs after a reload that changed the snapshot (drop caches derived from it)."""
    if fn not in _listeners:
        _listeners.append(fn)


def _counter():
    from django.core.cache import cache

    return cache.get(VERSION_KEY)


def counter_bump() -> None:
    """Tell every process the configuration changed (after commit)."""
    from django.core.cache import cache

    from config.cache import REDIS_ERRORS

    try:
        if cache.add(VERSION_KEY, 1, timeout=None):
            return
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.add(VERSION_KEY, 1, timeout=None)
    except REDIS_ERRORS as exc:
        logger.warning("runtime configuration: the change counter could not be bumped: %s", exc)


def mark_dirty() -> None:
    """Reload this process's snapshot at the next read."""
    global _dirty
    _dirty = True


def cache_clear() -> None:
    """Forget the snapshot (tests: the database was flushed under it)."""
    global _snapshot, _checked_at, _dirty
    with _lock:
        _snapshot, _checked_at, _dirty = None, 0.0, False


def _load(counter) -> Snapshot:
    from django.db import transaction

    with transaction.atomic():  # a savepoint inside the caller's transaction: a failure here breaks nothing
        return _load_rows(counter)


def _load_rows(counter) -> Snapshot:
    from config.crypto import decrypt
    from configuration.models import AppConfiguration, ProviderConfiguration

    app: dict[str, Any] = {}
    for row in AppConfiguration.objects.filter(is_active=True, version__gt=0):
        key = APP_KEYS.get(row.config_key)
        if key is None:
            continue
        try:
            text = decrypt(row.config_value) if row.is_encrypted else row.config_value
            app[key.name] = key.clean(from_text(key.type, text))
        except Exception as exc:  # a row no longer valid for its key: the fallback applies
            logger.warning("runtime configuration: %s ignored: %s", row.config_key, type(exc).__name__)
    providers: dict[str, dict[str, Any]] = {}
    for row in ProviderConfiguration.objects.filter(is_active=True):
        spec = PROVIDERS.get(row.provider_name)
        if spec is None:
            continue
        values = {}
        for name, value in (row.config_data or {}).items():
            if name in spec.fields:
                values[name] = value
        for name, token in (row.secret_data or {}).items():
            if name in spec.fields:
                try:
                    values[name] = decrypt(token)
                except Exception:
                    logger.warning("runtime configuration: %s.%s cannot be decrypted", row.provider_name, name)
        providers[row.provider_name] = values
    return Snapshot(counter=counter, loaded_at=time.monotonic(), app=app, providers=providers)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _current() -> Snapshot:
    global _snapshot, _checked_at, _dirty, _stale_logged
    now = time.monotonic()
    snap = _snapshot
    if snap is not None and not _dirty and now - _checked_at < CHECK_SECONDS:
        return snap
    with _lock:
        snap = _snapshot
        now = time.monotonic()
        if snap is not None and not _dirty and now - _checked_at < CHECK_SECONDS:
            return snap
        _checked_at = now
        try:
            counter = _counter()
            if snap is not None and not _dirty and counter == snap.counter and now - snap.loaded_at < MAX_AGE_SECONDS:
                return snap
            _dirty = False
            # the ORM refuses to run on an event loop's thread: load on a thread of our own
            new = _loader_pool().submit(_load, counter).result(timeout=10) if _in_event_loop() else _load(counter)
        except Exception as exc:  # Redis or PostgreSQL unreachable: keep what we have
            if snap is None or snap.counter is _UNLOADED:
                if snap is None:
                    logger.warning("runtime configuration unavailable, environment in force: %s", type(exc).__name__)
                _snapshot = Snapshot(counter=_UNLOADED, loaded_at=now)
                return _snapshot
            if not _stale_logged:  # once per outage: the reader checks every CHECK_SECONDS
                logger.warning("runtime configuration not reloaded, the last one stays: %s", type(exc).__name__)
                _stale_logged = True
            return snap
        changed = snap is None or (new.app, new.providers) != (snap.app, snap.providers)
        _snapshot, _stale_logged = new, False
    if changed and snap is not None and snap.counter is not _UNLOADED:
        for fn in list(_listeners):
            try:
                fn()
            except Exception:
                logger.exception("runtime configuration listener failed")
    return new


def config_refresh() -> None:
    """Pick up a change now if there is one (at most one Redis read per `CHECK_SECONDS`): for
    readers that cache values derived from the configuration, before they use their cache (the
    change listeners run on the reload)."""
    _current()


def _lookup(key: Key) -> tuple[Any, str]:
    snap = _current()
    if key.provider:
        values = snap.providers.get(key.provider) or {}
        if key.field in values:
            return values[key.field], SOURCE_DATABASE
    elif key.name in snap.app:
        return snap.app[key.name], SOURCE_DATABASE
    return key.default(), SOURCE_ENVIRONMENT


def config_value(name: str) -> Any:
    """The value of the runtime key `name` in force in this process (KeyError: not a runtime key)."""
    return _lookup(KEYS[name])[0]


def config_source(name: str) -> tuple[Any, str]:
    """(value, "database" | "environment") of the runtime key `name`; "environment" covers the
    code default."""
    return _lookup(KEYS[name])


def provider_value(provider: str, field_name: str) -> Any:
    return _lookup(PROVIDERS[provider].fields[field_name])[0]


def provider_enabled(provider: str) -> bool:
    """Whether a provider may be used: the environment's `*_ENABLED=false` always wins (a kill
    switch an operator cannot override from the admin); otherwise the database, then true."""
    key = PROVIDERS[provider].fields.get("enabled")
    if key is None:
        return True
    if not key.default():
        return False
    return bool(_lookup(key)[0])
