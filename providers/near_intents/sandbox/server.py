"""A JSON-RPC 2.0 server over HTTP POST as a plain ASGI app, served by uvicorn on a loopback port
in a thread of its own. Subclasses name their methods; a websocket connection goes to
`websocket()` (closed by default) so a double can add a stream (the relay's quote stream)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from config.aio import run


class RpcFault(Exception):
    """A JSON-RPC error answer (`error` is sent as is: a string or an object)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class Slow:
    """A handler's answer that is sent only after `seconds` (a timeout in the client's eyes)."""

    def __init__(self, seconds: float, result):
        self.seconds, self.result = seconds, result


class JsonRpcApp:
    name = "jsonrpc"

    def __init__(self, world):
        self.world = world

    def methods(self) -> dict[str, Callable]:
        return {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = await self._answer(scope, body)
        content = json.dumps(answer).encode() if answer is not None else b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, scope, body: bytes) -> tuple[int, dict | None]:
        if self.world.is_down(self.name):
            return 503, {"error": "service unavailable (sandbox: scripted down)"}
        if scope["method"] != "POST":
            return 405, {"error": "POST only"}
        try:
            request = json.loads(body)
        except ValueError:
            return 200, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        request_id = request.get("id") if isinstance(request, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        handler = self.methods().get(method)
        if handler is None:
            return 200, {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}}
        params = request.get("params")
        if isinstance(params, list) and self.params_as_list:
            params = params[0] if params else {}
        try:
            result = handler(params if params is not None else {})
        except RpcFault as fault:
            return 200, {"jsonrpc": "2.0", "id": request_id, "error": fault.error}
        if isinstance(result, Slow):
            await asyncio.sleep(result.seconds)
            result = result.result
        return 200, {"jsonrpc": "2.0", "id": request_id, "result": result}

    # JSON-RPC params come as `[ {...} ]` (bridge, relay) or `{...}` (NEAR RPC)
    params_as_list = True

    async def websocket(self, scope, receive, send):
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})


class Server:
    """uvicorn serving `app` on 127.0.0.1 (a free port unless given) in a daemon thread."""

    def __init__(self, app, port: int = 0, name: str = "sandbox"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self):
        run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10.0) -> Server:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
