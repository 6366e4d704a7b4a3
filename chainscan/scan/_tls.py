"""Sans-IO TLS handshake: bytes in, bytes out, a certificate chain at the end.

Theory of operation
-------------------
chainscan only needs the first half of a TLS conversation: the ClientHello out, the server's
flight (ServerHello, Certificate, ...) in. It never reads application data. So instead of a
general stream wrapper it drives the standard library's non-blocking ``ssl.SSLObject`` over two
``ssl.MemoryBIO`` buffers, exactly as trio's ``_ssl.py`` does internally, but with none of the
machinery for reads, writes, renegotiation or close-notify:

    handshake = Handshake(context, server_name)
    send(handshake.start())                 # the ClientHello
    while not handshake.done:
        handshake.feed(recv())              # what the server sent
        send(handshake.step())              # our next flight, maybe empty

``step()`` runs ``do_handshake()`` until OpenSSL wants more input (``SSLWantReadError``), and
returns whatever OpenSSL wrote to the outgoing buffer. The module opens no socket and knows
no clock, so it is tested with in-memory server objects, and the I/O layer (``_probe``) owns
every timeout.

The client context verifies nothing (we want the chain even when it is broken, expired or
self-signed) and accepts anything a server may still speak: TLS 1.0 to 1.3, every cipher,
OpenSSL security level 0, legacy (RFC 5746-less) renegotiation. It loads no CA bundle, which
is also what makes a context cheap to share across thousands of connections.

Failures become :class:`HandshakeFailed` with an :class:`~chainscan.ErrorKind`: an alert from
the server is ``tls-alert``, bytes that are not TLS records are ``not-tls``, an EOF is ``eof``.
If the server's Certificate message had already arrived when the handshake failed (a server that
demands a client certificate, for example) the chain is still returned: it is what we came for.

Memory: a connection waiting for the server's answer holds its ``Handshake`` the whole time,
so it keeps no more than it needs. It holds OpenSSL's connection object as ``_ssl`` makes it
(``SSLContext._wrap_bio``, what ``ssl.SSLObject`` wraps), not an ``ssl.SSLObject``: that
wrapper adds an instance, its ``__dict__`` and a weak reference to it (about 250 bytes per
connection, 10,000 connections in flight are 2.5 MB) and nothing we use. The chain is read with
the connection object's ``get_unverified_chain()`` (there since Python 3.10; public on
``SSLObject`` only from 3.13), one DER encoding per certificate.

OpenSSL's own share, about 41 KiB per handshake waiting for the ServerHello (OpenSSL 3.0), is
out of our reach: about 9.5 KiB is the connection object as created, the rest appears once
the ClientHello is written (by OpenSSL's source, mostly the 16 KiB handshake message buffer and
the ~17 KiB record read buffer of the first read that found nothing yet). CPython already sets
``SSL_MODE_RELEASE_BUFFERS`` on every context, and the ``ssl`` module has no setting for
either buffer's size (nor for the max fragment length, which would also change the
ClientHello), so nothing in the context makes them smaller.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from .._models import ErrorKind

__all__ = ["Handshake", "HandshakeFailed", "client_context", "unverified_chain"]

# ssl.OP_LEGACY_SERVER_CONNECT exists from 3.12; the bit is the same OpenSSL flag on 3.11.
_OP_LEGACY_SERVER_CONNECT = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
_ENCODING_DER = 2  # _ssl.ENCODING_DER

_SSLObj = Any
"""``_ssl._SSLSocket``: OpenSSL's connection object, as ``SSLContext._wrap_bio`` returns it."""

# OpenSSL reason codes that mean "the peer does not speak TLS at all".
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNSUPPORTED_PROTOCOL",
        "RECORD_LENGTH_MISMATCH",
    }
)


class HandshakeFailed(Exception):
    """The handshake cannot go on. ``kind`` says why in the manifest's words."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def client_context() -> ssl.SSLContext:
    """A client context that accepts any server and verifies nothing.

    Share one context between all connections of a scan: creating one costs far more than a
    handshake, and nothing in it is per-connection.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    # Level 0 lets OpenSSL talk to RSA-1024 / SHA-1 / TLS 1.0 servers; we only read their chain.
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    ctx.options |= _OP_LEGACY_SERVER_CONNECT | ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    return ctx


def unverified_chain(obj: _SSLObj) -> list[bytes]:
    """DER certificates as the server sent them (empty before its Certificate message)."""
    try:
        chain = obj.get_unverified_chain()
    except (ValueError, ssl.SSLError):
        return []
    if not chain:
        return []
    return [cert.public_bytes(_ENCODING_DER) for cert in chain]


def _classify(exc: ssl.SSLError) -> HandshakeFailed:
    reason = getattr(exc, "reason", None) or ""
    text = str(exc)
    if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        return HandshakeFailed(
            ErrorKind.EOF, "the server closed the connection during the handshake"
        )
    if reason == "EXCESSIVE_MESSAGE_SIZE":
        return HandshakeFailed(
            ErrorKind.TOO_LARGE,
            "the server's handshake message is larger than OpenSSL accepts (a certificate chain "
            "over 100 KiB)",
        )
    if "ALERT" in reason:
        alert = reason.split("ALERT_", 1)[-1].lower()
        return HandshakeFailed(ErrorKind.TLS_ALERT, f"the server sent the TLS alert {alert}")
    if reason in _NOT_TLS_REASONS:
        return HandshakeFailed(
            ErrorKind.NOT_TLS, f"the server does not speak TLS on this port ({reason.lower()})"
        )
    return HandshakeFailed(ErrorKind.TLS_ERROR, f"TLS handshake failed: {reason or text}")


class Handshake:
    """One client handshake over memory buffers. See the module docstring for the protocol."""

    __slots__ = ("_incoming", "_obj", "_outgoing", "chain", "done")

    def __init__(self, context: ssl.SSLContext, server_name: str | None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # What ``context.wrap_bio`` does, minus the ssl.SSLObject around the result (see the
        # module docstring): the same hostname encoding, the same OpenSSL object.
        self._obj: _SSLObj = context._wrap_bio(  # type: ignore[attr-defined]
            self._incoming,
            self._outgoing,
            server_side=False,
            server_hostname=context._encode_hostname(server_name),  # type: ignore[attr-defined]
        )
        self.done = False
        """True once the server's certificates are in hand (handshake finished)."""
        self.chain: Sequence[bytes] = ()
        """DER chain (a list), filled in when ``done`` becomes true; until then the shared
        empty tuple, not an empty list of its own per connection in flight."""

    def start(self) -> bytes:
        """The ClientHello to send first."""
        return self.step()

    def feed(self, data: bytes) -> None:
        """Bytes received from the server."""
        self._incoming.write(data)

    def feed_eof(self) -> None:
        """The server closed its side; the next ``step()`` raises ``HandshakeFailed``."""
        self._incoming.write_eof()

    def step(self) -> bytes:
        """Advance the handshake; return the bytes to send (maybe empty).

        Raises HandshakeFailed when the handshake cannot complete and no chain was received.
        """
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return self._outgoing.read()
        except ssl.SSLError as exc:
            chain = unverified_chain(self._obj)
            if not chain:
                raise _classify(exc) from None
            # The Certificate message arrived before the failure: that is all we need.
            self.chain = chain
            self.done = True
            return b""
        self.chain = unverified_chain(self._obj)
        self.done = True
        return self._outgoing.read()

    @property
    def version(self) -> str | None:
        """Negotiated protocol, e.g. ``TLSv1.3`` (None before or after a failed handshake)."""
        try:
            version: str | None = self._obj.version()
        except (ValueError, ssl.SSLError):
            return None
        return version

    @property
    def cipher(self) -> str | None:
        """Negotiated cipher suite name."""
        try:
            info = self._obj.cipher()
        except (ValueError, ssl.SSLError):
            return None
        return str(info[0]) if info else None
