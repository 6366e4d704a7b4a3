"""``python -m benchmarks.scenarios.internet``: an internet-like mix, chainscan and its peers.

Theory of operation
-------------------

The ``latency`` scenario puts the whole fleet 50 ms away. Real scans meet round trips from a
few milliseconds to a third of a second and many dead targets of several kinds. This scenario
builds such a mix (its design: :mod:`._internet_mix`) and asks two things: how fast is each
tool on it, and how close does chainscan come to the bound
``min(concurrency / mean time per target, CPU-bound rate)`` (:mod:`benchmarks._steady`)?

* **Plain fleet first** (loopback, no delay): chainscan over ``--plain-targets`` targets of a
  fleet on 127.0.7.x, after a warm-up. Its CPU per target gives the bound's CPU term,
  ``1 / CPU per target``, measured in this run on this machine.
* **The mix.** A network namespace (:mod:`._netns`, as in ``latency``) holds nginx with the
  live targets on 10.213.1.x (``--addresses`` x ``--ports`` listeners), a tarpit
  (:mod:`._tarpit`) on 10.213.3.1-5 x 4 ports, an iptables ``DROP`` for 10.213.2.0/24, and
  a closed port (``--base-port`` + 100) on each live address, which the namespace's kernel
  refuses with RST. Every TCP packet through the veth goes to NFQUEUE, where ``nfq_delay``
  holds it for its endpoint's one-way delay, read from a table (one line per endpoint: the
  live listeners, the closed ports, the tarpits; each gets one of ``log_spaced(RTT_MIN,
  RTT_MAX)``). The input repeats 7 live, 1 blackholed, 1 refused, 1 tarpitted: 30% dead.
* **Runs.** chainscan at each ``--concurrency`` (``--repeat`` times), then each peer once
  (:mod:`._peers`: bare-trio at the largest concurrency, the seed method and sslyze-api over
  the first ``--slow-targets`` lines, rates per target), each after waiting (up to
  ``--settle`` s) for an idle second. Everybody gets the same timeouts (connect 2 s,
  handshake 2 s) and no retries.
* **Report.** Per run: targets/s (every target, dead ones included, over the wall time),
  steady/s (10th to 90th percentile of completion times), CPU per target; per concurrency:
  the bound and chainscan's share of it (goal >= 0.8); chainscan over sslyze-api (goal >= 20).

Everything is bounded (every run by ``--timeout``, the delayer and the tarpit by their own
``--max-seconds``), the namespace and its rules are deleted at the end, and traffic goes only
to 10.213.0.0/16 in the namespace and to loopback. Needs root (see ``latency``).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._requirements import ENTRY_POINTS, require_or_exit
from .._steady import latency_bound, mean_time_per_target
from ..fleet import FleetSpec, TargetFiles, parse_profiles, running_fleet, stop_nginx
from . import _peers
from ._common import (
    cpu_seconds_of,
    log,
    machine_busy_seconds,
    machine_info,
    scratch_dir,
    settle,
    write_results,
)
from ._internet_mix import design, kind_of, log_spaced, spread
from ._netns import namespace
from .latency import (
    BLACKHOLE_NET,
    DEAD_ADDRESSES,
    LIVE_NET,
    QUEUE,
    TARPIT_NET,
    build_delayer,
    child,
    connect_ms,
    head_of,
    start_fleet,
)

SCENARIO = "internet"
ENTRY = "benchmarks.scenarios.internet"
NETNS = "csbench-inet"
CLOSED_PORT_OFFSET = 100
"""The refused targets' port: ``--base-port`` + this, on the live addresses (nothing listens)."""
TARPIT_PORTS = 4
PLAIN_NETWORK = "127.0.7"

FULL = {"targets": 20000, "concurrency": "200,1000", "slow_targets": 1000, "plain_targets": 3000}
QUICK = {"targets": 5000, "concurrency": "1000", "slow_targets": 300, "plain_targets": 1500}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios.internet",
        description="chainscan and its peers on an internet-like mix: round trips 10-300 ms, "
        "30% dead (blackholed, refused, tarpitted); chainscan's rate against the bound.",
    )
    p.add_argument("--targets", type=int, help="lines of the mix (20000; quick 5000)")
    p.add_argument(
        "--concurrency",
        help="chainscan --concurrency values, comma-separated (200,1000; quick 1000)",
    )
    p.add_argument("--repeat", type=int, default=1, help="chainscan runs per concurrency (1)")
    p.add_argument(
        "--peers",
        default=",".join(_peers.PEERS[1:]),
        help="peers run once each (%(default)s; '' for none)",
    )
    p.add_argument(
        "--slow-targets",
        type=int,
        help="openssl-xargs and sslyze-api get the first N lines (1000; quick 300; 0: all)",
    )
    p.add_argument(
        "--plain-targets",
        type=int,
        help="targets of the plain (loopback) fleet for the CPU term (3000; quick 1500)",
    )
    p.add_argument("--rtt-min", type=float, default=10.0, help="ms (%(default)s)")
    p.add_argument("--rtt-max", type=float, default=300.0, help="ms (%(default)s)")
    p.add_argument("--addresses", type=int, default=10, help="live addresses (%(default)s)")
    p.add_argument("--ports", type=int, default=4, help="ports per live address (%(default)s)")
    p.add_argument("--base-port", type=int, default=24430)
    p.add_argument(
        "--plain-base-port", type=int, default=24430, help="plain fleet's first port (127.0.7.x)"
    )
    p.add_argument("--profiles", default="ec-2,rsa-2", help="fleet profiles (%(default)s)")
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300.0, help="per run, s (%(default)s)")
    p.add_argument("--settle", type=float, help="wait up to S s for an idle CPU (30; quick 5)")
    p.add_argument("--warmup", type=int, default=200, help="targets, not recorded (%(default)s)")
    p.add_argument("--quick", action="store_true", help="about 3 minutes (see the README)")
    p.add_argument("--no-save", action="store_true", help="do not write result files")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.settle is None:
        args.settle = 5.0 if args.quick else 30.0
    args.concurrencies = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    args.peers = [n for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in args.peers if n not in _peers.PEERS[1:]]
    if unknown:
        p.error(f"unknown peers {unknown}; choose from {_peers.PEERS[1:]}")
    if args.targets < 100 or not args.concurrencies:
        p.error("need --targets >= 100 and at least one concurrency")
    return args


def endpoint_rtts(args: argparse.Namespace) -> dict[str, dict[tuple[str, int], float]]:
    """Each endpoint's round trip in ms, by kind (see :mod:`._internet_mix`)."""
    live = [
        (f"{LIVE_NET}.{a}", args.base_port + p)
        for p in range(args.ports)
        for a in range(1, args.addresses + 1)
    ]
    closed = [
        (f"{LIVE_NET}.{a}", args.base_port + CLOSED_PORT_OFFSET)
        for a in range(1, args.addresses + 1)
    ]
    tarpits = [
        (f"{TARPIT_NET}.{a}", args.base_port + p)
        for p in range(TARPIT_PORTS)
        for a in range(1, DEAD_ADDRESSES + 1)
    ]
    out = {}
    for kind, endpoints in (("live", live), ("refused", closed), ("tarpitted", tarpits)):
        values = spread(log_spaced(args.rtt_min, args.rtt_max, len(endpoints)), len(endpoints))
        out[kind] = dict(zip(endpoints, values, strict=True))
    return out


def write_mix(live: Sequence[Any], args: argparse.Namespace, directory: Path) -> TargetFiles:
    """The mix's lines in both formats: the live targets in order, dead ones in between."""
    chainscan, openssl = [], []
    live_iter = iter(live)
    dead = {"blackholed": 0, "refused": 0, "tarpitted": 0}
    for i in range(args.targets):
        kind = kind_of(i)
        if kind == "live":
            t = next(live_iter)
            name, address, port = t.name, t.address, t.port
        else:
            k = dead[kind]
            dead[kind] += 1
            name = f"d{i:06d}.{kind}.test"
            if kind == "blackholed":
                address = f"{BLACKHOLE_NET}.{1 + k % DEAD_ADDRESSES}"
                port = args.base_port + (k // DEAD_ADDRESSES) % TARPIT_PORTS
            elif kind == "refused":
                address = f"{LIVE_NET}.{1 + k % args.addresses}"
                port = args.base_port + CLOSED_PORT_OFFSET
            else:
                address = f"{TARPIT_NET}.{1 + k % DEAD_ADDRESSES}"
                port = args.base_port + (k // DEAD_ADDRESSES) % TARPIT_PORTS
        chainscan.append(f"{name}:{port}{{{address}}}\n")
        openssl.append(f"{name} {address} {port}\n")
    directory.mkdir(parents=True, exist_ok=True)
    files = TargetFiles(
        chainscan=directory / "mix.txt", openssl=directory / "mix-openssl.txt", count=args.targets
    )
    files.chainscan.write_text("".join(chainscan))
    files.openssl.write_text("".join(openssl))
    return files


def measure_plain(args: argparse.Namespace, scratch: Path, concurrency: int) -> dict[str, Any]:
    """chainscan on the plain loopback fleet: its CPU per target (the bound's CPU term)."""
    spec = FleetSpec(
        targets=args.plain_targets,
        base_port=args.plain_base_port,
        network=PLAIN_NETWORK,
        profiles=parse_profiles(args.profiles),
        workers=args.nginx_workers,
    )
    with running_fleet(spec) as fleet:
        if args.warmup:
            run_dir = Path(tempfile.mkdtemp(dir=scratch))
            _peers.run_peer("chainscan", fleet.subset(args.warmup, "warmup"), 500, run_dir, 120)
            shutil.rmtree(run_dir, ignore_errors=True)
        waited = settle(args.settle)
        run_dir = Path(tempfile.mkdtemp(dir=scratch))
        busy = machine_busy_seconds()
        nginx = fleet.cpu_seconds()
        try:
            run = _peers.run_peer("chainscan", fleet.files, concurrency, run_dir, args.timeout)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        wall = run["seconds"] or 1.0
        run["nginx_cpu"] = round((fleet.cpu_seconds() - nginx) / wall, 2)
        run["other_cpu"] = round(
            (machine_busy_seconds() - busy) / wall - run["nginx_cpu"] - run["cpu_seconds"] / wall,
            2,
        )
        run["settle_seconds"] = round(waited, 1)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_or_exit(ENTRY, ENTRY_POINTS[ENTRY].needs)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="chainscan-internet-"))
    scratch = Path(tempfile.mkdtemp(prefix="chainscan-internet-", dir=scratch_dir()))
    peak = max(args.concurrencies)
    rtts = endpoint_rtts(args)
    mix = design(
        live_rtts=[v / 1000 for v in rtts["live"].values()],
        refused_rtts=[v / 1000 for v in rtts["refused"].values()],
        tarpit_rtts=[v / 1000 for v in rtts["tarpitted"].values()],
        connect_timeout=_peers.CONNECT_TIMEOUT,
        handshake_timeout=_peers.HANDSHAKE_TIMEOUT,
    )
    mean_seconds = mean_time_per_target(mix)
    n_live = sum(1 for i in range(args.targets) if kind_of(i) == "live")
    runs: list[dict[str, Any]] = []
    try:
        log(f"plain fleet: chainscan over {args.plain_targets} loopback targets (CPU term)")
        plain = measure_plain(args, scratch, peak)
        log(
            f"plain: {plain['ok']}/{plain['targets']} ok, {plain['targets_per_second']}/s, "
            f"{plain['cpu_ms_per_target']} ms CPU/target, other CPU {plain['other_cpu']:.0%}"
        )
        delayer_bin = build_delayer(workdir)
        table = workdir / "delays.txt"
        table.write_text(
            "".join(
                f"{address} {port} {rtt / 2:.3f}\n"
                for kind in rtts.values()
                for (address, port), rtt in kind.items()
            )
        )
        live_addresses = [f"{LIVE_NET}.{a}" for a in range(1, args.addresses + 1)]
        dead_addresses = [
            f"{net}.{a}"
            for net in (BLACKHOLE_NET, TARPIT_NET)
            for a in range(1, DEAD_ADDRESSES + 1)
        ]
        with contextlib.ExitStack() as stack:
            ns = stack.enter_context(namespace(NETNS, (1, 2, 3), live_addresses + dead_addresses))
            log(f"namespace {ns.name}: veth {ns.host_if} <-> {ns.ns_if}")
            for chain, direction in (("PREROUTING", "-i"), ("OUTPUT", "-o")):
                ns.iptables(
                    "-t", "mangle", "-A", chain, direction, ns.ns_if, "-p", "tcp",
                    "-j", "NFQUEUE", "--queue-num", str(QUEUE),
                )  # fmt: skip
            ns.iptables("-A", "INPUT", "-d", f"{BLACKHOLE_NET}.0/24", "-j", "DROP")
            max_seconds = str(int(args.timeout * 10 + 1200))
            delayer = stack.enter_context(
                child(
                    [
                        *ns.exec_prefix(),
                        str(delayer_bin),
                        str(QUEUE),
                        f"{args.rtt_min / 2:g}",
                        max_seconds,
                        str(table),
                    ],
                    workdir / "delayer.log",
                )
            )
            time.sleep(0.3)
            stack.enter_context(
                child(
                    [
                        *ns.exec_prefix(),
                        sys.executable,
                        "-m",
                        "benchmarks.scenarios._tarpit",
                        "--max-seconds",
                        max_seconds,
                        *(f"{a}:{p}" for a, p in rtts["tarpitted"]),
                    ],
                    workdir / "tarpit.log",
                )
            )
            spec = FleetSpec(
                targets=n_live,
                addresses=args.addresses,
                ports=args.ports,
                base_port=args.base_port,
                profiles=parse_profiles(args.profiles),
                workers=args.nginx_workers,
            )
            log(f"building a fleet of {n_live} live names in the namespace")
            fleet, nginx = start_fleet(spec, ns, workdir / "fleet")
            stack.callback(stop_nginx, nginx)
            near = min(rtts["live"], key=lambda e: rtts["live"][e])
            far = max(rtts["live"], key=lambda e: rtts["live"][e])
            probe = {
                f"{a}:{p} (designed {rtts['live'][(a, p)]:.0f} ms)": round(
                    statistics.median(connect_ms(a, p, 3)), 1
                )
                for a, p in (near, far)
            }
            log(f"TCP connect times: {probe}")
            files = write_mix(fleet.targets, args, workdir / "mix")

            def one(name: str, concurrency: int, target_files: TargetFiles) -> dict[str, Any]:
                waited = settle(args.settle)
                run_dir = Path(tempfile.mkdtemp(dir=scratch))
                busy, ncpu, dcpu = (
                    machine_busy_seconds(),
                    fleet.cpu_seconds(),
                    cpu_seconds_of(delayer.pid),
                )
                timeout = args.timeout + (0.5 * target_files.count if name in _peers.SLOW else 0)
                try:
                    run = _peers.run_peer(name, target_files, concurrency, run_dir, timeout)
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
                wall = run["seconds"] or 1.0
                run["nginx_cpu"] = round((fleet.cpu_seconds() - ncpu) / wall, 2)
                run["delayer_cpu"] = round((cpu_seconds_of(delayer.pid) - dcpu) / wall, 2)
                run["other_cpu"] = round(
                    (machine_busy_seconds() - busy) / wall
                    - run["nginx_cpu"]
                    - run["delayer_cpu"]
                    - run["cpu_seconds"] / wall,
                    2,
                )
                run["settle_seconds"] = round(waited, 1)
                run["concurrency"] = None if name in _peers.SLOW else concurrency
                log(
                    f"{name} c={concurrency}: {run['ok']}/{run['targets']} ok in "
                    f"{run['seconds']:.1f} s = {run['targets_per_second']}/s (steady "
                    f"{run['steady_targets_per_second']}/s), CPU {run['cpu_ms_per_target']} "
                    f"ms/target, other CPU {run['other_cpu']:.0%} {run['detail'][:100]}"
                )
                return run

            if args.warmup:
                log(f"warm-up: {args.warmup} lines of the mix")
                one("chainscan", peak, head_of(files, args.warmup, workdir / "w", "warmup"))
            for _ in range(args.repeat):
                for concurrency in args.concurrencies:
                    runs.append(one("chainscan", concurrency, files))
            slow = head_of(files, args.slow_targets, workdir / "slow", "slow")
            for name in args.peers:
                if (why := _peers.unavailable(name)) is not None:
                    log(f"{name}: unavailable, not run: {why}")
                    runs.append({"tool": name, "status": "unavailable", "detail": why})
                    continue
                runs.append(one(name, peak, slow if name in _peers.SLOW else files))
    except KeyboardInterrupt:
        log("interrupted; namespace, nginx, delayer and tarpit stopped")
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    delayer_log = (workdir / "delayer.log").read_text(errors="replace").strip()
    shutil.rmtree(workdir, ignore_errors=True)

    summary = summarize(runs, args, mean_seconds, plain)
    print(render(runs, summary, args, mix, plain))
    print(f"\nTCP connect (near, far): {probe}; {delayer_log.splitlines()[-1]}")
    if not args.no_save:
        path = write_results(
            SCENARIO,
            {
                "scenario": SCENARIO,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "elapsed_seconds": round(time.monotonic() - started, 1),
                "command": " ".join(["python", "-m", ENTRY, *(argv or sys.argv[1:])]),
                "settings": {
                    k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()
                },
                "design": {
                    "mix": [
                        {"name": c.name, "share": c.share, "seconds": round(c.seconds, 4)}
                        for c in mix
                    ],
                    "mean_seconds_per_target": round(mean_seconds, 4),
                    "rtt_ms": {
                        kind: {f"{a}:{p}": round(v, 2) for (a, p), v in table_.items()}
                        for kind, table_ in rtts.items()
                    },
                },
                "peer_settings": {
                    name: _peers.settings_of(name, peak) for name in [_peers.SUBJECT, *args.peers]
                },
                "connect_ms": probe,
                "delayer": delayer_log,
                "plain": plain,
                "runs": runs,
                "summary": summary,
                "machine": machine_info(),
            },
        )
        print(f"results: {path}")
    return 0


def summarize(
    runs: Sequence[dict[str, Any]],
    args: argparse.Namespace,
    mean_seconds: float,
    plain: dict[str, Any],
) -> dict[str, Any]:
    """The bound per concurrency and chainscan's share of it; chainscan over sslyze-api."""
    cpu = plain["cpu_seconds"] / plain["targets"] if plain.get("targets") else None
    bounds = []
    for concurrency in args.concurrencies:
        mine = [r for r in runs if r["tool"] == "chainscan" and r["concurrency"] == concurrency]
        b = latency_bound(concurrency, mean_seconds, cpu)
        rate = _median([r["targets_per_second"] for r in mine])
        steady = _median([r["steady_targets_per_second"] for r in mine])
        bounds.append(
            {
                "concurrency": concurrency,
                "latency_rate": round(b.latency_rate, 1),
                "cpu_rate": None if b.cpu_rate is None else round(b.cpu_rate, 1),
                "bound": round(b.rate, 1),
                "limited_by": b.limited_by,
                "chainscan_targets_per_second": rate,
                "chainscan_steady": steady,
                "share": None if rate is None else round(rate / b.rate, 3),
                "share_steady": None if steady is None else round(steady / b.rate, 3),
                "goal": 0.8,
            }
        )
    peak = max(args.concurrencies)
    mine = [r for r in runs if r["tool"] == "chainscan" and r["concurrency"] == peak]
    rate = _median([r["targets_per_second"] for r in mine])
    steady = _median([r["steady_targets_per_second"] for r in mine])
    versus = {}
    for r in runs:
        if r["tool"] == "chainscan" or r.get("status") == "unavailable":
            continue
        versus[r["tool"]] = {
            "targets_per_second": r["targets_per_second"],
            "chainscan_over": _ratio(rate, r["targets_per_second"]),
            "chainscan_over_steady": _ratio(steady, r["steady_targets_per_second"]),
            "goal": 20.0 if r["tool"] == "sslyze-api" else None,
        }
    return {
        "mean_seconds_per_target": round(mean_seconds, 4),
        "cpu_seconds_per_target_plain": None if cpu is None else round(cpu, 6),
        "bounds": bounds,
        "versus": versus,
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def render(
    runs: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    args: argparse.Namespace,
    mix: Sequence[Any],
    plain: dict[str, Any],
) -> str:
    head = (
        f"{'tool':<14} {'conc.':>6} {'ok/targets':>12} {'wall s':>7} {'targets/s':>10} "
        f"{'steady/s':>9} {'CPU ms/t':>9} {'nginx':>6} {'delayer':>8} {'other':>6}"
    )
    lines = [
        f"internet-like mix: {args.targets} lines, RTT {args.rtt_min:g}-{args.rtt_max:g} ms "
        "(log-spread per endpoint), 30% dead (10% blackholed, 10% refused, 10% tarpitted); "
        f"seed method and sslyze-api over the first {args.slow_targets or args.targets}",
        head,
        "-" * len(head),
    ]
    for r in runs:
        if r.get("status") == "unavailable":
            lines.append(f"{r['tool']:<14} unavailable: {r['detail']}")
            continue
        rate, st = r["targets_per_second"], r["steady_targets_per_second"]
        conc = "-" if r["concurrency"] is None else str(r["concurrency"])
        lines.append(
            f"{r['tool']:<14} {conc:>6} {str(r['ok']) + '/' + str(r['targets']):>12} "
            f"{r['seconds']:>7.1f} {'-' if rate is None else f'{rate:.1f}':>10} "
            f"{'-' if st is None else f'{st:.1f}':>9} {r['cpu_ms_per_target']:>9.2f} "
            f"{r['nginx_cpu']:>6.0%} {r['delayer_cpu']:>8.0%} {r['other_cpu']:>6.0%}"
        )
    lines += [
        "",
        "design: "
        + ", ".join(f"{c.name} {c.share:.0%} x {c.seconds * 1000:.0f} ms" for c in mix)
        + f" -> mean {summary['mean_seconds_per_target'] * 1000:.0f} ms per target",
        f"plain fleet (loopback): chainscan {plain['targets_per_second']}/s, "
        f"{plain['cpu_ms_per_target']} ms CPU/target -> CPU-bound rate "
        f"{1000 / plain['cpu_ms_per_target']:.0f}/s"
        if plain.get("cpu_ms_per_target")
        else "",
        "",
        f"{'concurrency':>11} {'C/T':>8} {'CPU':>7} {'bound':>7} {'chainscan':>10} {'share':>6} "
        f"{'steady':>7} {'share':>6}  goal >= 0.8",
    ]
    for b in summary["bounds"]:
        met = "met" if (b["share"] or 0) >= b["goal"] else "NOT met"
        lines.append(
            f"{b['concurrency']:>11} {b['latency_rate']:>8.0f} {b['cpu_rate'] or 0:>7.0f} "
            f"{b['bound']:>7.0f} {b['chainscan_targets_per_second'] or 0:>10.1f} "
            f"{b['share'] or 0:>6.2f} {b['chainscan_steady'] or 0:>7.1f} "
            f"{b['share_steady'] or 0:>6.2f}  {met} (on the whole-run rate; "
            f"{b['limited_by']}-bound)"
        )
    lines.append("")
    for tool, v in summary["versus"].items():
        goal = ""
        if v["goal"] is not None:
            ok = (v["chainscan_over"] or 0) >= v["goal"]
            goal = f"  goal >= {v['goal']:g}: {'met' if ok else 'NOT met'}"
        lines.append(
            f"chainscan (c={max(args.concurrencies)}) / {tool}: {v['chainscan_over']}x targets/s, "
            f"{v['chainscan_over_steady']}x steady{goal}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
