"""The one place webhooks speak HTTP: a POST to an already checked address (see safety.py),
with the original Host header and TLS SNI/certificate name, no redirects followed, and only
the first 2 KB of the response read."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from webhooks.safety import CheckedTarget

BODY_LIMIT = 2048
_local = threading.local()
_MAX_CLIENTS = 64


@dataclass(frozen=True)
class HttpResult:
    status: int | None = None
    body: str = ""
    headers: dict | None = None
    error: str = ""  # "timeout: ..." / "connection: ..." when no response came back


def _client(target: CheckedTarget, timeout: float) -> httpx.Client:
    """One pooled client per thread and (host, checked address, port): a pooled TLS connection
    is never reused for another host name on the same address."""
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = OrderedDict()
    key = (target.scheme, target.host, target.address, target.port, timeout)
    client = clients.get(key)
    if client is None:
        client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False)
        clients[key] = client
        if len(clients) > _MAX_CLIENTS:
            _, old = clients.popitem(last=False)
            old.close()
    else:
        clients.move_to_end(key)
    return client


def post(target: CheckedTarget, *, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
    address = f"[{target.address}]" if ":" in target.address else target.address
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    url = f"{target.scheme}://{address}:{target.port}{target.path}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        request = _client(target, timeout).build_request(
            "POST", url, content=body, headers={**headers, "host": host_header}, extensions=extensions
        )
        response = _client(target, timeout).send(request, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= BODY_LIMIT:
                    break
            text = b"".join(chunks)[:BODY_LIMIT].decode("utf-8", errors="replace")
        finally:
            response.close()
        return HttpResult(status=response.status_code, body=text, headers=dict(response.headers))
    except httpx.TimeoutException as exc:
        return HttpResult(error=f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return HttpResult(error=f"connection: {type(exc).__name__}: {exc}"[:500])
