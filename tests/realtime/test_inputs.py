"""Client messages on `/ws` and `/stream` within the input bounds: a message over
REALTIME_MAX_MESSAGE_SIZE closes with 1009, a deeply nested one (the frame that crashed the
web process) or one with control characters is an `error` and the session goes on."""

import pytest

from tests.conftest import wait_for
from tests.realtime.conftest import close_code, make_token, recv, send, ws_connect

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("path", ["/ws", "/stream"])
def test_deep_nesting_and_control_characters_are_errors_and_the_session_goes_on(ws_server, make_user, path):
    user = make_user()
    with ws_connect(ws_server, path, token=make_token(user), max_size=None) as ws:
        send(ws, "[" * 5000 + "]" * 5000)
        error = recv(ws)
        assert error["type"] == "error" and "bad_json" in (error.get("code"), error.get("data", {}).get("code"))
        send(ws, '{"type": "subscribe", "channel": "prices", "data": {"pairs": ["BTC\\u0000USD"]}}')
        error = recv(ws)
        assert "invalid_characters" in (error.get("code"), error.get("data", {}).get("code"))
        send(ws, {"type": "ping"})
        assert recv(ws)["type"] == "pong"


@pytest.mark.parametrize("path", ["/ws", "/stream"])
def test_a_message_over_the_size_limit_closes_with_1009(ws_server, make_user, settings, path):
    user = make_user()
    with ws_connect(ws_server, path, token=make_token(user), max_size=None) as ws:
        send(ws, DEEP)  # 200 KB, over the 64 KB limit
        assert close_code(ws) == 1009
    with ws_connect(ws_server, path, token=make_token(user)) as ws:  # the server is fine
        send(ws, {"type": "ping"})
        assert recv(ws)["type"] == "pong"


def test_connections_closed_for_oversized_messages_leave_no_task_behind(ws_server, make_user):
    """Every connection's task ends with it. A consumer's channel-layer receive, cancelled as the
    connection closed, could swallow the cancellation (Python 3.11's `asyncio.wait_for`, which
    redis-py wrapped each command's send in while a socket timeout was set) and wait on Redis
    for good: about one close in two, each leaving a task and a Redis connection behind."""
    user = make_user()
    for _ in range(12):
        with ws_connect(ws_server, "/ws", token=make_token(user), max_size=None) as ws:
            send(ws, DEEP)
            assert close_code(ws) == 1009
    wait_for(lambda: not ws_server.server.server_state.tasks, timeout=10, what="every connection's task ended")
