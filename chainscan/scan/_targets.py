"""Input text -> :class:`~chainscan.Target` values: the first stage of a scan.

Pure: no sockets, no DNS. Only :func:`open_lines` and :func:`count_lines` touch a file.

The input format
================

One target per line. Surrounding whitespace is ignored, blank lines are skipped, and ``#``
starts a comment when it is the first character of the line or follows whitespace (so the
``#`` of ``https://example.com/#top`` is part of the URL)::

    example.com                       name, default port (443, or --port)
    example.com:8443                  name and port
    192.0.2.1                         IPv4 address, default port
    192.0.2.1:8443                    IPv4 address and port
    2001:db8::1                       bare IPv6 address: always the default port
    [2001:db8::1]                     bracketed IPv6 address, default port
    [2001:db8::1]:8443                bracketed IPv6 address and port
    https://example.com:8443/a?b#c    https:// URL: only the host and port are used
    https://[2001:db8::1]:8443/       URL with an IPv6 address (brackets required)
    example.com{192.0.2.1}            connect to 192.0.2.1:443, send SNI example.com
    example.com:8443{2001:db8::1}     connect to [2001:db8::1]:8443, send SNI example.com
    example.com{[2001:db8::1]}        brackets inside the braces are optional

Grammar (``port`` is 1-65535 in decimal; leading zeros allowed)::

    line      = [target] [comment]
    target    = endpoint | endpoint "{" ip "}"
    endpoint  = url | hostport
    url       = scheme "://" hostport ["/" ...] ["?" ...] ["#" ...]   (scheme case-insensitive)
    hostport  = host [":" port] | "[" ipv6 "]" [":" port] | ipv6
    host      = name | ipv4

Rules:

* **Port.** A line that names no port gets ``default_port`` (``--port``, 443 unless changed),
  URLs included: ``https://example.com/`` means port 443 only with the default ``--port``. One
  rule for every form is easier to predict than a scheme default that overrides ``--port``.
* **Names** are converted to IDNA A-labels with UTS #46 mapping (``Bücher.example`` becomes
  ``xn--bcher-kva.example``; upper case becomes lower case); one trailing dot is removed. ASCII
  names that DNS accepts but IDNA 2008 does not (``_srv.example.com`` with underscores,
  ``r3---sn-x.example`` with ``--`` in the 3rd and 4th position, labels starting or ending with
  ``-``) are kept as written, lower-cased, provided every label is 1-63 letters, digits, ``-``
  or ``_`` and the name is at most 253 characters. A name whose last label is a number (decimal
  or ``0x`` hex) must be a valid dotted-quad IPv4 address: ``127.1`` and ``1.2.3.256`` are
  rejected rather than handed to a resolver that might read them as addresses.
* **IP addresses** are written in canonical form (``2001:DB8:0::1`` becomes ``2001:db8::1``;
  IPv6 without brackets). IPv4 with leading zeros (``010.0.0.1``) is rejected as ambiguous.
  A bare IPv6 address cannot carry a port (``2001:db8::1:443`` *is* an address); use brackets.
* **SNI.** A name target sends its name as SNI; an IP target sends none. ``name{ip}`` (sslyze's
  form) connects to ``ip`` and sends ``name``; the part before ``{`` may be any name form above
  (host, host:port or URL) but not an IP address. ``--sni NAME`` replaces the SNI of every
  target, IP targets included.
* **Schemes.** ``https://`` URLs are direct TLS on ``default_port`` unless
  they name a port. The STARTTLS schemes (``smtp``, ``submission``, ``lmtp``, ``imap``,
  ``pop3``, ``ftp``, ``ldap``, ``xmpp``, ``xmpp-server``, ``postgres``, ``mysql``, ``rdp``
  and their aliases, see :mod:`chainscan.scan._starttls._table`) set :attr:`Target.protocol`
  and default to the protocol's own port (``smtp://mail.example.com`` is port 25,
  ``submission://`` 587), and the implicit-TLS schemes (``smtps`` 465, ``imaps`` 993,
  ``pop3s`` 995, ``ldaps`` 636, ``ftps`` 990, ``xmpps`` 5223) are direct TLS on theirs. Any
  other ``scheme://`` (``http://``) is an error. URLs must not contain user info
  (``user:pass@``).
* **Protocol of a line without a scheme** comes from ``starttls`` (``--starttls``): ``auto``
  (the default) picks the STARTTLS protocol of a well-known port (25 and 587 SMTP, 110 POP3,
  143 IMAP, 21 FTP, 389 LDAP, 5222/5269 XMPP, 5432 PostgreSQL, 3306 MySQL, 3389 RDP) and
  direct TLS on every other port; ``none`` is always direct TLS; a protocol name applies that
  protocol to every such line.
* **Limits.** A line is at most :data:`MAX_LINE` (4096) characters, comment included, and may
  not contain control characters other than tab. Files are read as UTF-8 (a leading BOM is
  ignored; LF or CRLF line ends); a line with bytes that are not UTF-8 is a bad line, not a
  crash. A file with NUL bytes in its first 8 KiB is refused as not text (UTF-16, binary).

Every line that is not a target becomes a :class:`~chainscan.BadLine` whose reason names the
problem and what to write instead; the scan reports it and goes on. Nothing here raises for any
line text: exceptions are kept for the run itself (an unreadable file, a bad ``--sni``).

Composition::

    with open_lines(path) as lines:  # InputError now if the file cannot be read
        for item in iter_targets(lines, source=path, default_port=443):
            ...  # Target or BadLine, streamed: the input is never held in memory

    load_targets(path)  # the same, in one call
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import sys
from array import array
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

import idna

from .._errors import InputError, UsageError
from .._models import BadLine, Target
from ._starttls._table import (
    AUTO,
    AUTO_PORTS,
    DIRECT_SCHEMES,
    NONE,
    PROTOCOLS,
    SCHEMES,
    protocol_port,
)

MAX_LINE = 4096
"""Longest accepted line, in characters, comment included, line end excluded."""

STDIN = "-"
"""The path that means standard input."""

DEFAULT_PORT = 443

_RAW_LIMIT = 200  # characters of the line kept in BadLine.raw / Target.raw
_SHOW_LIMIT = 60  # characters of an offending value quoted in a reason
_BINARY_PROBE = 8192  # bytes searched for NUL to tell text from binary
_CHUNK = 1 << 20  # bytes read at once when skipping long lines and counting lines
_LINE_BYTES = 4 * MAX_LINE + 8  # UTF-8 needs up to 4 bytes per character; + BOM and CRLF
_BOM = b"\xef\xbb\xbf"
_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))  # UTF-8 bytes that do not start a character

_COMMENT = re.compile(r"(?<!\S)#")  # '#' at the start or after whitespace
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # Cc minus tab
_SPACE = re.compile(r"\s")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BRACES = re.compile(r"([^{}]*)\{([^{}]*)\}")
_BRACES_PORT = re.compile(r"([^{}]*)(\{[^{}]*\}):([^{}:]*)")  # name{ip}:port
_AUTHORITY_END = re.compile(r"[/?#]")
_LOOKS_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(?:%.*)?")
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")  # zone: an interface name
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# A plain LDH name that IDNA maps to itself: labels of letters, digits and inner hyphens. Names
# with "--" are left to idna, which checks "xn--" A-labels and the 3rd/4th-position rule.
_LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_NAME = re.compile(rf"(?:{_LDH_LABEL}\.)*{_LDH_LABEL}")
_DNS_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_DNS_CHARS = re.compile(r"[a-z0-9_.-]+")


class NumberedLine(NamedTuple):
    """One line of an input file, decoded, without its line end."""

    number: int
    """1-based line number."""
    text: str


_NO_SCHEME = "<no scheme>"
"""_parse_target's protocol when the line has no scheme: ``starttls`` decides."""


class _Bad(Exception):
    """Internal: the line is not a target; the message is the BadLine reason. Never escapes."""


# --------------------------------------------------------------------------- parsing one line


def parse_line(
    text: str,
    *,
    line: int,
    source: str,
    default_port: int = DEFAULT_PORT,
    sni: str | None = None,
    starttls: str = AUTO,
) -> Target | BadLine | None:
    """Parse one input line: a Target, a BadLine saying what is wrong, or None.

    None means there is nothing to scan: a blank line or a comment. ``text`` may still end in
    ``\\n`` or ``\\r\\n``. ``sni`` (``--sni``) replaces the SNI of the target; ``starttls``
    (``--starttls``) chooses the protocol of a line without a scheme. Never raises because of
    ``text``; raises :class:`~chainscan.UsageError` if ``default_port``, ``sni`` or
    ``starttls`` is invalid (see :func:`check_options`).
    """
    forced_sni = check_options(default_port=default_port, sni=sni, starttls=starttls)
    body = _strip_line_end(text)
    if line == 1 and body.startswith("\ufeff"):
        body = body[1:]
    target_text = _COMMENT.split(body, maxsplit=1)[0].strip()
    raw = target_text[:_RAW_LIMIT]
    try:
        if len(body) > MAX_LINE:
            raise _Bad(_too_long(len(body)))
        control = _CONTROL.search(body)
        if control is not None:
            raise _Bad(
                f"line contains a NUL or control character (U+{ord(control[0]):04X} at column"
                f" {control.start() + 1}); remove it"
            )
        if not target_text:
            return None
        host, port, address, host_is_ip, protocol = _parse_target(target_text, default_port)
    except _Bad as exc:
        return BadLine(source=source, line=line, raw=raw, reason=str(exc))
    if forced_sni is not None:
        target_sni: str | None = forced_sni
    else:
        target_sni = None if host_is_ip else host
    if protocol is _NO_SCHEME:
        if starttls == AUTO:
            protocol = AUTO_PORTS.get(port)
        else:
            protocol = None if starttls == NONE else starttls
    return Target(
        host=host,
        port=port,
        sni=target_sni,
        address=address,
        raw=raw,
        line=line,
        source=source,
        protocol=protocol,
    )


def check_options(
    *, default_port: int = DEFAULT_PORT, sni: str | None = None, starttls: str = AUTO
) -> str | None:
    """Validate the options that apply to every line; return the ``sni`` as an A-label.

    Raises :class:`~chainscan.UsageError` for a port outside 1-65535, an ``sni`` that is not
    a valid host name (IP addresses are not allowed in SNI, RFC 6066 section 3), or a
    ``starttls`` that is not ``auto``, ``none`` or a protocol name.
    """
    if not 1 <= default_port <= 65535:
        raise UsageError(f"default port {default_port} is out of range (1-65535)")
    if starttls not in PROTOCOLS and starttls not in (AUTO, NONE):
        raise UsageError(
            f"unknown --starttls {_show(starttls)}: give auto, none or one of"
            f" {', '.join(PROTOCOLS)}"
        )
    return None if sni is None else _encode_sni(sni)


@functools.lru_cache(maxsize=8)
def _encode_sni(sni: str) -> str:
    try:
        name, is_ip = _parse_host(sni.strip())
    except _Bad as exc:
        raise UsageError(f"invalid --sni name {_show(sni)}: {exc}") from None
    if is_ip:
        raise UsageError(
            f"--sni {_show(sni)} is an IP address; SNI carries host names only"
            " (leave --sni out to send no SNI to IP targets)"
        )
    return name


def _strip_line_end(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _too_long(characters: int) -> str:
    return f"line is too long ({characters} characters, at most {MAX_LINE})"


def _show(value: str) -> str:
    """Quote an offending value for a message, shortened so one bad line stays one line."""
    if len(value) > _SHOW_LIMIT:
        value = value[: _SHOW_LIMIT - 3] + "..."
    return repr(value)


def _parse_target(text: str, default_port: int) -> tuple[str, int, str | None, bool, str | None]:
    """``text`` (stripped, non-empty, no comment) -> (host, port, address, host_is_ip, protocol).

    ``protocol`` is the scheme's (None for direct TLS), or ``_NO_SCHEME`` without one.
    """
    if "\ufffd" in text:
        raise _Bad(
            "line is not valid UTF-8 (it contains U+FFFD, the replacement character);"
            " save the file as UTF-8"
        )
    if _SPACE.search(text):
        raise _Bad(
            f"unexpected space in {_show(text)}: write one target per line, as host,"
            " host:port, [ipv6]:port or https://host:port/"
        )
    if "{" not in text and "}" not in text:
        host, port, host_is_ip, protocol = _parse_endpoint(text, default_port)
        return host, port, None, host_is_ip, protocol
    port_after = _BRACES_PORT.fullmatch(text)
    if port_after is not None:  # name{ip}:port is name:port{ip}
        name, address, port_text = port_after.groups()
        if ":" in name.split("://", 1)[-1]:
            raise _Bad(f"two ports in {_show(text)}: write name{{ip}}:port or name:port{{ip}}")
        text = f"{name}:{port_text}{address}"
    braces = _BRACES.fullmatch(text)
    if braces is None:
        raise _Bad(
            "misplaced '{' or '}': to connect to an IP address and send a name as SNI,"
            " write name{ip} or name:port{ip} at the end of the line, e.g. example.com{192.0.2.1}"
        )
    host, port, host_is_ip, protocol = _parse_endpoint(braces[1], default_port)
    if host_is_ip:
        raise _Bad(
            f"{_show(braces[1])} before '{{' is an IP address: write the host name to send as"
            " SNI before '{' and the IP address to connect to inside, e.g. example.com{192.0.2.1}"
        )
    return host, port, _parse_brace_address(braces[2]), False, protocol


def _parse_brace_address(text: str) -> str:
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        if ":" not in inner or _IPV6_TEXT.fullmatch(inner):
            return str(ipaddress.ip_address(inner))
    except ValueError:
        pass
    raise _Bad(
        f"invalid IP address in {{{text[:_SHOW_LIMIT]}}}: write name{{ip}} with an IPv4 or"
        " IPv6 address inside the braces, e.g. example.com{192.0.2.1}"
    )


def _parse_endpoint(text: str, default_port: int) -> tuple[str, int, bool, str | None]:
    """A URL or host[:port] -> (host, port, host_is_ip, protocol or _NO_SCHEME)."""
    scheme = _SCHEME.match(text)
    if scheme is None:
        if "/" in text:
            raise _Bad(
                f"unexpected '/' in {_show(text)}: write a URL as https://host/path,"
                " otherwise host or host:port"
            )
        return (*_parse_hostport(text, default_port, in_url=False), _NO_SCHEME)
    name = scheme[1].lower()
    protocol: str | None
    if name in DIRECT_SCHEMES:
        protocol, port = None, DIRECT_SCHEMES[name] or default_port
    elif name in SCHEMES:
        protocol, port = SCHEMES[name], protocol_port(name)
    else:
        raise _Bad(
            f"unknown scheme {scheme[0]}: write https://, a STARTTLS scheme such as smtp://,"
            " imap:// or postgres:// (see --help), or host:port"
        )
    authority = _AUTHORITY_END.split(text[scheme.end() :], maxsplit=1)[0]
    if "@" in authority:
        raise _Bad(f"URLs with user info ('user@') are not accepted: write {name}://host:port/")
    return (*_parse_hostport(authority, port, in_url=True), protocol)


def _parse_hostport(text: str, default_port: int, *, in_url: bool) -> tuple[str, int, bool]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise _Bad(f"unclosed '[' in IPv6 address {_show(text)}: write [addr] or [addr]:port")
        host = _parse_ipv6(text[1:close], hint=" in brackets: brackets are for IPv6 addresses only")
        rest = text[close + 1 :]
        if not rest:
            return host, default_port, True
        if rest.startswith(":"):
            return host, _parse_port(rest[1:]), True
        raise _Bad(f"unexpected {_show(rest)} after ']': write [addr] or [addr]:port")
    colons = text.count(":")
    if colons >= 2:
        if in_url:
            raise _Bad("an IPv6 address in a URL needs brackets, e.g. https://[2001:db8::1]:8443/")
        if not _LOOKS_IPV6.fullmatch(text):
            raise _Bad(f"too many ':' in {_show(text)}: write host:port, or [ipv6]:port")
        host = _parse_ipv6(text, hint=" (to give an IPv6 address a port, write [addr]:port)")
        return host, default_port, True
    if colons == 1:
        host_text, port_text = text.split(":")
        port = _parse_port(port_text)
    else:
        host_text, port = text, default_port
    host, host_is_ip = _parse_host(host_text)
    return host, port, host_is_ip


def _parse_ipv6(text: str, *, hint: str) -> str:
    try:
        if _IPV6_TEXT.fullmatch(text):
            return str(ipaddress.IPv6Address(text))
    except ValueError:
        pass
    raise _Bad(f"invalid IPv6 address {_show(text)}{hint}")


def _parse_port(text: str) -> int:
    if not text:
        raise _Bad("missing port number after ':' (write host:port, or host alone for the default)")
    if not (text.isascii() and text.isdigit()):
        raise _Bad(f"port {_show(text)} is not a number")
    digits = text.lstrip("0") or "0"
    if len(digits) > 5 or not 1 <= int(digits) <= 65535:
        shown = digits if len(digits) <= _SHOW_LIMIT else digits[: _SHOW_LIMIT - 3] + "..."
        raise _Bad(f"port {shown} is out of range (1-65535)")
    return int(digits)


def _parse_host(text: str) -> tuple[str, bool]:
    """A name or an IPv4 address -> (A-label name or canonical IPv4, is_ip)."""
    if not text:
        raise _Bad("empty host")
    try:
        return str(ipaddress.IPv4Address(text)), True
    except ValueError:
        pass
    name = _encode_name(text)
    if _NUMERIC_LABEL.fullmatch(name.rpartition(".")[2]):
        # WHATWG URL's rule: a host ending in a number is an IPv4 address or nothing. This
        # also catches what UTS #46 maps to digits (fullwidth "１２７.０.０.１").
        try:
            return str(ipaddress.IPv4Address(name)), True
        except ValueError:
            raise _Bad(
                f"invalid IPv4 address {_show(text)}: write four numbers 0-255 separated by"
                " dots, without leading zeros, e.g. 192.0.2.1"
            ) from None
    return name, False


def _encode_name(text: str) -> str:
    """A host name as written -> lower-case A-label without the trailing dot."""
    lowered = text.lower() if text.isascii() else ""
    if lowered:
        plain = lowered.removesuffix(".")
        if len(plain) <= 253 and "--" not in plain and _PLAIN_NAME.fullmatch(plain):
            return plain  # what idna would return, without its cost (about 4x per line)
    try:
        encoded = idna.encode(text, uts46=True).decode("ascii")
    except (UnicodeError, ValueError) as exc:
        reason = str(exc)
        if lowered:
            plain = lowered.removesuffix(".")
            problem = _dns_name_problem(plain)
            if problem is None:
                return plain
            if "_" in plain and _DNS_CHARS.fullmatch(plain):
                reason = problem  # idna would only complain about the underscore
        raise _Bad(f"invalid host name {_show(text)}: {reason}") from None
    return encoded.removesuffix(".")


def _dns_name_problem(name: str) -> str | None:
    """Why ``name`` is not letters, digits, '-' and '_' in labels of 1-63, 253 in all; or None."""
    if len(name) > 253:
        return "Domain too long"
    for label in name.split("."):
        if not label:
            return "Empty Label"
        if len(label) > 63:
            return "Label too long"
        if not _DNS_LABEL.fullmatch(label):
            return "not a DNS name"
        if label.startswith("xn--"):
            return "Invalid A-label"
    return None


# --------------------------------------------------------------------------- many lines


def iter_targets(
    lines: Iterable[str | tuple[int, str] | BadLine],
    *,
    source: str,
    default_port: int = DEFAULT_PORT,
    sni: str | None = None,
    starttls: str = AUTO,
) -> Iterator[Target | BadLine]:
    """Parse lines one at a time, skipping blank lines and comments.

    ``lines`` may hold plain strings, numbered from 1 by position, or the
    :class:`NumberedLine` and :class:`~chainscan.BadLine` items that :func:`open_lines` yields
    (BadLines pass through). Options are checked now (:func:`check_options`); the lines only as
    the result is iterated, so any iterable, however long, streams.
    """
    check_options(default_port=default_port, sni=sni, starttls=starttls)
    return _iter_targets(lines, source, default_port, sni, starttls)


def _iter_targets(
    lines: Iterable[str | tuple[int, str] | BadLine],
    source: str,
    default_port: int,
    sni: str | None,
    starttls: str,
) -> Iterator[Target | BadLine]:
    for position, item in enumerate(lines, start=1):
        if isinstance(item, BadLine):
            yield item
            continue
        number, text = (position, item) if isinstance(item, str) else item
        parsed = parse_line(
            text,
            line=number,
            source=source,
            default_port=default_port,
            sni=sni,
            starttls=starttls,
        )
        if parsed is not None:
            yield parsed


class Deduplicator:
    """Remembers targets by :attr:`Target.key` to drop repeats, in little memory.

    Each key is kept as a 64-bit BLAKE2b digest of its ``repr`` in an open-addressing hash
    table held in one ``array('Q')`` (linear probing, at most half full, doubled when it gets
    there): 8 bytes a slot, so 16-32 bytes per distinct target whatever the length of the
    names, about 16 MiB for a million targets (a ``set[int]`` would take about 80 bytes
    each). Exact dedup of a stream needs memory that grows with the number of *distinct*
    targets; this keeps that growth about five times smaller than the obvious set. Two
    different keys share a digest with probability about n²/2⁶⁵: 3·10⁻⁶ for 10 million
    targets, in which case one target would be wrongly skipped as a repeat.
    """

    __slots__ = ("_count", "_mask", "_table")

    def __init__(self) -> None:
        self._table = array("Q", bytes(8 * 1024))
        self._mask = 1023
        self._count = 0

    def seen(self, target: Target) -> bool:
        """True if a target with the same key was seen before; otherwise remember it."""
        return self._insert(_digest(target.key))

    def add_key(self, key: Iterable[str | int | None]) -> None:
        """Remember a key without a Target, e.g. one read back from a manifest to resume.

        ``key`` is :attr:`Target.key` or the same values in a list (as JSON gives them).
        """
        self._insert(_digest(tuple(key)))

    def __len__(self) -> int:
        return self._count

    def _insert(self, digest: int) -> bool:
        table, mask = self._table, self._mask
        slot = digest & mask
        while True:
            held = table[slot]
            if held == 0:
                break
            if held == digest:
                return True
            slot = (slot + 1) & mask
        table[slot] = digest
        self._count += 1
        if 2 * self._count > len(table):
            self._grow()
        return False

    def _grow(self) -> None:
        old = self._table
        table = self._table = array("Q", bytes(16 * len(old)))
        mask = self._mask = len(table) - 1
        for digest in old:
            if digest:
                slot = digest & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = digest


def _digest(key: tuple[str | int | None, ...]) -> int:
    digest = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big")
    return digest or 1  # 0 marks an empty slot


# --------------------------------------------------------------------------- files


def open_lines(path: str) -> LineReader:
    """Open a text file of targets (``-`` for standard input) for :func:`iter_targets`.

    Raises :class:`~chainscan.InputError` now, before any line is read, if the file cannot be
    opened (missing, a directory, no permission) or has NUL bytes in its first 8 KiB (binary,
    or text saved as UTF-16). See :class:`LineReader` for how lines are read.
    """
    return LineReader(path)


class LineReader:
    """The numbered lines of an open input file: an iterator of NumberedLine and BadLine.

    Bytes are decoded line by line as UTF-8 with invalid bytes replaced (:func:`parse_line`
    turns such a line into a BadLine); a UTF-8 BOM before the first line is dropped; LF and
    CRLF line ends are removed. A line longer than :data:`MAX_LINE` characters is never held
    whole: its first bytes are kept for ``BadLine.raw``, the rest is skipped in 1 MiB reads
    and counted, and a ``line is too long`` BadLine takes its place.

    The file is closed at the end of the lines, by :meth:`close` or ``with``, or when the
    reader is garbage-collected. Standard input is never closed. A read error part-way
    raises :class:`~chainscan.InputError`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stream: IO[bytes] | None = None
        self._owned = path != STDIN
        try:
            # Not `with`: the reader owns the file until its lines end or it is closed.
            self._stream = sys.stdin.buffer if path == STDIN else open(path, "rb")  # noqa: SIM115
            head = self._stream.read(_BINARY_PROBE)
        except OSError as exc:
            self.close()
            raise _input_error(path, exc) from exc
        if b"\0" in head:
            self.close()
            raise InputError(
                f"{_describe(path)} does not look like a text file of targets: it has NUL bytes"
                " in its first 8 KiB (a binary file, or text saved as UTF-16); give a UTF-8"
                " text file with one host, host:port or https:// URL per line"
            )
        self._lines = _read_lines(_Rejoined(head, self._stream), path)

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> NumberedLine | BadLine:
        try:
            return next(self._lines)
        except StopIteration:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise _input_error(self.path, exc) from exc

    def close(self) -> None:
        """Close the file (not standard input). Idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None and self._owned:
            stream.close()

    def __enter__(self) -> LineReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def count_lines(path: str) -> int | None:
    """How many lines ``path`` has (a last line without a newline counts); None for stdin.

    Meant for a progress bar: counts newline bytes in 1 MiB reads, so it costs one fast pass
    over the file. Raises :class:`~chainscan.InputError` like :func:`open_lines`.
    """
    if path == STDIN:
        return None
    count = 0
    last = b"\n"
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError as exc:
        raise _input_error(path, exc) from exc
    return count + (last != b"\n")


def load_targets(
    path: str, *, default_port: int = DEFAULT_PORT, sni: str | None = None, starttls: str = AUTO
) -> Iterator[Target | BadLine]:
    """``iter_targets(open_lines(path), source=path, ...)``: a file's targets, streamed.

    Raises :class:`~chainscan.InputError` now for a file that cannot be read (see
    :func:`open_lines`), :class:`~chainscan.UsageError` for bad options.
    """
    check_options(default_port=default_port, sni=sni, starttls=starttls)
    return iter_targets(
        open_lines(path), source=path, default_port=default_port, sni=sni, starttls=starttls
    )


def _describe(path: str) -> str:
    return "standard input" if path == STDIN else f"input file {path!r}"


def _input_error(path: str, exc: OSError) -> InputError:
    return InputError(f"cannot read {_describe(path)}: {exc.strerror or exc}")


class _Rejoined:
    """A stream whose first bytes were read ahead (to look for NUL) and must be read again."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head: bytes | None = head
        self._offset = 0
        self._rest = rest

    def readline(self, limit: int) -> bytes:
        """Like ``IO.readline(limit)``: stops after b"\\n", after ``limit`` bytes, or at EOF."""
        if self._head is None:
            return self._rest.readline(limit)
        end = self._head.find(b"\n", self._offset, self._offset + limit)
        stop = min(len(self._head), self._offset + limit) if end < 0 else end + 1
        piece = self._head[self._offset : stop]
        self._offset = stop
        if self._offset >= len(self._head):
            self._head = None
        if piece.endswith(b"\n") or len(piece) == limit:
            return piece
        return piece + self._rest.readline(limit - len(piece))


def _read_lines(reader: _Rejoined, source: str) -> Iterator[NumberedLine | BadLine]:
    number = 0
    while piece := reader.readline(_LINE_BYTES):
        number += 1
        complete = piece.endswith(b"\n") or len(piece) < _LINE_BYTES  # else: longer than that
        if number == 1 and piece.startswith(_BOM):
            piece = piece[len(_BOM) :]
        if complete:
            text = piece.decode("utf-8", "replace")
            yield NumberedLine(number, _strip_line_end(text))
            continue
        prefix = piece.decode("utf-8", "replace")
        raw = _COMMENT.split(prefix, maxsplit=1)[0].strip()[:_RAW_LIMIT]
        characters = _skip_rest_of_line(reader, piece)
        yield BadLine(source=source, line=number, raw=raw, reason=_too_long(characters))


def _skip_rest_of_line(reader: _Rejoined, first: bytes) -> int:
    """Read up to the end of a line begun by ``first``; return its length in characters."""
    characters = _count_characters(first)
    tail = first[-2:]
    while not tail.endswith(b"\n") and (piece := reader.readline(_CHUNK)):
        characters += _count_characters(piece)
        tail = (tail + piece)[-2:]
    if tail.endswith(b"\n"):
        characters -= 2 if tail == b"\r\n" else 1
    return characters


def _count_characters(data: bytes) -> int:
    """Characters in UTF-8 ``data``: the bytes that are not continuation bytes."""
    return len(data.translate(None, _CONTINUATION_BYTES))
