"""How long a finished handshake waits before its line is in ``manifest.jsonl`` (issue 16, part 3).

Theory of operation
-------------------
chainscan scans the loopback nginx fleet (``benchmarks.fleet``) at full load (``--concurrency
500 --rate 0 --per-ip 0 --retries 0``, as the core benchmark runs it) with the environment
variable ``CHAINSCAN_TRACE_FINISHED`` set: its scheduler then appends ``TIME HOST`` to a trace
file the moment each target's result is ready for the writer (``chainscan.scan._trace``; off, it
costs one ``is None`` test per target). Meanwhile a thread of this process reads
``manifest.jsonl`` as it grows (every ``--poll`` seconds, 2 ms by default) and notes when each
target's line appeared. Per target, *latency = appeared - finished*; the report gives p50, p99
and max per mode (default writer, ``--writer thread``, ``--workers 2``), with the run's rate and
CPU per target (the whole process tree: ``os.wait4``), medians over ``--repeats``.

Then the crash experiment of the issue: the default mode is killed with ``kill -9`` (the main
process only; its children exit on their own, ``run._child``) at ``--kill-at`` seconds after
start, and the report compares the lines on disk with the handshakes finished by then (from the
trace): what a crash at that moment loses.

``--checkout DIR`` (repeatable) measures other copies of chainscan in the same run (e.g. the
previous commit, exported with ``git archive``), interleaved run by run, so a before/after pair
shares the machine's load. Wall-clock figures need a quiet machine; on a loaded one the CPU per
target and the paired ratios are what to read.

    python -m benchmarks.disk_latency             # 2,000 targets, 3 repeats
    python -m benchmarks.disk_latency --quick     # 500 targets, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._requirements import ENTRY_POINTS, require_or_exit
from .fleet import FleetSpec, running_fleet

REPO = Path(__file__).resolve().parents[1]
TRACE_ENV = "CHAINSCAN_TRACE_FINISHED"
MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "writer-thread": ("--writer", "thread"),
    "workers-2": ("--workers", "2"),
}


class ManifestWatcher(threading.Thread):
    """Notes when each line of a growing ``manifest.jsonl`` appeared (by its ``host``)."""

    def __init__(self, path: Path, poll: float) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.poll = poll
        self.appeared: dict[str, float] = {}
        self.lines = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        fd = -1
        pending = b""
        while True:
            stopping = self._done.is_set()
            if fd < 0:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    fd = -1
            if fd >= 0:
                while chunk := os.read(fd, 1 << 20):
                    now = time.time()
                    data = pending + chunk
                    cut = data.rfind(b"\n") + 1
                    pending = data[cut:]
                    for line in data[:cut].splitlines():
                        self.lines += 1
                        host = json.loads(line).get("host")
                        if isinstance(host, str):
                            self.appeared.setdefault(host, now)
            if stopping:
                break
            self._done.wait(self.poll)
        if fd >= 0:
            os.close(fd)


def read_trace(path: Path) -> dict[str, float]:
    finished: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            at, _, host = line.partition(" ")
            if host:
                finished.setdefault(host, float(at))
    return finished


def chainscan_argv(targets: Path, outdir: Path, mode: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chainscan",
        str(targets),
        "-o",
        str(outdir),
        "-q",
        "--concurrency",
        str(concurrency),
        "--rate",
        "0",
        "--per-ip",
        "0",
        "--retries",
        "0",
        *MODES[mode],
    ]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Run:
    checkout: str
    mode: str
    targets: int
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    max_backlog: int = 0
    """The most handshakes finished at one time whose lines were not on disk yet."""
    first_finished: float = 0.0
    first_line: float = 0.0
    """Seconds from start to the first finished handshake, and to the first manifest line."""
    missing: int = 0
    killed_at: float | None = None
    kill_from: str = "start"
    lines_at_kill: int = 0
    finished_at_kill: int = 0

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        out: dict[str, Any] = {
            "checkout": self.checkout,
            "mode": self.mode,
            "targets": self.targets,
        }
        if self.killed_at is None:
            out |= {
                "seconds": round(self.seconds, 3),
                "rate": round(self.targets / self.seconds, 1) if self.seconds else None,
                "cpu_ms_per_target": round(1000 * self.cpu / self.targets, 3),
                "p50_ms": round(1000 * pct(lat, 0.5), 1),
                "p99_ms": round(1000 * pct(lat, 0.99), 1),
                "max_ms": round(1000 * max(lat), 1) if lat else None,
                "max_backlog": self.max_backlog,
                "first_finished_s": round(self.first_finished, 3),
                "first_line_s": round(self.first_line, 3),
                "matched": len(lat),
                "missing": self.missing,
            }
        else:
            out |= {
                "killed_at": self.killed_at,
                "kill_from": self.kill_from,
                "lines_on_disk": self.lines_at_kill,
                "handshakes_finished": self.finished_at_kill,
                "lost": self.finished_at_kill - self.lines_at_kill,
            }
        return out


def run_once(
    checkout: Path,
    targets_file: Path,
    count: int,
    mode: str,
    *,
    concurrency: int,
    poll: float,
    kill_at: float | None = None,
    kill_from_first: bool = False,
    timeout: float = 120.0,
) -> Run:
    with tempfile.TemporaryDirectory(prefix="chainscan-disklat-") as tmp:
        work = Path(tmp)
        outdir, trace = work / "out", work / "trace.txt"
        env = dict(os.environ, PYTHONPATH=str(checkout), **{TRACE_ENV: str(trace)})
        watcher = ManifestWatcher(outdir / "manifest.jsonl", poll)
        watcher.start()
        start, wall_start = time.perf_counter(), time.time()
        proc = subprocess.Popen(
            chainscan_argv(targets_file, outdir, mode, concurrency),
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        run = Run(checkout=str(checkout), mode=mode, targets=count)
        counting = not (kill_at is not None and kill_from_first)
        deadline = start + (kill_at if kill_at is not None and counting else timeout)
        # os.wait4, not Popen.poll: the process must be reaped here to get its rusage.
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            while pid == 0 and time.perf_counter() < deadline:
                time.sleep(0.002)
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if not counting and trace.exists() and trace.stat().st_size:
                    counting = True  # the first handshake finished: the clock starts now
                    deadline = time.perf_counter() + (kill_at or 0.0)
        except BaseException:  # Ctrl-C: its session is its own, so stop its tree here
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            watcher.stop()
            raise
        if pid == 0:
            os.kill(proc.pid, signal.SIGKILL)  # the main process only, as in the issue
            if kill_at is None:  # a timeout: take the whole tree down
                os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        run.seconds = time.perf_counter() - start
        run.cpu = usage.ru_utime + usage.ru_stime
        if kill_at is not None:
            finished_now = len(read_trace(trace))  # read before the children can add more
            time.sleep(0.3)  # children notice their parent's death within 50 ms and exit
            watcher.stop()
            run.killed_at = kill_at
            run.kill_from = "first-result" if kill_from_first else "start"
            run.finished_at_kill = finished_now
            run.lines_at_kill = watcher.lines
            return run
        watcher.stop()
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            raise SystemExit(f"chainscan failed in {checkout} ({mode}): exit status {status}")
        finished = read_trace(trace)
        for host, at in finished.items():
            appeared = watcher.appeared.get(host)
            if appeared is None:
                run.missing += 1
            else:
                run.latencies.append(max(0.0, appeared - at))
        run.max_backlog = max_backlog(finished.values(), watcher.appeared.values())
        if finished and watcher.appeared:
            run.first_finished = min(finished.values()) - wall_start
            run.first_line = min(watcher.appeared.values()) - wall_start
        return run


def max_backlog(finished: Iterable[float], appeared: Iterable[float]) -> int:
    """The most targets at one moment between their handshake's end and their line's arrival."""
    events = sorted([(at, 1) for at in finished] + [(at, -1) for at in appeared])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def median_summary(runs: list[Run]) -> dict[str, Any]:
    rows = [r.summary() for r in runs]
    out: dict[str, Any] = {"checkout": rows[0]["checkout"], "mode": rows[0]["mode"]}
    for key in rows[0]:
        if key in out or not isinstance(rows[0][key], int | float):
            continue
        values = [row[key] for row in rows if isinstance(row.get(key), int | float)]
        out[key] = round(statistics.median(values), 3) if values else None
    out["repeats"] = len(rows)
    return out


def git_commit(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "(not a git checkout)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.disk_latency", description=__doc__)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 targets, 1 repeat")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--modes", default=",".join(MODES), help="default: %(default)s")
    parser.add_argument("--kill-at", default="1.0,2.0", help="kill -9 times, s (%(default)s)")
    parser.add_argument(
        "--kill-from",
        choices=("start", "first-result"),
        default="start",
        help="count --kill-at from the start (the issue's experiment) or from the first"
        " finished handshake (comparable on a loaded machine, where start-up is slow)",
    )
    parser.add_argument("--poll", type=float, default=0.002, help="manifest poll interval, s")
    parser.add_argument(
        "--checkout",
        action="append",
        type=Path,
        default=[],
        help="also measure this copy of chainscan (repeatable); this checkout is always first",
    )
    parser.add_argument(
        "--base-port", type=int, default=26430, help="the fleet's first port (%(default)s)"
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.disk_latency", ENTRY_POINTS["benchmarks.disk_latency"].needs)
    if args.quick:
        args.targets, args.repeats = 500, 1
    modes = [m for m in args.modes.split(",") if m]
    kills = [float(k) for k in args.kill_at.split(",") if k]
    checkouts = [REPO, *args.checkout]
    results: dict[str, Any] = {
        "commits": {str(c): git_commit(c) for c in checkouts},
        "targets": args.targets,
        "concurrency": args.concurrency,
        "latency": [],
        "kill9": [],
    }
    with running_fleet(FleetSpec(targets=args.targets, base_port=args.base_port)) as fleet:
        runs: dict[tuple[str, str], list[Run]] = {}
        for _ in range(args.repeats):
            for mode in modes:
                for checkout in checkouts:
                    run = run_once(
                        checkout,
                        fleet.files.chainscan,
                        args.targets,
                        mode,
                        concurrency=args.concurrency,
                        poll=args.poll,
                    )
                    runs.setdefault((str(checkout), mode), []).append(run)
                    print(json.dumps(run.summary()), file=sys.stderr)
        for group in runs.values():
            results["latency"].append(median_summary(group))
        for kill_at in kills:
            for checkout in checkouts:
                run = run_once(
                    checkout,
                    fleet.files.chainscan,
                    args.targets,
                    "default",
                    concurrency=args.concurrency,
                    poll=args.poll,
                    kill_at=kill_at,
                    kill_from_first=args.kill_from == "first-result",
                )
                results["kill9"].append(run.summary())
                print(json.dumps(run.summary()), file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
