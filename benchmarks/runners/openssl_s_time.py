"""C OpenSSL's own handshake loop, ``openssl s_time -new``: the raw rate of full handshakes.

One ``openssl s_time`` per core, each against another fleet listener, for ``--s-time-seconds``::

    openssl s_time -new -connect 127.0.1.1:24430 -time 5 &
    openssl s_time -new -connect 127.0.1.2:24430 -time 5 & wait

``s_time`` connects, does a full handshake (``-new``: no resumption), closes, and starts over,
one connection at a time per process. It sends no SNI and has no list of targets, so it always
gets the listener's default certificate (ECDSA P-256, leaf + intermediate); it is not a
chain-fetching tool but the C reference for what one handshake costs the client. It is reported
in the same columns with "targets" meaning handshakes: handshakes per wall second (both
processes together) and CPU ms per handshake, the latter to compare with chainscan's CPU ms per
target.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..fleet import TargetFiles
from ._base import RunResult, RunStatus, finished, measure, tool_version

DEFAULT_SECONDS = 5
_DONE = re.compile(r"^(\d+) connections in [\d.]+ real seconds", re.MULTILINE)


def listeners(files: TargetFiles, count: int) -> list[str]:
    """The first ``count`` distinct ``address:port`` of the targets (in file order, which
    alternates addresses)."""
    seen: list[str] = []
    for line in files.openssl.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and (where := f"{parts[1]}:{parts[2]}") not in seen:
            seen.append(where)
            if len(seen) == count:
                break
    return seen


@dataclass(frozen=True, slots=True, kw_only=True)
class OpensslSTimeRunner:
    name: ClassVar[str] = "openssl-s_time"
    processes: int = os.cpu_count() or 1
    seconds: int = DEFAULT_SECONDS

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--s-time-processes",
            type=int,
            default=os.cpu_count() or 1,
            metavar="N",
            help="openssl s_time processes at once (default: one per core, %(default)s)",
        )
        g.add_argument(
            "--s-time-seconds",
            type=int,
            default=DEFAULT_SECONDS,
            metavar="T",
            help="s_time -time (default %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OpensslSTimeRunner:
        return cls(processes=args.s_time_processes, seconds=args.s_time_seconds)

    def unavailable(self) -> str | None:
        return None if shutil.which("openssl") and shutil.which("sh") else "no openssl or sh"

    def describe(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "seconds": self.seconds,
            "version": tool_version(["openssl", "version"]),
            "command": self.argv(["ADDR1:PORT1", "ADDR2:PORT2"][: self.processes], Path("LOG")),
            "unit": "handshakes (no SNI, listener's default certificate), not targets",
        }

    def argv(self, where: list[str], log: Path) -> list[str]:
        script = "".join(
            f"openssl s_time -new -connect {shlex.quote(w)} -time {self.seconds} "
            f">{shlex.quote(f'{log}.{i}')} 2>&1 & "
            for i, w in enumerate(where)
        )
        return ["sh", "-c", script + "wait"]

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        where = listeners(files, self.processes)
        log = workdir / "s_time"
        argv = self.argv(where, log)
        stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        m = measure(argv, stdout=stdout, stderr=stderr, timeout=self.seconds + 60.0)
        counts = []
        for i in range(len(where)):
            path = Path(f"{log}.{i}")
            found = _DONE.search(path.read_text(errors="replace")) if path.exists() else None
            if found:
                counts.append(int(found.group(1)))
        handshakes = sum(counts)
        status, detail = RunStatus.OK, f"{len(where)} x s_time on {', '.join(where)}"
        if len(counts) < len(where):
            status, detail = RunStatus.ERROR, f"{len(where) - len(counts)} s_time gave no count"
        return finished(
            self.name,
            m,
            targets=handshakes,
            ok=handshakes,
            argv=argv,
            timeout=self.seconds + 60.0,
            detail=detail,
            status=status,
        )
