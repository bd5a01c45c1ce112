"""Merchant callbacks that cannot be aimed inward: the URL rules and the one POST.

A callback URL comes from a merchant (or an attacker holding a merchant key), so before a
signed payload leaves:

- the URL must be `https://` (or `http://` with CALLBACK_ALLOW_HTTP), carry no userinfo,
  no control characters or spaces, and name a host (of CALLBACK_ALLOWED_HOSTS, when set);
- at send time the host is resolved once and EVERY address must be public: loopback,
  private, shared (CGNAT), link-local (cloud metadata 169.254.169.254 among them),
  multicast, unspecified, reserved and documentation ranges are refused, for IPv4 and
  IPv6, IPv4-mapped, NAT64, 6to4 and Teredo forms included (the embedded IPv4 address is
  checked). Addresses inside CALLBACK_ALLOWED_NETWORKS are exempt (a merchant on a private
  network, local development);
- the connection goes to the address that was checked (TLS still verifies the name, and
  `Host` carries it), so a DNS answer that changes between check and connect (rebinding)
  changes nothing;
- redirects are never followed: a 3xx is a failed delivery like any non-2xx.

`TargetRefusedError` is final: the caller alerts and does not retry. Transport failures
raise `CallbackTransportError` (retried by the caller's policy).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2000
# A merchant's answer is not read beyond this (only its status matters).
_MAX_ANSWER_BYTES = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class TargetRefusedError(ValueError):
    """The callback URL or the address it resolves to is not allowed (final, alerted)."""


class CallbackTransportError(Exception):
    """The POST itself failed (connection, TLS, timeout); worth a retry."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class TargetPolicy:
    """What CALLBACK_ALLOW_HTTP, CALLBACK_ALLOWED_HOSTS and CALLBACK_ALLOWED_NETWORKS say."""

    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # empty: any public host
    allowed_networks: tuple[IpNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, allow_http: bool, hosts: Iterable[str], networks: Iterable[str]
              ) -> TargetPolicy:
        return cls(
            allow_http=allow_http,
            allowed_hosts=frozenset(h.strip().lower().rstrip(".") for h in hosts if h.strip()),
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
        )


def parse_target(url: str, policy: TargetPolicy) -> Target:
    """The target of `url` under `policy`, or TargetRefusedError saying why.

    Syntax only (no DNS): what the API checks when a booking is created (422) and the
    sender checks again before resolving."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise TargetRefusedError("the URL contains spaces, control characters or backslashes")
    if not url.isascii():
        raise TargetRefusedError("the URL must be ASCII (punycode for international names)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefusedError("the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetRefusedError("the URL must be https://")
    if scheme == "http" and not policy.allow_http:
        raise TargetRefusedError("the URL must be https:// (CALLBACK_ALLOW_HTTP is off)")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise TargetRefusedError("the URL must not carry credentials (user:password@)")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetRefusedError("the URL names no host")
    if policy.allowed_hosts and host not in policy.allowed_hosts:
        raise TargetRefusedError("the host is not in CALLBACK_ALLOWED_HOSTS")
    literal = _ip_literal(host)
    if literal is not None:
        check_address(literal, policy)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address (and its embedded IPv4 too)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
    )


def check_address(address: IpAddress, policy: TargetPolicy) -> None:
    if any(address in network for network in policy.allowed_networks
           if network.version == address.version):
        return
    if not is_public(address):
        raise TargetRefusedError(f"the host resolves to a non-public address ({address})")


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise CallbackTransportError(f"the callback host does not resolve: {error}") from None
    return [str(info[4][0]) for info in infos]


def resolve_checked(target: Target, policy: TargetPolicy,
                    resolver: Resolver = system_resolver) -> IpAddress:
    """The address to connect to: every address the name resolves to must pass."""
    literal = _ip_literal(target.host)
    if literal is not None:
        check_address(literal, policy)
        return literal
    addresses: list[IpAddress] = []
    for raw in resolver(target.host, target.port):
        address = _ip_literal(raw)
        if address is None:
            raise TargetRefusedError("the resolver answered something that is not an address")
        check_address(address, policy)
        addresses.append(address)
    if not addresses:
        raise CallbackTransportError("the callback host resolves to no address")
    return addresses[0]


@dataclass(frozen=True)
class Answer:
    status: int


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: TargetPolicy,
    timeout: float,
    resolver: Resolver = system_resolver,
    ca_certs: str | None = None,
) -> Answer:
    """POST `body` to `url` under `policy`: refused (TargetRefusedError) before anything is
    sent, or sent once to the checked address without following redirects."""
    target = parse_target(url, policy)
    address = resolve_checked(target, policy, resolver)
    send_headers = {**headers, "Host": target.host_header}
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        # Connect to the checked address; SNI and certificate checks use the name.
        pool = urllib3.HTTPSConnectionPool(
            str(address), target.port, timeout=limits, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=ca_certs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            str(address), target.port, timeout=limits, retries=False, maxsize=1
        )
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=send_headers, redirect=False,
            retries=False, preload_content=False, assert_same_host=False,
        )
        try:
            response.read(_MAX_ANSWER_BYTES)
        finally:
            response.release_conn()
        return Answer(response.status)
    except urllib3.exceptions.HTTPError as error:
        raise CallbackTransportError(type(error).__name__) from error
    finally:
        pool.close()
