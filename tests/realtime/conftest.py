"""A real ASGI server (uvicorn serving config.asgi:application on a free port, in a thread)
and real websocket clients (the `websockets` package) for the realtime tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import uvicorn
from django.conf import settings
from django.db import transaction
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from trading.outbox import outbox_dispatch
from trading.services.ledger import event_record

ORIGIN = "http://localhost"


class LiveServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # small, fixed kernel send buffers (accepted sockets inherit them): a client that
        # stops reading pushes back on the server after kilobytes, not megabytes
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            "config.asgi:application",
            lifespan="off",
            log_level="warning",
            ws="websockets-sansio",
            access_log=False,
            ws_ping_interval=None,  # the slow-client tests stop reading on purpose
            # at the session's end, a connection's task that has not ended is cancelled after 2 s
            # instead of being waited for (the join below gives up after 30 s); the production web
            # process has the same limit (Procfile: --timeout-graceful-shutdown 5)
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        # database_sync_to_async ran in asgiref's shared thread: close its connection so the
        # test database can be dropped at the end of the session
        from asgiref.sync import SyncToAsync
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(10)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def make_token(user, *, expires_in: float = 300, kind: str = "access", key: str | None = None, **claims) -> str:
    """A token as the API issues it (`trading.tokens`), with a chosen lifetime/type/key."""
    from trading import tokens

    now = datetime.now(UTC)
    body = {
        "sub": str(user.pk),
        "iat": int(now.timestamp()),
        "exp": now + timedelta(seconds=expires_in),
        "type": kind,
        "jti": tokens.new_jti(),
        "iss": settings.JWT_ISSUER,
        **claims,
    }
    return jwt.encode(body, key or tokens.signing_key(), algorithm=tokens.ALGORITHM)


def ws_connect(server, path="/ws", *, token=None, via="query", cookie=None, origin=ORIGIN, **kwargs):
    uri = server.url(path)
    subprotocols = None
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"} if cookie else {}
    if token is not None and via == "query":
        uri += f"?token={token}"
    elif token is not None and via == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        subprotocols = ["bearer", token]
    return connect(
        uri, origin=origin, subprotocols=subprotocols, additional_headers=headers or None, open_timeout=10, **kwargs
    )


def recv(ws, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, predicate, timeout: float = 10.0) -> dict:
    """Read messages until one satisfies `predicate`; fail if none does within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail("expected message not received")
        message = recv(ws, remaining)
        if predicate(message):
            return message


def close_code(ws, timeout: float = 15.0) -> int:
    """Read until the server closes the connection; return its close code."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
    except TimeoutError:
        pass
    pytest.fail("the server did not close the connection")


def send(ws, message) -> None:
    ws.send(message if isinstance(message, str) else json.dumps(message))


def subscribe(ws, channel, data=None) -> dict:
    send(ws, {"type": "subscribe", "channel": channel, "data": data or {}})
    return recv_until(ws, lambda m: m["type"] in ("subscribed", "error") and m["channel"] == channel)


def record(topic: str, *, user=None, aggregate_type: str = "order", aggregate_id="1", dispatch=True, **payload):
    """Commit one ledger event (about `user`'s object when given) and publish it."""
    if user is not None:
        payload["user_id"] = user.pk
    with transaction.atomic():
        event = event_record(topic=topic, aggregate_type=aggregate_type, aggregate_id=aggregate_id, payload=payload)
    if dispatch:
        outbox_dispatch()
    return event


@pytest.fixture
def make_user(django_user_model):
    counter = iter(range(1, 10_000))

    def make(**fields):
        n = next(counter)
        fields.setdefault("username", f"trader{n}")
        fields.setdefault("email", f"trader{n}@example.com")
        return django_user_model.objects.create_user(password=None, **fields)  # no hashing: fast

    return make
