"""`GET /health` (liveness: the process answers) and `GET /ready` (DB, Redis, Celery, and this
process's websocket subscriptions in the channel layer)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def _check(fn) -> dict:
    started = time.monotonic()
    try:
        detail = fn() or {}
        return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), **detail}
    except Exception as exc:  # report, never raise: this page explains what is down
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _database():
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _redis():
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def celery_workers() -> list[str]:
    """The Celery worker that answered a ping first (READY_CELERY_TIMEOUT), or none: [] then."""
    from config.celery import app

    replies = app.control.ping(timeout=settings.READY_CELERY_TIMEOUT, limit=1) or []
    return sorted(name for reply in replies for name in reply)


def _celery():
    workers = celery_workers()
    if not workers:
        raise RuntimeError("no Celery worker answered")
    return {"workers": workers}


def _realtime():
    """The websocket subscriptions of this (web) process are in the channel layer: after a
    Redis restart they are not until the layer has rejoined its groups (a few seconds)."""
    from trading.realtime.layer import layers_intact

    ok, why = layers_intact()
    if not ok:
        raise RuntimeError(why)


logger = logging.getLogger("tradedesk.health")


def health(request):
    return JsonResponse({"status": "ok"})


def ready(request):
    checks = {"database": _check(_database), "redis": _check(_redis)}
    checks["celery"] = _check(_celery) if checks["redis"]["ok"] else {"ok": False, "error": "redis unreachable"}
    checks["realtime"] = _check(_realtime)
    ok = all(c["ok"] for c in checks.values())
    response = JsonResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)
    if not ok:
        # "not ready yet" is this endpoint's answer, not a server error: no ERROR line from
        # django.request (a desk that is starting answers 503 until its worker is up)
        response._has_been_logged = True
        logger.info("not ready: %s", ", ".join(name for name, c in checks.items() if not c["ok"]))
    return response
