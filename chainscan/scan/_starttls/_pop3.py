"""POP3 with STLS (RFC 2595 section 4, RFC 2449 for CAPA).

    S: +OK greeting
    C: CAPA
    S: +OK / STLS / ... / .    (or -ERR from a server without CAPA)
    C: STLS
    S: +OK Begin TLS           -> TLS

``-ERR`` as the greeting refuses us. ``-ERR`` to STLS refuses TLS if CAPA listed ``STLS``,
and means it is not offered otherwise.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import LineDialogue

__all__ = ["Pop3Dialogue"]


class Pop3Dialogue(LineDialogue):
    name = "pop3"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._state = "greeting"
        self._offered = False
        self._capa = b""

    def _line(self, line: bytes) -> bytes:
        if self._state == "greeting":
            if line.startswith(b"-ERR"):
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused the session", line)
            if not line.startswith(b"+OK"):
                self.fail(ErrorKind.PROTOCOL_ERROR, "not a POP3 greeting", line)
            self._state = "capa"
            return b"CAPA\r\n"
        if self._state == "capa":
            if line.startswith(b"-ERR"):
                self._state = "stls"  # no CAPA: ask anyway
                return b"STLS\r\n"
            if not line.startswith(b"+OK"):
                self.fail(ErrorKind.PROTOCOL_ERROR, "not a POP3 response to CAPA", line)
            self._state = "capa-list"
            return b""
        if self._state == "capa-list":
            if line == b".":
                if not self._offered:
                    self.fail(
                        ErrorKind.STARTTLS_UNSUPPORTED,
                        "the server does not offer STLS; its capabilities",
                        self._capa,
                    )
                self._state = "stls"
                return b"STLS\r\n"
            self._offered |= line.split(b" ", 1)[0].upper() == b"STLS"
            self._capa += line + b"\n"
            return b""
        if line.startswith(b"+OK"):
            return self._go(b"")
        if line.startswith(b"-ERR"):
            kind = ErrorKind.STARTTLS_REFUSED if self._offered else ErrorKind.STARTTLS_UNSUPPORTED
            self.fail(kind, "the server refused STLS", line)
        self.fail(ErrorKind.PROTOCOL_ERROR, "not a POP3 response to STLS", line)
