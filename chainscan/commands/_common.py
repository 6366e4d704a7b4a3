"""What every command's ``*_cli`` shares: the usage error and exit code 2, argument types and
defaults, finding and reading a scan's manifest, writing an output file atomically, and the
plain-text table. No logic of any one command lives here.

Text for people goes through :func:`chainscan._untrusted.terminal_safe`: :func:`error` escapes
the whole message (one line), :func:`text_table` every cell (names come from servers), and each
command passes its finished text through ``terminal_safe(text, newlines=True)`` before writing
it (see ``chainscan/_untrusted.py`` for the rule).

Every command reports a problem with its arguments or inputs the same way: the core raises
:class:`~chainscan.UsageError` (or another :class:`~chainscan.ChainscanError`: an
``OutputError`` for a destination it refuses), and :func:`run` prints ``PROG: error: MESSAGE``
on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._errors import ChainscanError, UsageError
from .._files import atomic_write
from .._models import WARN_DAYS, ScanOptions
from .._untrusted import terminal_safe
from ..manifest._model import MANIFEST_NAMES, ManifestEntry
from ..manifest._reader import find_manifest, read_entries

__all__ = [
    "add_warn_days",
    "manifest_path",
    "new_parser",
    "non_negative_int",
    "read_scan",
    "run",
    "text_table",
    "write_text_atomically",
]


def run(prog: str, body: Callable[[], int]) -> int:
    """``body()``, with any :class:`~chainscan.ChainscanError` printed as ``PROG: error: ...``
    and turned into exit code 2."""
    try:
        return body()
    except ChainscanError as exc:
        error(prog, str(exc))
        return 2


def error(prog: str, message: str) -> None:
    print(terminal_safe(f"{prog}: error: {message}"), file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Arguments


def new_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A command's parser: its help text laid out as written."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def number(text: str, kind: type[int] | type[float], what: str) -> float:
    """``text`` as a finite number, or the argparse error naming what was expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def seconds(text: str) -> float:
    value = number(text, float, "a number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def port(text: str) -> int:
    value = int(number(text, int, "a port number"))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (1-65535)")
    return value


def add_attempt_options(group: Any, defaults: ScanOptions) -> None:
    """``--connect-timeout``, ``--handshake-timeout``, ``--deadline`` and ``--retries``, as the
    scan and ``chainscan show`` take them."""
    group.add_argument(
        "--connect-timeout",
        type=seconds,
        default=defaults.connect_timeout,
        metavar="S",
        help="seconds for the TCP connection (default: %(default)g)",
    )
    group.add_argument(
        "--handshake-timeout",
        type=seconds,
        default=defaults.handshake_timeout,
        metavar="S",
        help="seconds for the whole TLS handshake (default: %(default)g)",
    )
    group.add_argument(
        "--deadline",
        type=seconds,
        default=defaults.deadline,
        metavar="S",
        help="seconds for one target, every attempt and wait included (default: %(default)g)",
    )
    group.add_argument(
        "--retries",
        type=non_negative_int,
        default=defaults.retries,
        help="extra attempts after a timeout, reset or early EOF, with jittered exponential "
        "backoff (default: %(default)s)",
    )


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_trust_store(parser: Any, defaults: ScanOptions) -> None:
    """``--trust-store STORE``, as the scan and ``chainscan show`` take it."""
    parser.add_argument(
        "--trust-store",
        metavar="STORE",
        default=defaults.trust_store,
        help="verify chains against 'certifi' (Mozilla's roots), 'system' or a PEM bundle file "
        "(default: %(default)s)",
    )


def add_warn_days(parser: Any, help: str) -> None:
    """``--warn-days N`` (default :data:`~chainscan._models.WARN_DAYS`) on a parser or group."""
    parser.add_argument(
        "--warn-days", type=non_negative_int, default=WARN_DAYS, metavar="N", help=help
    )


# --------------------------------------------------------------------------------------------
# Reading a scan


def manifest_path(path: Path) -> Path:
    """The manifest file for an output folder or a manifest path."""
    if path.is_dir():
        found = find_manifest(path)
        if found is not None:
            return found
        raise UsageError(f"{path}: no {' or '.join(MANIFEST_NAMES)} in this folder")
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    return path


def read_scan(path: Path) -> tuple[Path, list[ManifestEntry]]:
    """The manifest of ``path`` (a folder or a manifest) and its entries."""
    manifest = manifest_path(path)
    try:
        return manifest, list(read_entries(manifest))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{manifest}: cannot read the manifest: {exc}") from None


# --------------------------------------------------------------------------------------------
# Output


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))


def text_table(rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    """Rows as lines of left-aligned columns two spaces apart (the last one unpadded); every
    cell is escaped for the terminal first (``terminal_safe``: one line, no control)."""
    if not rows:
        return []
    rows = [tuple(terminal_safe(cell) for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]
