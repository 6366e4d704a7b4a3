"""``python -m benchmarks.ingest_bench``: targets per second one ``--dask`` client core absorbs.

With ``--dask`` the workers scan, analyse and plan; the client routes the input and writes what
comes back (``chainscan/run/_dask.py``). This measures the client's two per-target jobs without
a network or a cluster, in CPU time of this process (every thread, user + system), so a busy
machine changes the figures less than it changes wall-clock rates:

* **ingest**: ready batches as a worker sends them (pickled
  :class:`~chainscan.output._ready.ReadyBatch`, 500 targets each) are unpickled and go through
  the client's own writing task (``_dask._write``: ``OutputDir.write_ready`` in a thread, the
  progress counts), then ``manifest.json`` is written (``OutputDir.close``). The batches are
  realistic: one target's line and chain planned for real (leaf, intermediate, root, trusted,
  a ~3 KB manifest line), copied to ``--targets`` distinct host names, each with its own leaf
  bytes and its own folder; ``--failed`` of them without a chain.
* **route**: the input lines (one host name each) read, parsed, deduplicated
  (``scan._intake``) and routed into shard buffers (``_dask._ShardBuffers``), each full buffer
  pickled as ``client.submit`` would.

Prints, per repeat and as medians, targets per CPU-second for each job and for both together
(what one client core sustains), the user/system split of ingest (system time is the file
system's: creating a folder and a file per certificate), and writes
``benchmarks/results/latest-ingest.json``. ``--profile`` prints the ingest's cProfile instead.
The output goes to ``--dir`` (default: tmpfs when there is one, as the other benchmarks; pass
a disk's folder to see its cost). No network, no child process; every run is bounded by
``--targets``.

    python -m benchmarks.ingest_bench                 # 20,000 targets, 5 repeats
    python -m benchmarks.ingest_bench --quick         # 5,000 targets, 3 repeats
    python -m benchmarks.ingest_bench --dir /var/tmp  # on a disk

Also measured, for comparison: the ``--workers`` main process's share (its workers write the
files on this machine; it appends their lines, ``OutputDir.append_lines``).

The reference, measured in the same run (``--reference`` targets): the same targets as scan
results, analysed and written by the client (``OutputDir.write``), as ``--dask`` did before
workers planned their batches and as a local run's writer still does.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import pickle
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from chainscan._models import ErrorKind, ScanOptions, ScanResult, Status, Target, Timings
from chainscan.analysis._analyze import der_to_pem
from chainscan.analysis._inventory import Inventory
from chainscan.output._output import OutputDir
from chainscan.output._ready import ReadyBatch, ReadyMaker, ReadySpec
from chainscan.run import _dask
from chainscan.run._display import Display
from chainscan.run._partition import Placement, placed
from chainscan.scan._inputs import iter_inputs
from chainscan.scan._intake import take_input
from chainscan.scan._targets import Deduplicator, open_lines

from ._requirements import ENTRY_POINTS, require_or_exit
from .scenarios._common import machine_info, scratch_dir, write_results

DER = Encoding.DER
TEMPLATE = "h0000000.bench.test"
"""The planned target's host name; copies replace its digits."""


# --------------------------------------------------------------------------------------------
# Synthetic ready batches


def _pki() -> tuple[bytes, bytes, bytes]:
    """A leaf, its intermediate and root (DER), like a public chain."""
    now = dt.datetime.now(dt.UTC)

    def cert(
        name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=90 if not ca else 3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(TEMPLATE)]), critical=False
            )
        signed: x509.Certificate = builder.sign(signer, hashes.SHA256())
        return signed

    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = cert("Bench Root X1", root_key, x509.Name([]), root_key, True)
    root = cert("Bench Root X1", root_key, root.subject, root_key, True)
    inter = cert("Bench Intermediate R3", inter_key, root.subject, root_key, True)
    leaf = cert(TEMPLATE, leaf_key, inter.subject, inter_key, False)
    return leaf.public_bytes(DER), inter.public_bytes(DER), root.public_bytes(DER)


def _template(scratch: Path) -> tuple[ScanResult, ScanResult, ReadySpec]:
    """One ``ok`` target and one failed target, and the spec that plans them."""
    leaf, inter, root = _pki()
    trust = scratch / "bench-root.pem"
    trust.write_bytes(der_to_pem(root))
    spec = ReadySpec.from_options(ScanOptions(trust_store=str(trust)))
    target = Target(host=TEMPLATE, port=443, sni=TEMPLATE, raw=TEMPLATE, line=1, source="in")
    timings = Timings(resolve=0.012, connect=0.034, handshake=0.056)
    good = ScanResult(
        target=target,
        status=Status.OK,
        chain=(leaf, inter, root),
        attempts=1,
        elapsed=0.102,
        address="192.0.2.7",
        tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        timings=timings,
    )
    bad = ScanResult(
        target=target,
        status=Status.FAILED,
        error_kind=ErrorKind.TIMEOUT_CONNECT,
        error=f"{TEMPLATE}:443: no TCP connection within 5 s",
        attempts=3,
        elapsed=15.2,
    )
    return good, bad, spec


def _planned(result: ScanResult, spec: ReadySpec) -> ReadyBatch:
    maker = ReadyMaker(spec)
    maker.add([result])
    return maker.batch


def _copies(targets: int, failed: float) -> list[tuple[int, bool]]:
    """(number, ok) of each synthetic target: every ``1/failed``-th one failed."""
    every = round(1 / failed) if failed > 0 else 0
    return [(n, not (every and n % every == every - 1)) for n in range(targets)]


def legacy_batches(
    targets: int, failed: float, scratch: Path, batch_size: int = _dask.BATCH
) -> list[bytes]:
    """The same targets as scan results (what workers sent before ready batches, and what a
    local run's writer gets), pickled in batches: the reference the client had to analyse."""
    good, bad, _ = _template(scratch)
    results = []
    for number, is_ok in _copies(targets, failed):
        host = TEMPLATE.replace("h0000000", f"h{number:07d}")
        target = dataclasses.replace(good.target, host=host, sni=host, raw=host, line=number + 1)
        if is_ok:
            leaf = good.chain[0][:-8] + number.to_bytes(8, "big")  # its own leaf
            results.append(dataclasses.replace(good, target=target, chain=(leaf, *good.chain[1:])))
        else:
            results.append(dataclasses.replace(bad, target=target))
    return [
        pickle.dumps(results[start : start + batch_size], protocol=pickle.HIGHEST_PROTOCOL)
        for start in range(0, targets, batch_size)
    ]


def synthetic_batches(
    targets: int, failed: float, scratch: Path, batch_size: int = _dask.BATCH
) -> list[bytes]:
    """``targets`` distinct hosts as pickled ReadyBatches, ``batch_size`` targets each."""
    good_result, bad_result, spec = _template(scratch)
    good, bad = _planned(good_result, spec), _planned(bad_result, spec)
    (_, dirname, files, _), leaf = good.folders[0], good.blobs[0]
    shared = good.blobs[1:]
    pickled = []
    copies = _copies(targets, failed)
    for start in range(0, targets, batch_size):
        batch = ReadyBatch(blobs=list(shared))
        for number, is_ok in copies[start : start + batch_size]:
            tag = f"h{number:07d}".encode()
            if not is_ok:
                batch.lines.append(bad.lines[0].replace(b"h0000000", tag))
                batch.counted.append(bad.counted[0])
                continue
            position = len(batch.lines)
            batch.lines.append(good.lines[0].replace(b"h0000000", tag))
            batch.counted.append(good.counted[0])
            batch.blobs.append(leaf[:-8] + number.to_bytes(8, "big"))  # its own leaf
            blob = {0: len(batch.blobs) - 1, 1: 0, 2: 1}
            batch.folders.append(
                (
                    position,
                    dirname.replace("h0000000", tag.decode()),
                    [(name, blob[index]) for name, index in files],
                    [],
                )
            )
        pickled.append(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    return pickled


# --------------------------------------------------------------------------------------------
# The client's two jobs


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def ingest(pickled: list[bytes], root: Path) -> None:
    """What the client does with batches back from the cluster (see the module docstring)."""
    output = OutputDir(root)
    output.prepare()
    display = Display(quiet=True)

    async def main() -> None:
        send, receive = trio.open_memory_channel[_dask.Delivered](2)

        async def produce() -> None:
            async with send:
                for data in pickled:
                    await send.send(pickle.loads(data))  # Dask's client deserialises

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            await _dask._write(receive, output, display)

    trio.run(main)
    output.close(run={}, complete=True)


def legacy(pickled: list[bytes], root: Path, trust: str) -> None:
    """The reference: what the client did before (unpickle results, analyse and write them
    with ``OutputDir.write``, as the thread writer does)."""
    options = ScanOptions(trust_store=trust)
    output = OutputDir(root, inventory=Inventory.from_options(options))
    output.prepare()
    for data in pickled:
        output.write(pickle.loads(data))
    output.close(run={}, complete=True)


def append(pickled: list[bytes], root: Path) -> None:
    """The ``--workers`` main process's share: workers wrote the files, it appends their lines
    (``OutputDir.append_lines``, which parses each line for its status)."""
    output = OutputDir(root)
    output.prepare()
    for data in pickled:
        lines = pickle.loads(data).lines
        for start in range(0, len(lines), 64):  # the pipe's whole lines, appended per chunk
            output.append_lines(lines[start : start + 64])
    output.close(run={}, complete=True)


class _NoCluster:
    """Stands for ``_dask._Driver``: pickles each batch as ``client.submit`` would."""

    slots = 8

    def __init__(self) -> None:
        self.sent = 0

    def submit(self, batch: list[Target], shard: int | None = None) -> None:
        self.sent += len(pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)))

    def drain(self) -> None:
        pass


def route(hosts: Path) -> int:
    """The client's input side: read, parse, dedup and route ``hosts`` into shard batches."""
    driver = _NoCluster()

    async def main() -> None:
        send, receive = trio.open_memory_channel[_dask.Delivered](1_000_000)
        dedup = Deduplicator()
        with open_lines(str(hosts)) as lines:
            items = iter_inputs(lines, source=str(hosts))
            # --per-ip 0 --per-net 0, as the other benchmarks: targets placed by a hash of the
            # name, no lookup on the client (with a cap, each new name is resolved here first).
            placement = Placement(ScanOptions(per_ip=0, per_net=0))
            router = _dask._ShardBuffers(driver, send, placement)  # type: ignore[arg-type]
            await take_input(items, placed(router, placement), skip=dedup.seen)
            await router.finish()
        receive.close()

    trio.run(main)
    return driver.sent


def measure(job: Callable[[], object], targets: int) -> dict[str, float]:
    user, system = _cpu()
    started = time.monotonic()
    job()
    wall = time.monotonic() - started
    user2, system2 = _cpu()
    cpu = (user2 - user) + (system2 - system)
    return {
        "targets_per_cpu_second": targets / cpu,
        "user_us": (user2 - user) / targets * 1e6,
        "system_us": (system2 - system) / targets * 1e6,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--targets", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5,000 targets, 3 repeats")
    parser.add_argument(
        "--reference", type=int, default=2_000, help="targets of the reference (before) run"
    )
    parser.add_argument("--failed", type=float, default=0.1, help="share without a chain")
    parser.add_argument("--dir", type=Path, default=None, help="where the output goes")
    parser.add_argument("--profile", action="store_true", help="cProfile one ingest, print top")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.ingest_bench", ENTRY_POINTS["benchmarks.ingest_bench"].needs)
    if args.quick:
        args.targets, args.repeats, args.reference = 5_000, 3, 1_000
    base = args.dir or scratch_dir()
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=base))
    try:
        pickled = synthetic_batches(args.targets, args.failed, scratch)
        reference = legacy_batches(args.reference, args.failed, scratch)
        trust = str(scratch / "bench-root.pem")
        hosts = scratch / "hosts.txt"
        hosts.write_text("".join(f"h{n:07d}.bench.test\n" for n in range(args.targets)))
        if args.profile:
            profile = cProfile.Profile()
            profiled = OutputDir(scratch / "profiled")
            profiled.prepare()
            profile.runcall(  # in this thread, so that cProfile sees the writing
                lambda: [profiled.write_ready(pickle.loads(data)) for data in pickled]
            )
            profiled.close(run={}, complete=True)
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
            return 0
        runs = []
        for repeat in range(args.repeats):
            out = scratch / f"out-{repeat}"
            took_in = measure(lambda out=out: ingest(pickled, out), args.targets)  # type: ignore[misc]
            took_route = measure(lambda: route(hosts), args.targets)
            took_legacy = measure(
                lambda out=out: legacy(reference, out / "legacy", trust),  # type: ignore[misc]
                args.reference,
            )
            both = 1 / (
                1 / took_in["targets_per_cpu_second"] + 1 / took_route["targets_per_cpu_second"]
            )
            took_append = measure(
                lambda out=out: append(pickled, out / "append"),  # type: ignore[misc]
                args.targets,
            )
            ratio = took_in["targets_per_cpu_second"] / took_legacy["targets_per_cpu_second"]
            runs.append(
                {
                    "ingest": took_in,
                    "route": took_route,
                    "client": both,
                    "legacy": took_legacy,
                    "ingest_vs_legacy": ratio,
                    "workers_append": took_append,
                }
            )
            print(
                f"repeat {repeat + 1}: ingest {took_in['targets_per_cpu_second']:,.0f}/s"
                f" (user {took_in['user_us']:.1f} us + system {took_in['system_us']:.1f} us"
                f" per target), route {took_route['targets_per_cpu_second']:,.0f}/s,"
                f" client {both:,.0f} targets per CPU-second; before (client analyses):"
                f" {took_legacy['targets_per_cpu_second']:,.0f}/s, ingest {ratio:.1f}x that;"
                f" --workers main process {took_append['targets_per_cpu_second']:,.0f}/s",
                flush=True,
            )
            shutil.rmtree(out)
        medians = {
            "ingest_per_cpu_second": statistics.median(
                r["ingest"]["targets_per_cpu_second"] for r in runs
            ),
            "ingest_user_us": statistics.median(r["ingest"]["user_us"] for r in runs),
            "ingest_system_us": statistics.median(r["ingest"]["system_us"] for r in runs),
            "route_per_cpu_second": statistics.median(
                r["route"]["targets_per_cpu_second"] for r in runs
            ),
            "client_per_cpu_second": statistics.median(r["client"] for r in runs),
            "legacy_per_cpu_second": statistics.median(
                r["legacy"]["targets_per_cpu_second"] for r in runs
            ),
            "ingest_vs_legacy": statistics.median(r["ingest_vs_legacy"] for r in runs),
            "workers_append_per_cpu_second": statistics.median(
                r["workers_append"]["targets_per_cpu_second"] for r in runs
            ),
        }
        print(
            f"median of {args.repeats}, {args.targets:,} targets in {base}:"
            f" ingest {medians['ingest_per_cpu_second']:,.0f}/s"
            f" (user {medians['ingest_user_us']:.1f} us,"
            f" system {medians['ingest_system_us']:.1f} us),"
            f" route {medians['route_per_cpu_second']:,.0f}/s,"
            f" one client core: {medians['client_per_cpu_second']:,.0f} targets/s (goal 10,000);"
            f" before: {medians['legacy_per_cpu_second']:,.0f}/s"
            f" (ingest {medians['ingest_vs_legacy']:.1f}x); --workers main process:"
            f" {medians['workers_append_per_cpu_second']:,.0f}/s"
        )
        if not args.no_save:
            path = write_results(
                "ingest",
                {
                    "settings": {
                        "targets": args.targets,
                        "repeats": args.repeats,
                        "failed": args.failed,
                        "dir": str(base),
                        "batch": _dask.BATCH,
                        "reference": args.reference,
                    },
                    "runs": runs,
                    "medians": medians,
                    "machine": machine_info(),
                },
            )
            print(f"wrote {path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
