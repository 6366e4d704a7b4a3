"""Name resolution with a per-run cache.

Many targets share a name (one host on several ports, or one line repeated with different SNI),
so each name is looked up once per run. Concurrent lookups of the same name wait for the first
one instead of starting their own. IP literals never reach the resolver: ``_probe`` connects to
them directly, with no thread hop. Names under the reserved ``.invalid`` domain fail at once,
without a query (RFC 6761).

The system resolver (``getaddrinfo``) runs in trio's worker threads; trio's default thread
limiter bounds how many lookups run at once, which also bounds the file descriptors they use.
The cache is an LRU of ``max_entries`` names so that a million-name input does not grow memory
without bound; failures are cached too (a missing name stays missing for the run), except
temporary ones, which the retry logic should be free to try again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from .._models import ErrorKind

__all__ = ["Address", "ResolveFailed", "Resolver", "literal_address"]


@dataclass(frozen=True, slots=True)
class Address:
    """One place to connect to."""

    family: int
    """``socket.AF_INET`` or ``socket.AF_INET6``."""
    ip: str
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


class ResolveFailed(Exception):
    """The name has no usable address. ``kind`` is ``dns`` or ``dns-temporary``."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


GetAddrInfo = Callable[..., Awaitable[list[tuple[int, int, int, str, tuple[object, ...]]]]]

_TEMPORARY = {socket.EAI_AGAIN}


def literal_address(host: str, port: int) -> Address | None:
    """The Address for an IP literal, or None when ``host`` is a name."""
    # Fast path, once per connection: ``inet_pton`` accepts only dotted quads (and an address
    # it accepts is canonical when it prints back the same); a name fails it and has no ``:``.
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        if ":" not in host:
            return None
    else:
        if socket.inet_ntop(socket.AF_INET, packed) == host:
            return Address(socket.AF_INET, host, (host, port))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return Address(socket.AF_INET6, str(ip), (str(ip), port, 0, 0))
    return Address(socket.AF_INET, str(ip), (str(ip), port))


class Resolver:
    """Cached resolver for one run. ``getaddrinfo`` is injectable for tests."""

    def __init__(self, *, max_entries: int = 65536, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._getaddrinfo: GetAddrInfo = getaddrinfo or trio.socket.getaddrinfo  # type: ignore[assignment]
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[tuple[str, int], ...] | ResolveFailed] = OrderedDict()
        self._inflight: dict[str, trio.Event] = {}

    def remember(self, host: str, ips: Sequence[str]) -> None:
        """Take ``ips`` as the answer for ``host`` (unless it is cached already): the answer
        another process got, so that this one connects where that one placed the name
        (``run._partition``). Only IP address texts are kept. Call it from the event loop."""
        if host in self._cache or not ips:
            return
        answer = tuple((a.ip, a.family) for ip in ips if (a := literal_address(ip, 0)) is not None)
        if answer:
            self._cache[host] = answer
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)

    async def resolve(self, host: str, port: int) -> list[Address]:
        """Addresses for ``host`` in the system's preferred order; raises ResolveFailed."""
        literal = literal_address(host, port)
        if literal is not None:
            return [literal]
        if host == "invalid" or host.endswith(".invalid"):
            # RFC 6761 6.4: resolver libraries should answer "no such name" at once, unasked.
            raise ResolveFailed(
                ErrorKind.DNS, f"cannot resolve {host}: .invalid names never resolve (RFC 6761)"
            )
        while True:
            cached = self._cache.get(host)
            if cached is not None:
                self._cache.move_to_end(host)
                if isinstance(cached, ResolveFailed):
                    raise ResolveFailed(cached.kind, cached.message)
                return [a for ip in cached if (a := literal_address(ip[0], port)) is not None]
            event = self._inflight.get(host)
            if event is None:
                break
            await event.wait()
            if host not in self._cache:  # the first lookup failed temporarily: try ourselves
                break
        event = trio.Event()
        self._inflight[host] = event
        try:
            entry = await self._lookup(host, port)
        finally:
            del self._inflight[host]
            event.set()
        if not (isinstance(entry, ResolveFailed) and entry.kind is ErrorKind.DNS_TEMPORARY):
            self._cache[host] = entry
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        if isinstance(entry, ResolveFailed):
            raise ResolveFailed(entry.kind, entry.message)
        return [a for ip in entry if (a := literal_address(ip[0], port)) is not None]

    async def _lookup(self, host: str, port: int) -> tuple[tuple[str, int], ...] | ResolveFailed:
        try:
            infos = await self._getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _TEMPORARY:
                return ResolveFailed(
                    ErrorKind.DNS_TEMPORARY, f"temporary DNS failure for {host}: {exc.strerror}"
                )
            return ResolveFailed(ErrorKind.DNS, f"cannot resolve {host}: {exc.strerror}")
        except (OSError, UnicodeError) as exc:
            return ResolveFailed(ErrorKind.DNS, f"cannot resolve {host}: {exc}")
        seen: dict[str, int] = {}
        for family, _type, _proto, _canon, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                seen.setdefault(str(sockaddr[0]).split("%", 1)[0], family)
        if not seen:
            return ResolveFailed(ErrorKind.DNS, f"{host} has no IPv4 or IPv6 address")
        return tuple((ip, family) for ip, family in seen.items())
