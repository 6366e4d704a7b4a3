"""IMAP with STARTTLS (RFC 3501 section 6.2.1, RFC 9051 section 6.2.1, RFC 2595).

    S: * OK [CAPABILITY IMAP4rev1 STARTTLS ...] greeting
    C: c1 CAPABILITY            (skipped when the greeting listed the capabilities)
    S: * CAPABILITY ... STARTTLS
    S: c1 OK
    C: c2 STARTTLS
    S: c2 OK Begin TLS          -> TLS

``* BYE`` refuses us; ``* PREAUTH`` (already authenticated: STARTTLS is not allowed then) or a
capability list without ``STARTTLS`` means TLS is not offered; ``c2 NO``/``BAD`` refuses it.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import LineDialogue

__all__ = ["ImapDialogue"]


def _capabilities(text: bytes) -> set[bytes]:
    return {word.upper() for word in text.replace(b"]", b" ").split()}


class ImapDialogue(LineDialogue):
    name = "imap"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._state = "greeting"
        self._offered = False

    def _line(self, line: bytes) -> bytes:
        upper = line.upper()
        if self._state == "greeting":
            if upper.startswith(b"* BYE"):
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused the session", line)
            if upper.startswith(b"* PREAUTH"):
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED,
                    "the server pre-authenticated the session (STARTTLS is not allowed then)",
                    line,
                )
            if not upper.startswith(b"* OK"):
                self.fail(ErrorKind.PROTOCOL_ERROR, "not an IMAP greeting", line)
            if upper.startswith(b"* OK [CAPABILITY ") and b"STARTTLS" in _capabilities(
                upper[17:].split(b"]", 1)[0]
            ):
                self._state = "starttls"
                return b"c2 STARTTLS\r\n"
            self._state = "capability"
            return b"c1 CAPABILITY\r\n"
        if self._state == "capability":
            if upper.startswith(b"* CAPABILITY "):
                self._offered |= b"STARTTLS" in _capabilities(upper[13:])
                return b""
            if upper.startswith(b"* "):
                return b""  # other untagged data
            if not upper.startswith(b"C1 "):
                self.fail(ErrorKind.PROTOCOL_ERROR, "not an IMAP response", line)
            if not upper.startswith(b"C1 OK"):
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused CAPABILITY", line)
            if not self._offered:
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED, "the server does not offer STARTTLS", line
                )
            self._state = "starttls"
            return b"c2 STARTTLS\r\n"
        if upper.startswith(b"* "):
            return b""
        if upper.startswith(b"C2 OK"):
            return self._go(b"")
        if upper.startswith((b"C2 NO", b"C2 BAD")):
            self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused STARTTLS", line)
        self.fail(ErrorKind.PROTOCOL_ERROR, "not an IMAP response", line)
