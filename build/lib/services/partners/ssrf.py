"""Webhooks go only where they should: a partner's public endpoint, never into our own network.

A webhook URL is the one thing a partner chooses that Kring connects to, so it must not become a
way in (server-side request forgery): not loopback, not a private, link-local, shared, reserved
or multicast address, not plain ``http`` (each unless a setting allows it, for tests). A name is
resolved at every connection and *every* address it resolves to is checked, so a name with one
public and one private address is refused; the connection goes to a checked address itself (no
second look-up a rebinding name could answer differently), and the address actually connected
to is checked again. No proxy from the environment, no redirects followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx


class TargetRefusedError(Exception):
    """A webhook target Kring will not connect to; the message says why (never a secret)."""


@dataclass(frozen=True)
class TargetRules:
    allow_private: bool = False
    allow_http: bool = False


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refused_address(address: Address) -> str | None:
    """Why ``address`` is no target (None: it is a public one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refused_address(address.ipv4_mapped)
    for test, what in (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_private, "private"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address.is_reserved, "reserved"),
    ):
        if test:
            return what
    if not address.is_global:
        return "not a public address"
    return None


def check_url(url: str, rules: TargetRules) -> str:
    """The URL as it will be used, or ``TargetRefusedError`` naming what is wrong with it. A
    literal address is checked here; a name at every connection (``GuardedBackend``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise TargetRefusedError("a webhook URL starts with https://")
    if parts.scheme == "http" and not rules.allow_http:
        raise TargetRefusedError(
            "a webhook URL must use https (plain http only with KRING_WEBHOOK_ALLOW_HTTP)"
        )
    if not parts.hostname:
        raise TargetRefusedError("a webhook URL names a host")
    if parts.username or parts.password:
        raise TargetRefusedError("a webhook URL carries no user or password")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not rules.allow_private:
        why = refused_address(literal)
        if why is not None:
            raise TargetRefusedError(f"the webhook's address is {why}")
    if parts.hostname.lower() in ("localhost", "localhost.localdomain") and not rules.allow_private:
        raise TargetRefusedError("the webhook's address is loopback")
    return url


def check_addresses(addresses: Iterable[str], rules: TargetRules) -> list[str]:
    """Every address a name resolved to must be a target; returns them, or raises naming the
    first that is not."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise TargetRefusedError("the webhook's host name resolves to no address")
    if not rules.allow_private:
        for text in found:
            why = refused_address(ipaddress.ip_address(text.split("%")[0]))
            if why is not None:
                raise TargetRefusedError(f"the webhook's host resolves to a {why} address")
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking before it connects: TLS still names
    the host (httpcore passes the URL's host for SNI and the certificate check), the TCP
    connection goes to a checked address."""

    def __init__(self, rules: TargetRules) -> None:
        self.rules = rules
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = check_addresses((str(info[4][0]) for info in infos), self.rules)
        stream = await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )
        peer = stream.get_extra_info("server_addr")
        if peer is not None and not self.rules.allow_private:
            why = refused_address(ipaddress.ip_address(str(peer[0]).split("%")[0]))
            if why is not None:
                await stream.aclose()
                raise TargetRefusedError(f"connected to a {why} address")
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded backend; no proxy, HTTP/1.1."""

    def __init__(self, rules: TargetRules, *, max_connections: int = 20) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(rules),
        )


def guarded_client(rules: TargetRules, timeout: float) -> httpx.AsyncClient:
    """The client webhooks are sent with: guarded, no redirects followed, no proxy."""
    return httpx.AsyncClient(
        transport=GuardedTransport(rules),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
