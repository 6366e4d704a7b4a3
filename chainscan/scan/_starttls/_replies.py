"""Numeric replies shared by SMTP, LMTP and FTP: ``250-first line`` ... ``250 last line``.

A reply is one or more lines; every line but the last has ``-`` after the three-digit code, the
last has a space (or nothing). SMTP (RFC 5321 section 4.2) puts the code on every line; FTP
(RFC 959 section 4.2) allows free text between the first and the last line, so the parser is
lenient there: a line that does not start with the reply's code continues the reply.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reply", "ReplyReader"]


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[bytes, ...]
    """Each line's text after the code and its separator."""
    raw: bytes
    """The reply as received, for messages."""


class ReplyReader:
    """Assembles replies from lines. ``line()`` returns a Reply when one is complete.

    A first line that is not ``DDD``, ``DDD text`` or ``DDD-text`` raises ValueError: the
    server does not speak this protocol.
    """

    __slots__ = ("_code", "_lines", "_raw")

    def __init__(self) -> None:
        self._code: bytes | None = None
        self._lines: list[bytes] = []
        self._raw: list[bytes] = []

    def line(self, line: bytes) -> Reply | None:
        self._raw.append(line)
        code, sep, text = line[:3], line[3:4], line[4:]
        if self._code is None:
            if not (code.isdigit() and len(code) == 3 and sep in (b"", b" ", b"-")):
                raise ValueError("not a numeric reply")
            self._code = code
        elif code != self._code or sep not in (b"", b" ", b"-"):
            self._lines.append(line)  # FTP's free text inside a multi-line reply
            return None
        self._lines.append(text)
        if sep == b"-":
            return None
        reply = Reply(code=int(code), lines=tuple(self._lines), raw=b"\n".join(self._raw))
        self._code, self._lines, self._raw = None, [], []
        return reply
