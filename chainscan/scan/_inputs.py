"""Input files beyond one target per line: spreadsheets (CSV with a header) and address ranges.

Theory of operation
-------------------
Both forms are turned into what the line parser (``_targets.parse_line``) already reads, so
every rule of a target line (ports, names, IDNA, ``{ip}``, ``--sni``) holds for them unchanged
and each mistake is reported the same way, as a :class:`~chainscan.BadLine` naming the file and
line.

* **CSV.** A file is read as CSV when ``--csv`` says so, or when its first line that is not
  blank or a comment is a header: it holds a separator (``,`` ``;`` tab ``|``) and a column
  named ``host``. (A target line can hold neither a separator nor spaces, so a target list is
  never mistaken for a spreadsheet.) The separator is the one the header uses most. Columns, by
  header name, case-insensitive: ``host`` (required), ``port``, ``ip`` (connect there, send the
  host as SNI: the line form ``host:port{ip}``), ``sni`` (the SNI name to send instead of the
  host), ``protocol`` (``https``, ``tls`` or empty: TLS from the first byte; anything else is
  passed on as the URL scheme ``protocol://``: ``smtp``, ``imap``, ... for STARTTLS). Other
  columns are ignored. Each row is one physical line: quoted fields may hold separators, not
  line breaks.
* **Address ranges.** A line (or a CSV ``host``) that is a CIDR range, ``192.0.2.0/24``,
  ``192.0.2.0/24:8443``, ``2001:db8::/120`` or ``[2001:db8::]/120:8443``, stands for every
  usable address of the range (``ipaddress``'s ``hosts()``: without the network and broadcast
  addresses of an IPv4 range), each a target of that line. Addresses are produced one at a time
  as the scan asks for them, so a /16 costs no memory beyond the deduplicator's 16-32 bytes per
  target. A range of more than ``max_range`` addresses (default 65,536, a /16; ``--max-range``)
  is refused as a bad line, so a typo (``/8`` for ``/24``) does not start a scan of 16 million
  addresses.
"""

from __future__ import annotations

import csv
import dataclasses
import ipaddress
import itertools
import re
from collections.abc import Iterable, Iterator

from .._errors import UsageError
from .._models import BadLine, Target
from ._starttls._table import AUTO
from ._targets import DEFAULT_PORT, check_options, parse_line

__all__ = ["MAX_RANGE", "count_targets", "iter_inputs"]

MAX_RANGE = 65536
"""Addresses one CIDR line may stand for, by default (a /16)."""

_SEPARATORS = ",;\t|"
_COLUMNS = ("host", "port", "ip", "sni", "protocol")
_TLS_PROTOCOLS = frozenset({"", "https", "tls", "ssl"})
_COMMENT = re.compile(r"(?<!\S)#")
_CIDR = re.compile(
    r"(?P<v4>[0-9.]+/[0-9]{1,3})(?::(?P<port4>[^:]*))?"
    r"|\[(?P<v6b>[0-9A-Fa-f:.]+)\](?P<len6b>/[0-9]{1,3})(?::(?P<port6b>.*))?"
    r"|\[(?P<v6c>[0-9A-Fa-f:.]+/[0-9]{1,3})\](?::(?P<port6c>.*))?"
    r"|(?P<v6>[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*/[0-9]{1,3})"
)
_RAW_LIMIT = 200

Line = str | tuple[int, str] | BadLine


def iter_inputs(
    lines: Iterable[Line],
    *,
    source: str,
    default_port: int = DEFAULT_PORT,
    sni: str | None = None,
    csv_input: bool | None = None,
    max_range: int = MAX_RANGE,
    starttls: str = AUTO,
) -> Iterator[Target | BadLine]:
    """``_targets.iter_targets`` plus CSV files and CIDR ranges (see the module docstring).

    ``csv_input``: True reads CSV, False never does, None decides by the first line. Options are
    checked now (``UsageError``); the lines as the result is iterated.
    """
    check_options(default_port=default_port, sni=sni, starttls=starttls)
    if max_range < 1:
        raise UsageError(f"--max-range must be at least 1, got {max_range}")
    return _Reader(source, default_port, sni, max_range, starttls).read(lines, csv_input)


def _numbered(position: int, item: str | tuple[int, str]) -> tuple[int, str]:
    return (position, item) if isinstance(item, str) else (item[0], item[1])


def _content(text: str) -> str:
    """The line without its comment and surrounding blanks (and a BOM)."""
    return _COMMENT.split(text.lstrip("\ufeff"), maxsplit=1)[0].strip()


def _header_separator(text: str) -> str | None:
    """The separator of a CSV header line that names a ``host`` column, else None."""
    counts = {sep: text.count(sep) for sep in _SEPARATORS}
    sep, count = max(counts.items(), key=lambda kv: kv[1])
    if count == 0:
        return None
    names = [name.strip().strip('"').strip().lower() for name in text.split(sep)]
    return sep if "host" in names else None


class _Reader:
    __slots__ = ("default_port", "max_range", "sni", "source", "starttls")

    def __init__(
        self, source: str, default_port: int, sni: str | None, max_range: int, starttls: str
    ) -> None:
        self.starttls = starttls
        self.source = source
        self.default_port = default_port
        self.sni = sni
        self.max_range = max_range

    def read(self, lines: Iterable[Line], csv_input: bool | None) -> Iterator[Target | BadLine]:
        items = iter(lines)
        ahead: list[Line] = []
        header: tuple[int, str] | None = None
        for position, item in enumerate(items, start=1):
            ahead.append(item)
            if isinstance(item, BadLine):
                continue
            number, text = _numbered(position, item)
            if _content(text):
                header = (number, text)
                break
        separator = None if header is None else _header_separator(_content(header[1]))
        every = itertools.chain(ahead, items)
        if csv_input or (csv_input is None and separator is not None):
            yield from self._csv(every, header, separator)
        else:
            yield from self._lines(every)

    # ---- plain lines

    def _lines(self, items: Iterable[Line]) -> Iterator[Target | BadLine]:
        for position, item in enumerate(items, start=1):
            if isinstance(item, BadLine):
                yield item
                continue
            number, text = _numbered(position, item)
            content = _content(text)
            if "/" in content and "://" not in content and _CIDR.fullmatch(content):
                yield from self._range(content, number, content)
                continue
            parsed = self._parse(text, number)
            if parsed is not None:
                yield parsed

    def _parse(self, text: str, number: int) -> Target | BadLine | None:
        return parse_line(
            text,
            line=number,
            source=self.source,
            default_port=self.default_port,
            sni=self.sni,
            starttls=self.starttls,
        )

    def _bad(self, number: int, raw: str, reason: str) -> BadLine:
        return BadLine(source=self.source, line=number, raw=raw[:_RAW_LIMIT], reason=reason)

    # ---- address ranges

    def _range(self, text: str, number: int, raw: str) -> Iterator[Target | BadLine]:
        match = _CIDR.fullmatch(text)
        assert match is not None
        groups = match.groupdict()
        if groups["v4"] is not None:
            network_text, port = groups["v4"], groups["port4"]
        elif groups["v6b"] is not None:
            network_text, port = groups["v6b"] + groups["len6b"], groups["port6b"]
        elif groups["v6c"] is not None:
            network_text, port = groups["v6c"], groups["port6c"]
        else:
            network_text, port = groups["v6"], None
        try:
            network = ipaddress.ip_network(network_text, strict=False)
        except ValueError as exc:
            yield self._bad(number, raw, f"invalid address range {network_text!r}: {exc}")
            return
        if network.num_addresses > self.max_range:
            yield self._bad(
                number,
                raw,
                f"the range {network} has {network.num_addresses:,} addresses, more than "
                f"--max-range {self.max_range:,}: split it, or raise --max-range",
            )
            return
        suffix = "" if port is None else f":{port}"
        for address in network.hosts() if network.num_addresses > 2 else network:
            host = f"[{address}]" if address.version == 6 else str(address)
            parsed = self._parse(host + suffix, number)
            if isinstance(parsed, BadLine):
                yield self._bad(number, raw, parsed.reason)
                return  # the port is wrong: once for the line, not once per address
            if parsed is not None:
                yield dataclasses.replace(parsed, raw=raw[:_RAW_LIMIT])

    # ---- CSV

    def _csv(
        self, items: Iterable[Line], header: tuple[int, str] | None, separator: str | None
    ) -> Iterator[Target | BadLine]:
        if header is None:
            return
        sep = separator or ","
        names = [name.strip().lower() for name in next(csv.reader([header[1]], delimiter=sep))]
        if names:
            names[0] = names[0].lstrip("\ufeff")
        if "host" not in names:
            yield self._bad(
                header[0],
                header[1],
                f"the CSV header has no 'host' column (it has {', '.join(names)}); the columns "
                f"chainscan reads are {', '.join(_COLUMNS)}: no row of this file is scanned",
            )
            return
        column = {name: names.index(name) for name in _COLUMNS if name in names}
        for position, item in enumerate(items, start=1):
            if isinstance(item, BadLine):
                yield item
                continue
            number, text = _numbered(position, item)
            if number == header[0] or not _content(text):
                continue
            try:
                row = next(csv.reader([text], delimiter=sep))
            except csv.Error as exc:
                yield self._bad(number, text.strip(), f"not a CSV row: {exc}")
                continue
            yield from self._row(row, column, number, text.strip())

    def _row(
        self, row: list[str], column: dict[str, int], number: int, raw: str
    ) -> Iterator[Target | BadLine]:
        def cell(name: str) -> str:
            index = column.get(name)
            return row[index].strip() if index is not None and index < len(row) else ""

        host, port, ip, sni, protocol = (cell(name) for name in _COLUMNS)
        if not host:
            yield self._bad(number, raw, "empty host column")
            return
        if "/" in host and _CIDR.fullmatch(host) and not ip:
            yield from self._range(host + (f":{port}" if port else ""), number, raw)
            return
        text = f"[{host}]" if ":" in host and not host.startswith("[") else host
        if port:
            text += f":{port}"
        if protocol.lower() not in _TLS_PROTOCOLS:
            text = f"{protocol}://{text}"
        if ip:
            text += f"{{{ip}}}"
        parsed = self._parse(text, number)
        if parsed is None:
            yield self._bad(number, raw, f"the host column {host!r} holds no target")
            return
        if isinstance(parsed, BadLine):
            yield self._bad(number, raw, parsed.reason)
            return
        if sni and self.sni is None:
            try:
                parsed = dataclasses.replace(parsed, sni=check_options(sni=sni))
            except UsageError as exc:
                yield self._bad(number, raw, str(exc).replace("--sni", "sni column"))
                return
        yield dataclasses.replace(parsed, raw=raw[:_RAW_LIMIT])


def count_targets(
    path: str, *, csv_input: bool | None = None, max_range: int = MAX_RANGE
) -> int | None:
    """About how many items (targets and bad lines) ``path`` gives, for a progress bar; None
    for standard input or a file that cannot be read.

    One pass over the file: blank lines, comments and a CSV header are not counted, a CIDR range
    counts its addresses (a range over ``max_range``, one bad line). Duplicates are counted, so
    the scan may end below the total.
    """
    if path == "-":
        return None
    count = 0
    header_seen = False
    is_csv = csv_input
    try:
        with open(path, "rb") as stream:
            for raw in stream:
                text = _content(raw.decode("utf-8", "replace"))
                if not text:
                    continue
                if not header_seen:
                    header_seen = True
                    if is_csv is None:
                        is_csv = _header_separator(text) is not None
                    if is_csv:
                        continue
                if not is_csv and "/" in text and "://" not in text:
                    match = _CIDR.fullmatch(text)
                    if match is not None:
                        count += _range_size(match, max_range)
                        continue
                count += 1
    except OSError:
        return None
    return count


def _range_size(match: re.Match[str], max_range: int) -> int:
    groups = match.groupdict()
    text = (
        groups["v4"]
        or groups["v6c"]
        or groups["v6"]
        or ((groups["v6b"] or "") + (groups["len6b"] or ""))
    )
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return 1
    size = network.num_addresses
    if size > max_range:
        return 1
    return size - 2 if size > 2 and network.version == 4 else (size - 1 if size > 2 else size)
