"""Whose connection is this: the client's address behind trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[str]) -> str | None:
    """The connection's peer; when that peer is a trusted proxy, the nearest address in
    `X-Forwarded-For` that is not one. The list is read from the right, because each proxy
    appends the address it saw: entries left of the first untrusted one are whatever the
    client wrote, and are never believed."""
    networks = _networks(tuple(trusted))
    if peer is None or not forwarded_for or not _trusted(peer, networks):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from a trusted proxy: fall back to what we can see
    return peer
