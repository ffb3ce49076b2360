"""Which URLs a webhook may be sent to: the guard against server-side request forgery.

A partner's URL is checked when it is saved and again before every delivery (a name can be made
to resolve elsewhere later): https in production, and every address the name resolves to must be
public, unless private targets are allowed (WEBHOOK_ALLOW_PRIVATE, development and tests).
Redirects are never followed (deliveries.py), so a public URL cannot bounce a delivery inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 2000


class UnsafeUrl(Exception):
    """Why a URL may not receive webhooks (a sentence for the person who gave it)."""


def check_shape(url: str, *, production: bool) -> str:
    """The URL, stripped, if its form is acceptable; UnsafeUrl otherwise."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise UnsafeUrl(f"must be 1 to {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"is not a valid URL ({error})") from None
    if parts.scheme not in ("https", "http"):
        raise UnsafeUrl("must be an http(s) URL")
    if production and parts.scheme != "https":
        raise UnsafeUrl("must use https")
    if not parts.hostname:
        raise UnsafeUrl("must name a host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials (the signature authenticates us)")
    if parts.fragment:
        raise UnsafeUrl("must not have a fragment")
    if port == 0:
        raise UnsafeUrl("must not use port 0")
    return url


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
                or address.is_reserved or address.is_unspecified or not address.is_global)


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal is its own)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeUrl(f"host {host!r} does not resolve ({error.strerror})") from None
    return sorted({info[4][0] for info in infos})


async def check_target(url: str, *, production: bool, allow_private: bool) -> str:
    """The URL if webhooks may go there now: its form, then (unless `allow_private`) every address
    its host resolves to. UnsafeUrl says why not."""
    url = check_shape(url, production=production)
    if allow_private:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    for text in addresses:
        if not _is_public(ipaddress.ip_address(text.split("%")[0])):
            raise UnsafeUrl(f"resolves to {text}, a private, loopback or link-local address")
    return url
