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
    "</dev/null >/dev/null 2>&1 && echo ok"
)
"""Run by ``sh -c`` with ``$0 $1 $2`` = name, address, port."""

DEFAULT_PARALLEL = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class OpensslXargsRunner:
    name: ClassVar[str] = "openssl-xargs"
    parallel: int = DEFAULT_PARALLEL
    """``xargs -P``: processes at once."""

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OpensslXargsRunner:
        return cls(parallel=args.openssl_parallel)

    def unavailable(self) -> str | None:
        missing = [tool for tool in ("openssl", "xargs", "sh") if shutil.which(tool) is None]
        return f"not on PATH: {', '.join(missing)}" if missing else None

    def describe(self) -> dict[str, Any]:
        return {
            "parallel": self.parallel,
            "version": tool_version(["openssl", "version"]),
            "command": self.argv(Path("TARGETS")),
        }

    def argv(self, targets: Path) -> list[str]:
        return xargs_argv(self.parallel, targets, SCRIPT)

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        return run_xargs(self.name, self.argv(files.openssl), files, workdir, timeout)
