"""``python -m benchmarks.scenarios.scale``: chainscan's memory at scale.

Theory of operation
-------------------

Two questions, one run:

**(a) What do 10,000 handshakes in flight cost?** :mod:`._slowtls` (a separate process on
loopback, 127.0.4.1-10, so its 10,000 sockets count against its own file limit) accepts
connections and answers nothing until 10,000 are open, holds them ``--plateau`` seconds more,
then completes every handshake. chainscan runs over 10,000 targets of that server with
``--concurrency 10000 --rate 0 --per-ip 0 --retries 0`` and long timeouts, so during the plateau
it has 10,000 connections open, each with its ClientHello sent and its handshake state waiting;
then it receives 10,000 chains, analyses and writes them. Measured: chainscan's peak RSS (GNU
``time``, as the core benchmark does), its RSS and open file count every 0.25 s
(``/proc/PID/status``, ``/proc/PID/fd``), the RSS of a one-target run (start-up and imports),
and the same for :mod:`._bare`, the smallest trio program that does the same handshakes, as a
yardstick for the per-handshake cost.

**(b) Does streaming a long input stay flat?** chainscan over 100,000 and 1,000,000 lines of
dead targets: ``127.X.Y.Z:1`` with distinct addresses in 127.20.0.0-127.35.255.255, where
nothing listens, so every connect is refused at once (no DNS, no timeouts) and the input is
the only thing that grows. chainscan's RSS is sampled every 0.25 s along with the manifest's
line count, and reported at 10%, 50% and 100% of the input, with the peak. By design the
deduplicator keeps 16-32 bytes per distinct target (``chainscan/scan/_targets.py``), so RSS may grow
by that much per line; the report sets the measured growth beside that estimate.

**What does one handshake in flight hold?** ``--tracemalloc`` runs (a)'s chainscan instead in a
process traced by :mod:`._traced` and prints its Python allocations per handshake in flight,
by traceback: the per-connection objects, task frames and cancel scopes behind the RSS figure.

Outputs go to tmpfs. Every process has a time limit; the server is stopped by PID at the end.
Only loopback is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._requirements import ENTRY_POINTS, require_or_exit
from .._system import die_with_parent
from ..fleet import FleetTarget, Profile, write_pki
from ..runners._base import measure
from ._common import (
    REPO,
    Progress,
    count_statuses,
    log,
    machine_busy_seconds,
    machine_info,
    rss_kb_of,
    scratch_dir,
    settle,
    watch_manifest,
    write_results,
)

SCENARIO = "scale"
ENTRY = "benchmarks.scenarios.scale"
SERVER_NET = "127.0.4"
SERVER_ADDRESSES = 10
SERVER_PORT = 24500
DEDUP_BYTES_PER_TARGET = (16, 32)
"""What chainscan/scan/_targets.py documents for its deduplicator: an open-addressing table of
8-byte digests, at most half full (until commit ed731de: a set, about 80 bytes a target)."""
TARGET_RSS_MB = 450.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios.scale",
        description="chainscan's RSS with 10,000 handshakes in flight and over a long input.",
    )
    p.add_argument("--in-flight", type=int, default=10000, help="handshakes held (%(default)s)")
    p.add_argument("--plateau", type=float, default=5.0, help="s held at full (%(default)s)")
    p.add_argument(
        "--stream-lines",
        default="100000,1000000",
        help="input sizes for part (b), comma-separated (%(default)s)",
    )
    p.add_argument("--stream-concurrency", type=int, default=1000)
    p.add_argument("--no-bare", action="store_true", help="skip the bare trio yardstick")
    p.add_argument("--timeout", type=float, default=400.0, help="per run, s (%(default)s)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="instead of (a) and (b): one chainscan run of (a) in a traced process, and what "
        "its Python side holds per handshake, by traceback (see _traced.py)",
    )
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Sampling a process found by its command line


@dataclass(slots=True)
class Samples:
    """(seconds since start, VmRSS KiB, open fds) of the sampled process."""

    pid: int | None = None
    points: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def peak_kb(self) -> int:
        return max((p[1] for p in self.points), default=0)

    def rss_at(self, t: float) -> int:
        """RSS of the last sample at or before ``t``."""
        before = [p for p in self.points if p[0] <= t]
        return before[-1][1] if before else 0


def _find_pid(marker: str) -> int | None:
    """The python process whose command line contains ``marker`` (not GNU time around it)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and b"python" in argv[0] and not argv[0].endswith(b"time"):
            return int(entry)
    return None


@contextlib.contextmanager
def sample_process(marker: str, interval: float = 0.25, fds: bool = True) -> Iterator[Samples]:
    samples = Samples()
    stop = threading.Event()
    start = time.perf_counter()

    def loop() -> None:
        while not stop.is_set():
            if samples.pid is None:
                samples.pid = _find_pid(marker)
            if samples.pid is not None:
                rss = rss_kb_of(samples.pid)
                n = 0
                if fds:
                    with contextlib.suppress(OSError):
                        n = len(os.listdir(f"/proc/{samples.pid}/fd"))
                if rss:
                    samples.points.append((time.perf_counter() - start, rss, n))
            stop.wait(interval if samples.pid is not None else 0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def chainscan_argv(targets: Path, outdir: Path, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chainscan",
        str(targets),
        "-o",
        str(outdir),
        "-q",
        "--rate",
        "0",
        "--per-ip",
        "0",
        "--retries",
        "0",
        *extra,
    ]


def run_measured(
    argv: list[str], marker: str, workdir: Path, timeout: float, manifest: Path | None
) -> tuple[dict[str, Any], Samples, Progress]:
    waited = settle(30.0)
    with (
        sample_process(marker) as samples,
        watch_manifest(manifest or workdir / "none", 0.25) as progress,
    ):
        busy = machine_busy_seconds()
        m = measure(
            argv, stdout=workdir / "stdout", stderr=workdir / "stderr", timeout=timeout, cwd=REPO
        )
        busy = machine_busy_seconds() - busy
    result = {
        "settle_seconds": round(waited, 1),
        "seconds": round(m.seconds, 2),
        "cpu_seconds": round(m.cpu_seconds, 2),
        "machine_cpu_seconds": round(busy, 2),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "sampled_peak_rss_mb": round(samples.peak_kb / 1024, 1),
        "max_open_fds": max((p[2] for p in samples.points), default=0),
        "returncode": m.returncode,
        "timed_out": m.timed_out,
        "stdout_tail": (workdir / "stdout").read_text(errors="replace")[-300:],
        "stderr_tail": (workdir / "stderr").read_text(errors="replace")[-500:],
        "command": argv,
    }
    return result, samples, progress


# --------------------------------------------------------------------------------------------
# (a) handshakes in flight


@contextlib.contextmanager
def slow_server(workdir: Path, hold: int, plateau: float) -> Iterator[subprocess.Popen[bytes]]:
    target = FleetTarget(
        name="slow.scale.test",
        address=SERVER_NET + ".1",
        port=SERVER_PORT,
        profile=Profile("ec", 2),
    )
    write_pki([target], workdir)
    listen = [f"{SERVER_NET}.{a}:{SERVER_PORT}" for a in range(1, SERVER_ADDRESSES + 1)]
    log_path = workdir / "slowtls.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.scenarios._slowtls",
                "--cert",
                str(workdir / "certs" / "slow.scale.test.pem"),
                "--key",
                str(workdir / "keys" / "ec.key"),
                "--hold-count",
                str(hold),
                "--hold-seconds",
                "60",
                "--plateau",
                str(plateau),
                "--max-seconds",
                "300",
                *listen,
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + 30
        while b"ready" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slowtls did not start: {log_path.read_text()[-1000:]}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def in_flight_targets(count: int, path: Path) -> Path:
    path.write_text(
        "".join(
            f"h{i:06d}.scale.test:{SERVER_PORT}{{{SERVER_NET}.{1 + i % SERVER_ADDRESSES}}}\n"
            for i in range(count)
        )
    )
    return path


def part_a(args: argparse.Namespace, scratch: Path, workdir: Path) -> dict[str, Any]:
    targets = in_flight_targets(args.in_flight, workdir / "in-flight.txt")
    one = in_flight_targets(1, workdir / "one.txt")
    out: dict[str, Any] = {"in_flight": args.in_flight, "plateau_seconds": args.plateau}
    timeouts = ["--connect-timeout", "60", "--handshake-timeout", "120", "--deadline", "180"]
    tools: list[tuple[str, Path, list[str]]] = [
        ("chainscan", targets, ["--concurrency", str(args.in_flight), *timeouts]),
    ]
    if not args.no_bare:
        tools.append(("bare-trio", targets, []))
    for name, path, extra in tools:
        for label, file, hold in (("one", one, 1), ("full", path, args.in_flight)):
            run_dir = Path(tempfile.mkdtemp(dir=scratch))
            outdir = run_dir / "out"
            if name == "chainscan":
                argv = chainscan_argv(file, outdir, extra)
            else:
                argv = [sys.executable, "-m", "benchmarks.scenarios._bare", str(file)]
            server_dir = workdir / f"server-{name}-{label}"
            server_dir.mkdir()
            with slow_server(server_dir, hold, args.plateau if hold > 1 else 0.0):
                result, samples, _ = run_measured(
                    argv, str(file), run_dir, args.timeout, outdir / "manifest.jsonl"
                )
            if name == "chainscan":
                kinds = count_statuses(outdir / "manifest.jsonl")
                result["kinds"] = dict(kinds)
                result["ok"] = kinds.get("ok", 0)
            else:
                result["ok"] = _bare_ok(result["stdout_tail"])
            server_log = (server_dir / "slowtls.log").read_text(errors="replace").splitlines()
            result["server_log"] = [ln for ln in server_log if "holding" in ln or "released" in ln]
            result["server_last"] = server_log[-1] if server_log else ""
            held = [kb for _, kb, n in samples.points if n >= hold]
            result["plateau_rss_mb"] = round(max(held) / 1024, 1) if held else None
            result["rss_timeline_mb"] = [
                (round(t, 2), round(kb / 1024, 1), n) for t, kb, n in samples.points[::4]
            ]
            shutil.rmtree(run_dir, ignore_errors=True)
            out[f"{name}-{label}"] = result
            log(
                f"(a) {name} {label}: ok {result['ok']}, peak RSS {result['peak_rss_mb']} MB "
                f"(sampled {result['sampled_peak_rss_mb']}), max fds {result['max_open_fds']}, "
                f"{result['seconds']} s"
            )
    for name in ("chainscan", "bare-trio"):
        if f"{name}-full" in out:
            full, base = out[f"{name}-full"]["peak_rss_mb"], out[f"{name}-one"]["peak_rss_mb"]
            out[f"{name}_kb_per_handshake"] = round((full - base) * 1024 / args.in_flight, 1)
            plateau = out[f"{name}-full"]["plateau_rss_mb"]
            out[f"{name}_plateau_kb_per_handshake"] = (
                None if plateau is None else round((plateau - base) * 1024 / args.in_flight, 1)
            )
    if not args.no_bare:
        out["sslobject_only"] = sslobject_yardstick(args.in_flight)
        log(f"(a) SSLObject only: {out['sslobject_only']}")
    out["target_mb"] = TARGET_RSS_MB
    out["met"] = out["chainscan-full"]["peak_rss_mb"] < TARGET_RSS_MB and (
        out["chainscan-full"]["max_open_fds"] >= 0.9 * args.in_flight
    )
    return out


def sslobject_yardstick(count: int) -> dict[str, Any]:
    """RSS per client SSLObject waiting for its ServerHello, with no socket and no event loop:
    what CPython's ssl module and OpenSSL alone keep per handshake in flight."""
    code = (
        "import ssl\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'): return int(line.split()[1])\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "ctx.check_hostname = False\n"
        "ctx.verify_mode = ssl.CERT_NONE\n"
        f"n = {count}\n"
        "before = rss(); held = []\n"
        "for i in range(n):\n"
        "    a, b = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
        "    o = ctx.wrap_bio(a, b, server_hostname=f'h{i}.scale.test')\n"
        "    try:\n"
        "        o.do_handshake()\n"
        "    except ssl.SSLWantReadError:\n"
        "        pass\n"
        "    b.read()\n"
        "    held.append((a, b, o))\n"
        "print((rss() - before) / n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        kib = round(float(out.stdout.strip()), 1)
    except ValueError:
        return {"error": out.stderr[-500:]}
    return {"count": count, "kb_per_handshake": kib, "openssl": ssl.OPENSSL_VERSION}


def traced_breakdown(args: argparse.Namespace, scratch: Path, workdir: Path) -> dict[str, Any]:
    """Part (a)'s chainscan run under tracemalloc: bytes per handshake by traceback."""
    targets = in_flight_targets(args.in_flight, workdir / "in-flight.txt")
    run_dir = Path(tempfile.mkdtemp(dir=scratch))
    report = run_dir / "traced.json"
    timeouts = ["--connect-timeout", "60", "--handshake-timeout", "120", "--deadline", "180"]
    chainscan = chainscan_argv(
        targets, run_dir / "out", ["--concurrency", str(args.in_flight), *timeouts]
    )
    argv = [
        sys.executable,
        "-m",
        "benchmarks.scenarios._traced",
        "--hold",
        str(args.in_flight),
        "--report",
        str(report),
        "--",
        *chainscan[3:],
    ]
    server_dir = workdir / "server-traced"
    server_dir.mkdir()
    with slow_server(server_dir, args.in_flight, args.plateau):
        result, _, _ = run_measured(argv, str(targets), run_dir, args.timeout, None)
    out: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    out["run"] = result
    out["sslobject_only_traced"] = sslobject_traced(args.in_flight)
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


def sslobject_traced(count: int) -> float | None:
    """Bytes tracemalloc sees per bare SSLObject + its two MemoryBIOs (the Python objects)."""
    code = (
        "import ssl, tracemalloc\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "ctx.check_hostname = False\n"
        "ctx.verify_mode = ssl.CERT_NONE\n"
        f"n = {count}\n"
        "tracemalloc.start(); held = []\n"
        "before = tracemalloc.get_traced_memory()[0]\n"
        "for i in range(n):\n"
        "    a, b = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
        "    o = ctx.wrap_bio(a, b, server_hostname=f'h{i}.scale.test')\n"
        "    try:\n"
        "        o.do_handshake()\n"
        "    except ssl.SSLWantReadError:\n"
        "        pass\n"
        "    b.read()\n"
        "    held.append((a, b, o))\n"
        "print((tracemalloc.get_traced_memory()[0] - before) / n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        return round(float(out.stdout.strip()), 1)
    except ValueError:
        return None


def render_traced(t: dict[str, Any]) -> str:
    if "groups" not in t:
        return f"traced run: no snapshot ({t.get('run', {}).get('stderr_tail', '')})"
    out = [
        f"traced run, {t['fds']} files open, {t['hold']} opened since the reference snapshot: "
        "Python allocations "
        f"{t['traced_bytes_per_handshake']} B per handshake (RSS growth under tracemalloc: "
        f"{t['rss_growth_kib_per_handshake']} KiB); bare SSLObject + 2 MemoryBIO: "
        f"{t['sslobject_only_traced']} B",
        f"{'B/handshake':>11} {'n/handshake':>11}  where (allocating frame first)",
    ]
    for g in t["groups"]:
        if g["bytes_per_handshake"] < 8:
            break
        out.append(
            f"{g['bytes_per_handshake']:>11} {g['count_per_handshake']:>11}  "
            + " < ".join(reversed(g["frames"][-5:]))
        )
    out.append("by caller (innermost non-stdlib frame):")
    out += [f"{r['bytes_per_handshake']:>11}  {r['caller']}" for r in t["by_caller"]]
    return "\n".join(out)


def _bare_ok(stdout: str) -> int:
    words = stdout.split()
    return int(words[words.index("ok") + 1]) if "ok" in words else 0


# --------------------------------------------------------------------------------------------
# (b) streaming


def refused_targets(count: int, path: Path) -> Path:
    with path.open("w") as f:
        for i in range(count):
            f.write(f"127.{20 + i // 65536}.{(i // 256) % 256}.{i % 256}:1\n")
    return path


def part_b(args: argparse.Namespace, scratch: Path, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for lines in [int(n) for n in args.stream_lines.split(",") if n.strip()]:
        targets = refused_targets(lines, workdir / f"refused-{lines}.txt")
        run_dir = Path(tempfile.mkdtemp(dir=scratch))
        outdir = run_dir / "out"
        argv = chainscan_argv(
            targets,
            outdir,
            ["--concurrency", str(args.stream_concurrency), "--connect-timeout", "5"],
        )
        result, samples, progress = run_measured(
            argv, str(targets), run_dir, args.timeout, outdir / "manifest.jsonl"
        )
        kinds = count_statuses(outdir / "manifest.jsonl")
        shutil.rmtree(run_dir, ignore_errors=True)
        targets.unlink()
        at: dict[str, float | None] = {}
        # "100%" is taken when 99% of the lines are in the manifest: the whole input has been
        # read by then, and the very last samples fall in the process's teardown.
        for label, share in (("10%", 0.1), ("50%", 0.5), ("100%", 0.99)):
            reached = next((t for t, n in progress.samples if n >= share * lines), None)
            at[label] = None if reached is None else round(samples.rss_at(reached) / 1024, 1)
        first = at["10%"]
        last = at["100%"]
        growth = None if first is None or last is None else round(last - first, 1)
        low, high = (round(0.9 * lines * b / 2**20, 1) for b in DEDUP_BYTES_PER_TARGET)
        expected = f"{low}-{high}"
        row = {
            "lines": lines,
            "done": sum(kinds.values()),
            "kinds": dict(kinds),
            "rss_mb_at": at,
            "growth_10_to_100_mb": growth,
            "dedup_estimate_mb": expected,
            "growth_per_line_bytes": None
            if growth is None
            else round(growth * 2**20 / (0.9 * lines), 1),
            "rss_timeline_mb": [
                (round(t, 2), round(kb / 1024, 1)) for t, kb, _ in samples.points[::8]
            ],
            "manifest_timeline": progress.samples[::20],
            **result,
        }
        rows.append(row)
        log(
            f"(b) {lines} lines: {row['done']} done in {result['seconds']} s, RSS at 10/50/100%: "
            f"{at}, peak {result['peak_rss_mb']} MB, growth {growth} MB (dedup ~{expected} MB)"
        )
    return rows


def render(a: dict[str, Any] | None, b: Sequence[dict[str, Any]]) -> str:
    out = []
    if a is not None:
        out.append(f"(a) {a['in_flight']} handshakes in flight")
        head = (
            f"{'tool':<10} {'run':<5} {'ok':>6} {'max fds':>7} {'plateau RSS MB':>14} "
            f"{'peak RSS MB':>11} {'wall s':>7}"
        )
        out += [head, "-" * len(head)]
        for name in ("chainscan", "bare-trio"):
            for label in ("one", "full"):
                r = a.get(f"{name}-{label}")
                if r is None:
                    continue
                out.append(
                    f"{name:<10} {label:<5} {r['ok']:>6} {r['max_open_fds']:>7} "
                    f"{r['plateau_rss_mb']!s:>14} {r['peak_rss_mb']:>11.1f} {r['seconds']:>7.1f}"
                )
        per = ", ".join(
            f"{n}: {a[f'{n}_kb_per_handshake']} KiB"
            for n in ("chainscan", "bare-trio")
            if f"{n}_kb_per_handshake" in a
        )
        out.append(f"per handshake, from the peak (full - one) / N: {per}")
        per = ", ".join(
            f"{n}: {a[f'{n}_plateau_kb_per_handshake']} KiB"
            for n in ("chainscan", "bare-trio")
            if a.get(f"{n}_plateau_kb_per_handshake") is not None
        )
        out.append(f"per handshake, all {a['in_flight']} waiting (plateau - one) / N: {per}")
        if "sslobject_only" in a:
            out.append(f"ssl.SSLObject alone, waiting for ServerHello: {a['sslobject_only']}")
        verdict = "met" if a["met"] else "NOT met"
        out.append(f"target: chainscan peak RSS < {a['target_mb']:.0f} MB: {verdict}")
        out.append("")
    if b:
        out.append("(b) streaming refused targets")
        head = (
            f"{'lines':>8} {'wall s':>7} {'RSS@10%':>8} {'RSS@50%':>8} {'RSS@100%':>9} "
            f"{'peak':>7} {'growth':>7} {'dedup est.':>10} {'B/line':>7}"
        )
        out += [head, "-" * len(head)]
        for r in b:
            at = r["rss_mb_at"]
            out.append(
                f"{r['lines']:>8} {r['seconds']:>7.1f} {at['10%']!s:>8} {at['50%']!s:>8} "
                f"{at['100%']!s:>9} {r['peak_rss_mb']:>7.1f} {r['growth_10_to_100_mb']!s:>7} "
                f"{r['dedup_estimate_mb']:>10} {r['growth_per_line_bytes']!s:>7}"
            )
        out.append(
            "(MB = MiB; growth = RSS@100% - RSS@10%; dedup est. = 90% of the lines x 16-32 B)"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_or_exit(ENTRY, ENTRY_POINTS[ENTRY].needs)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="chainscan-scale-"))
    scratch = Path(tempfile.mkdtemp(prefix="chainscan-scale-", dir=scratch_dir()))
    a: dict[str, Any] | None = None
    b: list[dict[str, Any]] = []
    if args.tracemalloc:
        try:
            traced = traced_breakdown(args, scratch, workdir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
        print(render_traced(traced))
        if not args.no_save:
            traced["machine"] = machine_info()
            print(f"results: {write_results(SCENARIO + '-traced', traced)}")
        return 0
    try:
        if args.in_flight:
            a = part_a(args, scratch, workdir)
        if args.stream_lines:
            b = part_b(args, scratch, workdir)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(a, b))
    if not args.no_save:
        path = write_results(
            SCENARIO,
            {
                "scenario": SCENARIO,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "elapsed_seconds": round(time.monotonic() - started, 1),
                "in_flight": a,
                "streaming": b,
                "machine": machine_info(),
            },
        )
        print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
