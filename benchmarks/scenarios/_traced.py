"""Run chainscan's command line in this process under tracemalloc; snapshot it at the plateau.

``python -m benchmarks.scenarios._traced --hold N --report FILE -- CHAINSCAN ARGS...``

Used by ``scale --tracemalloc``: while :mod:`._slowtls` holds N handshakes, a thread watches this
process's open file count; once it has stayed at N or more for a second, it takes a tracemalloc
snapshot and diffs it against one taken when the scan had ``--start-at`` (100) files open, its
imports and set-up done. The diff, grouped by traceback and divided by the connections opened
in between, is what the Python side of chainscan holds per handshake in flight: a group whose
count per handshake is near a whole number is a per-connection object. OpenSSL's own allocations
(``malloc`` from C) are not traced; the report gives RSS beside the traced total.

The report (JSON) lists the largest groups with their bytes per handshake, innermost frames
first. tracemalloc slows allocation and adds its own memory (its trace table is in RSS, not in
the traced total), so RSS of a traced run is not comparable with an untraced one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FRAMES = 12


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _frames(trace: tracemalloc.Traceback) -> list[str]:
    """Oldest frame first, the allocating frame last."""
    return [f"{Path(f.filename).name}:{f.lineno}" for f in trace]


def diff_report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, hold: int, top: int = 40
) -> dict[str, Any]:
    """Groups of allocations alive at the plateau and not before, by traceback."""
    stats = after.compare_to(before, "traceback")
    grown = [s for s in stats if s.size_diff > 0]
    total = sum(s.size_diff for s in grown)
    by_file: dict[str, int] = {}
    for s in grown:
        # The innermost frame that is not the standard library's: who asked for it.
        name = next(
            (
                f"{Path(f.filename).name}:{f.lineno}"
                for f in reversed(s.traceback)
                if "/lib/python3" not in f.filename or "site-packages" in f.filename
            ),
            f"{Path(s.traceback[-1].filename).name}:{s.traceback[-1].lineno}",
        )
        by_file[name] = by_file.get(name, 0) + s.size_diff
    return {
        "hold": hold,
        "traced_growth_bytes": total,
        "traced_bytes_per_handshake": round(total / hold, 1),
        "groups": [
            {
                "bytes_per_handshake": round(s.size_diff / hold, 1),
                "count_per_handshake": round(s.count_diff / hold, 2),
                "frames": _frames(s.traceback)[-6:],
            }
            for s in grown[:top]
        ],
        "by_caller": sorted(
            (
                {"caller": k, "bytes_per_handshake": round(v / hold, 1)}
                for k, v in by_file.items()
                if v / hold >= 8
            ),
            key=lambda r: -float(r["bytes_per_handshake"]),
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--")
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios._traced")
    p.add_argument("--hold", type=int, required=True)
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--stable", type=float, default=1.0)
    p.add_argument(
        "--start-at",
        type=int,
        default=100,
        help="take the reference snapshot when this many files are open (%(default)s)",
    )
    ns = p.parse_args(args[:split])
    chainscan_args = args[split + 1 :]

    from chainscan._cli import main as chainscan_main
    from chainscan.run import _run  # noqa: F401 (imported before the first snapshot)

    tracemalloc.start(FRAMES)
    before = tracemalloc.take_snapshot()
    rss_before = _rss_kib()
    fds_before = 0
    report: dict[str, Any] = {}
    stop = threading.Event()

    def watch() -> None:
        nonlocal before, rss_before, fds_before
        since: float | None = None
        while not stop.wait(0.1):
            if fds_before == 0 and _fds() >= ns.start_at:
                # The scan has started (its imports are done): the reference snapshot.
                fds_before = _fds()
                before = tracemalloc.take_snapshot()
                rss_before = _rss_kib()
            if _fds() >= ns.hold:
                since = since or time.monotonic()
                if time.monotonic() - since >= ns.stable:
                    rss = _rss_kib()
                    snap = tracemalloc.take_snapshot()
                    fds = _fds()
                    report.update(diff_report(before, snap, fds - fds_before))
                    report["fds"] = fds
                    report["fds_before"] = fds_before
                    report["rss_growth_kib_per_handshake"] = round(
                        (rss - rss_before) / (fds - fds_before), 1
                    )
                    return
            else:
                since = None

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        code = chainscan_main(chainscan_args)
    finally:
        stop.set()
        thread.join()
    report["returncode"] = code
    ns.report.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
