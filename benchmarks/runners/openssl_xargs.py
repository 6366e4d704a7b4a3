"""The seed's manual method: one ``openssl s_client -showcerts`` per target, ``xargs -P`` wide.

This is what people do before they have a tool::

    xargs -P 16 -n 3 sh -c 'openssl s_client -servername "$0" -connect "$1:$2" -showcerts \\
        </dev/null >/dev/null 2>&1 && echo ok' < targets-openssl.txt

Each target costs a ``sh`` and an ``openssl`` process (start-up, config and provider loading,
then one full handshake). A target counts as OK when ``s_client`` exits 0, i.e. it completed the
handshake and so received the chain; its output (the PEM chain) is discarded, as the benchmark
measures fetching, not saving.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..fleet import TargetFiles
from ._base import RunResult, tool_version
from ._xargs import run_xargs, xargs_argv

SCRIPT = (
    'openssl s_client -servername "$0" -connect "$1:$2" -showcerts '
    "</dev/null >/dev/null 2>&1 && echo ok || echo failed"
)
"""Run by ``sh -c`` with ``$0 $1 $2`` = name, address, port. The line it prints when done (a
shell builtin, no process) gives the target's completion time (see ``_xargs.run_xargs``)."""

DEFAULT_PARALLEL = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class OpensslXargsRunner:
    name: ClassVar[str] = "openssl-xargs"
    parallel: int = DEFAULT_PARALLEL
    """``xargs -P``: processes at once."""
    max_targets: int = 0
    """Run on the first N targets only (0: all); ``--openssl-targets``, for large fleets."""
    time_limit: float | None = None
    """Seconds per target (``timeout S openssl ...``, coreutils); None: no limit (the plain
    fleet never stalls; the latency scenarios, with dead targets, set it)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--openssl-parallel",
            type=int,
            default=DEFAULT_PARALLEL,
            metavar="P",
            help="xargs -P for openssl s_client (default %(default)s)",
        )
        g.add_argument(
            "--openssl-targets",
            type=int,
            default=0,
            metavar="N",
            help="run openssl-xargs on the first N targets only (default: all; at ~70 targets/s "
            "a 20,000-target fleet takes ~5 min per run)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OpensslXargsRunner:
        return cls(parallel=args.openssl_parallel, max_targets=args.openssl_targets)

    def unavailable(self) -> str | None:
        tools = ("openssl", "xargs", "sh", *(("timeout",) if self.time_limit else ()))
        missing = [tool for tool in tools if shutil.which(tool) is None]
        return f"not on PATH: {', '.join(missing)}" if missing else None

    def describe(self) -> dict[str, Any]:
        return {
            "parallel": self.parallel,
            "max_targets": self.max_targets,
            "time_limit": self.time_limit,
            "version": tool_version(["openssl", "version"]),
            "command": self.argv(Path("TARGETS")),
        }

    def argv(self, targets: Path) -> list[str]:
        if self.time_limit is None:
            return xargs_argv(self.parallel, targets, SCRIPT)
        return xargs_argv(self.parallel, targets, f"timeout {self.time_limit:g} " + SCRIPT)

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        return run_xargs(self.name, self.argv(files.openssl), files, workdir, timeout)
