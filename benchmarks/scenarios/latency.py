"""``python -m benchmarks.scenarios.latency``: chainscan against a fleet 50 ms away, 10% dead.

Theory of operation
-------------------

On loopback a handshake takes a fraction of a millisecond, so the core benchmark measures CPU.
Real targets are tens of milliseconds away and some never answer; a scanner should then overlap
many slow handshakes, and a dead target should cost it a slot for a timeout, not throughput.
This scenario measures that, in one run, at several concurrencies:

* **A fleet 50 ms away.** A network namespace of our own (:mod:`._netns`) is joined to the host
  by a veth pair. nginx runs inside it with :mod:`benchmarks.fleet`'s PKI and configuration
  (listen addresses moved from 127.0.1.x to 10.213.1.x). ``tc netem`` is not available in this
  kernel, so the delay comes from iptables: in the namespace, every TCP packet arriving on the
  veth (``mangle PREROUTING``) or leaving by it (``mangle OUTPUT``) goes to NFQUEUE 0, where
  ``nfq_delay`` (a small C program, ``nfq_delay.c``, built on first use) holds it for 25 ms and
  then accepts it. Every packet, SYN and SYN-ACK included, is delayed each way: a true 50 ms
  round trip. The scenario checks it (TCP connect time) and reports the delayer's CPU.
* **Dead targets.** *Blackholed*: addresses 10.213.2.x, whose packets iptables drops in the
  namespace (the SYN gets no answer; chainscan waits ``--connect-timeout``). *Tarpitted*:
  10.213.3.x, served by :mod:`._tarpit`, which accepts and then never says a word (chainscan
  waits ``--handshake-timeout``). The "dead" targets file is the live one with every tenth line
  replaced by a dead target, blackholed and tarpitted in turn: same length, 10% dead.
* **Runs.** For every concurrency: chainscan over the live file and over the dead file (which
  goes first alternates), each in a fresh output directory on tmpfs, with
  ``--rate 0 --per-ip 0 --retries 0`` and the timeouts below. A thread counts the manifest's
  lines as they are written, so besides the wall-clock rate (lines / wall time, start-up and the
  tail of the last timeouts included) the scenario reports a *steady* rate: targets per second
  between the 10th and 90th percentile of completion times (chainscan's from its runner's
  completion hook; see :mod:`benchmarks._steady`). The tail costs about one timeout once per
  run, whatever the input's size, so the steady rate is the one that tells whether dead
  targets cost slots or throughput.
* **Peers** (:mod:`._peers`): bare-trio, the seed method (openssl-xargs) and sslyze-api, each
  once over the live and the dead file, with chainscan's timeouts, next to chainscan at
  ``--peer-concurrency``; the slow two over the first ``--slow-targets`` lines.

Everything is bounded: every chainscan run by ``--timeout``, the delayer and the tarpit by
their own ``--max-seconds``, and the namespace (with its rules) is deleted at the end, on
errors and Ctrl-C too. Traffic goes only to the namespace's 10.213.0.0/16 and to loopback.
Needs root (namespaces, iptables), ``ip``, ``iptables``, a C compiler,
``libnetfilter-queue-dev``, nginx and GNU time (:data:`benchmarks._requirements.ENTRY_POINTS`):
checked before anything starts, installed with apt-get if missing (``python3 -m
benchmarks.setup`` installs them all beforehand).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._requirements import ENTRY_POINTS, require_or_exit
from .._system import die_with_parent
from ..fleet import (
    Fleet,
    FleetSpec,
    FleetTarget,
    TargetFiles,
    find_or_install_nginx,
    layout,
    leaf_der,
    nginx_version,
    parse_profiles,
    render_nginx_conf,
    start_limit,
    stop_nginx,
    write_pki,
    write_target_files,
)
from ..runners._base import RunStatus
from . import _peers
from ._common import (
    REPO,
    count_statuses,
    cpu_seconds_of,
    log,
    machine_busy_seconds,
    machine_info,
    scratch_dir,
    settle,
    write_results,
)
from ._netns import PREFIX, Namespace, namespace
from ._peers import make_runner

SCENARIO = "latency"
ENTRY = "benchmarks.scenarios.latency"
NETNS = "csbench-lat"
LIVE_NET = f"{PREFIX}.1"
BLACKHOLE_NET = f"{PREFIX}.2"
TARPIT_NET = f"{PREFIX}.3"
DEAD_ADDRESSES = 5
"""Blackholed addresses 10.213.2.1-5 and tarpit addresses 10.213.3.1-5."""
QUEUE = 0
HERE = Path(__file__).resolve().parent
TIMEOUTS = _peers.CHAINSCAN_TIMEOUTS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios.latency",
        description="chainscan's rate against a fleet 50 ms away, all live and 10%% dead.",
    )
    p.add_argument("--targets", type=int, default=10000, help="lines per run (%(default)s)")
    p.add_argument(
        "--concurrency",
        default="100,1000,5000",
        help="chainscan --concurrency values, comma-separated (%(default)s)",
    )
    p.add_argument("--rtt-ms", type=float, default=50.0, help="round trip (%(default)s ms)")
    p.add_argument("--dead-every", type=int, default=10, help="1 dead line in N (%(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, help="per run, s (%(default)s)")
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="wait up to S s for an idle CPU (%(default)s)",
    )
    p.add_argument("--repeat", type=int, default=2, help="runs of each kind (%(default)s)")
    p.add_argument("--addresses", type=int, default=10, help="live addresses (%(default)s)")
    p.add_argument("--ports", type=int, default=4, help="ports per address (%(default)s)")
    p.add_argument("--base-port", type=int, default=24430)
    p.add_argument("--profiles", default="ec-2,rsa-2", help="fleet profiles (%(default)s)")
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument("--warmup", type=int, default=300, help="targets, not recorded")
    p.add_argument(
        "--peers",
        default=",".join(_peers.PEERS[1:]),
        help="peers run next to chainscan, once per kind (%(default)s; '' for none)",
    )
    p.add_argument(
        "--peer-concurrency",
        type=int,
        default=1000,
        help="chainscan's and bare-trio's concurrency in the peer comparison (%(default)s)",
    )
    p.add_argument(
        "--slow-targets",
        type=int,
        default=1000,
        help="openssl-xargs and sslyze-api get the first N targets (%(default)s; 0: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="about 2 minutes: 3,000 targets, concurrency 1000 only, 1 repeat, 400 targets "
        "for the slow peers (explicit options still win)",
    )
    p.add_argument("--no-save", action="store_true", help="do not write result files")
    given = set(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.quick:
        for option, key, value in (
            ("--targets", "targets", 3000),
            ("--concurrency", "concurrency", "1000"),
            ("--repeat", "repeat", 1),
            ("--slow-targets", "slow_targets", 400),
            ("--settle", "settle", 5.0),
            ("--warmup", "warmup", 100),
        ):
            if not any(a == option or a.startswith(option + "=") for a in given):
                setattr(args, key, value)
    args.peers = [n for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in args.peers if n not in _peers.PEERS[1:]]
    if unknown:
        p.error(f"unknown peers {unknown}; choose from {_peers.PEERS[1:]}")
    return args


# --------------------------------------------------------------------------------------------
# The delayer


def build_delayer(workdir: Path) -> Path:
    """Compile ``nfq_delay.c`` (its compiler and library were checked by :func:`main`)."""
    binary = workdir / "nfq_delay"
    subprocess.run(
        [
            "cc",
            "-O2",
            "-Wall",
            "-o",
            str(binary),
            str(HERE / "nfq_delay.c"),
            "-lnetfilter_queue",
            "-lnfnetlink",
        ],
        check=True,
    )
    return binary


def _start(argv: list[str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as f:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def child(argv: list[str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A helper process for the block's duration (SIGTERM to its PID at the end)."""
    process = _start(argv, out)
    try:
        yield process
    finally:
        _stop(process)


def connect_ms(address: str, port: int, count: int = 5) -> list[float]:
    """TCP connect times to ``address:port``, in ms."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with socket.create_connection((address, port), timeout=5):
            times.append((time.perf_counter() - start) * 1000)
    return times


# --------------------------------------------------------------------------------------------
# The fleet in the namespace


def start_fleet(
    spec: FleetSpec, ns: Namespace, prefix: Path
) -> tuple[Fleet, subprocess.Popen[bytes]]:
    """nginx inside ``ns``: fleet.py's PKI and config, listening on 10.213.1.x instead."""
    nginx = find_or_install_nginx()
    moved = tuple(
        dataclasses.replace(t, address=t.address.replace(spec.network + ".", LIVE_NET + ".", 1))
        for t in layout(spec)
    )
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    default_der = write_pki(moved, prefix)
    conf = render_nginx_conf(spec, moved, prefix).replace(
        f"listen {spec.network}.", f"listen {LIVE_NET}."
    )
    (prefix / "nginx.conf").write_text(conf)
    files = write_target_files(moved, prefix, "targets")
    process = _start(
        [
            *ns.exec_prefix(),
            nginx,
            "-p",
            f"{prefix}/",
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "error.log"),
        ],
        prefix / "nginx.out",
    )
    fleet = Fleet(
        spec=spec,
        prefix=prefix,
        targets=moved,
        files=files,
        nginx=nginx,
        nginx_version=nginx_version(nginx),
        process=process,
        default_der=default_der,
    )
    deadline = time.monotonic() + start_limit(spec.targets)
    first = moved[0]
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text()[-2000:]}")
        try:
            leaf_der(first.address, first.port, "probe.invalid", 2.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    fleet.check()
    return fleet, process


def dead_targets_file(live: Sequence[FleetTarget], every: int, base_port: int, path: Path) -> int:
    """The live targets with every ``every``-th line (5th, 15th, ...) dead; returns the count.
    The same targets in the shell tools' format (``name ip port``) go to ``<stem>-openssl.txt``
    next to ``path``."""
    dead = 0
    lines, openssl = [], []
    for i, t in enumerate(live):
        if i % every == every // 2:
            net = BLACKHOLE_NET if dead % 2 == 0 else TARPIT_NET
            address = f"{net}.{1 + (dead // 2) % DEAD_ADDRESSES}"
            port = base_port + (dead // (2 * DEAD_ADDRESSES)) % 4
            lines.append(f"d{i:06d}.dead.test:{port}{{{address}}}\n")
            openssl.append(f"d{i:06d}.dead.test {address} {port}\n")
            dead += 1
        else:
            lines.append(t.chainscan_line + "\n")
            openssl.append(t.openssl_line + "\n")
    path.write_text("".join(lines))
    path.with_name(f"{path.stem}-openssl.txt").write_text("".join(openssl))
    return dead


def head_of(files: TargetFiles, count: int, directory: Path, stem: str) -> TargetFiles:
    """The first ``count`` lines of both files of ``files`` (all of them if fewer)."""
    if count <= 0 or count >= files.count:
        return files
    directory.mkdir(parents=True, exist_ok=True)
    out = TargetFiles(
        chainscan=directory / f"{stem}.txt",
        openssl=directory / f"{stem}-openssl.txt",
        count=count,
    )
    for src, dst in ((files.chainscan, out.chainscan), (files.openssl, out.openssl)):
        with src.open() as f:
            dst.write_text("".join(line for _, line in zip(range(count), f, strict=False)))
    return out


# --------------------------------------------------------------------------------------------
# Runs


def run_chainscan(
    targets: TargetFiles, count: int, concurrency: int, workdir: Path, timeout: float
) -> dict[str, Any]:
    """chainscan once (:mod:`._peers`' settings: these timeouts, no retries, no limits); its
    steady rate from its completion times (the runner's hook, see benchmarks/README.md)."""
    outdir = workdir / "out"
    m = make_runner("chainscan", concurrency).run(targets, workdir, timeout)
    argv = list(m.command)
    kinds = count_statuses(outdir / "manifest.jsonl")
    done = sum(kinds.values())
    steady = m.steady_targets_per_second
    return {
        "targets": count,
        "done": done,
        "ok": kinds.get("ok", 0),
        "kinds": dict(kinds),
        "seconds": round(m.seconds, 3),
        "targets_per_second": round(done / m.seconds, 1),
        "ok_per_second": round(kinds.get("ok", 0) / m.seconds, 1),
        "steady_targets_per_second": None if steady is None else round(steady, 1),
        "cpu_seconds": round(m.cpu_seconds, 2),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "returncode": m.returncode,
        "timed_out": m.status is RunStatus.TIMEOUT,
        "command": argv,
    }


def run_peers(
    args: argparse.Namespace,
    files: dict[str, tuple[TargetFiles, int]],
    workdir: Path,
    scratch: Path,
    rows: Sequence[dict[str, Any]],
    fleet: Fleet,
    delayer_pid: int,
) -> list[dict[str, Any]]:
    """Each peer once per kind (live, dead), next to chainscan at ``--peer-concurrency`` (taken
    from the runs above when that concurrency was among them, else run here once)."""
    out: list[dict[str, Any]] = []
    for kind, (full, _) in files.items():
        mine = [
            r["run"] for r in rows if (r["concurrency"], r["kind"]) == (args.peer_concurrency, kind)
        ]
        if mine:
            best = sorted(mine, key=lambda r: r["targets_per_second"])[len(mine) // 2]
            out.append(
                {
                    "kind": kind,
                    "tool": "chainscan",
                    "from": "the runs above (median)",
                    "targets": best["targets"],
                    "ok": best["ok"],
                    "seconds": best["seconds"],
                    "targets_per_second": best["targets_per_second"],
                    "steady_targets_per_second": best["steady_targets_per_second"],
                    "cpu_ms_per_target": round(1000 * best["cpu_seconds"] / best["targets"], 3),
                }
            )
        names = ([] if mine else [_peers.SUBJECT]) + list(args.peers)
        for name in names:
            if name != "chainscan" and (why := _peers.unavailable(name)) is not None:
                log(f"{name}: unavailable, not run: {why}")
                out.append({"kind": kind, "tool": name, "status": "unavailable", "detail": why})
                continue
            target_files = (
                head_of(full, args.slow_targets, workdir / "slow", f"{kind}-{args.slow_targets}")
                if name in _peers.SLOW
                else full
            )
            waited = settle(args.settle)
            run_dir = Path(tempfile.mkdtemp(dir=scratch))
            busy, nginx, delayer = (
                machine_busy_seconds(),
                fleet.cpu_seconds(),
                cpu_seconds_of(delayer_pid),
            )
            timeout = args.timeout + 0.5 * target_files.count  # openssl: ~30/s at worst
            try:
                result = _peers.run_peer(
                    name, target_files, args.peer_concurrency, run_dir, timeout
                )
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            wall = result["seconds"] or 1.0
            result["other_cpu"] = round(
                (machine_busy_seconds() - busy - (fleet.cpu_seconds() - nginx)) / wall
                - (cpu_seconds_of(delayer_pid) - delayer) / wall
                - result["cpu_seconds"] / wall,
                2,
            )
            result["settle_seconds"] = round(waited, 1)
            log(
                f"peer {name} {kind}: {result['ok']}/{result['targets']} ok in "
                f"{result['seconds']:.1f} s = {result['targets_per_second']}/s "
                f"(steady {result['steady_targets_per_second']}/s), other CPU "
                f"{result['other_cpu']:.0%} {result['detail'][:120]}"
            )
            out.append({"kind": kind, **result})
    return out


def render_peers(peer_rows: Sequence[dict[str, Any]], args: argparse.Namespace) -> str:
    """The peers table: each tool's rate per kind, and chainscan's over it."""
    if not peer_rows:
        return "peers: none run (--peers '')"
    head = (
        f"{'kind':<5} {'tool':<14} {'ok/targets':>12} {'targets/s':>10} {'steady/s':>9} "
        f"{'CPU ms/target':>14} {'chainscan/tool':>15} {'steady':>7}"
    )
    lines = [
        f"peers at concurrency {args.peer_concurrency} (chainscan, bare-trio); openssl-xargs "
        f"-P 16 and sslyze-api over the first {args.slow_targets or 'all'} targets; rates "
        "count every target, dead ones included",
        head,
        "-" * len(head),
    ]
    for kind in ("live", "dead"):
        mine = next((r for r in peer_rows if (r["kind"], r["tool"]) == (kind, "chainscan")), None)
        for r in (r for r in peer_rows if r["kind"] == kind):
            if r.get("status") == "unavailable":
                lines.append(f"{kind:<5} {r['tool']:<14} unavailable: {r['detail']}")
                continue
            ratio = steady = "-"
            if mine is not None and r["tool"] != "chainscan":
                if mine["targets_per_second"] and r["targets_per_second"]:
                    ratio = f"{mine['targets_per_second'] / r['targets_per_second']:.2f}x"
                ms, ts = mine["steady_targets_per_second"], r["steady_targets_per_second"]
                if ms and ts:
                    steady = f"{ms / ts:.2f}x"
            rate, st = r["targets_per_second"], r["steady_targets_per_second"]
            lines.append(
                f"{kind:<5} {r['tool']:<14} {str(r['ok']) + '/' + str(r['targets']):>12} "
                f"{'-' if rate is None else f'{rate:.1f}':>10} "
                f"{'-' if st is None else f'{st:.1f}':>9} {r['cpu_ms_per_target']:>14.2f} "
                f"{ratio:>15} {steady:>7}"
            )
    return "\n".join(lines)


def _medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Median of the rates over the repeats."""
    out: dict[str, float | None] = {}
    for key in ("targets_per_second", "ok_per_second", "steady_targets_per_second"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(statistics.median(values), 1) if values else None
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'concurrency':>11}  {'dead':>4}  {'ok/targets':>12}  {'wall s':>7}  "
        f"{'targets/s':>9}  {'steady/s':>8}  {'chainscan CPU':>13}  {'nginx CPU':>9}  "
        f"{'delayer CPU':>11}  {'other CPU':>9}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        run = r["run"]
        steady = run["steady_targets_per_second"]
        out.append(
            f"{r['concurrency']:>11}  {r['dead_percent']:>3}%  "
            f"{run['ok']:>5}/{run['targets']:<6}  {run['seconds']:>7.2f}  "
            f"{run['targets_per_second']:>9.1f}  {steady if steady is not None else '-':>8}  "
            f"{run['cpu_seconds'] / run['seconds']:>12.0%}  {r['nginx_cpu']:>9.0%}  "
            f"{r['delayer_cpu']:>11.1%}  {r['other_cpu']:>9.0%}"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_or_exit(ENTRY, ENTRY_POINTS[ENTRY].needs)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    spec = FleetSpec(
        targets=args.targets,
        addresses=args.addresses,
        ports=args.ports,
        base_port=args.base_port,
        profiles=parse_profiles(args.profiles),
        workers=args.nginx_workers,
    )
    workdir = Path(tempfile.mkdtemp(prefix="chainscan-latency-"))
    scratch = Path(tempfile.mkdtemp(prefix="chainscan-latency-", dir=scratch_dir()))
    live_addresses = [f"{LIVE_NET}.{a}" for a in range(1, args.addresses + 1)]
    dead_addresses = [
        f"{net}.{a}" for net in (BLACKHOLE_NET, TARPIT_NET) for a in range(1, DEAD_ADDRESSES + 1)
    ]
    started = time.monotonic()
    try:
        delayer_bin = build_delayer(workdir)
        with contextlib.ExitStack() as stack:
            ns = stack.enter_context(namespace(NETNS, (1, 2, 3), live_addresses + dead_addresses))
            log(f"namespace {ns.name}: veth {ns.host_if} <-> {ns.ns_if}")
            for chain, direction in (("PREROUTING", "-i"), ("OUTPUT", "-o")):
                ns.iptables(
                    "-t", "mangle", "-A", chain, direction, ns.ns_if, "-p", "tcp",
                    "-j", "NFQUEUE", "--queue-num", str(QUEUE),
                )  # fmt: skip
            ns.iptables("-A", "INPUT", "-d", f"{BLACKHOLE_NET}.0/24", "-j", "DROP")
            delayer = stack.enter_context(
                child(
                    [
                        *ns.exec_prefix(),
                        str(delayer_bin),
                        str(QUEUE),
                        str(args.rtt_ms / 2),
                        "1200",
                    ],
                    workdir / "delayer.log",
                )
            )
            time.sleep(0.3)
            tarpit_listen = [
                f"{TARPIT_NET}.{a}:{args.base_port + p}"
                for a in range(1, DEAD_ADDRESSES + 1)
                for p in range(4)
            ]
            stack.enter_context(
                child(
                    [
                        *ns.exec_prefix(),
                        sys.executable,
                        "-m",
                        "benchmarks.scenarios._tarpit",
                        "--max-seconds",
                        "1200",
                        *tarpit_listen,
                    ],
                    workdir / "tarpit.log",
                )
            )
            log(f"building a fleet of {args.targets} names in the namespace")
            fleet, nginx = start_fleet(spec, ns, workdir / "fleet")
            stack.callback(stop_nginx, nginx)
            rtt = connect_ms(fleet.targets[0].address, fleet.targets[0].port)
            log(f"TCP connect to the fleet: {', '.join(f'{t:.1f}' for t in rtt)} ms")
            tarpit_ms = connect_ms(f"{TARPIT_NET}.1", args.base_port, 2)
            dead_file = workdir / "targets-dead.txt"
            dead = dead_targets_file(fleet.targets, args.dead_every, args.base_port, dead_file)
            dead_files = TargetFiles(
                chainscan=dead_file,
                openssl=dead_file.with_name(f"{dead_file.stem}-openssl.txt"),
                count=args.targets,
            )
            files = {"live": (fleet.files, 0), "dead": (dead_files, dead)}

            def one_run(kind: str, concurrency: int, count: int | None = None) -> dict[str, Any]:
                path, n_dead = files[kind]
                if count is not None:
                    path = fleet.subset(count, "warmup")
                run_dir = Path(tempfile.mkdtemp(dir=scratch))
                waited = settle(args.settle) if count is None else 0.0
                nginx_before, delayer_before = fleet.cpu_seconds(), cpu_seconds_of(delayer.pid)
                busy_before = machine_busy_seconds()
                try:
                    run = run_chainscan(
                        path, count or args.targets, concurrency, run_dir, args.timeout
                    )
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
                wall = run["seconds"]
                nginx_cpu = (fleet.cpu_seconds() - nginx_before) / wall
                delayer_cpu = (cpu_seconds_of(delayer.pid) - delayer_before) / wall
                machine_cpu = (machine_busy_seconds() - busy_before) / wall
                return {
                    "concurrency": concurrency,
                    "kind": kind,
                    "dead_targets": n_dead,
                    "dead_percent": round(100 * n_dead / args.targets),
                    "settle_seconds": round(waited, 1),
                    "nginx_cpu": nginx_cpu,
                    "delayer_cpu": delayer_cpu,
                    "machine_cpu": machine_cpu,
                    "other_cpu": machine_cpu - nginx_cpu - delayer_cpu - run["cpu_seconds"] / wall,
                    "run": run,
                }

            if args.warmup:
                log(f"warm-up: {args.warmup} live targets")
                one_run("live", 100, args.warmup)
            rows = []
            for i, (repeat, concurrency) in enumerate(
                (rep, c) for rep in range(args.repeat) for c in concurrencies
            ):
                order = ("live", "dead") if i % 2 == 0 else ("dead", "live")
                for kind in order:
                    row = one_run(kind, concurrency)
                    row["repeat"] = repeat
                    r = row["run"]
                    log(
                        f"concurrency {concurrency:>5} {kind}: {r['done']}/{r['targets']} done, "
                        f"{r['ok']} ok, {r['seconds']:.1f} s, {r['targets_per_second']}/s "
                        f"(steady {r['steady_targets_per_second']}/s), kinds {r['kinds']}, "
                        f"delayer {row['delayer_cpu']:.1%}, other {row['other_cpu']:.0%}"
                    )
                    rows.append(row)
            rows.sort(key=lambda r: (r["concurrency"], r["kind"] != "live", r["repeat"]))
            peer_rows = run_peers(args, files, workdir, scratch, rows, fleet, delayer.pid)
    except KeyboardInterrupt:
        log("interrupted; namespace, nginx, delayer and tarpit stopped")
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    delayer_log = (workdir / "delayer.log").read_text(errors="replace").strip()
    shutil.rmtree(workdir, ignore_errors=True)

    comparisons: list[dict[str, Any]] = []
    for concurrency in concurrencies:
        live_run = _medians(
            [r["run"] for r in rows if (r["concurrency"], r["kind"]) == (concurrency, "live")]
        )
        dead_run = _medians(
            [r["run"] for r in rows if (r["concurrency"], r["kind"]) == (concurrency, "dead")]
        )
        wall = _ratio(dead_run["targets_per_second"], live_run["targets_per_second"])
        steady = _ratio(
            dead_run["steady_targets_per_second"], live_run["steady_targets_per_second"]
        )
        comparisons.append(
            {
                "concurrency": concurrency,
                "live_median": live_run,
                "dead_median": dead_run,
                "dead_over_live_targets_per_second": wall,
                "dead_over_live_steady": steady,
                "dead_over_live_ok_per_second": _ratio(
                    dead_run["ok_per_second"], live_run["ok_per_second"]
                ),
                "target": ">= 0.90 at concurrency >= 1000" if concurrency >= 1000 else None,
                "met_wall": None if concurrency < 1000 or wall is None else wall >= 0.9,
                "met_steady": None if concurrency < 1000 or steady is None else steady >= 0.9,
            }
        )
    print(render_table(rows))
    print()
    print("medians over the repeats; ratios are dead / live")
    print(
        f"{'concurrency':>11}  {'live/s':>7}  {'dead/s':>7}  {'ratio':>6}  "
        f"{'live steady':>11}  {'dead steady':>11}  {'ratio':>6}  target"
    )
    for c in comparisons:
        met = (
            ""
            if c["target"] is None
            else (
                f"wall {'met' if c['met_wall'] else 'NOT met'}, "
                f"steady {'met' if c['met_steady'] else 'NOT met'} (>= 0.90)"
            )
        )
        lm, dm = c["live_median"], c["dead_median"]
        print(
            f"{c['concurrency']:>11}  {lm['targets_per_second']!s:>7}  "
            f"{dm['targets_per_second']!s:>7}  {c['dead_over_live_targets_per_second']!s:>6}  "
            f"{lm['steady_targets_per_second']!s:>11}  {dm['steady_targets_per_second']!s:>11}  "
            f"{c['dead_over_live_steady']!s:>6}  {met}"
        )
    last_line = delayer_log.splitlines()[-1] if delayer_log else "?"
    print()
    print(render_peers(peer_rows, args))
    print(f"\nTCP connect to the fleet: median {statistics.median(rtt):.1f} ms; {last_line}")
    if not args.no_save:
        path = write_results(
            SCENARIO,
            {
                "scenario": SCENARIO,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "elapsed_seconds": round(time.monotonic() - started, 1),
                "settings": {
                    "targets": args.targets,
                    "rtt_ms": args.rtt_ms,
                    "dead_every": args.dead_every,
                    "dead_kinds": "blackhole (SYN dropped) and tarpit (accept, silence), 1:1",
                    "chainscan_args": ["--rate", "0", "--per-ip", "0", "--retries", "0", *TIMEOUTS],
                    "concurrency": concurrencies,
                    "fleet": fleet.describe(),
                },
                "connect_ms": [round(t, 2) for t in rtt],
                "tarpit_connect_ms": [round(t, 2) for t in tarpit_ms],
                "delayer": delayer_log,
                "comparisons": comparisons,
                "runs": rows,
                "peers": peer_rows,
                "peer_settings": {
                    name: _peers.settings_of(name, args.peer_concurrency)
                    for name in [_peers.SUBJECT, *args.peers]
                },
                "machine": machine_info(),
            },
        )
        print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
