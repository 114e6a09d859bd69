"""What the loopback doubles of Kraken and CoinGecko share: an HTTP server in a thread, JSON
replies, and a scripting door (`POST /_sandbox/<action>` with a JSON object of keyword arguments)
that calls one of the double's whitelisted scripting methods, so a running demo can be scripted
(`manage.py reference_sandbox script ...`) the way tests script it in Python."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("tradedesk.reference.sandbox")


class JsonHandler(BaseHTTPRequestHandler):
    server_version = "TradedeskSandbox/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)

    @property
    def double(self):
        return self.server.double

    def reply(self, status: int, payload=None, *, headers: dict | None = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def query(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        return url.path.rstrip("/"), {k: v[-1] for k, v in parse_qs(url.query).items()}

    def do_POST(self):
        path, _ = self.query()
        action = path.removeprefix("/_sandbox/")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            kwargs = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.reply(400, {"error": "body is not JSON"})
            return
        if not path.startswith("/_sandbox/") or action not in self.double.SCRIPT_ACTIONS:
            self.reply(404, {"error": f"unknown action {action!r}", "actions": sorted(self.double.SCRIPT_ACTIONS)})
            return
        try:
            result = getattr(self.double, action)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            self.reply(400, {"error": str(exc)})
            return
        self.reply(200, {"ok": True, "result": result if isinstance(result, dict | list | int | str) else None})


class HttpDouble:
    """An HTTP server for `handler` on loopback, serving in a daemon thread."""

    def __init__(self, handler: type[JsonHandler], *, double, host: str = "127.0.0.1", port: int = 0, name: str):
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.double = double
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    def start(self) -> HttpDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
