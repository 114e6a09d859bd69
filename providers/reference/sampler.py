"""The feeds process's sampler: stores price samples as prices change (`samples_update`).

It runs at most every MIN_INTERVAL seconds, woken by new quotes and at least once a second (a pair
whose source goes quiet changes outcome without any new quote). The database work runs off the
event loop, so the streams are never held up by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from providers.reference import store

logger = logging.getLogger("tradedesk.reference.sampler")
MIN_INTERVAL = 0.2  # seconds between two runs
MAX_INTERVAL = 1.0  # a run at least this often


def _update() -> int:
    from providers.reference.service import samples_update

    close_old_connections()
    return len(samples_update())


class ReferenceSampler:
    name = "reference-sampler"

    def __init__(self):
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _on_quotes(self, quotes) -> None:
        if self._wake is None or self._wake.is_set():
            return
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        store.quote_listener_register(self._on_quotes)
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=MAX_INTERVAL)
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    await sync_to_async(_update, thread_sensitive=True)()
                except Exception:
                    logger.exception("reference sampling failed")
                await asyncio.sleep(MIN_INTERVAL)
        finally:
            store.quote_listener_unregister(self._on_quotes)
