"""``python -m benchmarks.dask_bench``: targets per second with ``--dask local:N``, and client RSS.

Starts the benchmark fleet (:mod:`benchmarks.fleet`, nginx on loopback; by default on its own
addresses and ports, ``127.0.3.x:25430+``, so it can run beside ``benchmarks.run``), then scans
it with ``chainscan TARGETS -o DIR -q --concurrency 500 --rate 0 --per-ip 0 --retries 0``: once
in one process (no Dask, the reference), then with ``--dask local:N`` for each N of
``--workers`` (1, 2 and 4 by default). Each run is timed from start to exit, Dask's start-up
(the LocalCluster's worker processes) included, and counts the targets its manifest lists as
``ok``. The client's peak RSS is the chainscan process's own ``VmHWM`` (``/proc``), read until
it exits: the Dask worker processes are not in it. Prints a table and writes
``benchmarks/results/latest-dask.json`` (not with ``--no-save``). It needs nginx and
dask.distributed (``python3 -m benchmarks.setup``; nginx is installed with apt-get when
missing). Every run has a time limit; only loopback is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._requirements import ENTRY_POINTS, require_or_exit
from benchmarks.fleet import FleetSpec, running_fleet

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = ["-q", "--concurrency", "500", "--rate", "0", "--per-ip", "0", "--retries", "0"]


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_once(targets: Path, scratch: Path, extra: Sequence[str], timeout: float) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="dask-bench-", dir=scratch))
    try:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "chainscan", str(targets), "-o", str(out / "o"), *FLAGS, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peak = 0.0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _peak_rss_mb(proc.pid))
                done.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            done.set()
            watcher.join()
        seconds = time.monotonic() - started
        ok = sum(
            1
            for line in (out / "o" / "manifest.jsonl").read_text().splitlines()
            if json.loads(line)["status"] == "ok"
        )
        return {
            "args": list(extra),
            "exit": proc.returncode,
            "seconds": round(seconds, 3),
            "ok": ok,
            "targets_per_s": round(ok / seconds, 1),
            "client_peak_rss_mb": round(peak, 1),
            "stderr_tail": stderr.decode(errors="replace")[-500:],
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_bench", description=__doc__)
    parser.add_argument("--targets", type=int, default=4000, help="fleet size (%(default)s)")
    parser.add_argument(
        "--workers", default="1,2,4", help="LocalCluster sizes to measure (%(default)s)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (%(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--network", default="127.0.3", help="fleet addresses (%(default)s)")
    parser.add_argument("--base-port", type=int, default=25430, help="fleet ports (%(default)s)")
    parser.add_argument(
        "--no-save", action="store_true", help="print only; do not write latest-dask.json"
    )
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.dask_bench", ENTRY_POINTS["benchmarks.dask_bench"].needs)
    settings: list[tuple[str, list[str]]] = [("one process", [])]
    settings += [(f"--dask local:{n}", ["--dask", f"local:{n}"]) for n in args.workers.split(",")]
    spec = FleetSpec(targets=args.targets, network=args.network, base_port=args.base_port)
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    runs: list[dict[str, Any]] = []
    with running_fleet(spec) as fleet:
        run_once(fleet.subset(100, "warmup").chainscan, scratch, [], args.timeout)
        for repeat in range(args.repeat):
            for name, extra in settings:
                run = run_once(fleet.files.chainscan, scratch, extra, args.timeout)
                runs.append({"setting": name, "repeat": repeat, **run})
                print(
                    f"{name:<18} {run['ok']:>6}/{args.targets} ok  {run['seconds']:>7.2f} s"
                    f"  {run['targets_per_s']:>8.1f} targets/s"
                    f"  client peak RSS {run['client_peak_rss_mb']:>6.1f} MB",
                    flush=True,
                )
    if args.no_save:
        return 0
    RESULTS.mkdir(exist_ok=True)
    document = {
        "targets": args.targets,
        "cpus": os.cpu_count(),
        "flags": FLAGS,
        "runs": runs,
    }
    (RESULTS / "latest-dask.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
