"""One target, fetched with a blocking socket: the one-host view's probe (``chainscan show``).

Theory of operation
-------------------
``chainscan show HOST`` answers one question for one or a few targets and must feel instant,
so it does not start the scan machinery: no trio (its import alone costs more than a loopback
handshake), no scheduler, no writer. It drives the same sans-IO :class:`~._tls.Handshake` as
the scan's ``_probe``, over a standard-library socket with timeouts:

* ``connect_timeout`` bounds the TCP connect; ``handshake_timeout`` bounds the *whole*
  handshake (each ``recv`` gets what is left of it, so a server dripping bytes cannot stretch
  it); ``deadline`` bounds the target, every attempt and backoff wait included.
* Each resolved address is tried in turn while connecting fails (refused, unreachable, connect
  timeout), as ``_probe`` does; transient failures are retried ``retries`` times after a
  jittered backoff, never past the deadline.
* Failures become the same :class:`~chainscan.ErrorKind` values as in a scan, so the view and
  the manifest describe a target with the same words.

This module never imports trio; ``tests/test_show.py`` checks it stays that way.
"""

from __future__ import annotations

import random
import socket
import ssl
import time

from .._models import TRANSIENT_KINDS, ErrorKind, ScanOptions, ScanResult, Status, Target, Timings
from ._oserrors import os_error_kind
from ._tls import Handshake, HandshakeFailed

__all__ = ["fetch_chain"]

_NEXT_ADDRESS = frozenset({ErrorKind.REFUSED, ErrorKind.UNREACHABLE, ErrorKind.TIMEOUT_CONNECT})
_RECV_SIZE = 65536


class _Failed(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _os_failure(exc: OSError, during: str, ip: str) -> _Failed:
    return _Failed(*os_error_kind(exc, during, ip))


def _addresses(host: str, port: int) -> list[tuple[int, str, tuple[object, ...]]]:
    if host == "invalid" or host.endswith(".invalid"):
        raise _Failed(
            ErrorKind.DNS, f"cannot resolve {host}: .invalid names never resolve (RFC 6761)"
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise _Failed(
                ErrorKind.DNS_TEMPORARY, f"temporary DNS failure for {host}: {exc.strerror}"
            ) from None
        raise _Failed(ErrorKind.DNS, f"cannot resolve {host}: {exc.strerror}") from None
    except (OSError, UnicodeError) as exc:
        raise _Failed(ErrorKind.DNS, f"cannot resolve {host}: {exc}") from None
    seen: dict[str, tuple[int, str, tuple[object, ...]]] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = str(sockaddr[0]).split("%", 1)[0]
            seen.setdefault(ip, (family, ip, sockaddr))
    if not seen:
        raise _Failed(ErrorKind.DNS, f"{host} has no IPv4 or IPv6 address")
    return list(seen.values())


class _Attempt:
    """What one successful handshake gave."""

    __slots__ = ("chain", "chain_sent", "cipher", "ip", "timings", "version")

    def __init__(self, hs: Handshake, ip: str, timings: Timings, keep: int) -> None:
        self.chain = tuple(hs.chain[:keep])
        self.chain_sent = len(hs.chain)
        self.version = hs.version
        self.cipher = hs.cipher
        self.ip = ip
        self.timings = timings


def _handshake(
    sock: socket.socket, context: ssl.SSLContext, target: Target, options: ScanOptions, ip: str
) -> Handshake:
    ends = time.monotonic() + options.handshake_timeout
    hs = Handshake(context, target.sni)
    sock.sendall(hs.start())
    received = 0
    while not hs.done:
        left = ends - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        data = sock.recv(_RECV_SIZE)
        if not data:
            hs.feed_eof()
        else:
            received += len(data)
            if received > options.max_handshake_bytes:
                raise _Failed(
                    ErrorKind.TOO_LARGE,
                    f"{ip} sent over {options.max_handshake_bytes} bytes without finishing the "
                    "handshake",
                )
            hs.feed(data)
        out = hs.step()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                if not hs.done:
                    raise
    return hs


def _attempt(
    target: Target,
    address: tuple[int, str, tuple[object, ...]],
    options: ScanOptions,
    context: ssl.SSLContext,
    resolve_time: float,
) -> _Attempt:
    family, ip, sockaddr = address
    t0 = time.monotonic()
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise _os_failure(exc, "socket", ip) from None
    with sock:
        sock.settimeout(options.connect_timeout)
        try:
            sock.connect(sockaddr)
        except TimeoutError:
            raise _Failed(
                ErrorKind.TIMEOUT_CONNECT,
                f"TCP connect to {ip} port {target.port} took over {options.connect_timeout:g}s",
            ) from None
        except OSError as exc:
            raise _os_failure(exc, "connect", ip) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t1 = time.monotonic()
        try:
            hs = _handshake(sock, context, target, options, ip)
        except TimeoutError:
            raise _Failed(
                ErrorKind.TIMEOUT_HANDSHAKE,
                f"{ip} did not complete the TLS handshake within {options.handshake_timeout:g}s",
            ) from None
        except HandshakeFailed as exc:
            raise _Failed(exc.kind, f"{ip}: {exc.message}") from None
        except OSError as exc:
            raise _os_failure(exc, "handshake", ip) from None
        timings = Timings(resolve=resolve_time, connect=t1 - t0, handshake=time.monotonic() - t1)
        if not hs.chain:
            raise _Failed(
                ErrorKind.NO_CERTIFICATE,
                f"{ip} completed the handshake without sending a certificate",
            )
        return _Attempt(hs, ip, timings, options.max_chain_length)


def _once(target: Target, options: ScanOptions, context: ssl.SSLContext) -> _Attempt:
    t0 = time.monotonic()
    addresses = _addresses(target.address or target.host, target.port)
    resolve_time = time.monotonic() - t0
    failure: _Failed | None = None
    for address in addresses:
        try:
            return _attempt(target, address, options, context, resolve_time)
        except _Failed as exc:
            failure = exc
            if exc.kind not in _NEXT_ADDRESS:
                break
    assert failure is not None
    raise failure


def fetch_chain(
    target: Target, options: ScanOptions, context: ssl.SSLContext | None = None
) -> ScanResult:
    """Fetch ``target``'s chain, blocking; never raises for anything the network does."""
    from ._tls import client_context

    context = context or client_context()
    started = time.monotonic()
    ends = started + options.deadline
    attempts = 0
    while True:
        attempts += 1
        try:
            got = _once(target, options, context)
        except _Failed as exc:
            left = ends - time.monotonic()
            wait = random.uniform(0, min(8.0, 0.5 * 2 ** (attempts - 1)))
            if exc.kind in TRANSIENT_KINDS and attempts <= options.retries and wait < left:
                time.sleep(wait)
                continue
            return ScanResult(
                target=target,
                status=Status.FAILED,
                error_kind=exc.kind,
                error=exc.message,
                attempts=0 if exc.kind in (ErrorKind.DNS, ErrorKind.DNS_TEMPORARY) else attempts,
                elapsed=time.monotonic() - started,
            )
        return ScanResult(
            target=target,
            status=Status.OK,
            chain=got.chain,
            chain_sent=got.chain_sent,
            attempts=attempts,
            elapsed=time.monotonic() - started,
            address=got.ip,
            tls_version=got.version,
            cipher=got.cipher,
            timings=got.timings,
        )
