"""Who is the client? The one place that decides, for HTTP requests and WebSocket handshakes.

The peer of the TCP connection is the client unless that peer is one of TRUSTED_PROXIES
(addresses or CIDR networks; empty by default). Only then is `X-Forwarded-For` read, from the
right: each hop added by a trusted proxy is skipped and the first address that is not a trusted
proxy is the client. Anything a client writes into the header itself sits to the left of that
and is ignored, so rotating the header cannot escape the per-address throttles (login,
enrollment) nor put a made-up address into the logs. A malformed hop stops the walk at the last
trusted hop (the proxy), never at the client's word.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _parse(value: str) -> IPv4Address | IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.9:51234"
        value = value.split(":", 1)[0]
    try:
        return ip_address(value)
    except ValueError:
        return None


def is_trusted_proxy(address: str | None) -> bool:
    parsed = _parse(address) if address else None
    if parsed is None:
        return False
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    return any(parsed in network for network in networks)


def resolve(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address, given the connection's peer and its X-Forwarded-For header."""
    if not peer:
        return None
    if not forwarded_for or not is_trusted_proxy(peer):
        return peer
    address = peer
    for hop in reversed(forwarded_for.split(",")):
        parsed = _parse(hop)
        if parsed is None:
            return address
        address = str(parsed)
        if not is_trusted_proxy(address):
            return address
    return address


def client_ip(request) -> str | None:
    """The client address of a Django (or DRF) request."""
    meta = request.META
    return resolve(meta.get("REMOTE_ADDR") or None, meta.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope) -> str | None:
    """The client address of an ASGI scope (a WebSocket handshake)."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
    ]
    return resolve(peer, ",".join(forwarded) or None)
