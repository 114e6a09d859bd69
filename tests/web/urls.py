"""URLs for the web handler's tests: the project's, plus a sync view that counts the requests
its thread has served, an async view that waits for the test to release it, and a sync view
whose response's deferred work waits for the same."""

import asyncio
import threading

from django.http import JsonResponse
from django.urls import include, path

_served = threading.local()
released: asyncio.Event | None = None  # set by the test, inside its event loop


def counted(request):
    _served.n = getattr(_served, "n", 0) + 1
    return JsonResponse({"this_thread_served": _served.n})


entered = 0  # async views that have started waiting


async def waiting(request):
    global entered
    entered += 1
    await released.wait()
    return JsonResponse({"waited": True})


def deferring(request):
    """A sync view whose response finishes on the event loop (as a trade open waits)."""
    response = JsonResponse({"placed": True}, status=202)

    async def deferred():
        await released.wait()
        response.status_code = 201
        response.content = b'{"done": true}'
        response["Content-Length"] = str(len(response.content))

    response.deferred = deferred
    return response


urlpatterns = [
    path("t/counted", counted),
    path("t/waiting", waiting),
    path("t/deferring", deferring),
    path("", include("config.urls")),
]

handler404 = "config.errors.handler404"
