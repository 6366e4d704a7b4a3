"""Text a server chose, made safe for the two places people read it: a terminal and a spreadsheet.

Every name chainscan shows comes from servers nobody on the team controls: subjects, issuers,
SANs, host names, a server's own words (banners, STARTTLS replies), and text derived from them
(messages, warnings, manifest paths). This module is the one place that decides how such text
is written where a person reads it. Every layer imports it (it imports nothing of chainscan),
so it lives at the package top level.

The terminal rule (:func:`terminal_safe`)
-----------------------------------------

A terminal acts on control characters: ESC starts sequences that clear the screen, set the
window title, recolour or hide text, move the cursor (so a certificate could overwrite a
verdict already printed), and on some terminals do worse (CWE-150); C1 characters (U+0080 to
U+009F) are the same controls in one character (U+009B is CSI); Unicode bidirectional controls
reorder what is shown (``evil\\u202emoc.`` displays as ``evilcom.``), and zero-width
characters hide. So every character of these Unicode categories is *shown*, never emitted:

* ``Cc`` (controls): C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F;
* ``Cf`` (format characters): the bidirectional marks, embeddings, overrides and isolates
  (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), zero-width spaces and joiners,
  U+FEFF, soft hyphen, tag characters, ...;
* ``Zl`` / ``Zp`` (U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR), which some terminals and
  viewers break lines on;
* ``Cs`` (lone surrogates, as Python gives for undecodable bytes in a file name), which cannot
  even be encoded to UTF-8 and would crash the write.

A character is shown the way Python's ``repr`` shows it: ``\\t``, ``\\n``, ``\\r``, else
``\\xNN`` below U+0100, ``\\uNNNN``, ``\\UNNNNNNNN``. So the CN
``evil<ESC>[2J<ESC>]0;pwned<BEL>`` prints as ``evil\\x1b[2J\\x1b]0;pwned\\x07``. Everything else
(letters of every script, accents, CJK, emoji, ordinary spaces) is kept. A backslash is kept
as it is: ``\\x1b`` on screen may be an escaped ESC or the four characters a certificate really
holds; the JSON output and the manifest keep the exact value and tell them apart.

Newlines are decided per call site. ``newlines=False`` (the default) escapes them: use it for
every value that is one field or one line (a name, a message, a cell), so a name can never
start a line of its own and fake a verdict. ``newlines=True`` keeps ``\\n`` (only ``\\n``: CR,
which returns the cursor to the start of the line, is still escaped): use it on a whole
multi-line text built by chainscan whose values were already escaped one by one, as the last
guard before it is written.

Where it is applied: every human-readable output goes through it on its way out. The run's
progress, warnings, errors, bad-line messages and summary (``run/_display.py``); ``report``,
``inspect``, ``diff``, ``pins -f text`` and pin warnings, ``bundle`` and ``merge`` messages
(``commands/``). New output (the one-host view, STARTTLS error messages that quote a server's
reply) must do the same: escape each untrusted value with :func:`terminal_safe` where it is put
into a line, and pass the finished text through ``terminal_safe(text, newlines=True)`` before
writing it. (The STARTTLS dialogues quote a server's reply in their error messages through
``scan/_starttls/_common.server_words``, which predates this module: it keeps printable
characters only, ``?`` for the rest, then ``repr``, so it meets the same rule, and those
messages pass through this function again wherever they are shown.) JSON written to a
terminal goes through :func:`json_terminal_safe` (the same rule,
as JSON ``\\uXXXX`` escapes, so the value stays exact). The manifest keeps the exact value
(JSON escaping makes C0 inert; its readers decode it back). HTML output keeps escaping with
``html.escape``: a browser does not act on control characters.

The spreadsheet rule (:func:`spreadsheet_safe`)
-----------------------------------------------

Excel, LibreOffice Calc and Google Sheets read a CSV cell that starts with ``=``, ``+``, ``-``
or ``@`` as a formula (``=HYPERLINK(...)``, DDE ``=cmd|'/c calc'!A1``: CWE-1236). The OWASP
"CSV Injection" page lists those four and tab (0x09) and carriage return (0x0D) as the first
characters to neutralise, by putting a single quote ``'`` in front of the cell, which these
programs take as "this is text"; that is what :func:`spreadsheet_safe` does, for NUL too, as
OWASP ASVS 5.0 (requirement 1.2.10) lists it. The quote stays visible to a program that reads
the CSV as plain text.
Apply it to every text cell of a CSV export (numbers written as numbers need not), then let
Python's :mod:`csv` writer quote the cell (it doubles ``"`` and quotes cells holding a
separator, a quote or a line break, RFC 4180), so a cell can never start a new one.
"""

from __future__ import annotations

import json
import unicodedata

__all__ = [
    "SPREADSHEET_TRIGGERS",
    "is_terminal_unsafe",
    "json_terminal_safe",
    "spreadsheet_safe",
    "terminal_safe",
]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}

SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\x00")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP; NUL: ASVS)."""


def is_terminal_unsafe(char: str) -> bool:
    """True for one character a terminal must never receive raw (see the module docstring)."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _shown(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_line(line: str) -> str:
    if line.isprintable():  # fast path: isprintable() is False for every unsafe character
        return line
    return "".join(_shown(ch) if is_terminal_unsafe(ch) else ch for ch in line)


def terminal_safe(text: object, *, newlines: bool = False) -> str:
    """``str(text)`` with every control, format, separator and surrogate character shown as an
    escape (``\\x1b``, ``\\u202e``), so that it cannot act on a terminal.

    ``newlines=True`` keeps ``\\n`` line breaks (for a whole text whose values were escaped
    already); by default a newline is shown as ``\\n`` too. Every other character is kept.
    """
    value = str(text)
    if not newlines:
        return _escape_line(value)
    return "\n".join(_escape_line(line) for line in value.split("\n"))


def json_terminal_safe(text: str) -> str:
    """JSON text with every character :func:`terminal_safe` would escape written as a JSON
    ``\\uXXXX`` escape (a surrogate pair above U+FFFF): the same JSON value, safe to print.

    Only for text produced by :func:`json.dumps` (outside its strings it is ASCII, so every
    such character is inside a string). The JSON line breaks and indentation are kept.
    """
    if text.isascii() and "\x7f" not in text:
        return text
    out = []
    for ch in text:
        if ch == "\n" or not is_terminal_unsafe(ch):
            out.append(ch)
        else:
            out.append(json.dumps(ch, ensure_ascii=True)[1:-1])
    return "".join(out)


def spreadsheet_safe(cell: str) -> str:
    """A CSV text cell that no spreadsheet will run as a formula: ``cell`` with ``'`` in front
    when it starts with ``=``, ``+``, ``-``, ``@``, tab, carriage return or NUL (OWASP), else
    ``cell`` unchanged. Quote the result with :mod:`csv` as usual."""
    if cell.startswith(SPREADSHEET_TRIGGERS):
        return "'" + cell
    return cell
