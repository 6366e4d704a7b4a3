"""``--writer process``: the writer in a child process writes what the thread writer writes,
and keeps every guarantee of the output folder when either process dies or is interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chainscan.run._writer_process import writer_process_useful
from tests.servers import ServerHandle

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]
VOLATILE = {"elapsed", "timings", "attempts"}


def chainscan(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chainscan", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def hosts_file(tmp_path: Path, server: ServerHandle, n: int, refused: int) -> Path:
    lines = [f"n{i}.test:{server.port}{{127.0.0.1}}" for i in range(n)]
    lines[3:3] = ["bad:99999", "exa mple.test"]  # invalid lines: written by the scanning process
    lines.append(f"refused.test:{refused}{{127.0.0.1}}")
    lines.append(f"127.0.0.1:{server.port}")  # no SNI: the default chain
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(lines) + "\n")
    return hosts


def jsonl(out: Path) -> list[dict[str, Any]]:
    data = (out / "manifest.jsonl").read_bytes()
    assert not data or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def comparable(out: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Entries by input line, without timings; each listed file checked against its sha256."""
    found = {}
    for entry in jsonl(out):
        for cert in entry["chain"]:
            digest = hashlib.sha256((out / cert["file"]).read_bytes()).hexdigest()
            assert digest == cert["sha256"], cert["file"]
        key = (entry["input"]["line"], entry["host"], entry["sni"])
        assert key not in found
        found[key] = {k: v for k, v in entry.items() if k not in VOLATILE}
    return found


def files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith("manifest")
    }


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (any of its threads may have started them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for(condition: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


def test_auto_means_a_process_on_two_cores() -> None:
    assert writer_process_useful() == (len(os.sched_getaffinity(0)) >= 2)


def test_process_and_thread_writers_write_the_same_folder(
    tls_server: ServerHandle, tmp_path: Path, refused_port: int
) -> None:
    hosts = hosts_file(tmp_path, tls_server, 40, refused_port)
    results = {}
    for writer in ("thread", "process"):
        out = tmp_path / writer
        code, stderr = finish(chainscan(str(hosts), "-o", str(out), *FAST, "--writer", writer))
        assert code == 1, stderr  # the refused target and the bad lines
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run"]["writer"] == writer and manifest["run"]["complete"] is True
        assert manifest["summary"] == {
            "targets": 44,
            "ok": 41,
            "failed": 1,
            "invalid": 2,
            "by_error_kind": {"bad-input": 2, "refused": 1},
        }
        assert len(manifest["targets"]) == 44
        results[writer] = (comparable(out), files(out))
    assert results["process"] == results["thread"]
    entry = results["process"][0][(1, "n0.test", "n0.test")]
    assert entry["status"] == "ok" and entry["chain"] and entry["trust"] is not None


@pytest.mark.slow
def test_a_writer_process_that_dies_is_reported_and_the_scan_resumes(
    tls_server: ServerHandle, tmp_path: Path, refused_port: int
) -> None:
    hosts = hosts_file(tmp_path, tls_server, 300, refused_port)
    out = tmp_path / "out"
    slow = ["--rate", "100", "--writer", "process"]
    proc = chainscan(str(hosts), "-o", str(out), *FAST, *slow)
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl(out)) >= 20)
    (writer,) = wait_for(lambda: children(proc.pid))
    os.kill(writer, signal.SIGKILL)
    code, stderr = finish(proc)
    assert code == 2, stderr
    assert "writer process stopped unexpectedly (exit code -9)" in stderr
    assert "finish the scan with --resume" in stderr and "Traceback" not in stderr
    written = len(comparable(out))
    assert 20 <= written < 304
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False and len(manifest["targets"]) == written

    code, stderr = finish(chainscan(str(hosts), "-o", str(out), "--resume", *FAST, *slow))
    assert code == 1, stderr
    assert len(comparable(out)) == 304  # every target once


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_drains_the_writer(
    tls_server: ServerHandle, tmp_path: Path, refused_port: int
) -> None:
    hosts = hosts_file(tmp_path, tls_server, 300, refused_port)
    out = tmp_path / "out"
    proc = chainscan(
        str(hosts), "-o", str(out), *FAST, "--rate", "100", "--writer", "process",
        start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl(out)) >= 20)
    (writer,) = wait_for(lambda: children(proc.pid))
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    code, stderr = finish(proc)
    assert code == 130, stderr
    assert not Path(f"/proc/{writer}").exists()  # it finished, and was waited for
    written = len(comparable(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False and manifest["run"]["interrupted"] == "SIGINT"
    assert manifest["summary"]["targets"] == len(manifest["targets"]) == written < 304


@pytest.mark.slow
def test_the_writer_process_does_not_outlive_a_killed_scan(
    tls_server: ServerHandle, tmp_path: Path, refused_port: int
) -> None:
    hosts = hosts_file(tmp_path, tls_server, 300, refused_port)
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST, "--rate", "100", "--writer", "process")
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl(out)) >= 20)
    (writer,) = wait_for(lambda: children(proc.pid))
    proc.kill()
    finish(proc)
    wait_for(lambda: not Path(f"/proc/{writer}").exists(), timeout=5)
    written = len(comparable(out))
    code, stderr = finish(chainscan(str(hosts), "-o", str(out), "--resume", *FAST))
    assert code == 1, stderr
    assert written < len(comparable(out)) == 304
