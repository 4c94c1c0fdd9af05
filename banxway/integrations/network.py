"""Outbound HTTP that reaches only the internet: for calls to addresses an organization's users chose (a provider's
`baseUrl` and the media it points at; outbound webhooks, workflow HTTP steps, agent connections), so that our
server never calls its own network on their behalf (SSRF).

A `baseUrl` on a private address is refused when it is saved; this is the check at connect time, where it holds:
the name is resolved here, every address it resolves to must be global, and the connection is made to one of the
addresses that were checked — a name cannot answer a public address to the check and a private one to the
connection (DNS rebinding). TLS still verifies the certificate against the name (httpcore passes the URL's host
as the server name, whatever address the socket connected to). Redirects are not followed by our clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx


def is_public(address: str) -> bool:
    """Whether an IP address is on the internet: not loopback, private, link-local (cloud metadata), multicast or
    otherwise reserved; an IPv4-mapped IPv6 address is judged as its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%")[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return ip.is_global and not ip.is_multicast


async def private_address(url: str) -> str | None:
    """The save-time check (the connect-time one is the guarded backend below): the first loopback, private,
    link-local or otherwise reserved address the URL's host is, or resolves to now; None when all are on the
    internet, or when the name does not resolve now (nothing to call either; the guard checks again at connect)."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            return None
        addresses = [str(info[4][0]) for info in infos]
    return next((address for address in addresses if not is_public(address)), None)


def guarded_backend(core: Any) -> type:
    """The network backend class that connects only to global addresses, for `core`: httpcore, or its fork
    httpcore2 (the HTTP stack of the MCP SDK's client, `banxway.integrations.agents`) — one guard for both."""

    class PublicAddressesOnly(core.AsyncNetworkBackend):  # type: ignore[name-defined,misc]
        """httpcore's network backend, connecting only to global addresses (see the module)."""

        def __init__(self) -> None:
            self._backend = core.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            try:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
                )
            except (OSError, TimeoutError) as exc:
                raise core.ConnectError(f"{host} could not be resolved: {exc}") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            refused = [address for address in addresses if not is_public(address)]
            if refused:
                raise core.ConnectError(
                    f"{host} resolves to {refused[0]}, a private or reserved address: not connecting "
                    "(allowed only for development: BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS for providers, "
                    "BANXWAY_ALLOW_PRIVATE_WEBHOOKS for webhooks, workflow HTTP steps and agent connections)"
                )
            error: Exception | None = None
            for address in addresses:
                try:
                    return await self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
                except (core.ConnectError, core.ConnectTimeout) as exc:
                    error = exc if isinstance(exc, core.ConnectError) else core.ConnectError(str(exc))
            raise error or core.ConnectError(f"{host} has no address")

        async def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            raise core.ConnectError("Unix sockets are not the internet")

        async def sleep(self, seconds: float) -> None:
            await self._backend.sleep(seconds)

    return PublicAddressesOnly


PublicAddressesOnly = guarded_backend(httpcore)


def transport(*, public_only: bool, **options: Any) -> httpx.AsyncHTTPTransport:
    """An httpx transport; with `public_only`, one that connects only to global addresses. (httpx takes no network
    backend of its own: it is set on the transport's httpcore pool, which the connect-time refusals in tests/test_integrations.py and tests/test_outbound_webhooks.py exercise.)"""
    result = httpx.AsyncHTTPTransport(**options)
    if public_only:
        result._pool._network_backend = PublicAddressesOnly()
    return result
