"""The output folder end to end: refused before any connection, full disks, hostile names.

``tests/test_output.py`` tests ``OutputDir`` itself (refusing a previous scan, ``--overwrite``
removing only chainscan's files, unusable folders, ENOSPC injected into ``os.write``, torn
lines) and ``tests/test_naming.py`` property-tests the naming functions with hypothesis. Here
the same promises are checked through the command line, against real servers and real file
systems: what a user sees, and that nothing is written outside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PKI
from tests.pki import CA, der_tlv, mutate_tbs
from tests.runs import tmpfs_unavailable
from tests.servers import ServedChain, ServerHandle, TLSServer

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "--rate", "0"]


def chainscan(
    *args: str, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainscan", *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec_fn,
    )


def entries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_bytes().splitlines()]


def assert_intact(out: Path) -> list[dict[str, Any]]:
    """Every manifest.jsonl line is a whole JSON entry and every file it lists is complete."""
    data = (out / "manifest.jsonl").read_bytes()
    assert not data or data.endswith(b"\n")
    listed = entries(out)
    for entry in listed:
        for cert in entry["chain"]:
            assert hashlib.sha256((out / cert["file"]).read_bytes()).hexdigest() == cert["sha256"]
    return listed


def fleet(tmp_path: Path, server: ServerHandle, n: int) -> Path:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"n{i}.test:{server.port}{{127.0.0.1}}\n" for i in range(n)))
    return hosts


# --------------------------------------------------------------------------------------------
# Refused before any connection


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_unwritable_folder_is_reported_before_any_connection(
    tls_server: ServerHandle, tmp_path: Path, where: str
) -> None:
    hosts = fleet(tmp_path, tls_server, 3)
    output = {"under-a-file": hosts / "out", "proc": Path("/proc/self/chainscan-out")}[where]
    proc = chainscan(str(hosts), "-o", str(output), *FAST)
    assert proc.returncode == 2
    assert proc.stderr.startswith("chainscan: error: cannot ") and str(output) in proc.stderr
    assert tls_server.accepted == 0


def test_a_previous_scan_is_refused_untouched_then_overwritten_on_request(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = fleet(tmp_path, tls_server, 3)
    out = tmp_path / "out"
    assert chainscan(str(hosts), "-o", str(out), *FAST).returncode == 0
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tls_server.wait_finished(3)

    refused = chainscan(str(hosts), "-o", str(out), *FAST)
    assert refused.returncode == 2
    assert "already holds a scan" in refused.stderr
    assert "--resume" in refused.stderr and "--overwrite" in refused.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert tls_server.accepted == 3  # no connection was made

    hosts.write_text(f"other.test:{tls_server.port}{{127.0.0.1}}\n")
    replaced = chainscan(str(hosts), "-o", str(out), "--overwrite", *FAST)
    assert replaced.returncode == 0, replaced.stderr
    assert [e["host"] for e in entries(out)] == ["other.test"]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "manifest.jsonl",
        "notes.txt",  # not chainscan's: kept
        f"other.test_{tls_server.port}_127.0.0.1",
    ]


def test_a_bad_input_file_leaves_no_output_folder_behind(tmp_path: Path) -> None:
    binary = tmp_path / "hosts.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    for given in (binary, tmp_path / "missing.txt"):
        out = tmp_path / f"out-{given.name}"
        proc = chainscan(str(given), "-o", str(out))
        assert proc.returncode == 2 and str(given) in proc.stderr
        assert not out.exists()  # fixing the input and running again just works


# --------------------------------------------------------------------------------------------
# A full disk


def _no_big_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_file_size_limit_mid_scan_is_a_clear_error_and_resumable(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = fleet(tmp_path, tls_server, 60)
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST, preexec_fn=_no_big_files)
    assert proc.returncode == 2
    first = proc.stderr.splitlines()[0]
    assert re.match(r"chainscan: error: cannot write .*manifest\.jsonl: File too large;", first)
    assert "the manifest up to the previous target is intact" in first
    assert 0 < len(assert_intact(out)) < 60
    if (out / "manifest.json").exists():  # it fitted (the torn line was cut off): incomplete
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run"]["complete"] is False and manifest["run"]["error"] == first[18:]
    else:  # too large as well: said so, and not left half-written
        assert "cannot write" in proc.stderr.split("intact;", 1)[1]

    resumed = chainscan(str(hosts), "-o", str(out), "--resume", *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(e["host"] for e in assert_intact(out)) == sorted(f"n{i}.test" for i in range(60))


@pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces")
def test_a_really_full_disk_is_a_clear_error_and_resumable(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    why = tmpfs_unavailable()
    if why is not None:
        pytest.skip(why)
    hosts = fleet(tmp_path, tls_server, 60)
    disk = tmp_path / "disk"
    disk.mkdir()
    copy = tmp_path / "copy"
    scan = f"{sys.executable} -m chainscan {hosts} -o {disk}/out {' '.join(FAST)}"
    script = (
        f"mount -t tmpfs -o size=128k tmpfs {disk} || exit 99\n"
        f"{scan}; echo first=$? >&2\n"
        f"cp -a {disk}/out {copy}-full\n"
        f"mount -o remount,size=4m {disk} || exit 98\n"
        f"{scan} --resume; echo second=$? >&2\n"
        f"cp -a {disk}/out {copy}\n"
    )
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "first=2" in proc.stderr and "second=0" in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("chainscan: error: cannot write ")
    assert "no space left on device; the manifest up to the previous target is intact" in first
    # Intact, whatever got in first: files run ahead of manifest lines (a batch's folders are
    # written before its lines are appended), so a tiny disk may fill before the first line.
    assert len(assert_intact(Path(f"{copy}-full"))) < 60, proc.stderr
    assert sorted(e["host"] for e in assert_intact(copy)) == sorted(f"n{i}.test" for i in range(60))
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["run"]["complete"] is True and manifest["summary"]["ok"] == 60


# --------------------------------------------------------------------------------------------
# Hostile names from the wire never lead outside the target's folder


def _with_cn(der: bytes, signer: CA, cn: str) -> bytes:
    """``der`` with its subject replaced by a single CN, whatever ``cryptography`` allows."""
    name = der_tlv(
        0x30, der_tlv(0x31, der_tlv(0x30, b"\x06\x03\x55\x04\x03" + der_tlv(0x0C, cn.encode())))
    )

    def edit(elements: list[bytes]) -> list[bytes]:
        elements[5] = name
        return elements

    return mutate_tbs(der, signer.key, edit)


HOSTILE_CNS = [
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "CON",
    "lpt1",
    "",
    "x" * 10_000,
    "a\x00b",
    "\x1b[31mred\r\n",
    "\u202eexe.der",
    "/absolute",
    ".",
    "..",
]


def test_hostile_cns_from_real_servers_stay_inside_their_folders(pki: PKI, tmp_path: Path) -> None:
    chains: dict[str | None, ServedChain] = {}
    for number, cn in enumerate(HOSTILE_CNS):
        leaf = pki.intermediate.issue(f"c{number}.test")
        der = _with_cn(leaf.der, pki.intermediate, cn)
        pem = tmp_path / f"c{number}.pem"
        key = tmp_path / f"c{number}.key"
        pem.write_bytes(ssl.DER_cert_to_PEM_cert(der).encode())
        key.write_bytes(leaf.key_pem)
        chains[f"c{number}.test"] = ServedChain(str(pem), str(key), (der,))
    upper = pki.root.child_ca("EXAMPLE")  # names that differ only in case, in one chain
    cased = upper.issue("case.test", cn="Example")
    chains["case.test"] = ServedChain(
        *[str(p) for p in _write_pair(tmp_path, "case", cased.pem + upper.pem, cased.key_pem)],
        (cased.der, upper.der),
    )
    chains[None] = chains["case.test"]

    with TLSServer(chains) as server:
        names = [*(f"c{n}.test" for n in range(len(HOSTILE_CNS))), "case.test", "con", "Nul.test"]
        hosts = tmp_path / "hosts.txt"
        hosts.write_text("".join(f"{name}:{server.port}{{127.0.0.1}}\n" for name in names))
        work = tmp_path / "work"
        out = work / "out"
        proc = chainscan(str(hosts), "-o", str(out), *FAST, "-q")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in work.iterdir()] == ["out"]  # nothing beside the output folder
    listed = assert_intact(out)
    assert len(listed) == len(names)
    for entry in listed:
        folder = out / entry["dir"]
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,111}(~[0-9a-f]{8})?", entry["dir"]), entry["dir"]
        on_disk = sorted(p.name for p in folder.iterdir())
        assert sorted(Path(cert["file"]).name for cert in entry["chain"]) == on_disk
        assert len({name.lower() for name in on_disk}) == len(on_disk)
        for cert in entry["chain"]:
            path = (out / cert["file"]).resolve()
            assert path.parent == folder.resolve()
            assert re.fullmatch(r"[A-Za-z0-9_]{1,100}\.der", path.name), path.name
            assert not re.fullmatch(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])", path.stem)
    by_host = {entry["host"]: entry for entry in listed}
    files = [Path(c["file"]).name for c in by_host["case.test"]["chain"]]
    assert files == ["Example.der", "EXAMPLE_2.der"]
    assert Path(by_host["c0.test"]["chain"][0]["file"]).name == "______etc_passwd.der"
    assert Path(by_host["c2.test"]["chain"][0]["file"]).name == "CON_.der"
    assert by_host["c4.test"]["chain"][0]["file"].endswith(
        f"sha256_{by_host['c4.test']['chain'][0]['sha256'][:16]}.der"
    )
    assert len(Path(by_host["c5.test"]["chain"][0]["file"]).stem) == 100


def _write_pair(tmp_path: Path, stem: str, pem: bytes, key: bytes) -> tuple[Path, Path]:
    certfile, keyfile = tmp_path / f"{stem}.pem", tmp_path / f"{stem}.key"
    certfile.write_bytes(pem)
    keyfile.write_bytes(key)
    return certfile, keyfile


def test_a_symlink_in_place_of_a_target_folder_is_not_followed(
    tls_server: ServerHandle, tmp_path: Path
) -> None:
    """A target folder that is a symbolic link (planted, or left by something else) is replaced
    by a real folder: nothing is cleared or written where it points."""
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test:{tls_server.port}{{127.0.0.1}}\n")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.der").write_bytes(b"not chainscan's")
    link = out / f"a.test_{tls_server.port}_127.0.0.1"
    os.symlink(elsewhere, link)
    proc = chainscan(str(hosts), "-o", str(out), *FAST, "-q")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in elsewhere.iterdir()] == ["keep.der"]
    assert link.is_dir() and not link.is_symlink()
    assert_intact(out)
