"""Ctrl-C, SIGTERM and kill -9 in the middle of a scan, then ``--resume``: nothing lost, nothing
twice.

A fleet of 240 loopback targets (healthy, slow, not-TLS, refused, plus bad lines) is scanned
once without interruption: the reference. Each test interrupts a scan of the same fleet part-way
through (the rate limit keeps it running for over a second), checks what the interrupted run
left (exit code, every ``manifest.jsonl`` line valid, ``manifest.json`` marked incomplete), then
finishes it with ``--resume`` and compares the result with the reference: same entries, each
exactly once, every listed file holding the bytes its ``sha256`` says.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PKI
from tests.runs import Row, chainscan, entries, finish, jsonl_lines, wait_for_lines
from tests.servers import ScriptedServer, ServerHandle, TLSServer, http_banner

pytestmark = pytest.mark.integration

OPTIONS = ["--rate", "200", "--connect-timeout", "2", "--handshake-timeout", "2", "-q"]
GOOD, SLOW, NOT_TLS, REFUSED = 200, 30, 5, 5
BAD_LINES = ["bad:99999", "exa mple.test"]
SLOW_SECONDS = 0.3


def rows(out: Path) -> list[Row]:
    """Every entry of manifest.jsonl as a comparable row, sorted (duplicates kept)."""
    result = []
    for e in entries(out):  # whole lines, every listed file checked against its sha256
        chain = tuple(cert["sha256"] for cert in e["chain"])
        key = (e["input"]["line"], e["host"], e["port"], e["sni"], e["requested_address"])
        result.append((*key, e["address"], e["status"], e["error_kind"], e["chain_length"], chain))
    return sorted(result, key=repr)


@dataclass(frozen=True)
class Fleet:
    hosts: Path
    total: int
    """Entries a finished scan has: targets plus bad lines."""
    reference: list[Row]
    reference_code: int
    reference_summary: dict[str, Any]


@pytest.fixture(scope="module")
def fleet(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served = pki.chains[None]
    context.load_cert_chain(served.certfile, served.keyfile)

    def slow_tls(sock: socket.socket) -> None:
        time.sleep(SLOW_SECONDS)
        with context.wrap_socket(sock, server_side=True):
            pass

    with (
        TLSServer(pki.chains) as good,
        ScriptedServer(slow_tls) as slow,
        ScriptedServer(http_banner) as not_tls,
    ):
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refused = closed.getsockname()[1]
        lines = [f"n{i}.test:{good.port}{{127.0.0.1}}" for i in range(GOOD)]
        lines[100:100] = BAD_LINES
        lines += [f"s{i}.test:{slow.port}{{127.0.0.1}}" for i in range(SLOW)]
        lines += [f"h{i}.test:{not_tls.port}{{127.0.0.1}}" for i in range(NOT_TLS)]
        lines += [f"r{i}.test:{refused}{{127.0.0.1}}" for i in range(REFUSED)]
        lines.insert(50, lines[10])  # a duplicate: scanned once, listed once
        tmp = tmp_path_factory.mktemp("fleet")
        hosts = tmp / "hosts.txt"
        hosts.write_text("\n".join(lines) + "\n")
        out = tmp / "reference"
        code, stderr = finish(chainscan(str(hosts), "-o", str(out), *OPTIONS))
        assert code == 1, stderr  # not-TLS, refused and bad lines
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run"]["complete"] is True
        reference = rows(out)
        total = GOOD + SLOW + NOT_TLS + REFUSED + len(BAD_LINES)
        assert len(reference) == total
        yield Fleet(hosts, total, reference, code, manifest["summary"])


def assert_every_line_valid(out: Path) -> int:
    lines = jsonl_lines(out)
    for line in lines:
        assert line.endswith(b"\n")
        assert isinstance(json.loads(line), dict)
    return len(lines)


def resume_and_compare(fleet: Fleet, out: Path, *extra: str) -> None:
    code, stderr = finish(chainscan(str(fleet.hosts), "-o", str(out), "--resume", *OPTIONS, *extra))
    assert code == fleet.reference_code, stderr  # as if the scan had never been interrupted
    assert rows(out) == fleet.reference  # no duplicates, no gaps, same results
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is True and manifest["run"]["resumed"] is True
    assert manifest["summary"] == fleet.reference_summary
    assert len(manifest["targets"]) == fleet.total


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "workers"),
    [(signal.SIGINT, 130, "1"), (signal.SIGTERM, 143, "1"), (signal.SIGTERM, 143, "2")],
    ids=["SIGINT", "SIGTERM", "SIGTERM-workers"],
)
def test_a_signal_mid_scan_then_resume(
    fleet: Fleet, tmp_path: Path, signum: signal.Signals, code: int, workers: str
) -> None:
    out = tmp_path / "out"
    proc = chainscan(str(fleet.hosts), "-o", str(out), *OPTIONS, "--workers", workers)
    wait_for_lines(out, proc, 30)
    signalled = time.monotonic()
    proc.send_signal(signum)
    returncode, stderr = finish(proc)
    stopped = time.monotonic() - signalled
    print(f"TIME {signum.name} (workers {workers}): exited {stopped:.3f}s after the signal")
    assert returncode == code, stderr
    assert "interrupted" in stderr
    assert stopped < 2.0  # in-flight targets are cancelled, not waited for
    written = assert_every_line_valid(out)
    assert 30 <= written < fleet.total  # it really was interrupted part-way
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False
    assert manifest["run"]["interrupted"] == signum.name
    assert manifest["summary"]["targets"] == len(manifest["targets"]) == written
    resume_and_compare(fleet, out, "--workers", workers)


@pytest.mark.slow
def test_kill_9_with_a_torn_last_line_then_resume(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = chainscan(str(fleet.hosts), "-o", str(out), *OPTIONS)
    wait_for_lines(out, proc, 30)
    proc.kill()
    assert finish(proc)[0] == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    written = assert_every_line_valid(out)
    assert written < fleet.total
    with (out / "manifest.jsonl").open("ab") as jsonl:
        jsonl.write(b'{"input": {"source": "hosts.txt", "line": 7, "te')  # a write cut short
    resume_and_compare(fleet, out)


def test_in_flight_connections_are_closed_at_once(
    silent_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"t{i}.test:{silent_server.port}{{127.0.0.1}}\n" for i in range(20)))
    out = tmp_path / "out"
    proc = chainscan(
        str(hosts), "-o", str(out), "--handshake-timeout", "60", "--deadline", "120", "-q"
    )
    assert silent_server.wait_for(lambda h: h.accepted >= 16, timeout=20)  # --per-ip 16
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    returncode, stderr = finish(proc)
    assert returncode == 130, stderr
    assert time.monotonic() - signalled < 2.0
    assert silent_server.wait_finished(silent_server.accepted)  # every socket was closed
    assert jsonl_lines(out) == []  # nothing finished, nothing half-written
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False and manifest["targets"] == []


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_still_leaves_a_valid_manifest(
    fleet: Fleet, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = chainscan(str(fleet.hosts), "-o", str(out), *OPTIONS)
    wait_for_lines(out, proc, 30)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)  # another number: two SIGINTs may merge into one
    returncode, stderr = finish(proc)
    assert returncode == 130, stderr
    assert "interrupted again" in stderr and "Traceback" not in stderr
    written = assert_every_line_valid(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["complete"] is False
    assert len(manifest["targets"]) == written
    resume_and_compare(fleet, out)
    finished = (out / "manifest.jsonl").read_bytes()
    resume_and_compare(fleet, out)  # nothing left to do: nothing added
    assert (out / "manifest.jsonl").read_bytes() == finished
