"""What the scenarios share: process statistics from /proc, manifest counting, result files.

Kept apart from ``benchmarks/run.py`` on purpose: the scenarios only depend on the stable
parts of the harness (:mod:`benchmarks.fleet`, :mod:`benchmarks.runners._base`,
:mod:`benchmarks._system`).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of one process (all its threads) from /proc, in seconds; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb_of(pid: int) -> int:
    """VmRSS of one process in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def machine_busy_seconds() -> float:
    """CPU time all cores together have spent not idle since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def settle(limit: float, window: float = 1.0, idle_below: float = 0.15) -> float:
    """Wait (up to ``limit`` s) for a ``window`` in which the whole machine used less than
    ``idle_below`` of a core: other people's jobs share this machine. Returns the wait."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = machine_busy_seconds()
        time.sleep(window)
        if machine_busy_seconds() - before < idle_below * window:
            break
    return time.monotonic() - start


def count_statuses(manifest: Path) -> collections.Counter[str]:
    """``ok`` or ``error_kind`` of every line of a ``manifest.jsonl``."""
    kinds: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError), manifest.open("rb") as f:
        for line in f:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                kinds["unreadable"] += 1
                continue
            if entry.get("status") == "ok":
                kinds["ok"] += 1
            else:
                kinds[str(entry.get("error_kind"))] += 1
    return kinds


@dataclass(slots=True)
class Progress:
    """(seconds since start, manifest lines) samples, taken by :func:`watch_manifest`."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def steady_rate(self, low: float = 0.1, high: float = 0.9) -> float | None:
        """Lines per second between ``low`` and ``high`` of the final count: the rate without
        the start-up (imports) and the tail (the last timeouts)."""
        if not self.samples:
            return None
        total = self.samples[-1][1]
        first = next((s for s in self.samples if s[1] >= low * total), None)
        last = next((s for s in self.samples if s[1] >= high * total), None)
        if first is None or last is None or last[0] <= first[0]:
            return None
        return (last[1] - first[1]) / (last[0] - first[0])


@contextlib.contextmanager
def watch_manifest(manifest: Path, interval: float = 0.1) -> Iterator[Progress]:
    """Count the lines of a growing ``manifest.jsonl`` every ``interval`` s, in a thread."""
    progress = Progress()
    stop = threading.Event()
    start = time.perf_counter()

    def loop() -> None:
        lines, offset = 0, 0
        last = False
        while True:
            with contextlib.suppress(OSError), manifest.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset += len(chunk)
                lines += chunk.count(b"\n")
            progress.samples.append((time.perf_counter() - start, lines))
            if last:
                return
            last = stop.wait(interval)  # once stopped, one more sample: the final count

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def git_describe() -> str:
    return tool_version(["git", "-C", str(REPO), "describe", "--always", "--dirty"])


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_ssl": ssl.OPENSSL_VERSION,
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "chainscan_commit": git_describe(),
    }
    with contextlib.suppress(OSError, ValueError, StopIteration):
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu_model"] = next(
            ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln
        )
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    return info


def write_results(scenario: str, data: dict[str, Any], directory: Path = RESULTS) -> Path:
    """``<scenario>-<UTC time>.json`` and ``latest-<scenario>.json``, each written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    path = directory / f"{scenario}-{stamp}.json"
    for target in (path, directory / f"latest-{scenario}.json"):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    return path


def scratch_dir() -> Path:
    """tmpfs when there is one (see benchmarks/README.md: disks vary too much here)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path("/tmp")
