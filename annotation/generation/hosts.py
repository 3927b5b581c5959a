"""Which hosts the OpenAI-compatible backend may reach: the guard against server-side request forgery.

A project admin types the base URL, and the worker then sends requests (with the project's key) to
it from inside the deployment's network. So a URL must not reach what only that network can reach:
loopback, private ranges, link-local addresses (cloud metadata at 169.254.169.254), unless the
operator lists the host in GENERATION_ALLOWED_HOSTS.

Entries of the allowlist:
- `*`: any host whose addresses are all public (the default);
- a host name (`vllm`, `api.example.org`) or a suffix (`.example.org`): that host, whatever it
  resolves to, private addresses included (a docker compose service name, say);
- an IP address or network (`127.0.0.1`, `10.0.0.0/8`, `::1`): addresses in it.

A private, loopback, link-local or otherwise non-public address is allowed only by a name or a
network listed explicitly; `*` never covers it. The check runs on every address the name resolves
to when the project is saved and before every batch of requests, and again on the address each
connection actually reached (see `openai_http`), so a name that resolves to a public address when
checked and to a private one when connecting (DNS rebinding) is still refused.

Pure: reads no settings, touches no database.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from annotation.generation.base import GenerationFailed, GenerationUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "GENERATION_ALLOWED_HOSTS"


class HostRefused(GenerationFailed):
    """The base URL's host is not allowed: a setting to fix, never retried."""

    status_code = 400
    code = "generation_host_refused"


@dataclass(frozen=True)
class HostPolicy:
    any_public: bool
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> HostPolicy:
        """Build the policy from allowlist entries; raises ValueError naming an entry it cannot read."""
        any_public, names, suffixes, networks = False, set(), [], []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                any_public = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("."):
                suffixes.append(entry)
            elif "/" in entry or ":" in entry or " " in entry:
                raise ValueError(f"{SETTING}: {raw!r} is neither a host name nor an IP address or network")
            else:
                names.add(entry)
        return cls(any_public, frozenset(names), tuple(suffixes), tuple(networks))

    def host_listed(self, host: str) -> bool:
        """Whether the host is named in the allowlist (by name or suffix, not by `*`)."""
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def address_check(self, *, host: str, address: str) -> None:
        """Raise HostRefused unless `host`, reached at `address`, is allowed."""
        ip = _ip(address)
        if any(ip in network for network in self.networks) or self.host_listed(host):
            return
        if not _is_public(ip):
            raise HostRefused(
                f"{host} is at {ip}, a private, loopback or link-local address; generation reaches such "
                f"a host only if {SETTING} lists it",
                details={"host": host, "address": str(ip)},
            )
        if not self.any_public:
            raise HostRefused(f"{host} is not in {SETTING}", details={"host": host})

    def url_check(self, url: str) -> None:
        """Check the URL's scheme and every address its host resolves to now.

        Raises HostRefused for a host that is not allowed, GenerationUnavailable when the name does
        not resolve (DNS can come back).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HostRefused("the base URL must be http:// or https:// and name a host")
        host = parts.hostname
        if self.host_listed(host):
            return  # listed by name: the operator vouches for whatever it resolves to
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, ValueError):
            raise GenerationUnavailable(f"cannot resolve the host {host}", details={"host": host}) from None
        for info in infos:
            self.address_check(host=host, address=str(info[4][0]))


def _ip(address: str) -> IPAddress:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _is_public(ip: IPAddress) -> bool:
    return ip.is_global and not ip.is_multicast
