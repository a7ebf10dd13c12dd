"""Outbound requests to URLs users give (webhook receivers, crawled sites): the guard that
keeps them on the public internet, and a body read that stops at a limit.

A target's name is resolved once and every address it answers must be public (a mix of
public and private answers is a DNS rebinding trick); the caller then connects to the
address it got, so the name cannot change its answer between the check and the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx


class TargetForbidden(Exception):
    """A target (a webhook receiver, a crawled site) resolves to an address that is not on
    the public internet."""


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by the address they carry.
        if ip.ipv4_mapped is not None:
            return _is_forbidden(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return _is_forbidden(ip.sixtofour)
        if ip in _NAT64:
            return _is_forbidden(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.is_site_local:
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global  # e.g. 100.64.0.0/10 carrier-grade NAT
    )


async def resolve_public_target(host: str, port: int, allow_private: bool) -> str:
    """Resolve ``host`` and return the address to connect to.

    Raises TargetForbidden if any resolved address is not public (unless ``allow_private``),
    and ``OSError`` (``socket.gaierror``) if the name does not resolve.
    """
    name = host.strip("[]")
    try:
        # An address literal needs no lookup (which would cost a thread-pool round trip).
        addresses = [str(ipaddress.ip_address(name))]
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(
            name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"no address for {name!r}")
    if not allow_private:
        for address in addresses:
            # Any bad answer refuses the whole name: a mix of public and private records is
            # a rebinding trick, not a configuration to work around.
            if _is_forbidden(ipaddress.ip_address(address)):
                raise TargetForbidden("target address is not public")
    return addresses[0]


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, read up to about ``limit`` bytes (the rest unread)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)
