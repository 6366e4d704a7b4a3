"""``python -m chainscan`` in a subprocess, and what a scan left behind: the helpers the end-to-end
tests share (interruption, the writer process, ``--workers``, ``--dask``, shards, equivalence)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.scan_output import checked_entries

Row = tuple[Any, ...]


def chainscan(*args: str, **popen: Any) -> subprocess.Popen[str]:
    """Start ``python -m chainscan ARGS`` (stdout dropped, stderr kept); see :func:`finish`."""
    return subprocess.Popen(
        [sys.executable, "-m", "chainscan", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """Wait for ``proc``; its exit code and stderr."""
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def jsonl_lines(out: Path) -> list[bytes]:
    """The lines of ``out/manifest.jsonl`` (none if it does not exist yet)."""
    path = out / "manifest.jsonl"
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def entries(out: Path) -> list[dict[str, Any]]:
    """The entries of ``manifest.jsonl``, each a whole line, each file it lists holding the
    bytes its ``sha256`` says."""
    found = []
    for line in jsonl_lines(out):
        assert line.endswith(b"\n")
        entry = json.loads(line)
        for cert in entry["chain"]:
            digest = hashlib.sha256((out / cert["file"]).read_bytes()).hexdigest()
            assert digest == cert["sha256"], cert["file"]
        found.append(entry)
    return found


TIMINGS = frozenset({"elapsed", "timings"})
"""The fields of an entry that differ from run to run."""


def entries_by_line(out: Path) -> dict[int, list[tuple[str, Any]]]:
    """Entries by input line: their fields in order, timings left out; a line listed twice
    fails. Two folders of one input compare equal whatever order their entries came in."""
    found: dict[int, list[tuple[str, Any]]] = {}
    for entry in entries(out):
        line = entry["input"]["line"]
        assert line not in found, f"line {line} listed twice"
        found[line] = [(key, value) for key, value in entry.items() if key not in TIMINGS]
    return found


def manifest_rows(out: Path) -> list[Row]:
    """Each entry of a finished scan without timings, in manifest order: (input line, host,
    SNI, status, error kind, folder, ((file, sha256), ...)); checked by
    :func:`tests.scan_output.checked_entries` (both manifests agree, every file its digest)."""
    return [
        (e["input"]["line"], e["host"], e["sni"], e["status"], e["error_kind"], e["dir"], files)
        for e, files in checked_entries(out)
    ]


def certificate_files(out: Path) -> dict[str, bytes]:
    """Every file of the folder but the two manifests, by path relative to it."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not (p.parent == out and p.name.startswith("manifest."))
    }


def wait_for(condition: Any, timeout: float = 20) -> Any:
    """Poll ``condition()`` until it is true (its value); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


def wait_for_lines(out: Path, proc: subprocess.Popen[str], n: int, timeout: float = 20) -> None:
    """Wait until ``manifest.jsonl`` has ``n`` lines while ``proc`` still runs."""
    deadline = time.monotonic() + timeout
    while len(jsonl_lines(out)) < n:
        assert proc.poll() is None, "the scan ended before it could be interrupted"
        assert time.monotonic() < deadline, "the scan made no progress"
        time.sleep(0.01)


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


def tmpfs_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted in a user and mount namespace here (None: it can)."""
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"cannot mount a tmpfs: {probe.stderr.strip()}"
