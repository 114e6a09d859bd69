"""URLs for the web handler's tests: the project's, plus a sync view that counts the requests
its thread has served and an async view that waits for the test to release it."""

import asyncio
import threading

from django.http import JsonResponse
from django.urls import include, path

_served = threading.local()
released: asyncio.Event | None = None  # set by the test, inside its event loop


def counted(request):
    _served.n = getattr(_served, "n", 0) + 1
    return JsonResponse({"this_thread_served": _served.n})


async def waiting(request):
    await released.wait()
    return JsonResponse({"waited": True})


urlpatterns = [
    path("t/counted", counted),
    path("t/waiting", waiting),
    path("", include("config.urls")),
]

handler404 = "config.errors.handler404"
