"""``chainscan export OUT --csv FILE | --sqlite FILE``: arguments -> ``_export``. No logic."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from collections.abc import Sequence
from pathlib import Path

from .._errors import UsageError
from ..manifest._reader import read_header
from ._common import new_parser, read_scan, run, write_text_atomically
from ._export import (
    CERT_COLUMNS,
    TARGET_COLUMNS,
    cert_rows,
    export_sqlite,
    spreadsheet_safe,
    target_rows,
)

__all__ = ["main"]

PROG = "chainscan export"

DESCRIPTION = """\
Export a scan (output folder or manifest) for spreadsheets and SQL.

--csv FILE writes one row per certificate served (--per certificate, the default) or one row
per target (--per target), with a header row; the columns are documented in docs/export.md.
Text cells that a spreadsheet would run as a formula get a leading ' (CSV injection).

--sqlite FILE appends the scan to a SQLite database (created if missing): tables scans,
targets, chain, certificates (keyed by SHA-256 fingerprint, stored once) and problems, with
the scan's time, so several scans can be compared in one query. Exporting the same scan twice
adds nothing. Schema and example queries: docs/export.md.
"""

EPILOG = """\
exit codes:
  0  written    2  usage error, unreadable manifest or unwritable file

examples:
  chainscan export out/ --csv certs.csv
  chainscan export out/ --csv hosts.csv --per target
  chainscan export out/ --sqlite inventory.db
  sqlite3 inventory.db "SELECT t.host, c.not_after FROM targets t JOIN certificates c
      ON c.sha256 = t.leaf_sha256 WHERE c.not_after < datetime('now', '+30 days')"
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("source", metavar="OUT", type=Path, help="output folder or manifest")
    parser.add_argument("--csv", metavar="FILE", type=Path, help="write a CSV file here")
    parser.add_argument(
        "--per",
        choices=["certificate", "target"],
        default="certificate",
        help="--csv: one row per certificate or per target (default: %(default)s)",
    )
    parser.add_argument("--sqlite", metavar="FILE", type=Path, help="append to this database")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return run(PROG, lambda: _export(args))


def _scan_time(manifest: Path) -> dt.datetime:
    """When the scan started (its manifest.json header), else when its manifest last changed."""
    header = read_header(manifest.with_name("manifest.json"))
    started = None
    if header is not None and isinstance(header.get("run"), dict):
        started = header["run"].get("started")
    if isinstance(started, str):
        try:
            return dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(manifest.stat().st_mtime, dt.UTC)


def _export(args: argparse.Namespace) -> int:
    if args.csv is None and args.sqlite is None:
        raise UsageError("say what to write: --csv FILE, --sqlite FILE, or both")
    manifest, entries = read_scan(args.source)
    scanned_at = _scan_time(manifest)
    now = dt.datetime.now(dt.UTC)
    if args.csv is not None:
        stamp = scanned_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        per_target = args.per == "target"
        columns = TARGET_COLUMNS if per_target else CERT_COLUMNS
        rows = (target_rows if per_target else cert_rows)(entries, stamp, now)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
        try:
            write_text_atomically(args.csv, buffer.getvalue())
        except OSError as exc:
            raise UsageError(f"--csv {args.csv}: {exc.strerror or exc}") from None
        print(f"{args.csv}: {len(entries)} targets")
    if args.sqlite is not None:
        scan_id = export_sqlite(
            args.sqlite, entries, scanned_at=scanned_at, source=str(manifest.parent.resolve())
        )
        if scan_id is None:
            print(f"{args.sqlite}: already holds this scan; nothing added")
        else:
            print(f"{args.sqlite}: scan {scan_id}, {len(entries)} targets")
    return 0
