"""config/handler.py, driven in-process as an ASGI server would drive it: sync requests run
whole on reused threads; async views wait on the event loop with no thread blocked."""

import asyncio
import json
import sys

import pytest
from django.test import override_settings

from tests.web import urls as web_urls

pytestmark = pytest.mark.usefixtures("_test_urls")


@pytest.fixture
def _test_urls():
    from config.handler import _sync_view

    with override_settings(ROOT_URLCONF="tests.web.urls"):
        _sync_view.cache_clear()
        yield
    _sync_view.cache_clear()


async def _request(app, path: str) -> dict:
    """One GET through `app`; returns {status, headers, body}."""
    received = False
    messages = []

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body}


async def _until(condition, timeout: float = 15) -> None:
    """Wait (on the loop) until `condition()` holds: the requests got where the test looks."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the requests did not get there in time"
        await asyncio.sleep(0.02)


def test_sync_requests_run_whole_on_a_reused_thread():
    from config.handler import ASGIHandler

    app = ASGIHandler()

    async def three():
        return [await _request(app, "/t/counted") for _ in range(3)]

    responses = asyncio.run(three())
    assert [json.loads(r["body"])["this_thread_served"] for r in responses] == [1, 2, 3]
    assert all(r["status"] == 200 and b"x-request-id" in {k.lower() for k in r["headers"]} for r in responses)


def _threads_blocked_on_the_loop() -> int:
    """Threads parked in asgiref's async_to_sync, waiting for the event loop to finish
    something (a sync middleware holding its request's thread while the async view awaits)."""
    return sum(
        any(f.f_code.co_name == "run_until_future" for f in _stack(frame)) for frame in sys._current_frames().values()
    )


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def test_async_views_wait_without_blocking_a_thread_and_sync_requests_go_on_meanwhile():
    from config.handler import ASGIHandler

    app = ASGIHandler()

    async def scenario():
        web_urls.released = asyncio.Event()
        web_urls.entered = 0
        waiting = [asyncio.create_task(_request(app, "/t/waiting")) for _ in range(20)]
        await _until(lambda: web_urls.entered == 20)  # all twenty are inside the view, awaiting
        blocked = _threads_blocked_on_the_loop()
        served = await asyncio.wait_for(_request(app, "/t/counted"), 10)
        web_urls.released.set()
        return blocked, served, await asyncio.wait_for(asyncio.gather(*waiting), 10)

    blocked, served, waited = asyncio.run(scenario())
    assert blocked == 0
    assert served["status"] == 200
    assert [r["status"] for r in waited] == [200] * 20
    assert all(json.loads(r["body"]) == {"waited": True} for r in waited)


def test_a_sync_views_deferred_work_waits_on_the_loop_with_its_thread_given_back(settings):
    from config.handler import ASGIHandler

    settings.WEB_IDLE_THREADS = 64
    app = ASGIHandler()

    async def scenario():
        web_urls.released = asyncio.Event()
        waiting = [asyncio.create_task(_request(app, "/t/deferring")) for _ in range(20)]
        # all twenty placed by their views, their deferred work awaiting, and the threads they
        # borrowed back in the pool
        await _until(lambda: len(app._idle) == 20)
        idle = len(app._idle)
        served = await asyncio.wait_for(_request(app, "/t/counted"), 10)
        web_urls.released.set()
        return idle, served, await asyncio.wait_for(asyncio.gather(*waiting), 10)

    idle, served, waited = asyncio.run(scenario())
    assert idle == 20 and _threads_blocked_on_the_loop() == 0
    assert served["status"] == 200
    # the response is sent once the deferred work has made it: its status, body and length
    assert [r["status"] for r in waited] == [201] * 20
    assert all(r["body"] == b'{"done": true}' for r in waited)
    assert all(r["headers"][b"Content-Length"] == b"14" for r in waited)


def test_a_static_file_and_a_404_go_through_the_sync_chain():
    from config.handler import ASGIHandler

    app = ASGIHandler()

    async def both():
        return await _request(app, "/static/admin/css/base.css"), await _request(app, "/api/v1/no/such/thing")

    static, missing = asyncio.run(both())
    assert static["status"] == 200 and b"body" in static["body"] and len(static["body"]) > 1000
    assert missing["status"] == 404
    assert json.loads(missing["body"])["error"]["code"] == "NOT_FOUND"
