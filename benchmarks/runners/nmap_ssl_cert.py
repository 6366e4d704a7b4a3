"""nmap's ``ssl-cert`` NSE script, one ``nmap`` per target (for its SNI), ``xargs -P`` wide::

    xargs -P 16 -n 3 sh -c 'nmap -Pn -n -sT -p "$2" --script +ssl-cert \\
        --script-args tls.servername="$0" "$1" | grep -qF "ssl-cert: Subject: commonName=$0/" \\
        && echo ok' < targets-openssl.txt

nmap takes a list of addresses but has no per-target SNI: ``tls.servername`` is one name per
invocation (and a list of host names would need DNS), so to ask each target for its own name,
each target gets its own ``nmap``, as ``openssl s_client`` does in ``openssl-xargs``. Given only
the 40 addresses:ports, one nmap would fetch the fleet's 40 default certificates, not the
targets'. Per target: one TCP connect for the port scan (``-sT``; ``-Pn`` skips host discovery,
``-n`` DNS) and one TLS handshake by ``ssl-cert`` (``+`` runs it although the port is not a
well-known TLS port, without ``-sV``'s many probes): two connections. ``ssl-cert`` reads the
**leaf only** (and prints its subject, issuer, key and validity), not the chain. A target counts
as OK when the leaf printed names it.

nmap is slower per target than chainscan, so it gets a subset: the first ``--nmap-targets``
targets (default 200), spread over every address and port like the whole fleet.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .._system import find_program
from ..fleet import TargetFiles
from ._base import RunResult, tool_version
from ._xargs import run_xargs, xargs_argv

SCRIPT = (
    'nmap -Pn -n -sT -p "$2" --script +ssl-cert --script-args tls.servername="$0" "$1" '
    '2>&1 | grep -qF "ssl-cert: Subject: commonName=$0/" && echo ok || echo failed'
)
"""Run by ``sh -c`` with ``$0 $1 $2`` = name, address, port."""

DEFAULT_PARALLEL = 16
DEFAULT_TARGETS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class NmapSslCertRunner:
    name: ClassVar[str] = "nmap-ssl-cert"
    parallel: int = DEFAULT_PARALLEL
    max_targets: int = DEFAULT_TARGETS

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--nmap-parallel",
            type=int,
            default=DEFAULT_PARALLEL,
            metavar="P",
            help="xargs -P for nmap (default %(default)s)",
        )
        g.add_argument(
            "--nmap-targets",
            type=int,
            default=DEFAULT_TARGETS,
            metavar="N",
            help="targets given to nmap (the first N; 0: all; default %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NmapSslCertRunner:
        return cls(parallel=args.nmap_parallel, max_targets=args.nmap_targets)

    def unavailable(self) -> str | None:
        try:
            find_program("nmap", ("nmap",), ("/usr/bin/nmap",))
        except RuntimeError as exc:
            return str(exc)
        missing = [tool for tool in ("xargs", "sh", "grep") if shutil.which(tool) is None]
        return f"not on PATH: {', '.join(missing)}" if missing else None

    def describe(self) -> dict[str, Any]:
        return {
            "parallel": self.parallel,
            "max_targets": self.max_targets,
            "version": tool_version(["nmap", "--version"]) if shutil.which("nmap") else None,
            "command": self.argv(Path("TARGETS")),
            "connections_per_target": "2 (TCP connect scan + 1 TLS handshake); leaf only",
        }

    def argv(self, targets: Path) -> list[str]:
        return xargs_argv(self.parallel, targets, SCRIPT)

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        return run_xargs(self.name, self.argv(files.openssl), files, workdir, timeout)
