"""What every runner shares: the result value, the runner interface, and process measurement.

Measuring a tool
----------------

A runner starts its tool as one command (which may start others: ``xargs`` forks a shell and an
``openssl`` per target), wrapped in GNU ``time``::

    harness --fork--> /usr/bin/time -f %M --fork--> tool --fork--> ...

and waits for ``time`` with ``os.wait4``. The ``rusage`` of a reaped child covers it *and every
descendant it waited for*, which is the whole tree for well-behaved tools, so:

* ``cpu_seconds`` = user + system time of the whole tree, from our ``wait4`` (``time`` itself
  adds about a millisecond);
* ``peak_rss_mb`` = ``ru_maxrss`` that ``time`` got for *its* child: the largest resident set of
  any *single* process in the tree (Linux keeps the maximum, not the sum). For chainscan that is
  chainscan; for ``xargs -P 16`` it is one ``openssl``, though 16 run at once: see the README.
  Why not our own ``wait4``'s ``ru_maxrss``: a child forked (or vforked) by Python starts as a
  copy of the harness, and Linux carries that copy's resident set into the child's maximum across
  ``exec``, so every tool would weigh at least as much as the harness (about 20-35 MB here).
  ``time`` is a small C program, so what it forks starts small.
* ``seconds`` is the wall time from just before the fork to the reap, so it includes the tool's
  start-up (Python's imports, for chainscan).
* Python tools run with their bytecode cached (:func:`bytecode_cached`), as an installed
  package has it: ``PYTHONDONTWRITEBYTECODE`` is dropped from the tool's environment and
  ``PYTHONPYCACHEPREFIX`` points at ``benchmarks/.pycache`` (git-ignored), so the warm-up
  compiles the ``.pyc`` files and the measured runs load them, without writing into the
  checkout. With the variable set (as in some CI and container environments), a checkout of
  chainscan would otherwise compile its ~60 modules from source in every process of every run:
  about 75 ms of CPU per process, which ``pip install`` users never pay (pip compiles at install
  time) and the other Python tools (trio, sslyze: installed packages) did not pay either.
* completion times, for the steady-state rate (:mod:`benchmarks._steady`), come from whatever
  the tool gives: ``measure(..., stdout_times=LIST)`` reads the tool's stdout through a pipe in
  a thread (copying it to the file) and appends ``time.monotonic()`` for every line as it
  arrives (tools that print a line per target: ``openssl-xargs``, ``nmap-ssl-cert``);
  :func:`watch_lines` does the same for a file the tool appends to (chainscan's
  ``manifest.jsonl``, polled every 20 ms); scripts of our own (``bare_trio.py``,
  ``sslyze_api.py``) report a time per target in their JSON.

The command runs in a session of its own (so Ctrl-C reaches only the harness, which then ends
it) and with ``PR_SET_PDEATHSIG``. A timer bounds every run: when it fires, the command's process
group (its PID, since it leads its own session) gets SIGKILL, and the run is reported as
``timeout``. Nothing else is ever signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .._steady import steady_rate
from .._system import die_with_parent, find_program
from ..fleet import TargetFiles


class RunStatus(enum.StrEnum):
    OK = "ok"
    """The tool ran to its end; ``ok`` counts the targets whose chain it got."""
    UNAVAILABLE = "unavailable"
    """The tool is not installed or cannot start; nothing was run."""
    TIMEOUT = "timeout"
    """The run hit the harness's time limit and was killed."""
    ERROR = "error"
    """The tool ran but left no usable result (see ``detail``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One run of one tool over one targets file."""

    name: str
    """Runner name, e.g. ``chainscan``."""
    status: RunStatus
    targets: int
    """Targets in the input."""
    ok: int = 0
    """Targets whose certificate chain the tool received."""
    seconds: float = 0.0
    """Wall time, start-up included."""
    cpu_seconds: float = 0.0
    """User + system time of the tool's whole process tree."""
    system_seconds: float = 0.0
    """The system (kernel) part of ``cpu_seconds``."""
    peak_rss_mb: float = 0.0
    """Largest resident set of any single process of the tree, MiB."""
    returncode: int | None = None
    detail: str = ""
    """Why the run is not OK, or what looked odd (e.g. a non-zero exit code)."""
    command: tuple[str, ...] = ()
    steady_targets_per_second: float | None = None
    """Targets finished per second between the 10th and 90th percentile of completion times
    (:func:`benchmarks._steady.steady_rate`); None when the tool gives no completion times."""

    @property
    def targets_per_second(self) -> float:
        """Successful targets per wall-clock second (failures do not count)."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_seconds_per_target(self) -> float:
        return self.cpu_seconds / self.targets if self.targets else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "targets": self.targets,
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "system_seconds": round(self.system_seconds, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 2),
            "targets_per_second": round(self.targets_per_second, 2),
            "steady_targets_per_second": (
                None
                if self.steady_targets_per_second is None
                else round(self.steady_targets_per_second, 2)
            ),
            "cpu_seconds_per_target": round(self.cpu_seconds_per_target, 6),
            "returncode": self.returncode,
            "detail": self.detail,
            "command": list(self.command),
        }


class Runner(Protocol):
    """One competitor. Add a module with a class like this and list it in ``RUNNERS``."""

    name: ClassVar[str]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this runner's own options (prefixed with its name) to the driver's parser."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Runner:
        """Build the runner from the driver's parsed options."""
        ...

    def unavailable(self) -> str | None:
        """None if the tool can run here, else why not (it is then reported, not run)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings and tool version, for the result file."""
        ...

    def run(self, files: TargetFiles, workdir: Path, timeout: float) -> RunResult:
        """Run the tool once over ``files``; ``workdir`` is empty and the runner's to use."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    returncode: int
    seconds: float
    cpu_seconds: float
    system_seconds: float
    peak_rss_mb: float
    timed_out: bool


def gnu_time() -> str:
    """Path of GNU ``time`` (Debian package ``time``), installed if missing."""
    return find_program("time", ("time",), ("/usr/bin/time",))


PYCACHE = Path(__file__).resolve().parents[1] / ".pycache"
"""Where the measured Python tools keep their bytecode (``PYTHONPYCACHEPREFIX``)."""


def bytecode_cached(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) for a measured tool: bytecode written to and read from
    :data:`PYCACHE` (see the module header); a ``PYTHONPYCACHEPREFIX`` already set is kept."""
    out = dict(os.environ if env is None else env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return out


def measure(
    argv: Sequence[str],
    *,
    stdout: Path,
    stderr: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout_times: list[float] | None = None,
) -> Measured:
    """Run ``argv`` to its end (or ``timeout``) and measure its process tree (see the header).

    With ``stdout_times``, the tool's stdout goes through a pipe: a thread copies it to
    ``stdout`` and appends ``time.monotonic()`` to ``stdout_times`` for every line."""
    rss_file = stderr.with_name(stderr.name + ".maxrss")
    wrapped = [gnu_time(), "-f", "%M", "-o", str(rss_file), "--", *argv]
    reader: threading.Thread | None = None
    with stdout.open("wb") as out, stderr.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            wrapped,
            cwd=cwd,
            env=bytecode_cached(env),
            stdin=subprocess.DEVNULL,
            stdout=out if stdout_times is None else subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        if stdout_times is not None:
            pipe = process.stdout
            assert pipe is not None
            copy = stdout.open("ab")

            def read_lines() -> None:
                with pipe, copy:
                    for line in pipe:
                        stdout_times.append(time.monotonic())
                        copy.write(line)

            reader = threading.Thread(target=read_lines, daemon=True)
            reader.start()
    lock = threading.Lock()
    reaped = False
    timed_out = False

    def kill_group() -> None:
        # The command leads its own session, so its process group is its PID: only our tree.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def expire() -> None:
        nonlocal timed_out
        with lock:
            if not reaped:
                timed_out = True
                kill_group()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        with lock:
            reaped = True
    except BaseException:  # Ctrl-C while waiting: end the command's tree, reap it, go on raising
        with lock:
            kill_group()
            os.wait4(process.pid, 0)
            reaped = True
        process.returncode = -signal.SIGKILL
        raise
    finally:
        timer.cancel()
        if reader is not None:  # the pipe closes when the last process of the tree exits
            reader.join(timeout=10)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=process.returncode,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        system_seconds=usage.ru_stime,
        peak_rss_mb=_read_maxrss_kb(rss_file) / 1024,
        timed_out=timed_out,
    )


@contextlib.contextmanager
def watch_lines(path: Path, interval: float = 0.02) -> Iterator[list[float]]:
    """For the block's duration, poll the file ``path`` (which a tool appends lines to) every
    ``interval`` s in a thread; the list gets one ``time.monotonic()`` per new line, the time
    of the poll that saw it. One last poll after the block (the tool has ended by then)."""
    times: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        offset = 0
        while True:
            last = stop.is_set()
            with contextlib.suppress(OSError), path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset += len(chunk)
                now = time.monotonic()
                times.extend([now] * chunk.count(b"\n"))
            if last:
                return
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join()


def _read_maxrss_kb(path: Path) -> int:
    """The number GNU time wrote last (it may first write "Command exited with ..."); 0 if none
    (e.g. time itself was killed at the time limit)."""
    try:
        lines = path.read_text().split()
    except OSError:
        return 0
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def tail(path: Path, lines: int = 5, width: int = 300) -> str:
    """Last lines of a log, for ``detail``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line[:width] for line in text.strip().splitlines()[-lines:])


def tool_version(argv: Sequence[str], cwd: Path | None = None) -> str:
    """First line a ``--version``-like command prints, or ``unknown``."""
    try:
        out = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else "unknown"


def finished(
    name: str,
    m: Measured,
    *,
    targets: int,
    ok: int,
    argv: Sequence[str],
    timeout: float,
    detail: str = "",
    status: RunStatus = RunStatus.OK,
    completion_times: Sequence[float] | None = None,
) -> RunResult:
    """The :class:`RunResult` of a measured run (``timeout`` status and detail when it hit the
    time limit), for runners that have counted their successes; ``completion_times`` (one per
    finished target, any clock) give its steady-state rate."""
    steady = None if completion_times is None else steady_rate(completion_times)
    if m.timed_out:
        status, detail = RunStatus.TIMEOUT, f"killed after the {timeout:g} s time limit"
    return RunResult(
        name=name,
        status=status,
        targets=targets,
        ok=ok,
        seconds=m.seconds,
        cpu_seconds=m.cpu_seconds,
        system_seconds=m.system_seconds,
        peak_rss_mb=m.peak_rss_mb,
        returncode=m.returncode,
        detail=detail,
        command=tuple(argv),
        steady_targets_per_second=steady,
    )


def last_json_object(path: Path) -> dict[str, Any] | None:
    """The last line of ``path`` that parses as a JSON object (a script's report), else None."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
