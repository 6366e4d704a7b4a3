"""``chainscan diff OLD NEW [--pins FILE] [--json]``: arguments -> ``_diff`` -> table. No logic.

Reads the two manifests (folders or files, through ``manifest._reader``) and the
pin configuration, runs ``_diff.diff_scans`` and ``_diff.check_pins``, prints a table or JSON
and turns the pin gate into the exit code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._untrusted import terminal_safe
from ..manifest._model import JSON_NAME, parse_time
from ..manifest._reader import read_entries, read_header
from ._common import add_warn_days, manifest_path, new_parser, run, text_table
from ._diff import CHANGE_KINDS, DiffResult, PinCheck, ScanSide, check_pins, diff_scans
from ._pinconfig import parse_pin_config

__all__ = ["load_side", "main", "render_table", "scan_time"]

PROG = "chainscan diff"

DESCRIPTION = """\
Compare two chainscan scans (output folders or manifests) of the same targets: targets added
or removed, leaves renewed with the same key or a new one, intermediates changed, targets that
newly fail, are newly untrusted, have new problems or newly expire. With --pins, check that
every pinned host of NEW still matches one of its pins: the CI gate that says "this renewal
would break the app".

change kinds:
""" + "".join(f"  {kind:<22} {meaning}\n" for kind, meaning in CHANGE_KINDS.items())

EPILOG = """\
pin configurations (--pins): any format `chainscan pins` writes (android, ios, trustkit, okhttp,
voltmx, json, text), recognized from the content, or a plain list of `HOST PIN [PIN...]` lines
(pins alone on a line apply to every host). A chain passes when it holds one of its host's pins.

exit codes:
  0  compared (changes or not); every pinned host still matches its pins
  1  --pins: an enforced pinned host of NEW matches none of its pins
  2  usage error, or an unreadable manifest or pin file

examples:
  chainscan diff monday/ tuesday/
  chainscan diff old/manifest.json new/ --pins app/res/xml/network_security_config.xml
  chainscan diff old/ new/ --json > changes.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("old", metavar="OLD", type=Path, help="the earlier scan (folder/manifest)")
    parser.add_argument("new", metavar="NEW", type=Path, help="the later scan (folder/manifest)")
    parser.add_argument(
        "--pins",
        metavar="FILE",
        type=Path,
        help="a pin configuration: exit 1 if a pinned host of NEW matches none of its pins",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_warn_days(parser, "newly-expiring: within N days of each scan (default: %(default)s)")
    return parser


def scan_time(manifest: Path) -> dt.datetime:
    """When the scan ran: ``run.started`` of its ``manifest.json``, else the file's mtime."""
    candidates = [manifest] if manifest.name == JSON_NAME else []
    candidates.append(manifest.parent / JSON_NAME)
    for path in candidates:
        header = read_header(path)
        run = header.get("run") if header is not None else None
        started = run.get("started") if isinstance(run, dict) else None
        moment = parse_time(str(started)) if started is not None else None
        if moment is not None:
            return moment
    return dt.datetime.fromtimestamp(manifest.stat().st_mtime, dt.UTC)


def load_side(path: Path) -> ScanSide:
    """One scan: its entries and when it ran. Raises ``UsageError`` (exit 2)."""
    manifest = manifest_path(path)
    try:
        entries = list(read_entries(manifest))
        moment = scan_time(manifest)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{manifest}: cannot read the manifest: {exc}") from None
    return ScanSide(label=str(path), entries=entries, time=moment)


def render_table(result: DiffResult, pins: PinCheck | None, pins_file: str | None) -> str:
    lines = []
    for name, side in (("OLD", result.old), ("NEW", result.new)):
        lines.append(
            f"{name}  {terminal_safe(side.label)}  (scanned {side.time:%Y-%m-%d %H:%M} UTC, "
            f"{result.counts[name.lower()]} targets)"
        )
    lines.append("")
    if result.changes:
        rows = [("CHANGE", "TARGET", "DETAIL")]
        rows += [(c.kind, c.target, c.message) for c in result.changes]
        lines += text_table(rows)
    else:
        lines.append("no changes")
    counts = result.counts
    lines += [
        "",
        f"{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
        f"{counts['unchanged']} unchanged",
    ]
    if pins is not None:
        broken = [h for h in pins.hosts if h.status == "broken"]
        lines += [
            "",
            f"PIN CHECK  {terminal_safe(pins_file)} ({pins.format}): "
            f"{len(pins.hosts)} pinned hosts, {len(broken)} broken"
            + ("  -> FAIL" if pins.failed else "  -> ok"),
        ]
        rows = []
        for host in pins.hosts:
            status = host.status if host.enforced else f"{host.status} (not enforced)"
            detail = host.message or f"{host.chains} chain(s) match its pins"
            rows.append((status, host.host, detail))
        lines += text_table(rows, indent="  ")
    return "\n".join(lines) + "\n"


def result_json(result: DiffResult, pins: PinCheck | None, pins_file: str | None) -> dict[str, Any]:
    return {
        "old": {"source": result.old.label, "scanned": result.old.time.isoformat()},
        "new": {"source": result.new.label, "scanned": result.new.time.isoformat()},
        "counts": result.counts,
        "changes": [c.to_json() for c in result.changes],
        "pins": None
        if pins is None
        else {
            "file": pins_file,
            "format": pins.format,
            "failed": pins.failed,
            "hosts": [h.to_json() for h in pins.hosts],
        },
    }


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    return run(PROG, lambda: _diff(args))


def _diff(args: argparse.Namespace) -> int:
    old, new = load_side(args.old), load_side(args.new)
    config = None
    if args.pins is not None:
        try:
            config = parse_pin_config(args.pins.read_bytes())
        except OSError as exc:
            raise UsageError(f"--pins {args.pins}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UsageError(f"--pins {args.pins}: {exc}") from None
    result = diff_scans(old, new, warn_days=args.warn_days)
    pins = check_pins(config, new) if config is not None else None
    pins_file = None if args.pins is None else str(args.pins)
    if args.json:
        sys.stdout.write(json.dumps(result_json(result, pins, pins_file), indent=2) + "\n")
    else:
        sys.stdout.write(terminal_safe(render_table(result, pins, pins_file), newlines=True))
    return 1 if pins is not None and pins.failed else 0
