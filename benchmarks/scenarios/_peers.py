"""chainscan's peers in the latency scenarios: the same runners as ``benchmarks.run``, set up
for targets that may be dead, and one run of any of them as a JSON-ready row.

The tools and their settings (the peers get the same per-target time limits as chainscan,
whose are ``--connect-timeout 2 --handshake-timeout 2 --deadline 5``, and no retries):

* ``chainscan``: ``--concurrency C --rate 0 --per-ip 0 --retries 0`` and those timeouts.
* ``bare-trio`` (``runners/bare_trio.py``): the same concurrency, ``--connect-timeout 2
  --handshake-timeout 2 --timeout 5``.
* ``openssl-xargs`` (the seed method): ``xargs -P 16``, each ``openssl s_client`` under
  ``timeout 3`` (coreutils; ``s_client`` has no connect or handshake timeout of its own, and
  a blackholed SYN would hold it for the kernel's ~2 minutes of retries).
* ``sslyze-api`` (the faster sslyze, ``runners/sslyze_api.py``): 100 servers at a time, 5
  connections each (the best of 10/50/100/200 on the plain fleet), ``network_timeout=2``,
  ``network_max_retries=0``.

A run's rate is **targets** (dead ones included: a dead target is finished when the tool gives
up on it) per wall second, start-up and the tail included, and its steady rate is the same
between the 10th and 90th percentile of completion times (:mod:`benchmarks._steady`; how each
tool's are taken: ``benchmarks/README.md``). ``ok`` counts the targets whose chain came back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fleet import TargetFiles
from ..runners._base import RunResult, RunStatus
from ..runners.bare_trio_runner import BareTrioRunner
from ..runners.chainscan import ChainscanRunner
from ..runners.openssl_xargs import OpensslXargsRunner
from ..runners.sslyze_runner import SslyzeApiRunner

SUBJECT = "chainscan"
PEERS = (SUBJECT, "bare-trio", "openssl-xargs", "sslyze-api")
SLOW = ("openssl-xargs", "sslyze-api")
"""Run over the first ``--slow-targets`` targets only (rates are per target, so they compare)."""
CONNECT_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 2.0
DEADLINE = 5.0
CHAINSCAN_TIMEOUTS = (
    "--connect-timeout",
    f"{CONNECT_TIMEOUT:g}",
    "--handshake-timeout",
    f"{HANDSHAKE_TIMEOUT:g}",
    "--deadline",
    f"{DEADLINE:g}",
)
OPENSSL_TIME_LIMIT = CONNECT_TIMEOUT + 1.0


def make_runner(name: str, concurrency: int) -> Any:
    """The runner ``name`` of :data:`PEERS`, set up as the module header says."""
    if name == "chainscan":
        return ChainscanRunner(concurrency=concurrency, extra_args=CHAINSCAN_TIMEOUTS)
    if name == "bare-trio":
        return BareTrioRunner(
            concurrency=concurrency,
            time_limit=DEADLINE,
            connect_limit=CONNECT_TIMEOUT,
            handshake_limit=HANDSHAKE_TIMEOUT,
        )
    if name == "openssl-xargs":
        return OpensslXargsRunner(time_limit=OPENSSL_TIME_LIMIT)
    if name == "sslyze-api":
        return SslyzeApiRunner(max_targets=0, network_timeout=CONNECT_TIMEOUT, retries=0)
    raise ValueError(f"unknown peer {name!r}; choose from {PEERS}")


def settings_of(name: str, concurrency: int) -> dict[str, Any]:
    """What the result file records about a peer's settings."""
    runner = make_runner(name, concurrency)
    described: dict[str, Any] = runner.describe()
    return described


def unavailable(name: str) -> str | None:
    reason: str | None = make_runner(name, 1).unavailable()
    return reason


def row(result: RunResult) -> dict[str, Any]:
    """One run as a row: targets/s counts every target (see the module header)."""
    done = result.status is RunStatus.OK
    return {
        "tool": result.name,
        "status": str(result.status),
        "targets": result.targets,
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "targets_per_second": round(result.targets / result.seconds, 1)
        if done and result.seconds
        else None,
        "steady_targets_per_second": None
        if result.steady_targets_per_second is None
        else round(result.steady_targets_per_second, 1),
        "cpu_seconds": round(result.cpu_seconds, 2),
        "cpu_ms_per_target": round(1000 * result.cpu_seconds_per_target, 3),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "detail": result.detail,
        "command": list(result.command),
    }


def run_peer(
    name: str, files: TargetFiles, concurrency: int, workdir: Path, timeout: float
) -> dict[str, Any]:
    """Run peer ``name`` once over ``files`` (in ``workdir``, which must be empty)."""
    return row(make_runner(name, concurrency).run(files, workdir, timeout))
