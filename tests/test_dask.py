"""``--dask local:N``: the scan runs on a Dask cluster, the output is the same as a local run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runs import certificate_files, manifest_rows
from tests.servers import ServerHandle
from tests.test_cli import FAST, chainscan

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None,
        reason="Dask's distributed is not installed (pip install 'chainscan[dask]')",
    ),
]


def test_dask_local_cluster_writes_the_same_scan_as_a_local_run(
    tls_server: ServerHandle, refused_port: int, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        "".join(f"n{i}.test:{tls_server.port}{{127.0.0.1}}\n" for i in range(20))
        + "".join(f"s{i}.invalid\n" for i in range(6))
        + f"127.0.0.1:{refused_port}\nbad:0\n"
        + f"a.test:{tls_server.port}{{127.0.0.1}}\n" * 2
    )
    local = tmp_path / "local"
    assert chainscan(str(hosts), "-o", str(local), *FAST).returncode == 1
    dask = tmp_path / "dask"
    proc = chainscan(str(hosts), "-o", str(dask), "--dask", "local:2", *FAST)
    assert proc.returncode == 1, proc.stderr
    rows = manifest_rows(dask)
    assert len(rows) == len(set(rows)) == 29
    assert sorted(rows) == sorted(manifest_rows(local))
    assert certificate_files(dask) == certificate_files(local)  # byte for byte
    manifest = json.loads((dask / "manifest.json").read_text())
    assert manifest["run"]["dask"] == "local:2" and manifest["run"]["complete"] is True
    assert manifest["summary"] == json.loads((local / "manifest.json").read_text())["summary"]

    hosts.write_text(hosts.read_text() + f"b.test:{tls_server.port}{{127.0.0.1}}\n")
    resumed = chainscan(str(hosts), "-o", str(dask), "--dask", "local:1", "--resume", *FAST)
    assert resumed.returncode == 1, resumed.stderr
    after = manifest_rows(dask)
    assert after[:29] == rows and len(after) == 30 and after[29][2] == "b.test"


def _worker_pids(parent: int) -> list[int]:
    """Dask worker processes started (through multiprocessing's spawn) by ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_killed_worker_loses_and_duplicates_nothing(
    tls_server: ServerHandle, silent_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    names = [f"n{i}.test" for i in range(12)]
    hosts.write_text(
        "".join(f"{name}:{tls_server.port}{{127.0.0.1}}\n" for name in names)
        + "".join(f"q{i}.test:{silent_server.port}{{127.0.0.1}}\n" for i in range(6))
    )
    out = tmp_path / "out"
    slow = ["--handshake-timeout", "1", "--retries", "0", "-c", "2", "--per-ip", "0", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainscan", str(hosts), "-o", str(out), "--dask", "local:2", *slow],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed = []
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            if silent_server.accepted >= 1:  # a batch is running: kill every worker
                for pid in _worker_pids(proc.pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed, "the scan finished before a worker could be killed"
    assert proc.returncode == 1, stderr
    rows = manifest_rows(out)
    assert len(rows) == len(set(rows)) == 18
    by_sni = {row[2]: row for row in rows}
    assert all(by_sni[name][3] == "ok" for name in names)
    assert {by_sni[f"q{i}.test"][4] for i in range(6)} == {"timeout-handshake"}
    silent_server.wait_finished(6)
    assert silent_server.accepted > 6  # the killed batch was scanned again, recorded once


def test_sigterm_stops_a_dask_scan_with_an_incomplete_manifest_then_resume_finishes(
    tls_server: ServerHandle, silent_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        f"a.test:{tls_server.port}{{127.0.0.1}}\n"
        + "".join(f"q{i}.test:{silent_server.port}{{127.0.0.1}}\n" for i in range(4))
    )
    out = tmp_path / "out"
    slow = ["--handshake-timeout", "5", "--retries", "0", "-c", "1", "--per-ip", "0", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainscan", str(hosts), "-o", str(out), "--dask", "local:1", *slow],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while silent_server.accepted < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False and manifest["run"]["interrupted"] == "SIGTERM"
    assert manifest["targets"] == []  # the batch in flight is not recorded: resume scans it
    fast = ["--handshake-timeout", "1", "--retries", "0", "--per-ip", "0", "-q"]
    resumed = chainscan(str(hosts), "-o", str(out), "--dask", "local:1", "--resume", *fast)
    assert resumed.returncode == 1, resumed.stderr
    assert sorted(row[2] for row in manifest_rows(out)) == [
        "a.test",
        *(f"q{i}.test" for i in range(4)),
    ]
