"""A webhook receiver double for tests, benchmarks and local runs: a threaded `http.server`
on loopback that records every request and answers from a script.

    with Receiver() as rx:
        rx.script(Reply(500), Reply(200))      # the next requests' answers, in order
        ...                                     # (then the default: 200)
        rx.requests[0].headers["webhook-id"]
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (for timeouts and concurrency)
    hold: threading.Event | None = None  # or wait until this is set


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float  # time.time() when it arrived
    peer: tuple = ()  # the client's (address, port): one per connection it kept alive


class Receiver:
    def __init__(self, host: str = "127.0.0.1", default: Reply | None = None, tls: tuple[str, str] | None = None):
        """`tls=(certfile, keyfile)` serves https; `server_names` records the SNI names seen."""
        self.host = host
        self.tls = tls
        self.server_names: list[str | None] = []
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control -----------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"{'https' if self.tls else 'http'}://{host or self.host}:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes
            wbufsize = 65536  # ... or rather in one: flushed after each request

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    reply = receiver._script.popleft() if receiver._script else receiver.default
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                            self.client_address,
                        )
                    )
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    if reply.hold is not None:
                        reply.hold.wait(30)
                    if reply.delay:
                        time.sleep(reply.delay)
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="webhook-receiver").start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
