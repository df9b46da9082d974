"""Who sent a request: its peer, or, behind trusted reverse proxies, the client they name.

A reverse proxy appends the address it was reached from to `X-Forwarded-For`, so the
header's right end is written by the proxies nearest to us and its left end by whoever
sent the request first (anyone: it can be made up). When the peer is one of
`[http] trusted_proxies`, the client is the rightmost address of the header that is not a
trusted proxy itself, as nginx's `real_ip_recursive on` finds it; if every address is a
trusted proxy, the leftmost. A header the walk cannot read (a hop that is no address)
leaves the peer as the client, and from any other peer the header is never read: it would
let a client choose its own rate-limit bucket. Pure: the HTTP server's rate limit and
access log use it, and the status page's proxy authentication will.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Protocol

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

_PORTED_V4 = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")
_BRACKETED_V6 = re.compile(r"\[([0-9A-Fa-f:.]+(?:%[^\]]+)?)\](?::\d{1,5})?")


class HasPeer(Protocol):
    """A request as this module needs it (`monitor.http.app.Request`)."""

    @property
    def remote(self) -> str:
        """The peer's address, as the socket gave it."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names."""


def network(value: str) -> Network:
    """An address ("10.0.0.1", "::1") or a CIDR network ("10.0.0.0/8"); ValueError, in
    words a config error can show, for anything else."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or a CIDR network (such as '10.0.0.0/8' or '::1')"
        ) from None


def address(text: str) -> Address | None:
    """An address as a peer or an X-Forwarded-For hop writes it: bare, IPv4 with a port,
    IPv6 in brackets with or without one. None when it is none of those. An IPv4 address
    mapped into IPv6 (a dual-stack socket's "::ffff:192.0.2.1") is the IPv4 address."""
    text = text.strip()
    ported = _PORTED_V4.fullmatch(text) or _BRACKETED_V6.fullmatch(text)
    try:
        found = ipaddress.ip_address(ported[1] if ported else text)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def trusted(found: Address, proxies: Iterable[Network]) -> bool:
    return any(found.version == net.version and found in net for net in proxies)


def forwarded_client(peer: str, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The client of a request from `peer` that carried `forwarded_for` (None: no header)."""
    if not proxies or not forwarded_for:
        return peer
    seen = address(peer)
    if seen is None or not trusted(seen, proxies):
        return peer
    found: Address | None = None
    for hop in reversed(forwarded_for.split(",")):
        found = address(hop)
        if found is None:
            return peer  # what the proxies wrote cannot be read: trust none of it
        if not trusted(found, proxies):
            break
    return str(found)


def client_address(request: HasPeer, proxies: Sequence[Network]) -> str:
    """The address a request counts as coming from (rate limit, access log)."""
    return forwarded_client(request.remote, request.headers.get("x-forwarded-for"), proxies)
