"""One connection attempt: resolve, connect, handshake, return a ProbeOutcome. Never raises.

This is the I/O edge of chainscan. It owns the sockets and the per-phase timeouts; everything
that can go wrong out there is translated here into an :class:`~chainscan.ErrorKind` (the
``map_exceptions`` idea of httpcore), so no OS or TLS exception ever escapes into the scheduler.

* Addresses: an explicit ``{ip}`` or an IP literal is used as is, without the resolver; a
  name is resolved through the run's cached :class:`~chainscan.scan._resolve.Resolver`. When
  connecting to one address fails (refused, unreachable, connect timeout) the next resolved
  address is tried.
* Every address goes through ``gate(ip)``, the scheduler's admission: per-address cap, global
  concurrency slot, connection rate. The socket exists only inside the gate, so open sockets
  never exceed the concurrency limit.
* ``connect_timeout`` bounds the TCP connect and ``handshake_timeout`` bounds the *whole*
  handshake, however slowly the server drips its bytes: it is one deadline, not a per-read
  timer. The target's total deadline is the scheduler's, and the probe keeps it too
  (``deadline=``, a :class:`TargetDeadline` the scheduler moves while the target waits at the
  gate): the lookup, and then the connection, end at the earlier of their own timeout and that
  deadline. When the deadline comes first the result is :data:`DEADLINE`, which the scheduler
  reports as the target's ``timeout``, exactly as when its own scope around the probe ended
  it (what it still does for a probe injected in tests, and what a caller without
  ``deadline=`` does: ``--deployments``).
* At most ``max_handshake_bytes`` are read from a server; more is ``too-large``. At most
  ``max_chain_length`` certificates are kept.
* A target with a ``protocol`` (SMTP, IMAP, PostgreSQL, ...) first runs that protocol's
  plaintext dialogue (:mod:`chainscan.scan._starttls`, pure) on the connection, under the same
  ``handshake_timeout`` as the handshake that follows, reading at most
  :data:`~chainscan.scan._starttls.MAX_DIALOGUE_BYTES` before TLS starts. A direct-TLS target
  skips it at the cost of one attribute test.
* Huge chains: when OpenSSL refuses the server's Certificate message (over 100 KiB), the same
  address is tried once more, still inside the gate (one more connect and handshake timeout,
  within the target's deadline), with a TLS 1.2
  ClientHello, and the chain is read from the plaintext records by ``_records`` (bounded by
  ``max_handshake_bytes`` too). Only if that fails as well is the result ``too-large``.

Why plain sockets and ``wait_readable``
---------------------------------------
This loop runs once per target, so its cost per connection is chainscan's floor. It uses a
non-blocking standard-library socket and trio's two I/O primitives directly,
``trio.lowlevel.wait_writable`` / ``wait_readable``, instead of a ``trio.socket`` wrapper:

* A ``trio.socket`` call tries the syscall first and then yields to the scheduler even when it
  succeeded at once. Our sends always succeed at once (a ClientHello or a Finished flight on a
  fresh connection fits the socket buffer), so ``_send_all`` makes the plain call and waits only
  if the kernel did not take everything.
* Reads go the other way round: the server has not answered yet when we start to read (it
  must run its side of the handshake first), so the handshake loop waits for readability
  before calling ``recv``, instead of failing a ``recv`` with ``EAGAIN`` first.

Memory
------
With 10,000 handshakes in flight, each holds, besides OpenSSL's ~40 KiB, a trio task and the
chain of coroutines waiting on its socket; every coroutine costs its frame (200-400 bytes), and
every open cancel scope about 800 bytes (the scope, trio's CancelStatus with two sets, an entry
in the deadline heap). So:

* the connect-and-handshake path is one coroutine, ``_attempt``, with the handshake loop
  inline; the scheduler does the same (``_schedule``: the target's task is its attempt loop);
* one cancel scope covers connect and handshake, its deadline moved from the one to the other,
  and it is the only one open: the target's deadline is kept by the probe (above), not by a
  scope of the scheduler's around it;
* ``tls.Handshake`` holds OpenSSL's object without the ``ssl.SSLObject`` wrapper, and no
  chain list until there is a chain; the socket is closed (``try``/``finally``: ``with sock``
  would keep a bound ``__exit__`` alive for the whole handshake) before the result is built,
  and a received chunk is dropped once OpenSSL has it.

``python -m benchmarks.scenarios.scale --tracemalloc`` lists what a handshake in flight holds;
``tests/test_in_flight_memory.py`` pins the trims.

Every wait is a trio checkpoint, so the timeouts and the scheduler's deadline cancel it as they
would a ``trio.socket`` call; ``checkpoint_if_cancelled`` before ``connect`` keeps a cancelled
scan from opening new connections.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import Protocol

import trio

from .._models import ErrorKind, ProbeOutcome, ScanOptions, Target, Timings
from ._oserrors import os_error_kind as _os_error_kind
from ._records import FlightError, FlightReader
from ._resolve import Address, ResolveFailed, Resolver, literal_address
from ._starttls import MAX_DIALOGUE_BYTES, DialogueFailed, make_dialogue, server_words
from ._tls import Handshake, HandshakeFailed, client_context

__all__ = ["DEADLINE", "Gate", "TargetDeadline", "probe"]

Gate = Callable[[str], AbstractAsyncContextManager[object]]
"""``gate(ip)``: held around each connection; the scheduler's limits live behind it."""


class TargetDeadline(Protocol):
    """The target's total deadline, which the scheduler moves while the target waits at the
    gate; ``probe`` reads it as each phase starts."""

    @property
    def deadline(self) -> float:
        """In trio's clock; ``math.inf`` for none."""
        ...


DEADLINE = ProbeOutcome(error_kind=ErrorKind.TIMEOUT, error="the target's deadline passed")
"""What ``probe(..., deadline=...)`` returns when the target's deadline, not one of the
probe's own timeouts, ended the attempt; the scheduler reports the target as timed out."""

_IN_PROGRESS = {errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR}
_RECV_SIZE = 65536

_SockAddr = tuple[str, int] | tuple[str, int, int, int]
_wait_readable = trio.lowlevel.wait_readable
_wait_writable = trio.lowlevel.wait_writable


async def _connect(sock: socket.socket, sockaddr: _SockAddr) -> None:
    """Non-blocking connect; raises OSError as ``trio.socket``'s ``connect`` does."""
    await trio.lowlevel.checkpoint_if_cancelled()
    code = sock.connect_ex(sockaddr)
    if code == 0:
        return
    if code not in _IN_PROGRESS:
        raise OSError(code, os.strerror(code))
    await _wait_writable(sock)
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code != 0:
        raise OSError(code, f"Error connecting to {sockaddr!r}: {os.strerror(code)}")


async def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send everything; waits only when the kernel's buffer is full (never, in practice)."""
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        await _wait_writable(sock)
        with suppress(BlockingIOError):
            view = view[sock.send(view) :]


async def _dialogue(sock: socket.socket, protocol: str, target: Target) -> None:
    """Run ``protocol``'s plaintext dialogue up to "start TLS now". Raises DialogueFailed
    (the server's fault, or an unknown protocol) or OSError."""
    dialogue = make_dialogue(protocol, target.sni or target.host)
    out = dialogue.start()
    if out:
        await _send_all(sock, out)
    received = 0
    while not dialogue.ready:
        await _wait_readable(sock)
        try:
            data = sock.recv(_RECV_SIZE)
        except BlockingIOError:
            continue
        if not data:
            dialogue.receive_eof()
        received += len(data)
        if received > MAX_DIALOGUE_BYTES:
            raise DialogueFailed(
                ErrorKind.TOO_LARGE,
                f"{protocol}: the server sent over {MAX_DIALOGUE_BYTES} bytes before TLS"
                f" could start, beginning {server_words(dialogue.head)}",
            )
        out = dialogue.receive(data)
        if out:
            await _send_all(sock, out)


_TLS12: list[ssl.SSLContext] = []
"""The TLS 1.2 client context of the huge-chain reader, made on first use."""


def _tls12_context() -> ssl.SSLContext:
    if not _TLS12:
        ctx = client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        _TLS12.append(ctx)
    return _TLS12[0]


def _cipher_name(suite: int) -> str | None:
    for cipher in _tls12_context().get_ciphers():
        if cipher["id"] & 0xFFFF == suite:
            return str(cipher["name"])
    return None


async def _read_flight(
    sock: socket.socket, server_name: str | None, options: ScanOptions
) -> ProbeOutcome | tuple[tuple[bytes, ...], int, int]:
    """Send a TLS 1.2 ClientHello and read the Certificate message from the records."""
    hello = Handshake(_tls12_context(), server_name).start()
    await _send_all(sock, hello)
    reader = FlightReader()
    received = 0
    while True:
        await _wait_readable(sock)
        try:
            data = sock.recv(_RECV_SIZE)
        except BlockingIOError:
            continue
        if not data:
            raise FlightError("the server closed the connection before its certificates")
        received += len(data)
        if received > options.max_handshake_bytes:
            raise FlightError(f"over {options.max_handshake_bytes} bytes without the certificates")
        flight = reader.feed(data)
        if flight is not None:
            return flight.chain, flight.version, flight.cipher_suite


async def _large_chain(
    target: Target,
    address: Address,
    options: ScanOptions,
    refused: ProbeOutcome,
    timings: Timings,
    until: float,
    deadline: float,
) -> ProbeOutcome:
    """The chain OpenSSL refused as too large, read from a TLS 1.2 flight by ``until``; else
    ``refused``. ``DEADLINE`` if the target's ``deadline`` comes first."""
    ip = address.ip
    try:
        with (
            trio.fail_at(min(until, deadline)),
            socket.socket(address.family, socket.SOCK_STREAM) as sock,
        ):
            sock.setblocking(False)
            await _connect(sock, address.sockaddr)
            if target.protocol is not None:  # the same plaintext dialogue first
                await _dialogue(sock, target.protocol, target)
            read = await _read_flight(sock, target.sni, options)
    except (OSError, FlightError, DialogueFailed, trio.TooSlowError) as exc:
        if isinstance(exc, trio.TooSlowError) and deadline <= until:
            return DEADLINE
        why = (
            exc.message
            if isinstance(exc, FlightError | DialogueFailed)
            else ("timed out" if isinstance(exc, trio.TooSlowError) else str(exc.strerror or exc))
        )
        return ProbeOutcome(
            error_kind=refused.error_kind,
            error=f"{refused.error}; the TLS 1.2 retry read no chain either ({why})",
            address=ip,
        )
    if isinstance(read, ProbeOutcome):  # pragma: no cover - _read_flight returns or raises
        return read
    chain, version, suite = read
    if not chain:
        return ProbeOutcome(
            error_kind=ErrorKind.NO_CERTIFICATE,
            error=f"{ip} sent an empty Certificate message",
            address=ip,
        )
    return ProbeOutcome(
        chain=chain[: options.max_chain_length],
        chain_sent=len(chain),
        address=ip,
        tls_version="TLSv1.2" if version == 0x0303 else f"0x{version:04x}",
        cipher=_cipher_name(suite),
        timings=timings,
    )


async def _attempt(
    target: Target,
    address: Address,
    options: ScanOptions,
    context: ssl.SSLContext,
    resolve_time: float,
    deadline: float,
) -> ProbeOutcome:
    ip = address.ip
    t0 = trio.current_time()
    try:
        sock = socket.socket(address.family, socket.SOCK_STREAM)
    except OSError as exc:
        kind, message = _os_error_kind(exc, "socket", ip)
        return ProbeOutcome(error_kind=kind, error=message, address=ip)
    try:  # not ``with sock``: that keeps a bound ``__exit__`` for the whole handshake
        sock.setblocking(False)
        # One cancel scope for both phases (see "Memory"): its deadline is the connect
        # timeout, then the handshake timeout, or the target's deadline if that comes first.
        phase = "connect"
        until = t0 + options.connect_timeout
        t1 = t0
        try:
            with trio.CancelScope(deadline=min(until, deadline)) as scope:
                await _connect(sock, address.sockaddr)
                phase = "handshake"
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t1 = trio.current_time()
                until = t1 + options.handshake_timeout
                scope.deadline = min(until, deadline)
                if target.protocol is not None:
                    await _dialogue(sock, target.protocol, target)
                # The handshake loop: inline, not a coroutine of its own (see "Memory").
                done = Handshake(context, target.sni)
                await _send_all(sock, done.start())
                received = 0
                while not done.done:
                    await _wait_readable(sock)  # the server speaks after us: wait, then read
                    try:
                        data = sock.recv(_RECV_SIZE)
                    except BlockingIOError:
                        continue
                    if not data:
                        done.feed_eof()
                    else:
                        received += len(data)
                        if received > options.max_handshake_bytes:
                            return ProbeOutcome(
                                error_kind=ErrorKind.TOO_LARGE,
                                error=f"{ip} sent over {options.max_handshake_bytes} bytes "
                                "without finishing the handshake",
                                address=ip,
                            )
                        done.feed(data)
                    del data  # not held while waiting for the next read
                    out = done.step()
                    if out:
                        try:
                            await _send_all(sock, out)
                        except OSError:
                            if not done.done:
                                raise
                    del out
        except HandshakeFailed as exc:
            if exc.kind is ErrorKind.NOT_TLS and target.protocol is not None:
                return ProbeOutcome(
                    error_kind=ErrorKind.PROTOCOL_ERROR,
                    error=f"{ip}: {target.protocol}: the server agreed to start TLS, then did not"
                    f" speak TLS ({exc.message})",
                    address=ip,
                )
            refused = ProbeOutcome(error_kind=exc.kind, error=f"{ip}: {exc.message}", address=ip)
            if exc.kind is not ErrorKind.TOO_LARGE:
                return refused
            timings = Timings(resolve=resolve_time, connect=t1 - t0)
            budget = options.connect_timeout + options.handshake_timeout
            return await _large_chain(
                target, address, options, refused, timings, trio.current_time() + budget, deadline
            )
        except DialogueFailed as exc:
            return ProbeOutcome(error_kind=exc.kind, error=f"{ip}: {exc.message}", address=ip)
        except OSError as exc:
            kind, message = _os_error_kind(exc, phase, ip)
            return ProbeOutcome(error_kind=kind, error=message, address=ip)
        if scope.cancelled_caught:
            if deadline <= until:
                return DEADLINE
            if phase == "connect":
                return ProbeOutcome(
                    error_kind=ErrorKind.TIMEOUT_CONNECT,
                    error=f"TCP connect to {ip} port {target.port} took over "
                    f"{options.connect_timeout:g}s",
                    address=ip,
                )
            what = "the TLS handshake"
            if target.protocol is not None:
                what = f"the {target.protocol} dialogue and the TLS handshake"
            return ProbeOutcome(
                error_kind=ErrorKind.TIMEOUT_HANDSHAKE,
                error=f"{ip} did not complete {what} within {options.handshake_timeout:g}s",
                address=ip,
            )
    finally:
        sock.close()
    t2 = trio.current_time()
    timings = Timings(resolve=resolve_time, connect=t1 - t0, handshake=t2 - t1)
    if not done.chain:
        return ProbeOutcome(
            error_kind=ErrorKind.NO_CERTIFICATE,
            error=f"{ip} completed the handshake without sending a certificate",
            address=ip,
            tls_version=done.version,
            cipher=done.cipher,
            timings=timings,
        )
    return ProbeOutcome(
        chain=tuple(done.chain[: options.max_chain_length]),
        chain_sent=len(done.chain),
        address=ip,
        tls_version=done.version,
        cipher=done.cipher,
        timings=timings,
    )


# Failures after which trying another address of the same name can help.
_NEXT_ADDRESS = frozenset({ErrorKind.REFUSED, ErrorKind.UNREACHABLE, ErrorKind.TIMEOUT_CONNECT})


async def probe(
    target: Target,
    *,
    options: ScanOptions,
    context: ssl.SSLContext,
    resolver: Resolver,
    gate: Gate,
    deadline: TargetDeadline | None = None,
) -> ProbeOutcome:
    """Make one attempt at ``target``: every resolved address in turn until one connects.

    With ``deadline`` (the scheduler's), no phase runs past ``deadline.deadline``, read as each
    phase starts; if it comes first, the result is ``DEADLINE``. Without it, the caller bounds
    the attempt.
    """
    t0 = trio.current_time()
    host = target.address or target.host
    literal = literal_address(host, target.port)
    if literal is not None:  # no lookup, no wait
        addresses = [literal]
    else:
        try:
            if deadline is None:
                addresses = await resolver.resolve(host, target.port)
            else:
                with trio.move_on_at(deadline.deadline) as scope:
                    addresses = await resolver.resolve(host, target.port)
                if scope.cancelled_caught:
                    return DEADLINE
        except ResolveFailed as exc:
            return ProbeOutcome(error_kind=exc.kind, error=exc.message)
    resolve_time = trio.current_time() - t0
    outcome: ProbeOutcome | None = None
    for address in addresses:
        async with gate(address.ip):
            # Read inside the gate: the scheduler moves the deadline by the time waited there.
            until = math.inf if deadline is None else deadline.deadline
            outcome = await _attempt(target, address, options, context, resolve_time, until)
        if outcome.error_kind not in _NEXT_ADDRESS:  # DEADLINE's TIMEOUT included
            break
    if outcome is None:
        return ProbeOutcome(error_kind=ErrorKind.DNS, error=f"no address for {target.host}")
    return outcome
