"""SMTP (RFC 5321) and LMTP (RFC 2033) with STARTTLS (RFC 3207).

    S: 220 banner            C: EHLO name  (LMTP: LHLO name)
    S: 250-... 250 STARTTLS  C: STARTTLS
    S: 220 Ready             -> TLS

A banner other than 220 (``554 no service``) refuses us. An EHLO reply without the
``STARTTLS`` keyword, or 500/502/504 to EHLO (a HELO-only server), means TLS is not offered.
Any reply but 220 to STARTTLS (``454 TLS not available``) refuses it. A line that is not a
numeric reply is a protocol error.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import LineDialogue
from ._replies import Reply, ReplyReader

__all__ = ["LmtpDialogue", "SmtpDialogue"]

_NO_EXTENSIONS = frozenset({500, 502, 504})
"""Replies to EHLO of a server that knows only HELO (RFC 5321 section 4.1.1.1)."""

_CLIENT_NAME = b"chainscan.invalid"
"""Our EHLO name: RFC 6761's reserved .invalid, since the scanner has no name of its own."""


class SmtpDialogue(LineDialogue):
    name = "smtp"
    _hello = b"EHLO"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._replies = ReplyReader()
        self._state = "banner"

    def _line(self, line: bytes) -> bytes:
        try:
            reply = self._replies.line(line)
        except ValueError:
            self.fail(ErrorKind.PROTOCOL_ERROR, f"not an {self.name.upper()} reply", line)
        return b"" if reply is None else self._reply(reply)

    def _reply(self, reply: Reply) -> bytes:
        if self._state == "banner":
            if reply.code != 220:
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused the session", reply.raw)
            self._state = "hello"
            return self._hello + b" " + _CLIENT_NAME + b"\r\n"
        if self._state == "hello":
            if reply.code in _NO_EXTENSIONS:
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED,
                    f"the server does not know {self._hello.decode()} (no extensions, so no"
                    " STARTTLS)",
                    reply.raw,
                )
            if reply.code != 250:
                self.fail(
                    ErrorKind.STARTTLS_REFUSED,
                    f"the server refused {self._hello.decode()}",
                    reply.raw,
                )
            keywords = {text.split(b" ", 1)[0].upper() for text in reply.lines[1:]}
            if b"STARTTLS" not in keywords:
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED, "the server does not offer STARTTLS", reply.raw
                )
            self._state = "starttls"
            return b"STARTTLS\r\n"
        if reply.code != 220:
            self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused STARTTLS", reply.raw)
        return self._go(b"")


class LmtpDialogue(SmtpDialogue):
    name = "lmtp"
    _hello = b"LHLO"
