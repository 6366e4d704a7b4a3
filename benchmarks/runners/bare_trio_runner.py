"""Runs ``bare_trio.py`` (the in-language reference, see its header) as a subprocess script.

Command: ``python benchmarks/runners/bare_trio.py TARGETS-openssl --concurrency 500``. A target
counts as OK when the script got a non-empty chain for it (it reports the count as JSON); the
script checks nothing else, so it does strictly less than chainscan, on purpose. Completion
times: the script's own, one per target (its JSON report's ``completion_times``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..fleet import TargetFiles
from ._base import RunResult, RunStatus, finished, last_json_object, measure, tail, tool_version

SCRIPT = Path(__file__).resolve().with_name("bare_trio.py")
DEFAULT_CONCURRENCY = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class BareTrioRunner:
    name: ClassVar[str] = "bare-trio"
    concurrency: int = DEFAULT_CONCURRENCY
    time_limit: float | None = None
    """The script's ``--timeout`` (seconds per target; None: its default, 10)."""
    connect_limit: float | None = None
    """``--connect-timeout`` (None: none but ``time_limit``); the scenarios with dead targets
    give it chainscan's."""
    handshake_limit: float | None = None
    """``--handshake-timeout``, from the connect (None: none but ``time_limit``)."""
    python: str = sys.executable

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--bare-trio-concurrency",
            type=int,
            default=DEFAULT_CONCURRENCY,
            metavar="N",
            help="CapacityLimiter size of the bare trio loop (default %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BareTrioRunner:
        return cls(concurrency=args.bare_trio_concurrency)

    def unavailable(self) -> str | None:
        version = tool_version([self.python, "-c", "import trio; print(trio.__version__)"])
        return "`import trio` failed" if version == "unknown" else None

    def describe(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "python": self.python,
            "trio": tool_version([self.python, "-c", "import trio; print(trio.__version__)"]),
            "command": self.argv(Path("TARGETS")),
        }

    def argv(self, targets: Path) -> list[str]:
        return [
            self.python,
            str(SCRIPT),
            str(targets),
            "--concurrency",
            str(self.concurrency),
            *([] if self.time_limit is None else ["--timeout", f"{self.time_limit:g}"]),
            *(
                []
                if self.connect_limit is None
                else ["--connect-timeout", f"{self.connect_limit:g}"]
            ),
            *(
                []
                if self.handshake_limit is None
                else ["--handshake-timeout", f"{self.handshake_limit:g}"]
            ),
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
            completion_times=report.get("completion_times"),
        )
