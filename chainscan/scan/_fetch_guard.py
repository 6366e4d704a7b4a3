"""The fetch guard: which URLs found in certificates chainscan may fetch, and from where. Pure.

Theory of operation
-------------------
A certificate's AIA caIssuers (and, later, CRL and OCSP) URLs are chosen by whoever controls
the scanned server, and chainscan fetches them from inside the user's network. A hostile
certificate can point them at the cloud metadata service, at ``localhost`` admin ports or at
anything else the scanning machine can reach (server-side request forgery). So every fetch
passes two checks, both here:

1. :meth:`FetchGuard.check_url`, before anything else: ``http://`` only (AIA and CRL are
   plain HTTP by design: their content is signed), a host, a port, no user info, at most
   :data:`MAX_URL` characters. Refused URLs are never resolved.
2. :meth:`FetchGuard.check_address`, for every address the host resolves to, *before* the
   connection, and the connection is then made to that very address (``_fetch`` connects to
   the checked IP literal, never to the name again, so a DNS answer that changes between the
   check and the connect, "DNS rebinding", cannot move it). Redirects go through both checks
   again.

Which addresses are refused, in this order (the first rule that matches decides):

* a ``--fetch-deny CIDR``: refused;
* a ``--fetch-allow CIDR``: allowed (this is how a test, or an internal PKI served from a
  link-local address, is let through);
* the built-in denials, :data:`DENIED`: loopback, link-local (which holds the cloud metadata
  endpoints 169.254.169.254 and fd00:ec2::254's neighbours), multicast, unspecified,
  broadcast and reserved ranges, and the named metadata endpoints that are not link-local
  (fd00:ec2::254, 100.100.100.200, 192.0.0.192);
* anything else, private ranges included: allowed. Internal PKIs publish their AIA and CRL
  on internal hosts, and a scan of an organization's endpoints must reach them.

IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DENIED", "MAX_URL", "FetchGuard", "FetchRefused", "GuardedUrl", "parse_cidr"]

MAX_URL = 2048
"""Longest URL chainscan fetches."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
    ("100.100.100.200/32", "cloud metadata (Alibaba)"),
    ("192.0.0.192/32", "cloud metadata (Oracle)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("fd00:ec2::254/128", "cloud metadata (AWS)"),
)
"""Ranges never fetched from unless ``--fetch-allow`` names them: (CIDR, what it is)."""

_DENIED = tuple((ipaddress.ip_network(cidr), why) for cidr, why in DENIED)


class FetchRefused(Exception):
    """The guard refuses a URL or an address. ``message`` says which and why (no body)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_cidr(text: str) -> IPNetwork:
    """``10.0.0.0/8``, ``127.0.0.1`` (one address) or ``::1/128``; ValueError otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP network (CIDR, e.g. 10.0.0.0/8)") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardedUrl:
    """A URL that passed :meth:`FetchGuard.check_url`."""

    url: str
    host: str
    """Host name or IP literal (without brackets), lower case."""
    port: int
    target: str
    """Path and query, as sent in the request line."""


def _plain(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class FetchGuard:
    """The allow and deny lists of one run. Immutable."""

    __slots__ = ("allow", "deny")

    def __init__(self, *, allow: Iterable[IPNetwork] = (), deny: Iterable[IPNetwork] = ()) -> None:
        self.allow = tuple(allow)
        self.deny = tuple(deny)

    def check_url(self, url: str) -> GuardedUrl:
        """The URL's parts, or :class:`FetchRefused` for anything but a plain ``http://`` URL."""
        shown = repr(url[:100])
        if len(url) > MAX_URL:
            raise FetchRefused(f"URL {shown}... is over {MAX_URL} characters")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
            raise FetchRefused(f"URL {shown} holds spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port or 80
            host = (parts.hostname or "").lower()
        except ValueError as exc:
            raise FetchRefused(f"URL {shown} cannot be parsed: {exc}") from None
        if parts.scheme.lower() != "http":
            raise FetchRefused(f"URL {shown}: only http:// is fetched, not {parts.scheme or '?'}")
        if not host:
            raise FetchRefused(f"URL {shown} has no host")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused(f"URL {shown} carries user information")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(str(literal), url=url)
        return GuardedUrl(url=url, host=host, port=port, target=target)

    def check_address(self, ip: str, *, url: str = "") -> None:
        """Nothing if ``ip`` may be connected to; :class:`FetchRefused` naming the rule."""
        address = _plain(ipaddress.ip_address(ip))
        where = f" (for {url[:100]!r})" if url else ""
        for network in self.deny:
            if address.version == network.version and address in network:
                raise FetchRefused(f"{address}{where} is in --fetch-deny {network}")
        for network in self.allow:
            if address.version == network.version and address in network:
                return
        for network, why in _DENIED:
            if address.version == network.version and address in network:
                raise FetchRefused(
                    f"{address}{where} is {why} ({network}); not fetched unless --fetch-allow "
                    "names it"
                )
