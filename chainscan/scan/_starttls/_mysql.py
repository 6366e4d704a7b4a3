"""MySQL and MariaDB: the SSL request in the handshake response (MySQL client/server protocol,
"Connection Phase": Protocol::Handshake v10, Protocol::SSLRequest).

    S: packet 0: protocol version 10, server version, connection id, 8 bytes of salt,
       filler, capability flags (low 16 bits) ...
    C: packet 1: SSLRequest = capability flags with CLIENT_SSL, max packet size, charset,
       23 zero bytes                                           -> TLS

A packet is a 3-byte little-endian payload length, a sequence number and the payload. An ERR
packet (``0xFF``, code, message) as the greeting refuses us (``Host ... is not allowed to
connect``, ``Too many connections``); a greeting without CLIENT_SSL means TLS is not offered.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import Dialogue

__all__ = ["MysqlDialogue"]

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_SSL = 0x800
_CLIENT_SECURE_CONNECTION = 0x8000
_CAPABILITIES = (
    _CLIENT_LONG_PASSWORD | _CLIENT_PROTOCOL_41 | _CLIENT_SSL | _CLIENT_SECURE_CONNECTION
)
_CHARSET_UTF8MB4 = 45
_MAX_PACKET = 1 << 24
_SSL_REQUEST_PAYLOAD = (
    _CAPABILITIES.to_bytes(4, "little")
    + _MAX_PACKET.to_bytes(4, "little")
    + bytes([_CHARSET_UTF8MB4])
    + bytes(23)
)
_SSL_REQUEST = len(_SSL_REQUEST_PAYLOAD).to_bytes(3, "little") + b"\x01" + _SSL_REQUEST_PAYLOAD


class MysqlDialogue(Dialogue):
    name = "mysql"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._buffer = b""

    def _receive(self, data: bytes) -> bytes:
        self._buffer += data
        if len(self._buffer) < 4:
            return b""
        length = int.from_bytes(self._buffer[:3], "little")
        if len(self._buffer) < 4 + length:
            return b""
        payload, rest = self._buffer[4 : 4 + length], self._buffer[4 + length :]
        if payload[:1] == b"\xff":
            message = payload[3:]
            if message[:1] == b"#":
                message = message[6:]
            self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused the connection", message)
        if payload[:1] != b"\x0a" or b"\0" not in payload[1:]:
            self.fail(ErrorKind.PROTOCOL_ERROR, "not a MySQL handshake", self._buffer)
        version, _, after = payload[1:].partition(b"\0")
        # connection id (4), salt part 1 (8), filler (1), capability flags low 16 bits (2)
        if len(after) < 15:
            self.fail(ErrorKind.PROTOCOL_ERROR, "a MySQL handshake cut short", self._buffer)
        capabilities = int.from_bytes(after[13:15], "little")
        if not capabilities & _CLIENT_SSL:
            self.fail(
                ErrorKind.STARTTLS_UNSUPPORTED,
                "the server does not offer SSL (no CLIENT_SSL); server version",
                version,
            )
        if rest:
            self._go(rest)
        self.ready = True
        return _SSL_REQUEST
