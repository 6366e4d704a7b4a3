"""``python -m benchmarks.run``: chainscan vs its peers, on one local fleet, in one run.

The runners (``runners/``): ``chainscan`` (as run by default: one scanning process and its writer
process), ``chainscan-1p`` (everything in one process, ``--writer thread``), ``chainscan-2w``
(``--workers 2``),
``bare-trio`` (the least a trio program can do, the in-language floor), ``openssl-xargs`` (the
manual method, the baseline of the "vs" column), ``sslyze`` and ``sslyze-api`` (CLI and Python
API, certificate-info scan only), ``nmap-ssl-cert`` (one nmap per target, leaf only) and
``openssl-s_time`` (C OpenSSL's handshake loop, in handshakes rather than targets). Runners that
are slow per target (sslyze, nmap) set ``max_targets`` and get the fleet's first N targets.

Theory of operation
-------------------

1. Start the fleet (:mod:`benchmarks.fleet`): nginx on 127.0.1.x serving one certificate per
   name, checked before use.
2. Warm up: every runner once over the first ``--warmup`` targets, not recorded (it fills the
   page cache, lets nginx's worker grow its pools and compiles the Python tools' ``.pyc`` files
   into ``benchmarks/.pycache``, even under PYTHONDONTWRITEBYTECODE: see ``runners/_base``).
3. Repeat ``--repeat`` times: every runner once over the whole fleet. The order rotates each
   repeat (A B, B A, A B, ...) so neither tool always runs on a warmer or cooler machine. Each run
   gets a fresh scratch directory, removed after it: on tmpfs (``/dev/shm``) by default, because
   chainscan saves every certificate and a disk's speed (which varies from run to run on a
   virtual machine) would otherwise enter its numbers; ``--scratch DIR`` measures with a disk
   instead. nginx's CPU time is read before and after
   each run, which tells whether the server rather than the tool was the bottleneck, and so is
   the whole machine's (``/proc/stat``): what neither the tool nor nginx used ("other CPU") shows
   whether another job disturbed the run. On a shared machine each run first waits (up to
   ``--settle`` seconds) for a second in which the machine is idle.
4. Summarise: per runner, the median targets/s and CPU per target and the largest peak RSS over
   its runs; the ratio of each runner's median targets/s to the baseline's (``openssl-xargs``);
   and the headline comparisons of :data:`COMPARISONS` (each against its goal, if it has one).
5. Print the table, write ``results/<scenario>-<UTC timestamp>.json`` and
   ``results/latest-<scenario>.json`` (every raw run, the summary, the settings and the machine)
   and, if matplotlib is installed, the bar chart ``results/latest-<scenario>.png``
   (:mod:`benchmarks.chart`), and stop nginx, whatever happened (Ctrl-C and SIGTERM included).

Every run is bounded by ``--timeout`` and every loop by ``--repeat``, so a whole benchmark
always ends by itself. Only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._requirements import RUNNER_NEEDS, MissingRequirement, core_needs, require
from .chart import write_chart
from .fleet import FleetError, TargetFiles, add_fleet_arguments, running_fleet, spec_from_args
from .runners import RUNNERS, Runner, RunResult, RunStatus
from .runners._base import tool_version

SCENARIO = "core"
"""Names the result files; later scenarios (e.g. latency) get their own."""
RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "openssl-xargs"
"""Every ratio is ``runner / BASELINE``."""
SUBJECT = "chainscan"

FULL = {"targets": 2000, "repeat": 3, "warmup": 100, "settle": 60.0}
QUICK = {"targets": 400, "repeat": 1, "warmup": 50, "settle": 5.0}
QUICK_RUNNER_OPTIONS = {"sslyze_targets": 200, "nmap_targets": 100, "s_time_seconds": 3}
"""With ``--quick``, these runner options replace their defaults (not values given explicitly)."""
SSLYZE_RUNNERS = ("sslyze", "sslyze-api")


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A headline ratio: ``numerator``'s metric over ``denominator``'s (the best of several)."""

    label: str
    numerator: str
    denominators: tuple[str, ...]
    """Runner names; with several, the one with the highest targets/s is used."""
    metric: str
    """A key of the summary: ``targets_per_second`` or ``cpu_seconds_per_target``."""
    goal: float | None = None
    """The ratio should be at least this (None: no goal, information only)."""
    note: str = ""


COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        label="chainscan / sslyze-best",
        numerator=SUBJECT,
        denominators=SSLYZE_RUNNERS,
        metric="targets_per_second",
        note="sslyze makes ~5 connections per target and validates against 5 trust stores",
    ),
    Comparison(
        label="chainscan / openssl-xargs",
        numerator=SUBJECT,
        denominators=(BASELINE,),
        metric="targets_per_second",
    ),
    Comparison(
        label="chainscan / bare-trio",
        numerator=SUBJECT,
        denominators=("bare-trio",),
        metric="targets_per_second",
        goal=0.9,
        note="chainscan as run by default: its writer process on the second core",
    ),
    Comparison(
        label="chainscan / bare-trio, steady",
        numerator=SUBJECT,
        denominators=("bare-trio",),
        metric="steady_targets_per_second",
        goal=0.85,
        note="steady-state rates (10th to 90th percentile of completions): start-up left out",
    ),
    Comparison(
        label="chainscan-1p / bare-trio",
        numerator="chainscan-1p",
        denominators=("bare-trio",),
        metric="targets_per_second",
        goal=0.9,
        note="everything in one process (--writer thread)",
    ),
    Comparison(
        label="chainscan / chainscan-1p",
        numerator=SUBJECT,
        denominators=("chainscan-1p",),
        metric="targets_per_second",
        goal=1.4,
        note="both cores (writer process) over one process",
    ),
    Comparison(
        label="chainscan-2w / chainscan-1p",
        numerator="chainscan-2w",
        denominators=("chainscan-1p",),
        metric="targets_per_second",
        note="--workers 2 (two scanning processes, each writing in threads) over one process",
    ),
    Comparison(
        label="chainscan CPU/target / openssl-s_time CPU/handshake",
        numerator=SUBJECT,
        denominators=("openssl-s_time",),
        metric="cpu_seconds_per_target",
        note="lower is better; 1.0 would be C OpenSSL's cost of a bare handshake",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One recorded run: the tool's result plus what the rest of the machine spent meanwhile."""

    repeat: int
    position: int
    """0 if this runner went first in its repeat."""
    result: RunResult
    nginx_cpu_seconds: float
    other_cpu_seconds: float
    """CPU time the machine spent on anything but the tool and nginx meanwhile (other jobs,
    interrupts): a sizeable share of a core means the run was disturbed."""
    settle_seconds: float = 0.0
    """How long the run waited for the machine to be idle before it started."""

    def share(self, cpu_seconds: float) -> float:
        """``cpu_seconds`` over the run's wall time: 1.0 is one core kept busy."""
        return cpu_seconds / self.result.seconds if self.result.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "repeat": self.repeat,
            "position": self.position,
            **self.result.to_json(),
            "nginx_cpu_seconds": round(self.nginx_cpu_seconds, 3),
            "nginx_cpu_share": round(self.share(self.nginx_cpu_seconds), 3),
            "other_cpu_seconds": round(self.other_cpu_seconds, 3),
            "other_cpu_share": round(self.share(self.other_cpu_seconds), 3),
            "settle_seconds": round(self.settle_seconds, 1),
        }


def settle(limit: float, window: float = 1.0, idle_below: float = 0.1) -> float:
    """Wait until one ``window`` passes with less than ``idle_below`` of a core busy, at most
    ``limit`` seconds (other jobs on a shared machine come and go); the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = machine_busy_seconds()
        time.sleep(window)
        if machine_busy_seconds() - before < idle_below * window:
            break
    return time.monotonic() - start


def machine_busy_seconds() -> float:
    """CPU time all cores together have spent not idle since boot (/proc/stat), in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...; guest time is already inside user.
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Targets/s, CPU and peak RSS of chainscan and of openssl s_client + xargs "
        "on the same local TLS fleet, with their ratio.",
    )
    parser.add_argument(
        "--repeat", type=int, help=f"runs per tool (default {FULL['repeat']}, quick 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['targets']} targets, 1 repeat (explicit options still win)",
    )
    parser.add_argument(
        "--runners",
        default=",".join(RUNNERS),
        help="comma-separated, from: " + ", ".join(RUNNERS) + " (default: all)",
    )
    parser.add_argument(
        "--warmup", type=int, help="targets in the unrecorded warm-up run (default 100; 0: none)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds allowed per run (default 60 + 0.1 per target)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        metavar="S",
        help="before each run, wait up to S seconds for the machine to be idle (default "
        f"{FULL['settle']:g}, quick {QUICK['settle']:g}; 0: do not wait)",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        help="where the tools write their output (default: /dev/shm if it is tmpfs, else the "
        "system temp dir); its file system matters for chainscan, which saves every certificate",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="(%(default)s)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no result file")
    add_fleet_arguments(parser)
    parser.set_defaults(targets=None)
    for runner in RUNNERS.values():
        runner.add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.timeout is None:
        args.timeout = 60.0 + 0.1 * args.targets
    if args.quick:
        for key, value in QUICK_RUNNER_OPTIONS.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    unknown = [n for n in args.runners.split(",") if n not in RUNNERS]
    if unknown:
        parser.error(f"unknown runner(s) {unknown}; choose from {list(RUNNERS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe_result(r: RunResult) -> str:
    if r.status is RunStatus.UNAVAILABLE:
        return f"unavailable: {r.detail}"
    text = (
        f"{r.ok}/{r.targets} ok in {r.seconds:.2f} s = {r.targets_per_second:.0f}/s, "
        f"CPU {r.cpu_seconds:.2f} s ({r.system_seconds:.2f} s sys), "
        f"peak RSS {r.peak_rss_mb:.0f} MB"
    )
    if r.status is not RunStatus.OK:
        text += f" [{r.status}]"
    return text + (f" ({r.detail})" if r.detail else "")


def measure_all(
    runners: Sequence[Runner], args: argparse.Namespace, scratch: Path
) -> tuple[list[Run], dict[str, Any]]:
    """Steps 1-3 of the header: the fleet's life, the warm-up, the recorded runs."""
    runs: list[Run] = []
    spec = spec_from_args(args)
    log(
        f"fleet: {spec.targets} targets on {spec.addresses} addresses x {spec.ports} ports, "
        f"nginx {spec.workers} worker(s); building..."
    )
    with running_fleet(spec) as fleet:
        log(f"fleet: ready in {fleet.setup_seconds:.1f} s (nginx pid {fleet.process.pid})")
        subsets: dict[int, TargetFiles] = {}

        def files_for(runner: Runner, count: int) -> TargetFiles:
            """The first ``count`` targets, or fewer if the runner takes fewer (``max_targets``)."""
            limit = getattr(runner, "max_targets", 0) or count
            n = min(count, limit, spec.targets)
            if n == spec.targets:
                return fleet.files
            if n not in subsets:
                subsets[n] = fleet.subset(n, f"first-{n}")
            return subsets[n]

        for runner in runners:
            if (files := files_for(runner, spec.targets)) is not fleet.files:
                log(f"{runner.name}: runs on the first {files.count} targets only")
        if args.warmup > 0:
            for runner in runners:
                files = files_for(runner, args.warmup)
                workdir = Path(tempfile.mkdtemp(dir=scratch))
                result = runner.run(files, workdir, args.timeout)
                shutil.rmtree(workdir, ignore_errors=True)
                log(f"warm-up  {runner.name}: {describe_result(result)}")
        for repeat in range(args.repeat):
            shift = repeat % len(runners)
            for position, runner in enumerate([*runners[shift:], *runners[:shift]]):
                waited = settle(args.settle)
                if waited >= args.settle > 0:
                    log(f"the machine stayed busy for {waited:.0f} s; measuring anyway")
                workdir = Path(tempfile.mkdtemp(dir=scratch))
                before, busy_before = fleet.cpu_seconds(), machine_busy_seconds()
                result = runner.run(files_for(runner, spec.targets), workdir, args.timeout)
                nginx_cpu = fleet.cpu_seconds() - before
                busy = machine_busy_seconds() - busy_before
                shutil.rmtree(workdir, ignore_errors=True)
                run = Run(
                    repeat=repeat,
                    position=position,
                    result=result,
                    nginx_cpu_seconds=nginx_cpu,
                    other_cpu_seconds=max(0.0, busy - nginx_cpu - result.cpu_seconds),
                    settle_seconds=waited,
                )
                runs.append(run)
                log(
                    f"[{repeat + 1}/{args.repeat}] {runner.name}: {describe_result(result)}; "
                    f"nginx CPU {run.share(nginx_cpu):.0%} of a core, "
                    f"other CPU {run.share(run.other_cpu_seconds):.0%}"
                )
        return runs, fleet.describe()


def summarize(runs: Sequence[Run], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per runner: medians over its completed runs (and the largest peak RSS)."""
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        done = [r for r in runs if r.result.name == name and r.result.status is RunStatus.OK]
        if not done:
            continue
        res = [r.result for r in done]
        # The run with the most failures (for openssl-s_time, whose "targets" are the handshakes
        # it made and vary by run, every run has none).
        worst = max(res, key=lambda x: (x.targets - x.ok, -x.ok))
        summary[name] = {
            "runs": len(done),
            "targets": worst.targets,
            "ok_min": worst.ok,
            "seconds": statistics.median(x.seconds for x in res),
            "targets_per_second": statistics.median(x.targets_per_second for x in res),
            "targets_per_second_all": [round(x.targets_per_second, 2) for x in res],
            "steady_targets_per_second": (
                statistics.median(steady)
                if (
                    steady := [
                        x.steady_targets_per_second for x in res if x.steady_targets_per_second
                    ]
                )
                else None
            ),
            "cpu_seconds_per_target": statistics.median(x.cpu_seconds_per_target for x in res),
            "peak_rss_mb": max(x.peak_rss_mb for x in res),
            "nginx_cpu_share": statistics.median(r.share(r.nginx_cpu_seconds) for r in done),
            "other_cpu_share": statistics.median(r.share(r.other_cpu_seconds) for r in done),
        }
    return summary


def ratios(summary: dict[str, dict[str, Any]], runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Each runner against the baseline: ratio of medians, and the per-repeat ratios."""
    base = summary.get(BASELINE)
    out: dict[str, dict[str, Any]] = {}
    if base is None or not base["targets_per_second"]:
        return out
    by_repeat = {
        (r.repeat, r.result.name): r.result for r in runs if r.result.status is RunStatus.OK
    }
    for name, s in summary.items():
        paired = [
            by_repeat[(k, name)].targets_per_second / by_repeat[(k, BASELINE)].targets_per_second
            for (k, n) in by_repeat
            if n == name
            and (k, BASELINE) in by_repeat
            and by_repeat[(k, BASELINE)].targets_per_second
        ]
        out[name] = {
            "targets_per_second": s["targets_per_second"] / base["targets_per_second"],
            "targets_per_second_per_repeat": [round(x, 3) for x in paired],
            "cpu_seconds_per_target": (
                s["cpu_seconds_per_target"] / base["cpu_seconds_per_target"]
                if base["cpu_seconds_per_target"]
                else None
            ),
            "peak_rss_mb": s["peak_rss_mb"] / base["peak_rss_mb"] if base["peak_rss_mb"] else None,
        }
    return out


def compare(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The :data:`COMPARISONS` that can be computed from ``summary``, as JSON-ready dicts."""
    out: list[dict[str, Any]] = []
    for c in COMPARISONS:
        num = summary.get(c.numerator)
        dens = [(n, summary[n]) for n in c.denominators if n in summary]
        entry: dict[str, Any] = {
            "label": c.label,
            "metric": c.metric,
            "numerator": c.numerator,
            "denominator": None,
            "candidates": list(c.denominators),
            "value": None,
            "goal": c.goal,
            "met": None,
            "note": c.note,
        }
        if num is not None and dens:
            name, den = max(dens, key=lambda item: item[1]["targets_per_second"])
            entry["denominator"] = name
            if den[c.metric] and num[c.metric] is not None:
                value = num[c.metric] / den[c.metric]
                entry["value"] = value
                entry["met"] = None if c.goal is None else value >= c.goal
        out.append(entry)
    return out


def render_comparisons(comparisons: Sequence[dict[str, Any]]) -> str:
    lines = ["headline ratios:"]
    for c in comparisons:
        if c["value"] is None:
            lines.append(f"  {c['label']:<52} n/a (a runner was not run or did not complete)")
            continue
        den = f" [{c['denominator']}]" if len(c["candidates"]) > 1 else ""
        goal = ""
        if c["goal"] is not None:
            goal = f"  goal >= {c['goal']:g}: {'met' if c['met'] else 'NOT met'}"
        lines.append(f"  {c['label'] + den:<52} {c['value']:>6.2f}x{goal}")
    return "\n".join(lines)


def render_table(
    names: Sequence[str],
    summary: dict[str, dict[str, Any]],
    rel: dict[str, dict[str, Any]],
    unavailable: dict[str, str],
    runs: Sequence[Run],
) -> str:
    header = (
        f"{'runner':<15} {'ok/targets':>11} {'targets/s':>10} {'steady/s':>9} "
        f"{'CPU ms/target':>14} {'peak RSS MB':>12} {'nginx CPU':>10} {'other CPU':>10} "
        f"{'vs ' + BASELINE:>17}"
    )
    lines = [header, "-" * len(header)]
    for name in names:
        if name in unavailable:
            lines.append(f"{name:<15} unavailable: {unavailable[name]}")
            continue
        s = summary.get(name)
        if s is None:
            statuses = sorted({str(r.result.status) for r in runs if r.result.name == name})
            lines.append(f"{name:<15} no completed run ({', '.join(statuses) or 'not run'})")
            continue
        ok = f"{s['ok_min']}/{s['targets']}" + ("" if s["ok_min"] == s["targets"] else "!")
        ratio = rel.get(name, {}).get("targets_per_second")
        steady = s["steady_targets_per_second"]
        lines.append(
            f"{name:<15} {ok:>11} {s['targets_per_second']:>10.1f} "
            f"{'-' if steady is None else f'{steady:.1f}':>9} "
            f"{s['cpu_seconds_per_target'] * 1000:>14.2f} {s['peak_rss_mb']:>12.1f} "
            f"{s['nginx_cpu_share']:>10.0%} {s['other_cpu_share']:>10.0%} "
            f"{f'{ratio:.2f}x' if ratio is not None else 'n/a':>17}"
        )
    lines.append("")
    subject, base = rel.get(SUBJECT), summary.get(BASELINE)
    if subject is not None and base is not None:
        per = subject["targets_per_second_per_repeat"]
        spread = f" (per repeat {min(per):.2f}x-{max(per):.2f}x)" if per else ""
        lines.append(
            f"ratio {SUBJECT} / {BASELINE}: {subject['targets_per_second']:.2f}x targets/s"
            f"{spread}; {subject['cpu_seconds_per_target']:.3f}x CPU per target; "
            f"{subject['peak_rss_mb']:.2f}x peak RSS"
        )
    else:
        missing = SUBJECT if SUBJECT not in summary else BASELINE
        why = "was not run" if missing not in names else "has no completed run"
        lines.append(f"ratio {SUBJECT} / {BASELINE}: n/a ({missing} {why})")
    busy = [n for n, s in summary.items() if s["other_cpu_share"] > 0.15]
    if busy:
        lines.append(
            f"WARNING: other processes used CPU during the runs of {', '.join(busy)} "
            "(other CPU column): the machine was not quiet, numbers are disturbed."
        )
    lines += [
        "",
        "targets/s      successful targets per wall second, tool start-up included (median)",
        "steady/s       targets finished per second between the 10th and 90th percentile of",
        "               completion times (median); '-': the tool gives none (see README)",
        "CPU ms/target  user+sys of the tool's whole process tree / targets (median)",
        "peak RSS MB    largest single process of the tool (max over runs)",
        "nginx CPU      server CPU time / wall time, 100% = one core (median)",
        "other CPU      rest of the machine's CPU time / wall time (median)",
        "!              some targets failed in at least one run",
        "openssl-s_time counts handshakes, not targets (no SNI; the listener's default cert)",
    ]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_ssl": ssl.OPENSSL_VERSION,
        "openssl": tool_version(["openssl", "version"]),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln),
            "unknown",
        )
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
        os_release = Path("/etc/os-release").read_text()
        info["os"] = next(
            (
                ln.split("=", 1)[1].strip('"')
                for ln in os_release.splitlines()
                if ln.startswith("PRETTY_NAME=")
            ),
            "unknown",
        )
    except (OSError, ValueError):
        pass
    return info


def _significant(value: Any, digits: int = 5) -> Any:
    """``value`` with every float cut to ``digits`` significant digits, for readable files."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _significant(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_significant(v, digits) for v in value]
    return value


def default_scratch() -> Path:
    """``/dev/shm`` when it is a writable tmpfs, else the system's temporary directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and filesystem_of(shm) == "tmpfs":
        return shm
    return Path(tempfile.gettempdir())


def filesystem_of(path: Path) -> str:
    """File system type of the mount holding ``path`` (from /proc/mounts), e.g. ``ext4``."""
    best, kind = "", "unknown"
    try:
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fstype
    except (OSError, ValueError):
        pass
    return kind


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_significant(data), indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM takes the same orderly path as Ctrl-C: end the running tool, stop nginx.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = dt.datetime.now(dt.UTC)
    names = args.runners.split(",")
    try:  # nginx, GNU time and every chosen runner's tool, installed now or never
        require("benchmarks.run", core_needs(names))
    except MissingRequirement as exc:
        users = [n for n in names if exc.need in RUNNER_NEEDS[n]]
        hint = f"; or leave out {', '.join(users)} with --runners" if users else ""
        log(f"{exc}{hint}")
        return 2
    runners = [RUNNERS[name].from_args(args) for name in names]
    unavailable = {r.name: why for r in runners if (why := r.unavailable()) is not None}
    for name, why in unavailable.items():
        log(f"{name}: unavailable, not run: {why}")
    active = [r for r in runners if r.name not in unavailable]
    if not active:
        log("no runner can run here")
        return 1
    if args.scratch is None:
        args.scratch = default_scratch()
    scratch = Path(tempfile.mkdtemp(prefix="chainscan-bench-", dir=args.scratch))
    clock = time.monotonic()
    try:
        runs, fleet_info = measure_all(active, args, scratch)
    except KeyboardInterrupt:
        log("interrupted: the running tool and nginx were stopped; no result written")
        return 130
    except FleetError as exc:
        log(f"fleet: {exc}")
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - clock

    summary = summarize(runs, names)
    rel = ratios(summary, runs)
    print()
    print(
        f"chainscan benchmark, scenario {SCENARIO}: {fleet_info['targets']} targets "
        f"({fleet_info['listeners']} address:port pairs, {fleet_info['names_per_listener']} names "
        f"each, profiles {'/'.join(fleet_info['profiles'])}), {args.repeat} repeat(s), "
        f"nginx {fleet_info['nginx_workers']} worker(s), {os.cpu_count()} CPUs, "
        f"tool output on {filesystem_of(args.scratch)}"
    )
    print(render_table(names, summary, rel, unavailable, runs))
    comparisons = compare(summary)
    print()
    print(render_comparisons(comparisons))

    if args.no_save:
        return 0
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    data = {
        "schema": 2,
        "scenario": SCENARIO,
        "started": started.isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 1),
        "command": shlex.join(["python", "-m", "benchmarks.run", *args.argv]),
        "settings": {
            "repeat": args.repeat,
            "warmup": args.warmup,
            "timeout": args.timeout,
            "settle": args.settle,
            "scratch": str(args.scratch),
            "scratch_filesystem": filesystem_of(args.scratch),
            "baseline": BASELINE,
        },
        "machine": machine_info(),
        "fleet": fleet_info,
        "runners": {
            r.name: {"unavailable": unavailable.get(r.name), **r.describe()} for r in runners
        },
        "runs": [run.to_json() for run in runs],
        "summary": summary,
        "ratios": rel,
        "comparisons": comparisons,
        "subsets": {
            r.name: limit
            for r in active
            if 0 < (limit := getattr(r, "max_targets", 0)) < fleet_info["targets"]
        },
    }
    path = args.results_dir / f"{SCENARIO}-{stamp}.json"
    write_json_atomically(path, data)
    write_json_atomically(args.results_dir / f"latest-{SCENARIO}.json", data)
    print(f"\nresults: {path}")
    chart_path = args.results_dir / f"latest-{SCENARIO}.png"
    try:
        written = write_chart(data, chart_path)
    except Exception as exc:  # a chart must never lose the measurements above
        log(f"chart: not written: {exc!r}")
    else:
        print(f"chart:   {written}" if written else "chart:   skipped (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
