"""``--writer process``: the writer in a child process writes what the thread writer writes,
and keeps every guarantee of the output folder when either process dies or is interrupted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from chainscan.run._writer_process import writer_process_useful
from tests.runs import (
    certificate_files,
    chainscan,
    children,
    entries,
    finish,
    jsonl_lines,
    wait_for,
)
from tests.servers import ServerHandle

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]
VOLATILE = {"elapsed", "timings", "attempts"}


def hosts_file(tmp_path: Path, server: ServerHandle, n: int, refused: int) -> Path:
    lines = [f"n{i}.test:{server.port}{{127.0.0.1}}" for i in range(n)]
    lines[3:3] = ["bad:99999", "exa mple.test"]  # invalid lines: written by the scanning process
    lines.append(f"refused.test:{refused}{{127.0.0.1}}")
    lines.append(f"127.0.0.1:{server.port}")  # no SNI: the default chain
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(lines) + "\n")
    return hosts


def comparable(out: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Entries by input line, without timings; each listed file checked against its sha256."""
    found = {}
    for entry in entries(out):
        key = (entry["input"]["line"], entry["host"], entry["sni"])
        assert key not in found
        found[key] = {k: v for k, v in entry.items() if k not in VOLATILE}
    return found


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
        results[writer] = (comparable(out), certificate_files(out))
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
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl_lines(out)) >= 20)
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
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl_lines(out)) >= 20)
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
    wait_for(lambda: (out / "manifest.jsonl").exists() and len(jsonl_lines(out)) >= 20)
    (writer,) = wait_for(lambda: children(proc.pid))
    proc.kill()
    finish(proc)
    wait_for(lambda: not Path(f"/proc/{writer}").exists(), timeout=5)
    written = len(comparable(out))
    code, stderr = finish(chainscan(str(hosts), "-o", str(out), "--resume", *FAST))
    assert code == 1, stderr
    assert written < len(comparable(out)) == 304
