"""Long-running async clients hosted by the feeds process (`manage.py feeds`).

Each stream is an object with a `name` and `async run(stop: asyncio.Event)` that returns when `stop`
is set. `streams_run()` starts every registered stream as a task on one event loop and keeps it
running: a stream that returns early or raises is logged and started again after a short, growing
delay, without touching the others. Register more with `stream_register(name, "module:Factory")`
(the NEAR Intents relay ingest joins here).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable

logger = logging.getLogger("tradedesk.streams")

_STREAMS: dict[str, str | Callable[[], object]] = {
    "kraken": "providers.kraken.client:KrakenStream",
    "reference-sampler": "providers.reference.sampler:ReferenceSampler",
}
RESTART_MIN, RESTART_MAX = 1.0, 60.0


def stream_register(name: str, factory: str | Callable[[], object]) -> None:
    _STREAMS[name] = factory


def stream_names() -> list[str]:
    return list(_STREAMS)


def stream_build(name: str):
    factory = _STREAMS[name]
    if isinstance(factory, str):
        module, attribute = factory.split(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory()


async def _supervise(name: str, stop: asyncio.Event) -> None:
    delay = RESTART_MIN
    while not stop.is_set():
        try:
            await stream_build(name).run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stream failed", extra={"stream": name, "restart_in": delay})
        else:
            if stop.is_set():
                return
            logger.warning("stream returned before stop", extra={"stream": name, "restart_in": delay})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(RESTART_MAX, delay * 2)


async def streams_run(stop: asyncio.Event, names: list[str] | None = None) -> None:
    """Run the streams `names` (default: all registered) until `stop` is set."""
    names = names or stream_names()
    unknown = set(names) - set(_STREAMS)
    if unknown:
        raise ValueError(f"unknown streams: {', '.join(sorted(unknown))}; known: {', '.join(_STREAMS)}")
    logger.info("feeds starting", extra={"streams": names})
    tasks = [asyncio.create_task(_supervise(name, stop), name=f"stream:{name}") for name in names]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
