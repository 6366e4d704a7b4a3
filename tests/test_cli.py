"""``chainscan FILE -o DIR`` end to end, as a user runs it, against loopback TLS servers."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import PKI
from tests.scan_output import needs_openssl, openssl_pin
from tests.servers import ServerHandle

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]


def chainscan(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainscan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def entries(out: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {(e["input"]["line"], e["host"], e["sni"]): e for e in manifest["targets"]}


def test_scan_writes_der_files_named_by_cn_and_a_full_manifest(
    tls_server: ServerHandle, pki: PKI, tmp_path: Path
) -> None:
    port = tls_server.port
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        f"# loopback fleet\na.test:{port}{{127.0.0.1}}\nb.test:{port}{{127.0.0.1}}\n"
        f"127.0.0.1:{port}\n"
    )
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""  # -q, and stderr is not a terminal

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"].startswith("chainscan-manifest/")
    assert manifest["run"]["complete"] is True
    assert manifest["summary"]["ok"] == 3 and manifest["summary"]["targets"] == 3
    jsonl = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(e["input"]["line"] for e in jsonl) == [2, 3, 4]

    by_line = {e["input"]["line"]: e for e in manifest["targets"]}
    a, b, ip = by_line[2], by_line[3], by_line[4]
    assert (a["host"], a["port"], a["sni"], a["address"]) == ("a.test", port, "a.test", "127.0.0.1")
    assert a["input"] == {"source": str(hosts), "line": 2, "text": f"a.test:{port}{{127.0.0.1}}"}
    assert ip["sni"] is None
    assert a["tls_version"] in ("TLSv1.2", "TLSv1.3") and a["cipher"]

    for entry, sni in ((a, "a.test"), (b, "b.test"), (ip, None)):
        served = tls_server.chain_for(sni)
        assert entry["status"] == "ok" and entry["attempts"] == 1
        assert entry["chain_length"] == len(served) == len(entry["chain"])
        for position, (cert, der) in enumerate(zip(entry["chain"], served, strict=True)):
            assert cert["position"] == position
            assert (out / cert["file"]).read_bytes() == der  # the exact bytes the server sent
            parsed = x509.load_der_x509_certificate(der)
            spki = parsed.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            assert cert["sha256"] == hashlib.sha256(der).hexdigest()
            assert cert["sha1"] == hashlib.sha1(der).hexdigest()
            assert cert["spki_sha256"] == base64.b64encode(hashlib.sha256(spki).digest()).decode()
            assert cert["pin"] == "sha256/" + cert["spki_sha256"]
            cn = parsed.subject.rfc4514_string().split("CN=")[1].split(",")[0]
            expected = "".join(c if c.isascii() and c.isalnum() else "_" for c in cn) + ".der"
            assert Path(cert["file"]).name == expected
    assert Path(a["chain"][0]["file"]).parent.name == a["dir"]
    assert a["chain"][0]["file"] == f"{a['dir']}/a_test.der"
    assert a["chain"][1]["file"] == f"{a['dir']}/chainscan_test_intermediate.der"
    assert a["chain"][0]["role"] == "leaf" and a["chain"][0]["is_ca"] is False
    assert ip["chain"][2]["role"] == "root" and ip["chain"][2]["self_signed"] is True
    assert a["chain"][0]["sans"] == ["DNS:a.test"]
    assert a["chain"][0]["key_type"] == "EC" and b["chain"][0]["key_type"] == "RSA"
    assert b["chain"][0]["key_size"] == 2048
    assert a["chain"][0]["subject"] == pki.a_ec.cert.subject.rfc4514_string()
    assert a["chain"][0]["issuer"] == pki.intermediate.cert.subject.rfc4514_string()


@needs_openssl
def test_pins_match_the_openssl_pipeline(tls_server: ServerHandle, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"b.test:{tls_server.port}{{127.0.0.1}}\n")
    out = tmp_path / "out"
    assert chainscan(str(hosts), "-o", str(out), *FAST).returncode == 0
    (entry,) = entries(out).values()
    for cert in entry["chain"]:
        pem = x509.load_der_x509_certificate((out / cert["file"]).read_bytes()).public_bytes(
            Encoding.PEM
        )
        assert cert["spki_sha256"] == openssl_pin(pem)


def test_failures_and_bad_lines_are_results_with_line_numbers(
    tls_server: ServerHandle, refused_port: int, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        f"a.test:{tls_server.port}{{127.0.0.1}}\n"
        "example.com:99999\n"
        f"127.0.0.1:{refused_port}\n"
        "\n"
        "no-such-host.invalid\n"
        "exa mple.com\n"
    )
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), *FAST[:-1])
    assert proc.returncode == 1
    assert f"{hosts}:2: port 99999 is out of range (1-65535)" in proc.stderr
    assert f"{hosts}:6:" in proc.stderr
    assert "ok 1, failed 2, invalid 2" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    by_line = {e["input"]["line"]: e for e in manifest["targets"]}
    assert by_line[2]["status"] == "invalid" and by_line[2]["error_kind"] == "bad-input"
    assert by_line[3]["error_kind"] == "refused"
    assert by_line[5]["error_kind"] in ("dns", "dns-temporary")
    assert by_line[6]["status"] == "invalid"
    assert manifest["summary"]["by_error_kind"]["bad-input"] == 2


def test_stdin_duplicates_and_pem_format(tls_server: ServerHandle, tmp_path: Path) -> None:
    line = f"a.test:{tls_server.port}{{127.0.0.1}}\n"
    out = tmp_path / "out"
    proc = chainscan("-", "-o", str(out), "--cert-format", "pem", *FAST, stdin=line * 3)
    assert proc.returncode == 0, proc.stderr
    (entry,) = entries(out).values()
    assert entry["input"]["source"] == "-"
    leaf = out / entry["chain"][0]["file"]
    assert leaf.suffix == ".pem"
    assert (
        x509.load_pem_x509_certificate(leaf.read_bytes()).public_bytes(Encoding.DER)
        == tls_server.chain_for("a.test")[0]
    )
    tls_server.wait_finished(1)
    assert tls_server.handshakes == 1


def test_existing_output_is_refused_then_resumed(tls_server: ServerHandle, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test:{tls_server.port}{{127.0.0.1}}\n")
    out = tmp_path / "out"
    assert chainscan(str(hosts), "-o", str(out), *FAST).returncode == 0
    again = chainscan(str(hosts), "-o", str(out), *FAST)
    assert again.returncode == 2
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    hosts.write_text(
        f"a.test:{tls_server.port}{{127.0.0.1}}\nb.test:{tls_server.port}{{127.0.0.1}}\n"
    )
    resumed = chainscan(str(hosts), "-o", str(out), "--resume", *FAST)
    assert resumed.returncode == 0, resumed.stderr
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["sni"] for x in lines) == ["a.test", "b.test"]
    tls_server.wait_finished(2)
    assert tls_server.snis == ["a.test", "b.test"]  # a.test was not scanned twice


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    missing = chainscan(str(tmp_path / "nope.txt"), "-o", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert "nope.txt" in missing.stderr
    bad_option = chainscan("x.txt", "--concurrency", "0")
    assert bad_option.returncode == 2 and "must be at least 1" in bad_option.stderr


def test_help_explains_the_options() -> None:
    proc = chainscan("--help")
    assert proc.returncode == 0
    for option in ("--concurrency", "--rate", "--per-ip", "--deadline", "--retries", "--resume"):
        assert option in proc.stdout
    assert "exit codes" in proc.stdout and "KonySSLPinningTool" in proc.stdout
    for command in ("pins", "bundle", "inspect", "diff", "report", "merge"):
        assert f"chainscan {command} " in proc.stdout


def test_workers_write_the_same_scan_as_one_process(
    tls_server: ServerHandle, refused_port: int, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    names = [f"n{i}.test" for i in range(40)]
    hosts.write_text(
        "".join(f"{name}:{tls_server.port}{{127.0.0.1}}\n" for name in names)
        + f"127.0.0.1:{refused_port}\nbad:0\n"
        + f"a.test:{tls_server.port}{{127.0.0.1}}\n" * 2
    )

    def scan(out: Path, *extra: str) -> set[tuple[Any, ...]]:
        proc = chainscan(str(hosts), "-o", str(out), *FAST, *extra)
        assert proc.returncode == 1, proc.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["summary"] == {
            "targets": 43,
            "ok": 41,
            "failed": 1,
            "invalid": 1,
            "by_error_kind": manifest["summary"]["by_error_kind"],
        }
        rows = set()
        for e in manifest["targets"]:
            files = tuple((c["file"], c["sha256"]) for c in e["chain"])
            rows.add((e["input"]["line"], e["host"], e["sni"], e["status"], e["error_kind"], files))
            for name, digest in files:
                assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
        assert len(rows) == len(manifest["targets"])  # no duplicates
        return rows

    single = scan(tmp_path / "one")
    parallel = scan(tmp_path / "two", "--workers", "2")
    assert single == parallel
