"""``chainscan report OUT [--html FILE]``: arguments -> ``_report`` -> terminal and/or page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._untrusted import terminal_safe
from ._common import (
    add_warn_days,
    error,
    new_parser,
    non_negative_int,
    read_scan,
    run,
    write_text_atomically,
)
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
  chainscan report out/ --json | jq '.hosts[] | select(.trusted == false) | .target'
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("source", metavar="OUT", type=Path, help="output folder or manifest")
    parser.add_argument("--html", metavar="FILE", type=Path, help="also write an HTML page here")
    add_warn_days(parser, "count leaves expiring within N days (default: %(default)s)")
    parser.add_argument(
        "--top",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="soonest expiries to list (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as one JSON object (counts, problems, expiries, hosts) instead "
        "of text",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return run(PROG, lambda: _report(args))


def _report(args: argparse.Namespace) -> int:
    _manifest, entries = read_scan(args.source)
    report = build_report(entries, source=str(args.source), warn_days=args.warn_days)
    if args.json:
        from ._report_json import render_json

        sys.stdout.write(render_json(report))
    elif not args.quiet:
        sys.stdout.write(terminal_safe(render_text(report, top=args.top), newlines=True))
    if args.html is not None:
        try:
            write_text_atomically(args.html, render_html(report))
        except OSError as exc:
            error(PROG, f"{args.html}: {exc.strerror or exc}")
            return 2
        if not args.quiet and not args.json:
            print("\n" + terminal_safe(f"HTML report: {args.html}"))
    return 0
