"""Forwarded headers, believed only from our own proxies.

Behind nginx the direct peer of every request is nginx, and the client's address, scheme and
host arrive in ``X-Forwarded-*`` headers. Anybody can send those headers, so they are applied
(by werkzeug's ProxyFix, with the PROXY_FIX_* hop counts) only when the direct peer is one
of TRUSTED_PROXIES. A client that reaches the app directly keeps its own address: a forged
``X-Forwarded-For`` cannot dodge the per-IP limits or write an invented IP into the consent
ledger.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                     "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")


def peer_is_trusted(remote_addr: str | None, trusted: Sequence[Network]) -> bool:
    """True when `remote_addr` (the TCP peer) lies in one of the `trusted` networks."""
    if not remote_addr or not trusted:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return any(address.version == net.version and address in net for net in trusted)


class TrustedProxyFix:
    """WSGI middleware: ProxyFix for requests from a trusted proxy, nothing for the rest.

    For untrusted peers the forwarded headers are also removed from the environ, so no code
    further in (ours or a library's) can read them by mistake.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], trusted: Sequence[Network], *,
                 x_for: int = 0, x_proto: int = 0, x_host: int = 0) -> None:
        self.app = app
        self.trusted = tuple(trusted)
        self.fixed = ProxyFix(app, x_for=x_for, x_proto=x_proto, x_host=x_host)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if peer_is_trusted(environ.get("REMOTE_ADDR"), self.trusted):
            return self.fixed(environ, start_response)
        for name in FORWARDED_HEADERS:
            environ.pop(name, None)
        return self.app(environ, start_response)


def ip_bucket(ip: str | None) -> str:
    """The key a per-IP limit should count `ip` under: the address itself for IPv4, its /64
    for IPv6 (one home or phone gets a whole /64 and can pick any address in it)."""
    if not ip:
        return "?"
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
