"""Real servers (Dovecot, slapd, PostgreSQL, MariaDB, Prosody, xrdp) started by the tests.

Each daemon runs in the foreground as a child process of the test, with its configuration and
data in a fresh folder, listening on a free high port of 127.0.0.1 (never the standard port,
never another address), and is stopped at teardown by its own process id (and its own
process group, for daemons that fork). The packages come from ``tests/setup-system.sh``; a
test whose daemon is not installed is skipped with the reason, except in CI (``CI`` set),
where it fails: a CI run that silently skipped every real server would prove nothing.

Folders are made under ``/tmp`` with mode 755, not under pytest's ``tmp_path`` (mode 700 for
root): the daemons drop privileges (``dovenull``, ``postgres``, ``mysql``) and must reach them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["daemon", "free_port", "need", "need_module", "open_dir"]

START_TIMEOUT = 60.0
"""Seconds a daemon gets to listen on its port (MariaDB's first start is the slowest)."""
STOP_TIMEOUT = 15.0


def need(*programs: str) -> list[str]:
    """The paths of ``programs``; skip the test if one is missing (fail in CI)."""
    paths = []
    for program in programs:
        path = shutil.which(program) or next(
            (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.access(p, os.X_OK)),
            None,
        )
        if path is None:
            reason = f"{program} is not installed (tests/setup-system.sh installs it)"
            if os.environ.get("CI"):
                pytest.fail(f"CI: {reason}")
            pytest.skip(reason)
        paths.append(path)
    return paths


def need_module(name: str) -> ModuleType:
    """``import name``; skip the test if it is not installed (fail in CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        reason = f"{name} is not installed (pyproject's test extra installs it): {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def open_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder under /tmp, mode 755, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"chainscan-{prefix}-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def daemon(
    argv: Sequence[str],
    port: int,
    log: Path,
    *,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; wait until it listens on ``port`` first."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group: forked children stop with it
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{argv[0]} did not listen on 127.0.0.1:{port}:\n{text}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, stop_signal)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
