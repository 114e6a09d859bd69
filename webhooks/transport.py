"""The one place webhooks speak HTTP: a POST to an already checked address (see safety.py),
with the original Host header and TLS SNI/certificate name, no redirects followed, and only
the first 2 KB of the response read.

Requests run on one asyncio event loop per process, in a daemon thread of its own, so that
many go out at once and the keep-alive connections (one pooled client per host name and
checked address) outlive a delivery run: a receiver is not asked for a new TCP and TLS
handshake per message. Sync code hands the loop a coroutine with `submit()` and waits on the
future it gets back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import lru_cache

import httpx

from webhooks.safety import CheckedTarget

BODY_LIMIT = 2048
_MAX_CLIENTS = 64


@dataclass(frozen=True)
class HttpResult:
    status: int | None = None
    body: str = ""
    headers: dict | None = None
    error: str = ""  # "timeout: ..." / "connection: ..." when no response came back


@lru_cache(maxsize=4)
def _verify(ca_bundle: str) -> ssl.SSLContext | bool:
    """Certificates are always verified; WEBHOOK_CA_BUNDLE adds a private CA (e.g. internal
    receivers an operator allowlisted) instead of the system/certifi roots."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


class _Loop:
    """The process's webhook event loop and its pooled clients (touched only from the loop)."""

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: OrderedDict[tuple, httpx.AsyncClient] = OrderedDict()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="webhook-http").start()


_state: _Loop | None = None
_state_lock = threading.Lock()


def _current() -> _Loop:
    """The loop, started on first use; a forked child (a prefork pool's worker) starts its own."""
    global _state
    with _state_lock:
        if _state is None or _state.pid != os.getpid():
            _state = _Loop()
        return _state


def submit(coro: Coroutine) -> concurrent.futures.Future:
    """Run `coro` on the webhook loop; returns a future for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _current().loop)


def _client(target: CheckedTarget, address: str, timeout: float, ca_bundle: str) -> httpx.AsyncClient:
    """One pooled client per (host, checked address, port): a pooled TLS connection is never
    reused for another host name on the same address."""
    clients = _current().clients
    key = (target.scheme, target.host, address, target.port, timeout, ca_bundle)
    client = clients.get(key)
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, verify=_verify(ca_bundle)
        )
        clients[key] = client
        if len(clients) > _MAX_CLIENTS:
            _, old = clients.popitem(last=False)
            asyncio.get_running_loop().create_task(old.aclose())
    else:
        clients.move_to_end(key)
    return client


async def post(
    target: CheckedTarget, *, body: bytes, headers: dict[str, str], timeout: float, ca_bundle: str = ""
) -> HttpResult:
    """POST to the first checked address that accepts a connection (never to a fresh DNS answer).
    Runs on the webhook loop."""
    result = HttpResult(error="connection: no address")
    for address in target.addresses:
        result = await _post_to(target, address, body=body, headers=headers, timeout=timeout, ca_bundle=ca_bundle)
        if not result.error.startswith("connection: ConnectError"):
            break
    return result


async def _post_to(
    target: CheckedTarget, address: str, *, body: bytes, headers: dict[str, str], timeout: float, ca_bundle: str
) -> HttpResult:
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    literal = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{literal}:{target.port}{target.path}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    client = _client(target, address, timeout, ca_bundle)
    try:
        request = client.build_request(
            "POST", url, content=body, headers={**headers, "host": host_header}, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= BODY_LIMIT:
                    break
            text = b"".join(chunks)[:BODY_LIMIT].decode("utf-8", errors="replace")
        finally:
            await response.aclose()
        return HttpResult(status=response.status_code, body=text, headers=dict(response.headers))
    except httpx.TimeoutException as exc:
        return HttpResult(error=f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return HttpResult(error=f"connection: {type(exc).__name__}: {exc}"[:500])
