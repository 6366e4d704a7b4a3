"""PostgreSQL's SSLRequest (PostgreSQL protocol 3.0, "SSL Session Encryption").

    C: int32 8, int32 80877103      (the SSLRequest code)
    S: 'S'                          -> TLS
       'N'                          TLS not offered
       'E' ErrorResponse            a server that predates SSL support, or an error

Exactly one byte answers; anything after the ``S`` before our ClientHello is plaintext the
server should not have sent (the buffering problem of CVE-2021-23214 and -23222), a
protocol error.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import Dialogue

__all__ = ["PostgresDialogue"]

_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def _error_text(data: bytes) -> bytes:
    """The message (``M``) field of an ErrorResponse, or the bytes as they are."""
    for field in data[5:].split(b"\0"):
        if field[:1] == b"M":
            return field[1:]
    return data


class PostgresDialogue(Dialogue):
    name = "postgres"

    def start(self) -> bytes:
        return _SSL_REQUEST

    def _receive(self, data: bytes) -> bytes:
        answer = self.head[:1]
        if answer == b"S":
            return self._go(self.head[1:])
        if answer == b"N":
            self.fail(ErrorKind.STARTTLS_UNSUPPORTED, "the server does not offer SSL", data)
        if answer == b"E":
            self.fail(
                ErrorKind.STARTTLS_UNSUPPORTED,
                "the server answered SSLRequest with an error",
                _error_text(self.head),
            )
        self.fail(ErrorKind.PROTOCOL_ERROR, "not a PostgreSQL answer to SSLRequest", self.head)
