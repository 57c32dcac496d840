"""Connections a download may make: which addresses are allowed (against server-side request forgery, SSRF),
and sockets and HTTP(S) connections that check them.

``is_public_address`` is the default policy: no loopback, private, shared, link-local (such as the cloud metadata
service 169.254.169.254), multicast, reserved or unspecified address; IPv4 inside IPv6 is judged as IPv4.
``open_checked_socket`` checks every address a host name resolves to, connects to such a checked address itself
(no second DNS lookup that could be rebound), and checks the address it actually reached again before a byte is
sent (the Hugging Face Hub's own host names excepted: ``TRUSTED_DOMAINS``); ``CheckedHTTPConnection`` /
``CheckedHTTPSConnection`` get their socket from it (for https, before the TLS handshake). A refused address
raises ``RemoteVideoError``. Standard library only; no proxy settings are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from collections.abc import Callable

from uvosam.errors import RemoteVideoError

__all__ = [
    "TRUSTED_DOMAINS",
    "AddressCheck",
    "CheckedHTTPConnection",
    "CheckedHTTPSConnection",
    "IPAddress",
    "is_public_address",
    "is_trusted_host",
    "open_checked_socket",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressCheck = Callable[[IPAddress], bool]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: IPAddress) -> bool:
    """True for an address on the public internet: not loopback, private, shared (100.64/10), link-local
    (169.254.169.254: cloud metadata), multicast, reserved or unspecified. IPv4 carried in IPv6 (``::ffff:a.b.c.d``,
    6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return is_public_address(inner)
    special = (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
    )
    return ip.is_global and not (special or ip.is_unspecified)


def _address_kind(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour):
        return "IPv4 inside IPv6, " + _address_kind(ip.ipv4_mapped or ip.sixtofour)
    kinds = ("loopback", "unspecified", "link_local", "multicast", "private", "reserved")
    return next((k.replace("_", "-") for k in kinds if getattr(ip, f"is_{k}")), "not public")


TRUSTED_DOMAINS = ("hf.co", "huggingface.co")
"""Hosts (these domains and their subdomains) allowed whatever address they resolve to: on a Hugging Face Space,
the Hub's own names (a dataset file's ``huggingface.co/.../resolve/...`` link and the ``*.hf.co`` storage it
redirects to) may resolve to addresses inside Hugging Face's network, which ``is_public_address`` refuses; only
Hugging Face controls what they resolve to. Gradio trusts the same names for its own downloads."""


def is_trusted_host(host: str) -> bool:
    """Whether ``host`` is one of ``TRUSTED_DOMAINS`` or a subdomain of one (letter case and a final dot ignored)."""
    name = host.lower().rstrip(".")
    return any(name == domain or name.endswith("." + domain) for domain in TRUSTED_DOMAINS)


def _check_address(host: str, ip: IPAddress, allowed: AddressCheck) -> None:
    if allowed(ip) or is_trusted_host(host):
        return
    what = str(ip) if host == str(ip) else f"{host} (at {ip})"
    raise RemoteVideoError(
        f"{what} is an address inside this server's network ({_address_kind(ip)}): links to private, loopback or "
        "link-local addresses are refused here. Use a public link to the file (or upload the file)."
    )


def _ip(sockaddr: tuple) -> IPAddress:
    return ipaddress.ip_address(sockaddr[0])


def open_checked_socket(
    host: str, port: int, timeout: float | None, allowed: AddressCheck | None
) -> socket.socket:
    """A TCP socket connected to ``host``: every address it resolves to is checked with ``allowed`` first (None:
    no check), the socket connects to such a checked address, and the peer it reached is checked again.
    ``timeout``: seconds for each socket operation (None: the sockets' default).

    Raises:
        RemoteVideoError: an address ``allowed`` refuses. OSError: DNS or connection failure (the last one).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if allowed is not None:
        for *_, sockaddr in infos:
            _check_address(host, _ip(sockaddr), allowed)
    error: OSError = OSError(f"no address found for {host}")
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            if allowed is not None:  # the address actually reached
                _check_address(host, _ip(sock.getpeername()), allowed)
            return sock
        except OSError as err:
            sock.close()
            error = err
        except BaseException:
            sock.close()
            raise
    raise error


class CheckedHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` whose socket comes from ``open_checked_socket`` (no proxy tunnel)."""

    # what a connection checks unless its instance is given another check (None: none)
    address_allowed: AddressCheck | None = staticmethod(is_public_address)

    def connect(self) -> None:
        # a connection made without timeout= holds http.client's placeholder, which settimeout() refuses
        timeout = None if self.timeout is socket._GLOBAL_DEFAULT_TIMEOUT else self.timeout
        self.sock = open_checked_socket(self.host, self.port, timeout, self.address_allowed)


class CheckedHTTPSConnection(http.client.HTTPSConnection, CheckedHTTPConnection):
    """HTTPS: ``HTTPSConnection.connect`` calls ``super().connect()``, which this MRO makes
    ``CheckedHTTPConnection.connect``; so the address is checked before the TLS handshake, which then runs on that
    socket (certificate checked against the host name)."""
