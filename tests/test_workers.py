"""``--workers N`` (``run._workers``): how the input is dealt out to the scanning processes, how
the limits are shared, and, end to end, what the user sees when a worker cannot write (a full
disk: the same message as the writer process) or dies."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from chainscan._models import BadLine, ScanOptions, Target
from chainscan.run._partition import shard_of, worker_options
from chainscan.run._workers import _Dispatch, _read_targets, _target_line
from chainscan.scan._intake import take_input
from chainscan.scan._targets import Deduplicator
from tests.conftest import PKI
from tests.runs import (
    chainscan,
    children,
    entries,
    finish,
    tmpfs_unavailable,
    wait_for,
    wait_for_lines,
)
from tests.servers import ServerHandle, SilentServer, TLSServer

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]


def target(n: int, address: str | None = None) -> Target:
    host = f"h{n}.test"
    return Target(host=host, port=443, sni=host, address=address, line=n, raw=host)


# ---------------------------------------------------------------- dealing out the input


class _Pipe:
    def __init__(self) -> None:
        self.data = b""
        self.writes = 0

    async def send_all(self, data: bytes) -> None:
        self.data += data
        self.writes += 1


class _FakeChild:
    def __init__(self) -> None:
        self.stdin = _Pipe()


async def test_each_target_goes_to_the_worker_of_its_shard_once_in_input_order() -> None:
    workers = [_FakeChild() for _ in range(3)]
    send, receive = trio.open_memory_channel[list[BadLine]](100)
    targets = [target(n) for n in range(40)] + [target(n, "10.0.0.7") for n in range(40, 50)]
    bad = BadLine(source="hosts.txt", line=99, raw="bad:0", reason="port 0 is out of range")
    items: list[Target | BadLine] = [*targets[:20], bad, *targets[20:], targets[3]]  # a duplicate
    await take_input(
        items,
        _Dispatch(workers, send),  # type: ignore[arg-type]
        skip=Deduplicator().seen,
        blocking=False,
    )
    for index, worker in enumerate(workers):
        received = list(_read_targets(io.BytesIO(worker.stdin.data)))
        assert received == [t for t in targets if shard_of(t, 3) == index]
    assert {shard_of(t, 3) for t in targets[40:]} == {shard_of(targets[40], 3)}  # one address
    assert receive.receive_nowait() == [bad]  # recorded by the main process
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


async def test_a_batch_of_input_is_sent_at_once_in_a_few_writes() -> None:
    workers = [_FakeChild()]
    send, _ = trio.open_memory_channel[list[BadLine]](1)
    await take_input(
        [target(n) for n in range(200)],
        _Dispatch(workers, send),  # type: ignore[arg-type]
        blocking=False,
    )
    assert workers[0].stdin.data.count(b"\n") == 200
    assert workers[0].stdin.writes == 4  # 64 target lines a write, not one each


def test_a_target_line_round_trips() -> None:
    one = Target(host="ex.test", port=8443, sni=None, address="::1", raw="x", line=7, source="f")
    assert list(_read_targets(io.BytesIO(_target_line(one) * 2))) == [one, one]


def test_the_limits_are_shared_among_the_workers() -> None:
    options = ScanOptions(concurrency=500, rate=100.0, per_ip=16)
    share = worker_options(options, 3)
    assert (share.concurrency, share.rate, share.per_ip) == (167, pytest.approx(100 / 3), 16)
    assert worker_options(ScanOptions(concurrency=2, rate=0.0), 8).concurrency == 1
    assert worker_options(ScanOptions(rate=0.0), 8).rate == 0.0  # unlimited stays unlimited
    assert worker_options(options, 3).cert_format == options.cert_format


# ---------------------------------------------------------------- end to end


@pytest.fixture
def servers(pki: PKI) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    """SNI servers on 127.0.0.1 and 127.0.0.2: targets naming them go to different workers."""
    assert {shard_of(target(0, f"127.0.0.{i}"), 2) for i in (1, 2)} == {0, 1}
    with TLSServer(pki.chains, "127.0.0.1") as one, TLSServer(pki.chains, "127.0.0.2") as two:
        yield one, two


def _fleet(tmp_path: Path, servers: tuple[ServerHandle, ServerHandle], n: int) -> Path:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        "".join(f"n{i}.test:{servers[i % 2].port}{{127.0.0.{i % 2 + 1}}}\n" for i in range(n))
    )
    return hosts


def _no_inodes_then_resume(tmp_path: Path, hosts: Path, *mode: str) -> tuple[str, Path, Path]:
    """Scan into a tmpfs with too few inodes (only new files need one: the certificate files
    fail, never a manifest line), then resume with plenty; stderr and copies of both folders."""
    disk = tmp_path / "disk"
    disk.mkdir()
    full, done = tmp_path / "full", tmp_path / "done"
    scan = f"{sys.executable} -m chainscan {hosts} -o {disk}/out {' '.join(FAST)} {' '.join(mode)}"
    script = (
        f"mount -t tmpfs -o size=8m,nr_inodes=40 tmpfs {disk} || exit 99\n"
        f"{scan}; echo first=$? >&2\n"
        f"cp -a {disk}/out {full}\n"
        f"mount -o remount,nr_inodes=100000 {disk} || exit 98\n"
        f"{scan} --resume; echo second=$? >&2\n"
        f"cp -a {disk}/out {done}\n"
    )
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "first=2" in proc.stderr and "second=0" in proc.stderr, proc.stderr
    return proc.stderr, full, done


_NO_SPACE = re.compile(
    r"chainscan: error: cannot write (?P<path>\S+): no space left on device;"
    r" the manifest up to the previous target is intact"
)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces")
def test_a_full_disk_under_workers_is_reported_as_the_writer_process_reports_it(
    servers: tuple[ServerHandle, ServerHandle], tmp_path: Path
) -> None:
    why = tmpfs_unavailable()
    if why is not None:
        pytest.skip(why)
    hosts = _fleet(tmp_path, servers, 40)
    first_lines = {}
    for mode in (("--writer", "process"), ("--workers", "2")):
        where = tmp_path / mode[1]
        where.mkdir()
        stderr, full, done = _no_inodes_then_resume(where, hosts, *mode)
        first = stderr.splitlines()[0]
        match = _NO_SPACE.match(first)
        assert match, stderr
        # A certificate file or a target's folder, written by the child: not a manifest.
        assert "/out/n" in match["path"] and "manifest" not in match["path"], first
        first_lines[mode] = first.replace(match["path"], "PATH").replace(str(where), "WHERE")
        assert "Traceback" not in stderr and "stopped unexpectedly" not in stderr, stderr
        assert len(entries(full)) < 40  # whole lines, each with its files complete
        assert sorted(e["host"] for e in entries(done)) == sorted(f"n{i}.test" for i in range(40))
        manifest = json.loads((done / "manifest.json").read_text())
        assert manifest["run"]["complete"] is True and manifest["summary"]["ok"] == 40
    assert first_lines[("--workers", "2")] == first_lines[("--writer", "process")]


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_that_dies_is_reported_and_the_scan_resumes(
    servers: tuple[ServerHandle, ServerHandle], tmp_path: Path
) -> None:
    with SilentServer("127.0.0.1") as quiet1, SilentServer("127.0.0.2") as quiet2:
        hosts = _fleet(tmp_path, servers, 100)
        with hosts.open("a") as more:  # each worker gets silent targets: it keeps running
            for i in range(10):
                quiet, address = (quiet1, "127.0.0.1") if i % 2 else (quiet2, "127.0.0.2")
                more.write(f"s{i}.test:{quiet.port}{{{address}}}\n")
        _kill_a_worker_then_resume(tmp_path, hosts)


def _kill_a_worker_then_resume(tmp_path: Path, hosts: Path) -> None:
    out = tmp_path / "out"
    slow = ["--handshake-timeout", "3", "--deadline", "6", "--retries", "0", "-q"]
    proc = chainscan(str(hosts), "-o", str(out), "--workers", "2", *slow)
    wait_for_lines(out, proc, 20)
    workers = wait_for(lambda: children(proc.pid))
    assert len(workers) == 2  # both still busy with their silent targets
    os.kill(workers[0], signal.SIGKILL)
    code, stderr = finish(proc)
    assert code == 2, stderr
    assert re.search(r"scanning process [12] of 2 stopped unexpectedly \(exit code -9\)", stderr)
    assert "finish the scan with --resume" in stderr and "Traceback" not in stderr
    written = len(entries(out))
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False and len(manifest["targets"]) == written < 110

    code, stderr = finish(
        chainscan(str(hosts), "-o", str(out), "--resume", "--workers", "2", *slow)
    )
    assert code == 1, stderr  # the silent targets time out
    hosts_done = sorted(e["host"] for e in entries(out))
    assert hosts_done == sorted(
        [f"n{i}.test" for i in range(100)] + [f"s{i}.test" for i in range(10)]
    )
