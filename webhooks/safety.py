"""SSRF protection for webhook targets.

A target is refused when any address its host resolves to is loopback, private, link-local,
shared (CGNAT), multicast, reserved, unspecified or a cloud metadata address — unless an
operator allowlisted the host name or a network containing the address (`WebhookAllowlist`).
https is required unless the matching allowlist entry allows plain http. The check runs at
creation and again before every attempt, and the request then goes to the checked address
(with the original Host header and TLS SNI), so a DNS answer that changes in between
(rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.errors import ApplicationError

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ApplicationError):
    status_code = 400
    code = "WEBHOOK_TARGET_REFUSED"


@dataclass(frozen=True)
class CheckedTarget:
    scheme: str
    host: str  # as in the URL (lower case, no brackets)
    port: int
    addresses: tuple[str, ...]  # the checked IPs the request may connect to, in resolver order
    path: str  # path + query

    @property
    def address(self) -> str:
        return self.addresses[0]


Allowlist = tuple[dict, list]  # (entries by host name, [(network, entry)])


def allowlist_load() -> Allowlist:
    """The operator's allowlist, read once (a query); `target_check` takes it so that a batch of
    checks, or checks made where the database cannot be used, share one read."""
    from webhooks.models import WebhookAllowlist

    entries = list(WebhookAllowlist.objects.all())
    hosts = {e.host.lower(): e for e in entries if e.host}
    nets = []
    for e in entries:
        if e.cidr:
            try:
                nets.append((ipaddress.ip_network(e.cidr, strict=False), e))
            except ValueError:
                continue
    return hosts, nets


def _unsafe_reason(ip: IPAddress) -> str | None:
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    for attr, reason in (
        ("is_loopback", "loopback"),
        ("is_private", "private"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_unspecified", "unspecified"),
    ):
        if getattr(ip, attr):
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


def is_address(host: str) -> bool:
    """Whether `host` is an IP address (nothing to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[IPAddress]:
    if is_address(host):
        return [ipaddress.ip_address(host)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"Cannot resolve {host!r}.", code="WEBHOOK_TARGET_UNRESOLVABLE") from exc
    seen: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def target_check(url: str, *, allowlist: Allowlist | None = None) -> CheckedTarget:
    """Parse, resolve and check a webhook URL; raise `UnsafeTarget` or return where to connect.
    Without `allowlist` it is read from the database."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("The URL must be http(s)://host/...", code="WEBHOOK_URL_INVALID")
    if parts.username or parts.password:
        raise UnsafeTarget("Credentials in the URL are not allowed.", code="WEBHOOK_URL_INVALID")
    host = parts.hostname.lower().rstrip(".")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget("Invalid port.", code="WEBHOOK_URL_INVALID") from exc
    hosts, nets = allowlist if allowlist is not None else allowlist_load()
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeTarget(f"{host!r} has no address.", code="WEBHOOK_TARGET_UNRESOLVABLE")
    host_entry = hosts.get(host)
    allow_http = bool(host_entry and host_entry.allow_http)
    for ip in addresses:
        if host_entry:
            continue
        net_entry = next((e for net, e in nets if ip.version == net.version and ip in net), None)
        if net_entry:
            allow_http = allow_http or net_entry.allow_http
            continue
        reason = _unsafe_reason(ip)
        if reason:
            raise UnsafeTarget(
                f"{host!r} resolves to a {reason} address; an operator must allowlist it.",
                details={"host": host, "reason": reason},
            )
    if scheme == "http":
        # every address must be covered by an entry that allows http
        covered = all(
            (host_entry and host_entry.allow_http)
            or any(e.allow_http and ip.version == net.version and ip in net for net, e in nets)
            for ip in addresses
        )
        if not (allow_http and covered):
            raise UnsafeTarget("https is required.", code="WEBHOOK_HTTPS_REQUIRED")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return CheckedTarget(scheme=scheme, host=host, port=port, addresses=tuple(str(a) for a in addresses), path=path)
