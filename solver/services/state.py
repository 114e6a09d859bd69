"""The `near_solver` process's live state (connection, counters, last messages, silent pairs,
latency) in Redis, written every housekeeping round; the admin and the staff API read it."""

from __future__ import annotations

import json
import time

from config.cache import cache_redis

KEY = "near_solver:state"


def state_write(state: dict) -> None:
    cache_redis().set(KEY, json.dumps(state, default=str), ex=3600)


def state_read() -> dict:
    raw = cache_redis().get(KEY)
    if not raw:
        return {"running": False}
    state = json.loads(raw)
    age = time.time() - float(state.get("written_at") or 0)
    state["age_s"] = round(age, 3)
    state["running"] = not state.get("stopped") and age < 10
    return state


def state_clear() -> None:
    cache_redis().delete(KEY)
