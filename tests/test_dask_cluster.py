"""``--dask tcp://...`` against a real cluster: a ``dask scheduler`` and two ``dask worker``
processes on loopback (the commands a user runs, not a ``LocalCluster``), one of them killed
mid-scan; the folder is the same as a local run's.

The cluster: the scheduler and both workers are started with the ``dask`` command that
``pip install -e '.[test]'`` installs (next to this interpreter), each in its own session,
listening on free ports of 127.0.0.1 only (their HTTP servers too), each worker with one thread
and no nanny, so a worker is exactly one process and its PID is the one we kill. They stop at
teardown by their PIDs (SIGTERM, then SIGKILL after 15 s), and bound themselves as well
(``--idle-timeout``, ``--lifetime``, ``--death-timeout``) should the test process die first.

The fleet makes "mid-scan" something read, not a delay slept. Eight addresses (127.0.1.1 ...
127.0.8.1, one per /24, so any grouping by address or by network spreads them over several
tasks) each serve a TLS server and a silent server, with three TLS targets and one silent
target each. A task that holds an address's targets opens a connection to its silent server
when it starts (``--retries 0``) and keeps it until the handshake timeout. The worker to kill is
killed when both hold:

* results were written: ``manifest.jsonl`` has a line (the scan is under way);
* that worker is running a task: it has an open connection to a silent server (its socket
  inodes, from ``/proc/PID/fd``, against ``/proc/net/tcp``).

So the killed worker held a task, and Dask must run it again on the other worker: that shows
as more silent connections than silent targets at the end. The folder must still list every
target once and equal a local run's: certificate files byte for byte, entries field for field
apart from timings, the same summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sysconfig
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PKI
from tests.daemons import daemon, free_port, need_module
from tests.runs import (
    certificate_files,
    chainscan,
    entries_by_line,
    finish,
    jsonl_lines,
    manifest_rows,
)
from tests.servers import ServerHandle, SilentServer, TLSServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADDRESSES = [f"127.0.{k}.1" for k in range(1, 9)]
OPTIONS = [
    "--connect-timeout", "4", "--handshake-timeout", "4", "--deadline", "12",
    "--retries", "0", "-q",
]  # fmt: skip
REGISTER_TIMEOUT = 120.0
"""Seconds for both workers to register (importing dask on a loaded machine is slow)."""
SCAN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in self.logs
        )


def _dask_command() -> str:
    """The ``dask`` console script ``pip install -e '.[test]'`` put beside this interpreter (or
    in the user's scripts folder, for a ``--user`` install), so that the cluster runs the same
    Python and site-packages as the client."""
    need_module("distributed")
    folders = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    for folder in folders:
        script = Path(folder) / "dask"
        if script.exists():
            return str(script)
    raise AssertionError(f"no dask command in {folders}: pip install -e '.[test]' installs it")


def _wait_registered(logs: list[Path], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT
    while not all("Registered to:" in log.read_text(errors="replace") for log in logs):
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"a worker ended:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "the workers did not register in time"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    dask = _dask_command()
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)  # the workers import this checkout's chainscan, as the client does
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    scratch = tmp_path / "dask-scratch"
    scratch.mkdir()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    http = ["--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    logs = [tmp_path / "scheduler.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    with contextlib.ExitStack() as stack:
        scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), *http]
        scheduler += ["--idle-timeout", "900s"]
        started = stack.enter_context(daemon(scheduler, port, logs[0], env=env, cwd=scratch))
        workers = []
        for name, log in zip(("w1", "w2"), logs[1:], strict=True):
            worker_port = free_port()
            argv = [dask, "worker", address, "--name", name, "--no-nanny", "--nthreads", "1"]
            argv += ["--host", "127.0.0.1", "--worker-port", str(worker_port), *http]
            argv += ["--local-directory", str(scratch), "--death-timeout", "60"]
            argv += ["--lifetime", "900s"]
            workers.append(
                stack.enter_context(daemon(argv, worker_port, log, env=env, cwd=scratch))
            )
        _wait_registered(logs[1:], workers)
        yield Cluster(address, started, workers, logs)


@dataclass(frozen=True)
class Fleet:
    hosts: Path
    silent: list[ServerHandle]
    targets: Counter[str]
    """Targets per address."""

    def accepted(self) -> int:
        return sum(server.accepted for server in self.silent)


@pytest.fixture
def fleet(pki: PKI, tmp_path: Path) -> Iterator[Fleet]:
    with contextlib.ExitStack() as stack:
        lines, silent, targets = [], [], Counter[str]()
        for address in ADDRESSES:
            tls = stack.enter_context(TLSServer(pki.chains, address))
            quiet = stack.enter_context(SilentServer(address))
            silent.append(quiet)
            k = address.split(".")[2]
            for name in ("a.test", "b.test", f"n{k}.test"):  # a, b: their chains; n: default
                lines.append(f"{name}:{tls.port}{{{address}}}")
            lines.append(f"q{k}.test:{quiet.port}{{{address}}}")
            targets[address] += 4
        lines[3:3] = ["bad:0"]  # an invalid line: recorded by the client, in no task
        hosts = tmp_path / "hosts.txt"
        hosts.write_text("\n".join(lines) + "\n")
        yield Fleet(hosts, silent, targets)


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` has open."""
    found = set()
    with contextlib.suppress(OSError):  # it ended meanwhile
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    found.add(link[8:-1])
    return found


def _endpoint(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (``/proc/net/tcp``, IPv4 in host byte order) -> ("127.0.0.1", 8080)."""
    address, port = text.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(address, 16))), int(port, 16)


def _running_a_task(pid: int, fleet: Fleet) -> bool:
    """Process ``pid`` has an open connection to one of the silent servers."""
    inodes = _socket_inodes(pid)
    peers = {server.address for server in fleet.silent}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes and fields[3] == "01" and _endpoint(fields[2]) in peers:
            return True  # 01: ESTABLISHED
    return False


def _listening_on(pid: int) -> set[str]:
    """The addresses process ``pid``'s listening TCP sockets are bound to (IPv4 and IPv6)."""
    inodes = _socket_inodes(pid)
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "0A":  # 0A: LISTEN
                address = fields[1].split(":")[0]
                found.add(_endpoint(fields[1])[0] if len(address) == 8 else address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc (Linux)")
def test_a_real_cluster_losing_a_worker_writes_the_same_folder_as_a_local_run(
    cluster: Cluster, fleet: Fleet, tmp_path: Path
) -> None:
    for worker in cluster.workers:  # loopback only, the HTTP servers too
        assert _listening_on(worker.pid) == {"127.0.0.1"}, cluster.tail()
    assert _listening_on(cluster.scheduler.pid) == {"127.0.0.1"}, cluster.tail()

    local = tmp_path / "local"
    code, stderr = finish(chainscan(str(fleet.hosts), "-o", str(local), *OPTIONS), SCAN_TIMEOUT)
    assert code == 1, stderr  # the silent targets time out, one line is invalid
    before = fleet.accepted()

    out = tmp_path / "dask"
    proc = chainscan(str(fleet.hosts), "-o", str(out), "--dask", cluster.address, *OPTIONS)
    victim = cluster.workers[0]
    written = None
    try:
        deadline = time.monotonic() + SCAN_TIMEOUT
        while written is None and proc.poll() is None and time.monotonic() < deadline:
            if jsonl_lines(out) and _running_a_task(victim.pid, fleet):
                written = len(jsonl_lines(out))
                os.kill(victim.pid, signal.SIGKILL)
            time.sleep(0.02)
        code, stderr = finish(proc, SCAN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert written is not None, f"worker 1 never ran a task after a result\n{cluster.tail()}"
    assert victim.wait(10) == -signal.SIGKILL
    assert code == 1 and "Traceback" not in stderr, f"{stderr}\n{cluster.tail()}"
    total = len(jsonl_lines(local))
    assert 0 < written < total, "the worker was not killed mid-scan"

    silent_targets = len(ADDRESSES)
    assert fleet.accepted() - before > silent_targets  # the killed task ran again elsewhere
    rows = manifest_rows(out)
    assert len(rows) == len(set(rows)) == total == sum(fleet.targets.values()) + 1  # each once
    assert sorted(rows) == sorted(manifest_rows(local))
    assert certificate_files(out) == certificate_files(local)  # byte for byte
    assert entries_by_line(out) == entries_by_line(local)  # field for field, but timings
    header = json.loads((out / "manifest.json").read_text())
    expected = json.loads((local / "manifest.json").read_text())
    assert header["summary"] == expected["summary"]
    assert header["summary"]["by_error_kind"] == {
        "timeout-handshake": silent_targets,
        "bad-input": 1,
    }
    assert header["run"]["dask"] == cluster.address and header["run"]["complete"] is True
