"""FTP with ``AUTH TLS`` (RFC 4217).

    S: 220 banner (maybe after 120 "ready in n minutes")   C: AUTH TLS
    S: 234 ...                                             -> TLS

500/502/504 to AUTH (command unknown, not implemented, parameter not implemented) mean TLS is
not offered; 431/534 and anything else refuse it. A banner other than 1xx/220 refuses us.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import LineDialogue
from ._replies import ReplyReader

__all__ = ["FtpDialogue"]

_UNSUPPORTED = frozenset({500, 501, 502, 504})


class FtpDialogue(LineDialogue):
    name = "ftp"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._replies = ReplyReader()
        self._asked = False

    def _line(self, line: bytes) -> bytes:
        try:
            reply = self._replies.line(line)
        except ValueError:
            self.fail(ErrorKind.PROTOCOL_ERROR, "not an FTP reply", line)
        if reply is None or 100 <= reply.code < 200:
            return b""  # incomplete, or preliminary ("120 ready in 5 minutes")
        if not self._asked:
            if reply.code != 220:
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused the session", reply.raw)
            self._asked = True
            return b"AUTH TLS\r\n"
        if reply.code == 234:
            return self._go(b"")
        if reply.code in _UNSUPPORTED:
            self.fail(
                ErrorKind.STARTTLS_UNSUPPORTED, "the server does not offer AUTH TLS", reply.raw
            )
        self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused AUTH TLS", reply.raw)
