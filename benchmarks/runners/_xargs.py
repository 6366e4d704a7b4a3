"""Runners whose tool runs once per target under ``xargs -P``: openssl-xargs, nmap-ssl-cert.

Kept apart from :mod:`._base` so that what runs ``xargs`` and ``sh`` is only what imports this
(``tests/test_benchmark_setup.py`` reads the modules each entry point uses for the programs
it runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._base import RunResult, finished, measure, tail


def xargs_argv(parallel: int, targets: Path, script: str) -> list[str]:
    """``xargs -P`` running ``sh -c SCRIPT name address port`` once per line of ``targets``."""
    return ["xargs", "-P", str(parallel), "-n", "3", "-a", str(targets), "sh", "-c", script]


def run_xargs(
    name: str, argv: Sequence[str], files: Any, workdir: Path, timeout: float
) -> RunResult:
    """Measure an :func:`xargs_argv` command; a target is OK when its script printed ``ok``.
    Every script prints one line (``ok`` or ``failed``) when its target is done: the arrival
    times of those lines on the harness's end of the pipe are the completion times."""
    stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
    times: list[float] = []
    m = measure(argv, stdout=stdout, stderr=stderr, timeout=timeout, stdout_times=times)
    ok = sum(1 for line in stdout.read_text().splitlines() if line == "ok")
    # xargs exits 123 when some command failed: those targets are simply not OK.
    detail = "" if m.returncode in (0, 123) else f"exit {m.returncode}: {tail(stderr)}"
    return finished(
        name,
        m,
        targets=files.count,
        ok=ok,
        argv=argv,
        timeout=timeout,
        detail=detail,
        completion_times=times,
    )
