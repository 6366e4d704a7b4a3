"""Real TLS and raw TCP servers on loopback, for integration tests.

Theory of operation
-------------------
chainscan's tests run inside trio, often on a ``MockClock`` that jumps virtual time. The servers
they talk to must not care, so each server here runs in plain OS threads, with blocking sockets
and the standard library's ``ssl``: it works the same whatever the event loop under test is
doing, and a test can stall, cancel or time-travel without starving it.

Each server has one accept thread and one short-lived thread per accepted connection, so a slow
or silent client never holds up the accept loop. The accept thread waits in a selector on the
listening socket and on one end of a socketpair; ``stop()`` writes to the other end to wake it.
Connection threads are woken at teardown by ``shutdown(SHUT_RDWR)`` on their socket, which makes
any blocked ``recv`` (inside a TLS handshake or a handler) return EOF at once. Each thread closes
its own socket; ``stop()`` joins them all with a timeout and raises if one is stuck, so a test
leaks no thread, no socket and no ``ResourceWarning`` (warnings are errors in this suite).

Servers bind to port 0 and report the port the kernel chose. A test sees a :class:`ServerHandle`:
host, port, the DER chain served per SNI name (to compare bytes with what chainscan saved), and
counters that the server threads update (connections accepted, handshakes completed, connections
dropped, one :class:`ConnectionRecord` per finished connection). A client can return before the
server thread has counted, so wait with :meth:`ServerHandle.wait_for` (it blocks the calling
thread for at most its timeout: from a trio test, call it after the scan has finished).

Closing: a server that is done with a connection sends its FIN (``shutdown(SHUT_WR)``) and reads
until the client closes (or :data:`DRAIN_TIMEOUT`) before ``close()``. Closing with unread bytes
in the receive buffer makes the kernel answer with an RST, and a test expecting ``eof`` would
see ``reset``. :func:`reset` is the deliberate RST (``SO_LINGER`` 0, then close).

TLS 1.3 servers send no session tickets by default (``num_tickets=0``): tickets are written after
the client's Finished, often after a scanning client has already gone, and would turn a finished
handshake into a server-side write error and the counters into a race.

Legacy TLS 1.0 needs the local OpenSSL to still offer it at ``@SECLEVEL=0``. It is probed once
at import with a real loopback handshake; :data:`LEGACY_TLS_UNAVAILABLE` holds the reason when
it cannot, and :func:`require_legacy_tls` turns that into ``pytest.skip``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import pytest
from cryptography.hazmat.primitives import hashes

from .pki import CA, Issued, write_server_files

__all__ = [
    "DRAIN_TIMEOUT",
    "IPV6_UNAVAILABLE",
    "JOIN_TIMEOUT",
    "LEGACY_CIPHERS",
    "LEGACY_TLS_UNAVAILABLE",
    "TLS_ALERT_HANDSHAKE_FAILURE",
    "ConnectionRecord",
    "FlakyServer",
    "Handler",
    "ScriptedServer",
    "ServedChain",
    "ServerHandle",
    "SilentServer",
    "TLSServer",
    "close_after_client_hello",
    "http_banner",
    "legacy_chain",
    "legacy_client_context",
    "legacy_server",
    "read_client_hello",
    "refused_port",
    "require_ipv6",
    "require_legacy_tls",
    "reset",
    "reset_after_client_hello",
    "served_chain",
    "slow_drip",
    "ssh_banner",
    "tls_alert",
]

JOIN_TIMEOUT = 5.0
"""Seconds ``stop()`` waits for the server's threads before declaring one stuck."""
DRAIN_TIMEOUT = 2.0
"""Seconds a server waits for the client's FIN after sending its own."""

LEGACY_CIPHERS = "ALL:@SECLEVEL=0"
"""OpenSSL cipher string that allows TLS 1.0, SHA-1 and 1024-bit RSA."""

TLS_ALERT_HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"
"""A TLS record: alert, TLS 1.2, length 2, fatal (2), handshake_failure (40)."""

Handler = Callable[[socket.socket], None]
"""What a :class:`ScriptedServer` runs per connection, in its own thread."""


# --------------------------------------------------------------------------------------------
# Values


class ServedChain(NamedTuple):
    """What a TLS server loads for one SNI name, and the exact DER it will send."""

    certfile: str
    keyfile: str
    der: tuple[bytes, ...]
    """The certificates in ``certfile``, in file order: what goes on the wire, leaf first."""


def served_chain(tmp_dir: Path | str, leaf: Issued, *cas: CA) -> ServedChain:
    """Write the leaf and ``cas`` (in that order) to ``tmp_dir`` and describe what is served.

    ``der`` is read back from the written certfile, so it is byte-for-byte what OpenSSL sends.
    """
    certfile, keyfile = write_server_files(Path(tmp_dir), leaf, *cas)
    text = Path(certfile).read_text("ascii")
    end = "-----END CERTIFICATE-----"
    blocks = [block + end for block in text.split(end) if block.strip()]
    der = tuple(ssl.PEM_cert_to_DER_cert(block.strip()) for block in blocks)
    return ServedChain(str(certfile), str(keyfile), der)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRecord:
    """What happened on one accepted connection, recorded when its thread finishes."""

    index: int
    """0-based order of acceptance."""
    peer: tuple[str, int]
    """Client address and port."""
    sni: str | None = None
    """Server name the client sent (TLS servers only); None when it sent none."""
    version: str | None = None
    """Negotiated protocol, e.g. ``TLSv1.3``, when the handshake completed."""
    cipher: str | None = None
    """Negotiated cipher suite (OpenSSL name), when the handshake completed."""
    dropped: bool = False
    """A :class:`FlakyServer` closed or reset this connection on purpose."""
    error: str | None = None
    """Why the server side failed (``SSLEOFError: ...``, ``BrokenPipeError: ...``), if it did."""


@dataclass(eq=False, kw_only=True)
class ServerHandle:
    """A running server as a test sees it. Counters are updated by the server's threads."""

    host: str
    """Address the server listens on: ``127.0.0.1`` or ``::1``."""
    port: int
    """Port the kernel assigned."""
    chains: Mapping[str | None, tuple[bytes, ...]] = field(default_factory=dict)
    """DER chain served per SNI name; the None key is what no or an unknown SNI gets."""
    accepted: int = 0
    """TCP connections accepted."""
    handshakes: int = 0
    """TLS handshakes the server completed."""
    dropped: int = 0
    """Connections a :class:`FlakyServer` dropped on purpose."""
    records: list[ConnectionRecord] = field(default_factory=list)
    """One record per finished connection, in the order they finished."""
    accept_errors: list[str] = field(default_factory=list)
    """Errors of ``accept()`` itself (EMFILE, ...); normally empty."""
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def hostport(self) -> str:
        """``127.0.0.1:PORT`` or ``[::1]:PORT``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def chain_for(self, sni: str | None) -> tuple[bytes, ...]:
        """The DER chain a client sending ``sni`` receives (unknown names get the default)."""
        return self.chains[sni] if sni in self.chains else self.chains[None]

    @property
    def snis(self) -> list[str | None]:
        """SNI received per finished connection, in order of acceptance."""
        with self._changed:
            return [r.sni for r in sorted(self.records, key=lambda r: r.index)]

    @property
    def errors(self) -> list[str]:
        """Server-side errors of finished connections, in order of acceptance."""
        with self._changed:
            ordered = sorted(self.records, key=lambda r: r.index)
            return [r.error for r in ordered if r.error is not None]

    def wait_for(
        self, predicate: Callable[[ServerHandle], bool], timeout: float = JOIN_TIMEOUT
    ) -> bool:
        """Block until ``predicate(self)`` holds (checked at each update); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def wait_finished(self, n: int, timeout: float = JOIN_TIMEOUT) -> bool:
        """Block until ``n`` connections have finished (their records exist)."""
        return self.wait_for(lambda h: len(h.records) >= n, timeout)

    def _bump(self, counter: str) -> int:
        """Add one to ``counter``; return its value before."""
        with self._changed:
            before: int = getattr(self, counter)
            setattr(self, counter, before + 1)
            self._changed.notify_all()
            return before

    def _add_record(self, record: ConnectionRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def _add_accept_error(self, error: str) -> None:
        with self._changed:
            self.accept_errors.append(error)
            self._changed.notify_all()


# --------------------------------------------------------------------------------------------
# Small socket helpers (usable inside handlers)


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN (``SO_LINGER`` on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only if the peer closed first."""
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_client_hello(sock: socket.socket) -> bytes:
    """Read one whole TLS record (the ClientHello) and return it.

    Reads the 5-byte record header, then as many bytes as it announces. If the peer sends
    something that is not a TLS handshake record, returns what the first ``recv`` gave.
    """
    header = _recv_exactly(sock, 5)
    if len(header) < 5 or header[0] != 0x16:
        return header
    (length,) = struct.unpack("!H", header[3:5])
    return header + _recv_exactly(sock, length)


def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _drain(sock: socket.socket, timeout: float = DRAIN_TIMEOUT) -> None:
    """Send our FIN, then read and discard until the peer closes or ``timeout`` passes."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Ready-made handlers for ScriptedServer


def http_banner(sock: socket.socket) -> None:
    """Behave like a plain HTTP server hit by a ClientHello: read it, answer 400, close."""
    read_client_hello(sock)
    body = b"Bad Request\n"
    sock.sendall(
        b"HTTP/1.1 400 Bad Request\r\nServer: chainscan-test\r\nContent-Type: text/plain\r\n"
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


def ssh_banner(sock: socket.socket) -> None:
    """Behave like sshd: send the identification string first, read the client's bytes, close."""
    sock.sendall(b"SSH-2.0-OpenSSH_9.6 chainscan-test\r\n")
    read_client_hello(sock)
    sock.sendall(b"Invalid SSH identification string.\r\n")


def reset_after_client_hello(sock: socket.socket) -> None:
    """Read the ClientHello, then reset the connection."""
    read_client_hello(sock)
    reset(sock)


def close_after_client_hello(sock: socket.socket) -> None:
    """Read the ClientHello, then close cleanly (the client sees EOF)."""
    read_client_hello(sock)


def tls_alert(sock: socket.socket) -> None:
    """Read the ClientHello, answer a fatal handshake_failure alert, close."""
    read_client_hello(sock)
    sock.sendall(TLS_ALERT_HANDSHAKE_FAILURE)


_DRIP_RECORD = b"\x16\x03\x03\x40\x00" + bytes(16384)
"""A TLS handshake record header announcing 16 KiB, then the 16 KiB: the client keeps waiting."""


def slow_drip(interval: float, data: bytes = _DRIP_RECORD) -> Handler:
    """A handler that sends ``data`` one byte every ``interval`` seconds until the peer closes.

    The default data starts a 16 KiB TLS handshake record, so a TLS client waits for the rest
    of the record rather than failing at the first byte: only a handshake timeout ends it. Once
    ``data`` is exhausted the connection is held open, silent, until the client closes. Bytes
    the client sends are read and ignored.
    """

    def drip(sock: socket.socket) -> None:
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            # Waiting for readability instead of sleeping: the client closing (or stop()
            # shutting the socket down) ends the wait at once.
            if _wait_readable(sock, interval) and not sock.recv(65536):
                return
        while sock.recv(65536):
            pass

    drip.__name__ = drip.__qualname__ = f"slow_drip({interval!r})"
    return drip


# --------------------------------------------------------------------------------------------
# Servers


class _Conn:
    """One accepted connection, owned by its thread; ``sock`` may become an SSLSocket."""

    def __init__(self, index: int, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.index = index
        self.sock = sock
        self.peer = peer
        self.sni: str | None = None
        self.version: str | None = None
        self.cipher: str | None = None
        self.dropped = False
        self.error: str | None = None

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            index=self.index,
            peer=self.peer,
            sni=self.sni,
            version=self.version,
            cipher=self.cipher,
            dropped=self.dropped,
            error=self.error,
        )


class _Server:
    """Accept loop in a thread, one thread per connection, clean stop. Subclasses define
    ``_serve(conn)``: talk on ``conn.sock``; the base then closes it cleanly."""

    kind = "server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.handle: ServerHandle | None = None
        self._lock = threading.Lock()  # guards _conns and every close/shutdown of their sockets
        self._conns: dict[int, _Conn] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    def _chains(self) -> dict[str | None, tuple[bytes, ...]]:
        return {}

    def _serve(self, conn: _Conn) -> None:
        raise NotImplementedError

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServerHandle:
        if self.handle is not None:
            raise RuntimeError(f"{self!r} was already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, 0), family=family, backlog=1024)
        try:
            listener.setblocking(False)
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.handle = ServerHandle(
            host=self.host, port=listener.getsockname()[1], chains=self._chains()
        )
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.kind}:{self.handle.port}", daemon=True
        )
        self._accept_thread.start()
        return self.handle

    def __repr__(self) -> str:
        where = "not started" if self.handle is None else self.handle.hostport
        return f"<{type(self).__name__} {where}>"

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        assert self.handle is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                try:
                    sock, peer = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # EMFILE and friends: note it, breathe, go on
                    self.handle._add_accept_error(_describe(exc))
                    self._stopping.wait(0.05)
                    continue
                sock.setblocking(True)
                index = self.handle._bump("accepted")
                conn = _Conn(index, sock, (peer[0], peer[1]))
                thread = threading.Thread(
                    target=self._run_conn,
                    args=(conn,),
                    name=f"{self.kind}:{self.handle.port}#{index}",
                    daemon=True,
                )
                with self._lock:
                    self._conns[index] = conn
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
                thread.start()

    def _run_conn(self, conn: _Conn) -> None:
        assert self.handle is not None
        try:
            self._serve(conn)
            if conn.sock.fileno() != -1:
                _drain(conn.sock)
        except Exception as exc:
            conn.error = _describe(exc)
        finally:
            with self._lock:
                del self._conns[conn.index]
                conn.sock.close()
            self.handle._add_record(conn.record())

    def stop(self) -> None:
        """Stop accepting, wake and join every thread, close every socket. Idempotent."""
        if self.handle is None or self._stopping.is_set():
            return
        assert self._accept_thread is not None and self._wake_w is not None
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        deadline = time.monotonic() + JOIN_TIMEOUT
        self._accept_thread.join(JOIN_TIMEOUT)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        with self._lock:
            for conn in self._conns.values():
                # The plain socket method on purpose: SSLSocket.shutdown() would also drop the
                # SSL object under the thread that is using it. Under the lock, so the fd
                # cannot be closed (and reused) by the connection thread meanwhile.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in [self._accept_thread, *self._threads] if t.is_alive()]
        if stuck:
            raise RuntimeError(f"{self!r}: threads still running after stop(): {stuck}")


class TLSServer(_Server):
    """A TLS server that sends a different certificate chain per SNI name.

    ``chains`` maps a server name to ``(certfile, keyfile, der_chain)`` (a :class:`ServedChain`);
    the None key is the chain for clients that send no SNI or an unknown one (without it, the
    first entry is the default). Each connection completes the handshake, then closes.
    ``min_version``/``max_version``/``ciphers`` configure every context; ``num_tickets`` is the
    number of TLS 1.3 session tickets (0 by default, see the module docstring).
    """

    kind = "tls"

    def __init__(
        self,
        chains: Mapping[str | None, ServedChain | tuple[str | Path, str | Path, Iterable[bytes]]],
        host: str = "127.0.0.1",
        *,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
        num_tickets: int = 0,
    ) -> None:
        if not chains:
            raise ValueError("TLSServer needs at least one chain")
        super().__init__(host)
        default = None if None in chains else next(iter(chains))
        self._ders = {name: tuple(der) for name, (_c, _k, der) in chains.items()}
        self._ders.setdefault(None, self._ders[default])
        self._contexts = {
            name: self._context(certfile, keyfile, min_version, max_version, ciphers, num_tickets)
            for name, (certfile, keyfile, _der) in chains.items()
        }
        self._default_context = self._contexts[default]
        self._local = threading.local()

    def _context(
        self,
        certfile: str | Path,
        keyfile: str | Path,
        min_version: ssl.TLSVersion | None,
        max_version: ssl.TLSVersion | None,
        ciphers: str | None,
        num_tickets: int,
    ) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if ciphers is not None:
            # Before loading the chain: OpenSSL checks key sizes and signature hashes against
            # the security level when the certificate is loaded.
            ctx.set_ciphers(ciphers)
        with warnings.catch_warnings():
            # Setting TLSv1 / TLSv1_1 warns (DeprecationWarning), and warnings are errors here.
            warnings.simplefilter("ignore", DeprecationWarning)
            if min_version is not None:
                ctx.minimum_version = min_version
            if max_version is not None:
                ctx.maximum_version = max_version
        ctx.num_tickets = num_tickets
        ctx.load_cert_chain(certfile, keyfile)
        ctx.sni_callback = self._on_sni
        return ctx

    def _chains(self) -> dict[str | None, tuple[bytes, ...]]:
        return dict(self._ders)

    def _on_sni(
        self, ssl_sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, ctx: ssl.SSLContext
    ) -> None:
        # Runs in the connection's thread, inside do_handshake(). Must not raise: an exception
        # here is "unraisable", which this suite turns into an error somewhere else.
        self._local.sni = name
        chosen = self._contexts.get(name)
        if chosen is not None and chosen is not ctx:
            ssl_sock.context = chosen

    def _serve(self, conn: _Conn) -> None:
        self._handshake(conn)

    def _handshake(self, conn: _Conn) -> None:
        assert self.handle is not None
        self._local.sni = None
        with self._lock:  # no I/O here; see stop() for why the swap is under the lock
            tls = self._default_context.wrap_socket(
                conn.sock, server_side=True, do_handshake_on_connect=False
            )
            conn.sock = tls
        try:
            tls.do_handshake()
        finally:
            conn.sni = self._local.sni
        conn.version = tls.version()
        cipher = tls.cipher()
        conn.cipher = None if cipher is None else cipher[0]
        self.handle._bump("handshakes")


class FlakyServer(TLSServer):
    """A :class:`TLSServer` that drops its first ``n_drop`` connections, then serves normally.

    A dropped connection is closed at once without reading: with ``reset=False`` the client sees
    EOF (FIN), with ``reset=True`` an RST (``SO_LINGER`` 0). Other arguments as ``TLSServer``.
    """

    kind = "flaky"

    def __init__(
        self,
        n_drop: int,
        chains: Mapping[str | None, ServedChain | tuple[str | Path, str | Path, Iterable[bytes]]],
        host: str = "127.0.0.1",
        *,
        reset: bool = False,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
        num_tickets: int = 0,
    ) -> None:
        super().__init__(
            chains,
            host,
            min_version=min_version,
            max_version=max_version,
            ciphers=ciphers,
            num_tickets=num_tickets,
        )
        self.n_drop = n_drop
        self.reset = reset

    def _serve(self, conn: _Conn) -> None:
        assert self.handle is not None
        if conn.index >= self.n_drop:
            self._handshake(conn)
            return
        conn.dropped = True
        self.handle._bump("dropped")
        if self.reset:
            with self._lock:
                reset(conn.sock)
        # else: the base sends FIN and waits for the client's, so the client sees a clean EOF


class SilentServer(_Server):
    """Accepts TCP connections and never sends a byte; holds each until the client closes
    (or teardown). What the client sends is read and ignored."""

    kind = "silent"

    def _serve(self, conn: _Conn) -> None:
        while conn.sock.recv(65536):
            pass


class ScriptedServer(_Server):
    """Runs ``handler(sock)`` per connection in its own thread, then closes cleanly (unless the
    handler closed or reset the socket itself). An exception from the handler is recorded as
    the connection's ``error``, never raised."""

    kind = "scripted"

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.handler = handler

    def _serve(self, conn: _Conn) -> None:
        self.handler(conn.sock)

    def __repr__(self) -> str:
        name = getattr(self.handler, "__name__", repr(self.handler))
        where = "not started" if self.handle is None else self.handle.hostport
        return f"<ScriptedServer {name} {where}>"


def refused_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` with nothing listening: bound to port 0, noted, closed.

    Another process could take it in between; on loopback in a test run that does not happen.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------------------------
# Legacy TLS 1.0 and IPv6: what this machine can do, probed once at import


def legacy_chain(tmp_dir: Path | str) -> ServedChain:
    """An RSA-1024 / SHA-1 chain (``legacy.test`` leaf + its root), as a 2000s server had."""
    root = CA("chainscan legacy root", key_type="rsa", key_size=1024, hash=hashes.SHA1())
    leaf = root.issue("legacy.test", key_type="rsa", key_size=1024, hash=hashes.SHA1())
    return served_chain(tmp_dir, leaf, root)


def legacy_server(chains: Mapping[str | None, ServedChain], host: str = "127.0.0.1") -> TLSServer:
    """A TLS 1.0-only server at ``@SECLEVEL=0`` (so it can load RSA-1024 / SHA-1 chains)."""
    return TLSServer(
        chains,
        host,
        min_version=ssl.TLSVersion.TLSv1,
        max_version=ssl.TLSVersion.TLSv1,
        ciphers=LEGACY_CIPHERS,
    )


def legacy_client_context() -> ssl.SSLContext:
    """A stdlib client context that speaks only TLS 1.0, at ``@SECLEVEL=0``, verifying nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers(LEGACY_CIPHERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


def _probe_legacy_tls() -> str | None:
    """None if a TLS 1.0 handshake with a legacy chain works on loopback; else why not."""
    why = f"local OpenSSL ({ssl.OPENSSL_VERSION}) cannot do TLS 1.0 at SECLEVEL=0"
    try:
        with tempfile.TemporaryDirectory(prefix="chainscan-probe-") as tmp:
            with legacy_server({None: legacy_chain(tmp)}) as handle:
                raw = socket.create_connection(handle.address, timeout=5)
                with raw, legacy_client_context().wrap_socket(raw) as tls:
                    version = tls.version()
            if version != "TLSv1":
                return f"{why}: negotiated {version}"
    except Exception as exc:  # any failure is the reason to skip, shown in the skip message
        return f"{why}: {_describe(exc)}"
    return None


def _probe_ipv6() -> str | None:
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind to ::1 ({_describe(exc)})"
    return None


LEGACY_TLS_UNAVAILABLE: str | None = _probe_legacy_tls()
"""Why the local OpenSSL cannot serve TLS 1.0 to a TLS 1.0 client, or None if it can."""
IPV6_UNAVAILABLE: str | None = _probe_ipv6()
"""Why ``::1`` cannot be used on this machine, or None if it can."""


def require_legacy_tls() -> None:
    """``pytest.skip`` the calling test if TLS 1.0 is unavailable locally."""
    if LEGACY_TLS_UNAVAILABLE is not None:
        pytest.skip(LEGACY_TLS_UNAVAILABLE)


def require_ipv6() -> None:
    """``pytest.skip`` the calling test if ``::1`` is unavailable."""
    if IPV6_UNAVAILABLE is not None:
        pytest.skip(IPV6_UNAVAILABLE)
