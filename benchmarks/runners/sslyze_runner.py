"""sslyze (https://github.com/nabla-c0d3/sslyze), certificate-info scan only, two ways.

sslyze pins its own ``cryptography`` and ``nassl`` (a bundled OpenSSL), so it lives in its own
virtualenv, ``benchmarks/.venv-sslyze`` (git-ignored), made on first use with
``python3 -m venv`` + ``pip install sslyze``. If that fails, both runners report themselves
unavailable with pip's last words, and the rest of the benchmark goes on.

* ``sslyze`` is the CLI as a user runs it::

      .venv-sslyze/bin/python -m sslyze --certinfo --quiet --json_out=OUT.json \\
          --targets_in TARGETS

  with ``name:port{ip}`` lines (sslyze's own syntax, the same as chainscan's). Its defaults:
  10 servers at a time, up to 5 connections each.
* ``sslyze-api`` is its Python API (``sslyze_api.py``): ``Scanner(concurrent_server_scans_limit=
  100, per_server_concurrent_connections_limit=5)`` and ``ScanCommand.CERTIFICATE_INFO``; on this
  fleet 100 servers at a time was the fastest setting tried (10: 2.5x slower; 50 and 200: a
  little slower).

A target counts as OK when its certificate-info scan completed and the leaf of its first
deployment names the target. sslyze does much more per target than the other tools: a
connectivity test (at least one handshake, to find the highest TLS version), then, for a TLS 1.3
server, four handshakes (TLS 1.3 with SNI; TLS 1.2 with RSA-only and non-RSA cipher suites, one
of which fails on a single-key server; one without SNI), and it validates the chain against five
trust stores. So about five connections per target, against one for the other tools.

sslyze is slow, so it gets a subset: the first ``--sslyze-targets`` targets (default 500),
spread over every address and port like the whole fleet; rates are per target.
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .._requirements import SSLYZE
from ..fleet import TargetFiles
from ._base import RunResult, RunStatus, finished, last_json_object, measure, tail, tool_version

VENV = SSLYZE.path
PYTHON = SSLYZE.python
API_SCRIPT = Path(__file__).resolve().with_name("sslyze_api.py")
DEFAULT_TARGETS = 500
DEFAULT_SERVER_SCANS = 100
DEFAULT_PER_SERVER = 5

STEADY_NOTE = (
    "sslyze hands out results in bursts, not as each target's work ends: on the plain fleet "
    "(no dead targets) 80% of sslyze-api's results came out within 0.8 s of a 6 s run, so a "
    "rate between percentiles of those times is not a steady rate of work"
)
"""Why neither sslyze runner has a steady-state rate (its script still records the times)."""

_install_lock = threading.Lock()
_install: dict[str, str | None] = {}
"""Memo of :func:`ensure_sslyze`: ``reason`` (None when sslyze can run)."""


def ensure_sslyze() -> str | None:
    """Make the virtualenv and install sslyze into it if needed (once per harness, with
    :data:`benchmarks._requirements.SSLYZE`, as ``python3 -m benchmarks.setup`` does); None
    when ``import sslyze`` works there, else why not."""
    with _install_lock:
        if "reason" not in _install:
            reason = SSLYZE.missing() and SSLYZE.install()
            _install["reason"] = reason or None
        return _install["reason"]


def sslyze_version() -> str:
    return tool_version(
        [str(PYTHON), "-c", "import importlib.metadata as m; print(m.version('sslyze'))"]
    )


def count_cli_ok(path: Path) -> tuple[int, str]:
    """(OK targets, what failed) from the CLI's ``--json_out`` file (see the module header)."""
    data = json.loads(path.read_text())
    ok, failed = 0, 0
    for server in data.get("server_scan_results") or []:
        info = (server.get("scan_result") or {}).get("certificate_info") or {}
        try:
            deployment = info["result"]["certificate_deployments"][0]
            subject = deployment["received_certificate_chain"][0]["subject"]["rfc4514_string"]
        except (KeyError, IndexError, TypeError):
            failed += 1
            continue
        name = server["server_location"]["hostname"]
        if info.get("status") == "COMPLETED" and f"CN={name}" in subject.split(","):
            ok += 1
        else:
            failed += 1
    return ok, f"{failed} scans failed or got another leaf" if failed else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SslyzeCliRunner:
    name: ClassVar[str] = "sslyze"
    max_targets: int = DEFAULT_TARGETS
    """Run on the first N targets only (the driver gives it that subset)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("sslyze, sslyze-api")
        g.add_argument(
            "--sslyze-targets",
            type=int,
            default=DEFAULT_TARGETS,
            metavar="N",
            help="targets given to sslyze (the first N; 0: all; default %(default)s)",
        )
        g.add_argument(
            "--sslyze-server-scans",
            type=int,
            default=DEFAULT_SERVER_SCANS,
            metavar="N",
            help="sslyze-api's concurrent_server_scans_limit (default %(default)s)",
        )
        g.add_argument(
            "--sslyze-per-server",
            type=int,
            default=DEFAULT_PER_SERVER,
            metavar="N",
            help="sslyze-api's per_server_concurrent_connections_limit (default %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SslyzeCliRunner:
        return cls(max_targets=args.sslyze_targets)

    def unavailable(self) -> str | None:
        return ensure_sslyze()

    def describe(self) -> dict[str, Any]:
        return {
            "max_targets": self.max_targets,
            "venv": str(VENV),
            "version": sslyze_version() if self.unavailable() is None else None,
            "command": self.argv(Path("TARGETS"), Path("OUT.json")),
            "connections_per_target": "about 5 (connectivity test + 4 certinfo handshakes)",
        }

    def argv(self, targets: Path, out: Path) -> list[str]:
        return [
            str(PYTHON),
            "-m",
            "sslyze",
            "--certinfo",
            "--quiet",
            f"--json_out={out}",
            "--targets_in",
            str(targets),
        ]

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        out = workdir / "sslyze.json"
        argv = self.argv(files.chainscan, out)
        stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        m = measure(argv, stdout=stdout, stderr=stderr, timeout=timeout)
        try:
            ok, detail = count_cli_ok(out)
        except (OSError, ValueError) as exc:
            return finished(
                self.name,
                m,
                targets=files.count,
                ok=0,
                argv=argv,
                timeout=timeout,
                status=RunStatus.ERROR,
                detail=f"no JSON result ({exc}; exit {m.returncode}): {tail(stderr)}",
            )
        return finished(
            self.name, m, targets=files.count, ok=ok, argv=argv, timeout=timeout, detail=detail
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SslyzeApiRunner:
    name: ClassVar[str] = "sslyze-api"
    max_targets: int = DEFAULT_TARGETS
    server_scans: int = DEFAULT_SERVER_SCANS
    per_server: int = DEFAULT_PER_SERVER
    network_timeout: float | None = None
    """sslyze's ``network_timeout`` per connection (None: its default, 5 s); set by the latency
    scenarios, which have dead targets."""
    retries: int | None = None
    """sslyze's ``network_max_retries`` (None: its default, 3)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Its options are added by :class:`SslyzeCliRunner`."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SslyzeApiRunner:
        return cls(
            max_targets=args.sslyze_targets,
            server_scans=args.sslyze_server_scans,
            per_server=args.sslyze_per_server,
        )

    def unavailable(self) -> str | None:
        return ensure_sslyze()

    def describe(self) -> dict[str, Any]:
        return {
            "max_targets": self.max_targets,
            "concurrent_server_scans_limit": self.server_scans,
            "per_server_concurrent_connections_limit": self.per_server,
            "venv": str(VENV),
            "version": sslyze_version() if self.unavailable() is None else None,
            "command": self.argv(Path("TARGETS")),
            "connections_per_target": "about 5 (connectivity test + 4 certinfo handshakes)",
        }

    def argv(self, targets: Path) -> list[str]:
        return [
            str(PYTHON),
            str(API_SCRIPT),
            str(targets),
            "--server-scans",
            str(self.server_scans),
            "--per-server",
            str(self.per_server),
            *(
                []
                if self.network_timeout is None
                else ["--network-timeout", f"{self.network_timeout:g}"]
            ),
            *([] if self.retries is None else ["--retries", str(self.retries)]),
        ]

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        argv = self.argv(files.openssl)
        stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        m = measure(argv, stdout=stdout, stderr=stderr, timeout=timeout)
        report = last_json_object(stdout)
        if report is None:
            return finished(
                self.name,
                m,
                targets=files.count,
                ok=0,
                argv=argv,
                timeout=timeout,
                status=RunStatus.ERROR,
                detail=f"no report (exit {m.returncode}): {tail(stderr)}",
            )
        errors = report.get("errors") or {}
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(errors.items()))
        return finished(
            self.name,
            m,
            targets=files.count,
            ok=int(report.get("ok", 0)),
            argv=argv,
            timeout=timeout,
            detail=detail,
            # No steady rate from these times: see STEADY_NOTE.
        )
