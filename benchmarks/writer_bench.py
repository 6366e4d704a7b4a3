"""``python -m benchmarks.writer_bench``: the writer's CPU per target, without a network.

The writer (the writer process of a default run, the threads of ``--writer thread`` and of each
``--workers`` process) turns each finished target into its folder and manifest line:
certificate facts, the trust verdict (``cryptography``'s verifier, and the explanatory walk when
it refuses), problems, files, JSON. That is most of what chainscan spends beyond the bare loop
(issue 16), and on a shared machine its CPU per target is hard to see in a whole run. This
measures it alone, in this process's CPU time:

* the targets are the core benchmark fleet's, built the same way (``fleet.py``'s PKI: ECDSA
  P-256 and RSA-2048, chains of 2 and 3, one leaf per name), as scan results, without nginx;
* each repeat writes them all, one after another as the writer process does
  (``OutputDir.write_files(..., inline=True)``), into a fresh folder with a fresh inventory (no
  cache carried over), and reports CPU microseconds per target; the medians are printed;
* ``--trusted`` judges them against the fleet's own two roots, so every chain is trusted (what
  most chains of a real inventory are: the verifier's path, no walk); without it, against
  ``certifi`` as the core benchmark does, where every fleet chain is refused and explained;
* ``--profile`` prints the cProfile of one repeat instead.

    python -m benchmarks.writer_bench              # 2,000 targets, 5 repeats
    python -m benchmarks.writer_bench --quick      # 500 targets, 3 repeats
    python -m benchmarks.writer_bench --trusted

To compare two checkouts, run it from each (``PYTHONPATH=CHECKOUT``) in turn, a few times.
Results go to ``benchmarks/results/latest-writer.json`` (every repeat, the medians, the commit
and the machine). No network, no child process; every run is bounded by ``--targets``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from chainscan._models import ScanOptions, ScanResult, Status, Target, Timings
from chainscan.analysis._analyze import pem_to_der_list
from chainscan.analysis._inventory import Inventory
from chainscan.output._output import OutputDir

from ._requirements import ENTRY_POINTS, require_or_exit
from .fleet import DOMAIN, _hierarchy, _Issuing
from .scenarios._common import machine_info, scratch_dir, write_results

PROFILES = (("ec", 2), ("ec", 3), ("rsa", 2), ("rsa", 3))
"""Key type and chain length, cycled over the targets as the fleet does."""


def fleet_results(targets: int) -> tuple[list[ScanResult], bytes]:
    """Scan results with the fleet's chains, and the PEM of the fleet's two roots."""
    issuing = {}
    roots = []
    for key_type in ("ec", "rsa"):
        hierarchy = _hierarchy(key_type)
        issuing[key_type] = _Issuing(hierarchy)
        roots.append(hierarchy.root.cert.public_bytes(Encoding.PEM))
    results = []
    for index in range(targets):
        key_type, length = PROFILES[index % len(PROFILES)]
        name = f"n{index:05d}.{DOMAIN}"
        chain = tuple(pem_to_der_list(issuing[key_type].chain_pem(name, length)))
        target = Target(host=name, port=443, sni=name, address=f"127.0.1.{1 + index % 10}")
        results.append(
            ScanResult(
                target=target,
                status=Status.OK,
                address=target.address,
                chain=chain,
                chain_sent=len(chain),
                tls_version="TLSv1.3",
                cipher="TLS_AES_256_GCM_SHA384",
                elapsed=0.01,
                timings=Timings(connect=0.004, handshake=0.006),
            )
        )
    return results, b"".join(roots)


def write_all(results: list[ScanResult], folder: Path, trust_store: str) -> float:
    """CPU seconds to write every result, as the writer process does."""
    output = OutputDir(
        folder, inventory=Inventory.from_options(ScanOptions(trust_store=trust_store))
    )
    output.prepare()
    started = time.process_time()
    for result in results:
        output.write_files([result], inline=True)
    took = time.process_time() - started
    output.shutdown()
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.writer_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--targets", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 targets, 3 repeats")
    parser.add_argument("--trusted", action="store_true", help="judge against the fleet's roots")
    parser.add_argument("--dir", type=Path, default=None, help="where the output goes")
    parser.add_argument("--profile", action="store_true", help="cProfile one repeat, print top")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.writer_bench", ENTRY_POINTS["benchmarks.writer_bench"].needs)
    if args.quick:
        args.targets, args.repeats = 500, 3
    base = args.dir or scratch_dir()
    scratch = Path(tempfile.mkdtemp(prefix="writer-bench-", dir=base))
    try:
        results, roots = fleet_results(args.targets)
        trust = "certifi"
        if args.trusted:
            (scratch / "fleet-roots.pem").write_bytes(roots)
            trust = str(scratch / "fleet-roots.pem")
        write_all(results[: min(50, len(results))], scratch / "warm-up", trust)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(write_all, results, scratch / "profiled", trust)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            return 0
        per_target = []
        for repeat in range(args.repeats):
            folder = scratch / f"out-{repeat}"
            per_target.append(write_all(results, folder, trust) / len(results) * 1e6)
            shutil.rmtree(folder)
            print(f"repeat {repeat + 1}: {per_target[-1]:.0f} us of CPU per target", flush=True)
        median = statistics.median(per_target)
        judged = "the fleet's roots (trusted)" if args.trusted else "certifi (refused, explained)"
        print(
            f"median of {args.repeats}, {args.targets:,} targets, against {judged}:"
            f" {median:.0f} us of CPU per target"
        )
        if not args.no_save:
            saved = write_results(
                "writer",
                {
                    "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "targets": args.targets,
                    "trusted": args.trusted,
                    "us_per_target": per_target,
                    "median_us_per_target": median,
                    "machine": machine_info(),
                },
            )
            print(f"results: {saved}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
