"""Where a callback may go (SSRF protection). A URL's host is resolved, every address it
resolves to is checked, and the request then connects to the checked address itself, so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.

Refused unless `callback_allow` names the host or a network holding the address: loopback,
private, link-local, unique-local, multicast, unspecified, reserved and shared addresses, every
other address that is not globally routable, and the cloud metadata services (by address and
by name). IPv4 addresses inside IPv6 ones (mapped, 6to4, NAT64) are checked as IPv4 too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from ..errors import CallbackRefused, ConfigurationError, InvalidArguments

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: metadata services of the clouds; most are link-local anyway, 168.63.129.16 (Azure) is not
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200",
              "168.63.129.16")
)  # fmt: skip
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
     "instance-data.ec2.internal", "metadata.azure.internal"}
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


@dataclass(frozen=True, slots=True)
class Allow:
    """The `callback_allow` setting: networks and host names callbacks may reach anyway."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allow:
        """Each entry is a network ("10.0.0.0/8", "::1/128", a bare address) or a host name."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            name = _normal_host(text)
            if not name or "/" in name or ":" in name or " " in name:
                raise ConfigurationError(
                    f"callback_allow entry {entry!r} is neither a network (10.0.0.0/8, "
                    "127.0.0.1/32) nor a host name (hooks.internal)"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    def opened(self) -> list[str]:
        """What this lets callbacks reach that they otherwise could not: the networks holding
        addresses that are not public, and the host names."""
        networks = [str(net) for net in self.networks if not net.is_global]
        return networks + sorted(self.hosts)


def refusal(ip: IPAddress, allow: Allow = Allow()) -> str | None:
    """Why a callback may not go to `ip` ("a loopback address", ...), or None if it may.

    >>> refusal(ipaddress.ip_address("10.1.2.3"))
    'a private address'
    >>> refusal(ipaddress.ip_address("10.1.2.3"), Allow.parse(["10.0.0.0/8"])) is None
    True
    """
    if allow.allows(ip):
        return None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = refusal(embedded, allow)
        return None if inner is None else f"{inner[: -len('address')]}IPv4 address inside IPv6"
    for kind, flag in (
        ("a loopback", ip.is_loopback), ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local), ("a multicast", ip.is_multicast),
        ("a unique-local", ip.version == 6 and ip in _UNIQUE_LOCAL),
        ("a reserved", ip.is_reserved), ("a private", ip.is_private),
    ):  # fmt: skip
        if flag:
            return f"{kind} address"
    return None if ip.is_global else "an address that is not public"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_url(url: str) -> httpx.URL:
    """The URL as httpx reads it, if it can be a callback: http(s) with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidArguments(f"callback_url {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidArguments(
            f"callback_url {url!r} must be an http:// or https:// URL with a host, "
            "e.g. https://example.com/hooks/underway"
        )
    return parsed


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: `url` names the checked address itself; `host_header` keeps
    the name the URL gave (and its port), and so does TLS: `sni` is sent as the server name
    and the certificate is checked against it."""

    url: httpx.URL
    host_header: str
    sni: str
    address: str

    @property
    def extensions(self) -> dict[str, str]:
        return {"sni_hostname": self.sni} if self.url.scheme == "https" else {}


async def resolve(url: httpx.URL, allow: Allow) -> Target:
    """Check `url` for a callback and pick the address to connect to. Raises CallbackRefused
    (retrying cannot help) or OSError (the name did not resolve: it may, later)."""
    host = _normal_host(url.host)
    literal = _ip(host)
    if literal is not None:
        addresses = [literal]
    elif host in METADATA_NAMES and host not in allow.hosts:
        raise CallbackRefused(
            f"callback host refused: {host}, a cloud metadata service; {_fix(host)}"
        )
    else:
        port = url.port or (443 if url.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses = list(dict.fromkeys(ip for info in infos if (ip := _ip(str(info[4][0])))))
        if not addresses:
            raise OSError(f"{host} resolved to no address")
    if host not in allow.hosts:
        for ip in addresses:  # every answer: a refused one may be the one connected to later
            reason = refusal(ip, allow)
            if reason is not None:
                named = f"{host} resolves to {ip}" if literal is None else str(ip)
                raise CallbackRefused(
                    f"callback address refused: {named}, {reason}; {_fix(str(ip))}"
                )
    address = addresses[0]
    return Target(
        url=url.copy_with(host=str(address)),
        host_header=url.netloc.decode("ascii"),
        sni=url.raw_host.decode("ascii"),
        address=str(address),
    )


def _fix(what: str) -> str:
    ip = _ip(what)
    entry = what if ip is None else f"{ip}/{ip.max_prefixlen}"
    return (
        f"to allow it, add {entry!r} to callback_allow (App(callback_allow=[...]) or "
        "UNDERWAY_CALLBACK_ALLOW)"
    )


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()
