"""Sans-IO reader of a TLS 1.2 server flight: records in, the Certificate message's chain out.

Theory of operation
-------------------
OpenSSL refuses a Certificate handshake message over 100 KiB (``EXCESSIVE_MESSAGE_SIZE``) and
Python cannot raise that cap, so a server with a huge chain (a leaf with 10,000 names, say)
gives no chain through ``ssl``. Up to TLS 1.2 the server's Certificate message travels in
plaintext, so chainscan reads it itself: ``_probe`` sends a TLS 1.2 ClientHello (made by
``ssl``, so it is an ordinary one) and feeds everything the server answers to
:class:`FlightReader`, which

* splits the byte stream into records (5-byte header: type, version, length up to
  2^14 + 2048), keeping only handshake records (type 22) and failing on an alert (21), on
  a ChangeCipherSpec or application data before the Certificate message, or on anything that
  is not a TLS record at all;
* joins handshake records into handshake messages (4-byte header: type, 24-bit length), which
  may span any number of records;
* reads the ServerHello (type 2) for the version and cipher suite (a TLS 1.3 ServerHello,
  which would encrypt the Certificate message, is refused: the ClientHello does not offer 1.3,
  so only a broken server sends one), and the Certificate message (type 11): a 24-bit list
  length, then 24-bit-length-prefixed DER certificates.

Nothing is kept but the bytes of the handshake message being read, and the caller bounds the
total it feeds (``max_handshake_bytes``). Every malformed length is :class:`FlightError`,
never an exception of another type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Flight", "FlightError", "FlightReader"]

_HANDSHAKE = 22
_ALERT = 21
_SERVER_HELLO = 2
_CERTIFICATE = 11
_MAX_RECORD = 2**14 + 2048
_TLS13 = 0x0304
_SUPPORTED_VERSIONS = 43
_HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


class FlightError(Exception):
    """The server's answer is not a TLS 1.2 flight with a Certificate message."""

    def __init__(self, message: str, *, alert: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.alert = alert
        """The server sent a TLS alert (else: a protocol violation or not TLS)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flight:
    """What the reader found: the chain, leaf first, and what the ServerHello said."""

    chain: tuple[bytes, ...]
    version: int
    """The ServerHello's version, e.g. 0x0303 for TLS 1.2."""
    cipher_suite: int


def _u24(data: bytes | bytearray, at: int) -> int:
    return int.from_bytes(data[at : at + 3], "big")


def _server_hello(body: bytes) -> tuple[int, int]:
    """(version, cipher suite) of a ServerHello body; FlightError for TLS 1.3 or garbage."""
    if len(body) < 38:
        raise FlightError("the ServerHello is truncated")
    version = int.from_bytes(body[0:2], "big")
    if body[2:34] == _HELLO_RETRY_RANDOM:
        raise FlightError("the server asked for a HelloRetryRequest (TLS 1.3)")
    session_length = body[34]
    at = 35 + session_length
    if len(body) < at + 3:
        raise FlightError("the ServerHello is truncated")
    suite = int.from_bytes(body[at : at + 2], "big")
    at += 3  # cipher suite, compression method
    if len(body) >= at + 2:
        end = min(len(body), at + 2 + int.from_bytes(body[at : at + 2], "big"))
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(body[at : at + 2], "big")
            size = int.from_bytes(body[at + 2 : at + 4], "big")
            if kind == _SUPPORTED_VERSIONS and size == 2:
                version = int.from_bytes(body[at + 4 : at + 6], "big")
            at += 4 + size
    if version >= _TLS13:
        raise FlightError("the server chose TLS 1.3: its Certificate message is encrypted")
    return version, suite


def _certificates(body: bytes) -> tuple[bytes, ...]:
    if len(body) < 3 or _u24(body, 0) != len(body) - 3:
        raise FlightError("the Certificate message's list length is wrong")
    chain = []
    at = 3
    while at < len(body):
        if at + 3 > len(body):
            raise FlightError("a certificate's length is truncated")
        size = _u24(body, at)
        if size == 0 or at + 3 + size > len(body):
            raise FlightError("a certificate's length runs past the message")
        chain.append(bytes(body[at + 3 : at + 3 + size]))
        at += 3 + size
    return tuple(chain)


class FlightReader:
    """Feed the server's bytes; :meth:`feed` returns the :class:`Flight` once it is complete."""

    __slots__ = ("_hello", "_message", "_records")

    def __init__(self) -> None:
        self._records = bytearray()
        """Bytes not yet split into records."""
        self._message = bytearray()
        """Handshake bytes not yet split into messages."""
        self._hello: tuple[int, int] | None = None

    def feed(self, data: bytes) -> Flight | None:
        """Take more bytes; the flight when its Certificate message is in, else None.

        Raises :class:`FlightError` when the stream cannot lead to a Certificate message.
        """
        self._records += data
        while len(self._records) >= 5:
            kind = self._records[0]
            if self._records[1] != 3:
                raise FlightError("the server's answer is not TLS records")
            length = int.from_bytes(self._records[3:5], "big")
            if length > _MAX_RECORD:
                raise FlightError(f"a TLS record of {length} bytes (at most {_MAX_RECORD})")
            if len(self._records) < 5 + length:
                return None
            fragment = bytes(self._records[5 : 5 + length])
            del self._records[: 5 + length]
            if kind == _ALERT:
                code = fragment[1] if len(fragment) > 1 else -1
                raise FlightError(f"the server sent the TLS alert {code}", alert=True)
            if kind != _HANDSHAKE:
                raise FlightError(f"a TLS record of type {kind} came before the certificates")
            self._message += fragment
            flight = self._messages()
            if flight is not None:
                return flight
        return None

    def _messages(self) -> Flight | None:
        while len(self._message) >= 4:
            kind = self._message[0]
            length = _u24(self._message, 1)
            if len(self._message) < 4 + length:
                return None
            body = bytes(self._message[4 : 4 + length])
            del self._message[: 4 + length]
            if kind == _SERVER_HELLO:
                self._hello = _server_hello(body)
            elif kind == _CERTIFICATE:
                if self._hello is None:
                    raise FlightError("a Certificate message came before the ServerHello")
                version, suite = self._hello
                return Flight(chain=_certificates(body), version=version, cipher_suite=suite)
            else:
                raise FlightError(
                    f"a handshake message of type {kind} came before the certificates"
                )
        return None
