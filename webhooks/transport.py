"""The one place webhooks speak HTTP: a POST to an already checked address (see safety.py),
with the original Host header and TLS SNI/certificate name, no redirects followed, and only
the first 2 KB of the response read."""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import httpx
from django.conf import settings

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


@lru_cache(maxsize=4)
def _verify(ca_bundle: str) -> ssl.SSLContext | bool:
    """Certificates are always verified; WEBHOOK_CA_BUNDLE adds a private CA (e.g. internal
    receivers an operator allowlisted) instead of the system/certifi roots."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


def _client(target: CheckedTarget, address: str, timeout: float) -> httpx.Client:
    """One pooled client per thread and (host, checked address, port): a pooled TLS connection
    is never reused for another host name on the same address."""
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = OrderedDict()
    ca_bundle = settings.WEBHOOK_CA_BUNDLE
    key = (target.scheme, target.host, address, target.port, timeout, ca_bundle)
    client = clients.get(key)
    if client is None:
        client = httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, verify=_verify(ca_bundle)
        )
        clients[key] = client
        if len(clients) > _MAX_CLIENTS:
            _, old = clients.popitem(last=False)
            old.close()
    else:
        clients.move_to_end(key)
    return client


def post(target: CheckedTarget, *, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
    """POST to the first checked address that accepts a connection (never to a fresh DNS answer)."""
    result = HttpResult(error="connection: no address")
    for address in target.addresses:
        result = _post_to(target, address, body=body, headers=headers, timeout=timeout)
        if not result.error.startswith("connection: ConnectError"):
            break
    return result


def _post_to(
    target: CheckedTarget, address: str, *, body: bytes, headers: dict[str, str], timeout: float
) -> HttpResult:
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    literal = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{literal}:{target.port}{target.path}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    client = _client(target, address, timeout)
    try:
        request = client.build_request(
            "POST", url, content=body, headers={**headers, "host": host_header}, extensions=extensions
        )
        response = client.send(request, stream=True)
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
