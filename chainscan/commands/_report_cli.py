"""``chainscan report OUT [--html FILE]``: arguments -> ``_report`` -> terminal and/or page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..output._output import read_manifest_entries
from ._pins_cli import PinsUsageError, manifest_path, non_negative_int, write_atomically
from ._report import build_report, render_html, render_text

__all__ = ["main"]

PROG = "chainscan report"

DESCRIPTION = """\
Summarize a chainscan scan (output folder or manifest): targets by status, how many chains are
trusted, each problem code and how many targets have it, the soonest expiries, and the
untrusted and mismatched hosts. With --html, also write one self-contained page (no network
fetches) with an expiry timeline, problems by host, issuers and key types, and a sortable
host table.
"""

EPILOG = """\
exit codes:
  0  written    2  usage error or unreadable manifest

examples:
  chainscan report out/
  chainscan report out/ --html out/report.html -q
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="OUT", type=Path, help="output folder or manifest")
    parser.add_argument("--html", metavar="FILE", type=Path, help="also write an HTML page here")
    parser.add_argument(
        "--warn-days",
        type=non_negative_int,
        default=30,
        metavar="N",
        help="count leaves expiring within N days (default: %(default)s)",
    )
    parser.add_argument(
        "--top",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="soonest expiries to list (default: %(default)s)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        manifest = manifest_path(args.source)
        try:
            entries = list(read_manifest_entries(manifest))
        except (OSError, ValueError) as exc:
            raise PinsUsageError(f"{manifest}: cannot read the manifest: {exc}") from None
    except PinsUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    report = build_report(entries, source=str(args.source), warn_days=args.warn_days)
    if not args.quiet:
        sys.stdout.write(render_text(report, top=args.top))
    if args.html is not None:
        try:
            write_atomically(args.html, render_html(report))
        except OSError as exc:
            print(f"{PROG}: error: {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        if not args.quiet:
            print(f"\nHTML report: {args.html}")
    return 0
