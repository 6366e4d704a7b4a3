"""``chainscan merge OUT [DIR...] [--shards FOLDER]``: arguments -> ``_merge.merge_outputs``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._untrusted import terminal_safe
from ._common import new_parser, run
from ._merge import merge_outputs

__all__ = ["main"]

PROG = "chainscan merge"

DESCRIPTION = """\
Join the output folders of a scan split with --shard K/N (or of any scans) into one folder:
certificate files copied, manifest entries concatenated in the order the folders are given,
a target listed by several folders kept once (the first), then manifest.jsonl and
manifest.json written as a scan writes them. --shards FOLDER adds the scan folders inside
FOLDER (the shared folder the shards of a Kubernetes indexed Job or a cron split write into),
in shard order. When the folders are the shards of one --shard split, the shards none of
them holds are named, and the merged run is marked incomplete.
"""

EPILOG = """\
exit codes:
  0  merged    2  usage error, unreadable manifest or write error

examples:
  chainscan hosts.txt -o out-1 --shard 1/2    # on host A
  chainscan hosts.txt -o out-2 --shard 2/2    # on host B
  chainscan merge out/ out-1 out-2
  chainscan merge merged/ --shards /scans/shards/   # every scan folder in it
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("output", metavar="OUT", type=Path, help="new (or empty) folder")
    parser.add_argument("sources", metavar="DIR", type=Path, nargs="*", help="scan folders to join")
    parser.add_argument(
        "--shards",
        metavar="FOLDER",
        type=Path,
        action="append",
        default=[],
        help="also join every scan folder inside FOLDER (one level down), in shard order: the "
        "shared folder the shards of a split write into (repeatable)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if not args.sources and not args.shards:
        parser.error("give the folders to merge: DIR... and/or --shards FOLDER")
    return run(PROG, lambda: _merge(args, argv))


def _merge(args: argparse.Namespace, argv: Sequence[str]) -> int:
    report = merge_outputs(args.output, args.sources, shared=args.shards, argv=["merge", *argv])
    if not args.quiet:
        summary = report.summary
        message = (
            f"{report.entries} entries (ok {summary['ok']}, failed {summary['failed']}, "
            f"invalid {summary['invalid']}), {report.duplicates} duplicates dropped"
            f"{'' if report.complete else '; incomplete'}: {report.manifest}"
        )
        if report.missing_shards:
            message += (
                f"\nno folder holds shard {', '.join(report.missing_shards)}"
                f" (merged {len(report.sources)} folders)"
            )
        elif not report.complete:
            message += "\na source run was incomplete (see run.complete in its manifest.json)"
        print(terminal_safe(message), file=sys.stderr)
    return 0
