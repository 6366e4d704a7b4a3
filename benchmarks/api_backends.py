"""``python -m benchmarks.api_backends``: the library API's rate from asyncio against trio.

Question: does ``chainscan.open_scan`` called from an asyncio program scan as fast as the same
call from trio (issue 19: at least 95%), and which way of hosting the trio core under asyncio
is faster (``chainscan/_bridge.py``: a trio thread, or trio guest mode on the asyncio loop)?

Set-up: the benchmark fleet (:mod:`benchmarks.fleet`: nginx on loopback, one SNI name and leaf
per target; by default on its own addresses and ports, ``127.0.5.x:27430+``, so it can run
beside the other benchmarks). Each run is a fresh Python process (no warm caches carried from
one mode to the next) that imports chainscan, then times one ``open_scan`` block over every
target, reading every result, with the options of the core benchmark (concurrency 500, no rate
or per-address limit, no retries), and counts the results with a chain whose leaf is the
target's own (the leaf's SHA-256 is compared with the fleet's). Modes:

* ``trio``: the API under trio (the reference);
* ``asyncio``: the same code under asyncio, with the default host (what users get);
* ``asyncio-thread`` and ``asyncio-guest``: the same, forcing each host;
* ``sync``: ``chainscan.scan_all_sync``-style ``open_scan_sync`` loop, no event loop;
* ``trio-inventory``: ``trio`` with ``inventory=True`` (what the trust/problem analysis costs).

In the modes with an event loop, a task of the caller's (``anyio``, so the same code in both)
sleeps 50 ms over and over during the scan and records how late it wakes: the 99th percentile
of that lag is how much the scan holds up the caller's other work (a web server's requests).

The modes run in a rotating order, ``--repeat`` times (default 5), after a warm-up, each run
after waiting (up to ``--settle`` seconds) for an idle second; each run also records
``other CPU``, the cores the rest of the machine used meanwhile (a disturbed run shows there).
Printed and saved (``benchmarks/results/latest-api.json``, ``--no-save`` to skip): each run,
the median rate per mode, each mode's median over trio's median (and the median over repeats of
the ratio within one repeat, steadier when the machine's load drifts), and the client's CPU time per
target (all its threads; less sensitive to a busy machine than the rate). Every run has a time
limit; only loopback is used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._requirements import ENTRY_POINTS, require_or_exit
from benchmarks.fleet import Fleet, FleetSpec, running_fleet
from benchmarks.scenarios._common import machine_busy_seconds, settle

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("trio", "asyncio", "asyncio-thread", "asyncio-guest", "sync", "trio-inventory")

# One run, in a child process: argv = mode, targets file, leaf-digests file.
_CHILD = r"""
import hashlib, json, resource, sys, time
import anyio, trio
import chainscan

mode, targets_file, digests_file = sys.argv[1:4]
lines = [line.strip() for line in open(targets_file) if line.strip()]
leaf = json.load(open(digests_file))
options = chainscan.ScanOptions(concurrency=500, rate=0, per_ip=0, retries=0)
inventory = mode == "trio-inventory"
host = {"asyncio-thread": "thread", "asyncio-guest": "guest"}.get(mode)

def check(result, counts):
    counts["results"] += 1
    if isinstance(result, chainscan.BadLine) or not result.chain:
        return
    if hashlib.sha256(result.chain[0]).hexdigest() == leaf.get(result.target.sni):
        counts["ok"] += 1
    if inventory and result.inventory is not None:
        counts["inventoried"] += 1

async def ticker(lags):
    # How late the caller's own loop runs a 50 ms sleep while the scan goes on.
    while True:
        before = time.perf_counter()
        await anyio.sleep(0.05)
        lags.append(time.perf_counter() - before - 0.05)

async def scan():
    counts = {"results": 0, "ok": 0, "inventoried": 0}
    kwargs = {"inventory": inventory} if host is None else {"_host": host}
    lags = []
    async with anyio.create_task_group() as group:
        group.start_soon(ticker, lags)
        started = time.perf_counter()
        async with chainscan.open_scan(lines, options, **kwargs) as results:
            async for result in results:
                check(result, counts)
        seconds = time.perf_counter() - started
        group.cancel_scope.cancel()
    lags.sort()
    counts["loop_lag_p99_ms"] = 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else None
    counts["loop_lag_max_ms"] = 1000 * lags[-1] if lags else None
    return seconds, counts

def scan_sync():
    counts = {"results": 0, "ok": 0, "inventoried": 0}
    counts["loop_lag_p99_ms"] = counts["loop_lag_max_ms"] = None
    started = time.perf_counter()
    with chainscan.open_scan_sync(lines, options) as results:
        for result in results:
            check(result, counts)
    return time.perf_counter() - started, counts

usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_before = usage.ru_utime + usage.ru_stime
if mode in ("trio", "trio-inventory"):
    seconds, counts = anyio.run(scan, backend="trio")
elif mode == "sync":
    seconds, counts = scan_sync()
else:
    seconds, counts = anyio.run(scan, backend="asyncio")
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - cpu_before
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, **counts}))
"""


def _leaf_digests(fleet_prefix: Path, names: list[str]) -> dict[str, str]:
    """SNI name -> SHA-256 of the leaf the fleet serves for it (from its PEM files)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    digests = {}
    for name in names:
        pem = (fleet_prefix / "certs" / f"{name}.pem").read_bytes()
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        digests[name] = hashlib.sha256(der).hexdigest()
    return digests


def _ms(value: float | None) -> str:
    return "   -" if value is None else f"{value:>5.1f} ms"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    mode: str, targets: Path, digests: Path, timeout: float, fleet: Fleet
) -> dict[str, Any]:
    """One child process scanning ``targets`` in ``mode``; its numbers, and how busy the rest
    of the machine was meanwhile (``other_cpu``: cores, not counting the client and nginx)."""
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    busy, children, nginx = machine_busy_seconds(), _children_cpu(), fleet.cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(targets), str(digests)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    other = (machine_busy_seconds() - busy) - (_children_cpu() - children)
    other -= fleet.cpu_seconds() - nginx
    out["targets_per_s"] = out["ok"] / out["seconds"] if out["seconds"] else 0.0
    out["cpu_ms_per_target"] = 1000 * out["cpu_seconds"] / max(1, out["results"])
    out["process_seconds"] = wall
    out["other_cpu"] = max(0.0, other / wall)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=4000, help="fleet size (%(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per mode (%(default)s)")
    parser.add_argument("--modes", default=",".join(MODES), help="(%(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--network", default="127.0.5", help="fleet addresses (%(default)s)")
    parser.add_argument("--base-port", type=int, default=27430, help="fleet ports (%(default)s)")
    parser.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="seconds to wait for an idle second (%(default)s)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    # SIGTERM takes the same orderly path as Ctrl-C: end the running scan, stop nginx.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown or "trio" not in modes:
        parser.error(f"modes must include trio and be among {', '.join(MODES)}")
    require_or_exit("benchmarks.api_backends", ENTRY_POINTS["benchmarks.api_backends"].needs)
    spec = FleetSpec(targets=args.targets, network=args.network, base_port=args.base_port)
    runs: list[dict[str, Any]] = []
    with running_fleet(spec) as fleet, tempfile.TemporaryDirectory() as scratch:
        digests = Path(scratch) / "digests.json"
        digests.write_text(json.dumps(_leaf_digests(fleet.prefix, [t.name for t in fleet.targets])))
        warmup = fleet.subset(200, "warmup").chainscan
        for mode in modes:
            run_once(mode, warmup, digests, args.timeout, fleet)
        for repeat in range(args.repeat):
            shift = repeat % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                settle(args.settle)
                run = run_once(mode, fleet.files.chainscan, digests, args.timeout, fleet)
                runs.append({"mode": mode, "repeat": repeat, **run})
                print(
                    f"{mode:<15} {run['ok']:>6}/{args.targets} ok  {run['seconds']:>7.2f} s"
                    f"  {run['targets_per_s']:>8.1f} targets/s"
                    f"  {run['cpu_ms_per_target']:>6.3f} CPU ms/target"
                    f"  other CPU {run['other_cpu']:>4.2f} cores"
                    f"  loop lag p99 {_ms(run['loop_lag_p99_ms'])}",
                    flush=True,
                )
    medians = {
        mode: statistics.median(r["targets_per_s"] for r in runs if r["mode"] == mode)
        for mode in modes
    }
    ratios = {mode: medians[mode] / medians["trio"] for mode in modes}
    cpu = {
        mode: statistics.median(r["cpu_ms_per_target"] for r in runs if r["mode"] == mode)
        for mode in modes
    }
    lag: dict[str, float | None] = {}
    for mode in modes:
        lags = [r["loop_lag_p99_ms"] for r in runs if r["mode"] == mode]
        lag[mode] = statistics.median(lags) if None not in lags else None
    print(f"\nmedians of {args.repeat} runs, {args.targets} targets:")
    for mode in modes:
        print(
            f"  {mode:<15} {medians[mode]:>8.1f} targets/s   {ratios[mode]:.3f} x trio"
            f"   {cpu[mode]:.3f} CPU ms/target   caller's loop lag p99 {_ms(lag[mode])}"
        )
    # Runs of one repeat ran minutes apart at most, under much the same load: their ratio is
    # steadier on a shared machine than the ratio of medians taken over the whole benchmark.
    rate = {(r["mode"], r["repeat"]): r["targets_per_s"] for r in runs}
    paired = {
        mode: statistics.median(rate[mode, k] / rate["trio", k] for k in range(args.repeat))
        for mode in modes
    }
    print(
        "  paired (median over repeats of mode / trio in the same repeat): "
        + ", ".join(f"{mode} {paired[mode]:.3f}" for mode in modes if mode != "trio")
    )
    if "asyncio" in ratios:
        verdict = "met" if ratios["asyncio"] >= 0.95 else "NOT met"
        print(
            f"asyncio / trio = {ratios['asyncio']:.3f} (medians; paired {paired['asyncio']:.3f})"
            f" (goal >= 0.95: {verdict})"
        )
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip()
        document = {
            "targets": args.targets,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "commit": commit,
            "options": {"concurrency": 500, "rate": 0, "per_ip": 0, "retries": 0},
            "medians_targets_per_s": medians,
            "ratios_vs_trio": ratios,
            "paired_ratios_vs_trio": paired,
            "median_cpu_ms_per_target": cpu,
            "median_loop_lag_p99_ms": lag,
            "runs": runs,
        }
        (RESULTS / "latest-api.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
