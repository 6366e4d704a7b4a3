"""The interface every pre-TLS dialogue implements, and the helpers they share.

Theory of operation
-------------------
On a STARTTLS port the TLS handshake starts only after a plaintext exchange: SMTP's banner,
EHLO and STARTTLS; PostgreSQL's SSLRequest; and so on. Each such exchange is a
:class:`Dialogue`, a small state machine with no sockets and no clock, used like the TLS
driver (:mod:`chainscan.scan._tls`)::

    dialogue = make_dialogue("smtp", domain="mail.example.com")
    send(dialogue.start())              # what we say first (empty if the server speaks first)
    while not dialogue.ready:
        send(dialogue.receive(recv()))  # what the server said -> our answer, maybe empty
    # now the TLS handshake, on the same connection

A dialogue raises :class:`DialogueFailed` with an :class:`~chainscan.ErrorKind` when it
cannot reach the point where TLS starts:

* ``starttls-unsupported``: the server does not offer TLS on this connection (permanent);
* ``starttls-refused``: it offered TLS, or was asked, and said no (or refused the client);
* ``protocol-error``: what it sent is not the protocol (another service on that port, or a
  hostile one), including plaintext sent *after* agreeing to start TLS: bytes that would
  otherwise be read as part of the TLS handshake (the "STARTTLS command injection" class of
  bugs);
* ``eof``: it closed the connection in the middle of the dialogue.

Each message quotes the server's own words, made safe by :func:`server_words` (printable
characters only, bounded length), since everything a server sends is hostile input. The I/O
layer (``_probe``) owns the deadline (``--handshake-timeout`` covers dialogue and handshake
together) and the byte cap (:data:`MAX_DIALOGUE_BYTES`), so a tarpit, a dripping server or an
endless reply ends as ``timeout-handshake`` or ``too-large`` however the dialogue is written.
"""

from __future__ import annotations

import abc
import re
from typing import NoReturn

from ..._models import ErrorKind
from ..._untrusted import terminal_safe

__all__ = [
    "MAX_DIALOGUE_BYTES",
    "Dialogue",
    "DialogueFailed",
    "LineDialogue",
    "server_words",
]

MAX_DIALOGUE_BYTES = 64 * 1024
"""Bytes a server may send before TLS starts; more is ``too-large``. The largest real
pre-TLS message (an XMPP feature list, an EHLO reply) is a few KiB."""

_WORDS_LIMIT = 120
"""Characters of a server's reply quoted in a message."""


_SPACES = re.compile(r"[ \t]+")


def server_words(data: bytes, limit: int = _WORDS_LIMIT) -> str:
    """A server's bytes as a short quoted string for an error message.

    Decoded as UTF-8 (bad bytes become U+FFFD); line ends become `` / ``; runs of spaces
    collapse; the text is cut to ``limit`` characters; then every character that could act on a
    terminal (control characters, ANSI escapes, bidi overrides, ...) is shown as an escape by
    the project's one terminal guard, :func:`chainscan._untrusted.terminal_safe`.
    """
    text = data[: limit * 4].decode("utf-8", "replace")
    text = text.replace("\r\n", "\n").strip("\r\n").replace("\n", " / ").replace("\r", " / ")
    text = _SPACES.sub(" ", text).strip(" ")  # spaces and tabs only: a control character shows
    if len(text) > limit or len(data) > limit * 4:
        text = text[: limit - 3] + "..."
    return f"'{terminal_safe(text)}'"


class DialogueFailed(Exception):
    """The dialogue cannot reach TLS. ``kind`` says why in the manifest's words."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Dialogue(abc.ABC):
    """One pre-TLS exchange. See the module docstring for how it is driven."""

    name: str = ""
    """The protocol's name as in the manifest (``smtp``, ``imap``, ...)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        """The name the server is asked for (XMPP's ``to``); the target's SNI or host."""
        self.ready = False
        """True once the server has agreed and the TLS handshake may start."""
        self._head = b""

    def start(self) -> bytes:
        """The bytes to send as soon as the connection is open (empty: the server speaks first)."""
        return b""

    def receive(self, data: bytes) -> bytes:
        """Bytes from the server -> bytes to send (maybe empty). Raises DialogueFailed."""
        if len(self._head) < 512:
            self._head += data[: 512 - len(self._head)]
        return self._receive(data)

    @abc.abstractmethod
    def _receive(self, data: bytes) -> bytes: ...

    def receive_eof(self) -> NoReturn:
        """The server closed the connection before TLS could start."""
        said = f" after sending {server_words(self._head)}" if self._head else " without a word"
        raise DialogueFailed(
            ErrorKind.EOF, f"the server closed the connection during the {self.name} dialogue{said}"
        )

    @property
    def head(self) -> bytes:
        """The first bytes the server sent (up to 512), for messages."""
        return self._head

    def fail(self, kind: ErrorKind, what: str, words: bytes) -> NoReturn:
        """Raise DialogueFailed for ``what`` went wrong, quoting ``words``."""
        raise DialogueFailed(kind, f"{self.name}: {what}: {server_words(words)}")

    def _go(self, leftover: bytes) -> bytes:
        """The server agreed: TLS starts now, unless it already sent more plaintext."""
        if leftover:
            self.fail(
                ErrorKind.PROTOCOL_ERROR,
                "the server agreed to start TLS, then kept sending plaintext",
                leftover,
            )
        self.ready = True
        return b""


class LineDialogue(Dialogue):
    """A text protocol of CRLF (or LF) lines: calls :meth:`_line` once per complete line."""

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._buffer = b""

    def _receive(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        out = b""
        start = 0  # an offset, not re-slicing: linear however many lines arrive at once
        while not self.ready:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            out += self._line(buffer[start:end].rstrip(b"\r"))
            start = end + 1
        self._buffer = buffer[start:]
        if self.ready and self._buffer:
            self._go(self._buffer)
        return out

    @abc.abstractmethod
    def _line(self, line: bytes) -> bytes:
        """One line without its line end -> bytes to send. Calls ``self._go(b"")`` to start TLS."""
