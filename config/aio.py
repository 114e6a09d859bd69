"""The event loop the solver process (`manage.py near_solver`) and the NEAR relay double run on:
uvloop's (installed with `uvicorn[standard]`, the loop the web server already runs on) when it is
there, else asyncio's. Its transports, callbacks and timers cost less CPU per message than the
pure-Python loop's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def event_loop_new() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """`asyncio.run(coro)` on `event_loop_new()`'s loop."""
    with asyncio.Runner(loop_factory=event_loop_new) as runner:
        return runner.run(coro)
