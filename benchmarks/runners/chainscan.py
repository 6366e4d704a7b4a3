"""chainscan itself, as a user runs it: ``python -m chainscan TARGETS -o OUTDIR``.

Limits that exist to be polite to real servers are lifted (``--rate 0 --per-ip 0``: unlimited),
and retries are off (``--retries 0``) so every target costs exactly one handshake, as it does for
the other tools. A target counts as OK when its ``manifest.jsonl`` line says ``"status": "ok"``
and its leaf's CN is the SNI name (every fleet name has its own leaf). The DER files and
manifests are written for real (that is part of chainscan's work) into the run's scratch
directory, which the driver removes afterwards.

Completion times (for the steady-state rate) come from inside chainscan: the manifest's
entries carry no completion timestamp of their own (``elapsed`` is a duration; the header's
``run.started`` and ``run.finished`` bound the whole run), and the writer appends lines in
batches of hundreds, so the times lines appear in ``manifest.jsonl`` are useless for it (a
2,000-target run showed 12 distinct arrival times). So every chainscan process of a run gets
``_completion_hook/sitecustomize.py`` (see its header): it records ``time.monotonic()`` each
time a ``ScanResult`` is built, one per target, at a cost of microseconds per target. If it
recorded nothing (``ScanResult`` renamed), the manifest's arrival times are used instead and
the run's detail says so.

Until the scanner exists (``import chainscan._cli`` fails) the runner reports itself
unavailable, so the harness can be developed and run against the other tools.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..fleet import TargetFiles
from ._base import RunResult, RunStatus, finished, measure, tail, tool_version, watch_lines

REPO = Path(__file__).resolve().parents[2]
"""The checkout whose chainscan is measured (``python -m chainscan`` runs from here)."""
HOOK = Path(__file__).resolve().with_name("_completion_hook")
"""Holds the ``sitecustomize`` that records completion times (see the module header)."""
HOOK_VARIABLE = "CHAINSCAN_BENCH_COMPLETIONS"


def hooked_environment(directory: Path) -> dict[str, str]:
    """The harness's environment plus the completion hook, writing into ``directory``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOK), env.get("PYTHONPATH", "")) if p)
    env[HOOK_VARIABLE] = str(directory)
    return env


def read_completions(directory: Path) -> list[float]:
    """Every time the hook wrote into ``directory`` (all processes)."""
    times: list[float] = []
    for path in directory.glob("completions-*.txt"):
        for line in path.read_text().split():
            with contextlib.suppress(ValueError):
                times.append(float(line))
    return times


DEFAULT_CONCURRENCY = 500


def count_ok(manifest: Path) -> tuple[int, int]:
    """(ok, wrong): entries of ``manifest.jsonl`` with ``"status": "ok"`` whose leaf names the SNI
    that was sent, and those whose leaf names another host (which means a wrong SNI, since every
    fleet name has its own leaf). Lines that are not JSON objects (a torn last line) are skipped.
    """
    ok = wrong = 0
    with manifest.open("rb") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("status") != "ok":
                continue
            chain = entry.get("chain") or [{}]
            if chain[0].get("cn") == entry.get("sni"):
                ok += 1
            else:
                wrong += 1
    return ok, wrong


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainscanRunner:
    name: ClassVar[str] = "chainscan"
    concurrency: int = DEFAULT_CONCURRENCY
    workers: int = 1
    """``--workers``: scanning processes (passed only when above 1)."""
    writer: str | None = None
    """``--writer`` (None: chainscan's default, ``auto``: a writer process on two cores)."""
    extra_args: tuple[str, ...] = ()
    """Appended to the command line (``--chainscan-args``), e.g. to try other settings."""
    python: str = sys.executable
    _probe: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """Memo of the import check: reason (or None) and import time."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--chainscan-concurrency",
            type=int,
            default=DEFAULT_CONCURRENCY,
            metavar="N",
            help="chainscan --concurrency (default %(default)s)",
        )
        g.add_argument(
            "--chainscan-args",
            default="",
            metavar="ARGS",
            help="more chainscan options, one shell-quoted string",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ChainscanRunner:
        return cls(
            concurrency=args.chainscan_concurrency,
            extra_args=tuple(shlex.split(args.chainscan_args)),
        )

    def unavailable(self) -> str | None:
        if "reason" not in self._probe:
            start = time.perf_counter()
            done = subprocess.run(
                [self.python, "-c", "import chainscan._cli"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            self._probe["import_seconds"] = time.perf_counter() - start
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            self._probe["reason"] = (
                None if done.returncode == 0 else f"`import chainscan._cli` failed: {last}"
            )
        reason: str | None = self._probe["reason"]
        return reason

    def describe(self) -> dict[str, Any]:
        available = self.unavailable() is None
        return {
            "concurrency": self.concurrency,
            "workers": self.workers,
            "writer": self.writer or "auto",
            "extra_args": list(self.extra_args),
            "python": self.python,
            "version": (
                tool_version([self.python, "-m", "chainscan", "--version"], cwd=REPO)
                if available
                else None
            ),
            "git": _git_describe(),
            "import_seconds": round(self._probe.get("import_seconds", 0.0), 3),
            "command": self.argv(Path("TARGETS"), Path("OUTDIR")),
        }

    def argv(self, targets: Path, outdir: Path) -> list[str]:
        return [
            self.python,
            "-m",
            "chainscan",
            str(targets),
            "-o",
            str(outdir),
            "-q",
            "--concurrency",
            str(self.concurrency),
            "--rate",
            "0",
            "--per-ip",
            "0",
            "--retries",
            "0",
            *(["--workers", str(self.workers)] if self.workers > 1 else []),
            *(["--writer", self.writer] if self.writer else []),
            *self.extra_args,
        ]

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        reason = self.unavailable()
        if reason is not None:
            return RunResult(
                name=self.name, status=RunStatus.UNAVAILABLE, targets=files.count, detail=reason
            )
        outdir = workdir / "out"
        argv = self.argv(files.chainscan, outdir)
        stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        manifest = outdir / "manifest.jsonl"
        hook_dir = workdir / "completions"
        hook_dir.mkdir()
        env = hooked_environment(hook_dir)
        with watch_lines(manifest) as arrivals:
            m = measure(argv, stdout=stdout, stderr=stderr, timeout=timeout, cwd=REPO, env=env)
        status = RunStatus.TIMEOUT if m.timed_out else RunStatus.OK
        detail = "" if m.returncode == 0 else f"exit {m.returncode}: {tail(stderr)}"
        if m.timed_out:
            detail = f"killed after the {timeout:g} s time limit"
        times = read_completions(hook_dir)
        if not times:
            times = arrivals
            detail = f"{detail}; steady rate from manifest arrival times".lstrip("; ")
        try:
            ok, wrong = count_ok(manifest)
            if wrong:
                detail = f"{wrong} targets got another name's certificate; {detail}".rstrip("; ")
        except OSError as exc:
            ok = 0
            if status is RunStatus.OK:
                status = RunStatus.ERROR
            detail = f"no manifest ({exc.strerror}); {detail or tail(stderr)}"
        return finished(
            self.name,
            m,
            targets=files.count,
            ok=ok,
            argv=argv,
            timeout=timeout,
            detail=detail,
            status=status,
            completion_times=times,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Chainscan1pRunner(ChainscanRunner):
    """chainscan in one process (``--writer thread``): analysis and files in threads that share
    the event loop's core, as on a one-core machine. ``chainscan / chainscan-1p`` is what the
    second core (the default writer process) gains.
    """

    name: ClassVar[str] = "chainscan-1p"
    writer: str | None = "thread"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        pass  # shares chainscan's options

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Chainscan1pRunner:
        return cls(
            concurrency=args.chainscan_concurrency,
            extra_args=tuple(shlex.split(args.chainscan_args)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Chainscan2wRunner(ChainscanRunner):
    """chainscan with ``--workers 2``: as many scanning processes as this machine has cores.

    The concurrency (500) is shared among the workers, so the only difference from
    ``chainscan`` is the second process: ``chainscan-2w / chainscan`` measures how well it scales.
    """

    name: ClassVar[str] = "chainscan-2w"
    workers: int = 2

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(cls.name)
        g.add_argument(
            "--chainscan-workers",
            type=int,
            default=2,
            metavar="N",
            help="chainscan-2w's --workers (default %(default)s); shares chainscan's other options",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Chainscan2wRunner:
        return cls(
            concurrency=args.chainscan_concurrency,
            workers=args.chainscan_workers,
            extra_args=tuple(shlex.split(args.chainscan_args)),
        )


def _git_describe() -> str:
    """Commit of the measured checkout, with ``-dirty`` if it has uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"
