"""``chainscan inspect``: the manifest's facts for certificate, key and CSR files, offline.

Certificates must come out exactly as ``analyze_der`` (the scan's analysis) describes them;
key and CSR pins are checked against the OpenSSL pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from chainscan.analysis import _analyze
from chainscan.analysis._analyze import analyze_der
from chainscan.commands import _inspect
from chainscan.commands._inspect import read_material
from chainscan.commands._inspect_cli import main
from tests.pki import CA, Issued
from tests.scan_output import needs_openssl, openssl_pin, openssl_pubkey_pin


@functools.cache
def root() -> CA:
    return CA("inspect test root")


@functools.cache
def inter() -> CA:
    return root().child_ca("inspect test intermediate", key_type="rsa")


@functools.cache
def leaf() -> Issued:
    return inter().issue("inspect.test", "127.0.0.1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def public_pem(issued: Issued) -> bytes:
    return issued.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def csr_for(issued: Issued, *, ca: bool = False) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "next.inspect.test")])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName("next.inspect.test")]), critical=False
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    return builder.sign(issued.key, hashes.SHA256())  # type: ignore[arg-type]


def test_inspect_calls_the_scans_analysis() -> None:
    assert _inspect.analyze_der is _analyze.analyze_der


def test_pem_bundle_gives_the_manifest_facts_of_each_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(b"leading text\n" + leaf().pem + inter().pem + b"junk\n" + root().pem)
    code, out, err = run(capsys, str(bundle), "--json")
    assert (code, err) == (0, "")
    items = json.loads(out)
    ders = [leaf().der, inter().der, root().der]
    assert [i["role"] for i in items] == ["leaf", "intermediate", "root"]
    assert [i["position"] for i in items] == [0, 1, 2]
    for item, der in zip(items, ders, strict=True):
        facts: dict[str, Any] = dataclasses.asdict(analyze_der(der))
        facts.pop("size")
        facts["sans"] = list(facts["sans"])
        assert {k: item[k] for k in facts} == facts
        assert item["pin"] == f"sha256/{facts['spki_sha256']}"
        assert item["kind"] == "certificate" and item["source"] == str(bundle)


@needs_openssl
def test_der_certificate_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "leaf.der"
    path.write_bytes(leaf().der)
    code, out, _ = run(capsys, str(path))
    assert code == 0
    assert out.splitlines()[0] == f"{path}: certificate"
    fields = dict(line.split(None, 1) for line in out.splitlines()[1:])
    assert fields["pin"] == f"sha256/{openssl_pin(leaf().pem)}"
    assert fields["cn"] == "inspect.test"
    assert fields["sans"] == "DNS:inspect.test, IP:127.0.0.1"
    assert fields["is_ca"] == "no" and fields["role"] == "leaf"


@needs_openssl
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_public_keys_pem_and_der_match_openssl(tmp_path: Path, key_type: str) -> None:
    issued = inter().issue("key.test", key_type="rsa" if key_type == "rsa" else "ec")
    pem = public_pem(issued)
    der = issued.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = openssl_pubkey_pin(pem)
    assert expected == openssl_pin(issued.pem)
    for data in (pem, der):
        (item,) = read_material(data, "spare")
        assert item.kind == "public-key"
        assert item.pin == f"sha256/{expected}"
        assert item.backup_kind is None
        assert item.key_type == ("RSA" if key_type == "rsa" else "EC")


def test_csr_pem_and_der(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csr = csr_for(leaf())
    (tmp_path / "next.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "next.der").write_bytes(csr.public_bytes(serialization.Encoding.DER))
    code, out, _ = run(capsys, str(tmp_path / "next.csr"), str(tmp_path / "next.der"), "--json")
    assert code == 0
    items = json.loads(out)
    assert [i["kind"] for i in items] == ["csr", "csr"]
    for item in items:
        assert item["cn"] == "next.inspect.test"
        assert item["sans"] == ["DNS:next.inspect.test"]
        assert item["pin"] == analyze_der(leaf().der).pin
    (material,) = read_material(csr.public_bytes(serialization.Encoding.DER), "x")
    assert material.backup_kind == "leaf"
    ca_csr = csr_for(leaf(), ca=True).public_bytes(serialization.Encoding.PEM)
    assert read_material(ca_csr, "x")[0].backup_kind == "ca"


def test_private_key_shows_only_the_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spare.key"
    path.write_bytes(leaf().key_pem)
    code, out, _ = run(capsys, str(path), "--json")
    assert code == 0
    (item,) = json.loads(out)
    assert item["kind"] == "private-key"
    assert item["pin"] == analyze_der(leaf().der).pin
    assert "PRIVATE" not in out and "BEGIN" not in out


def test_mixed_pem_file_in_order() -> None:
    data = (
        leaf().pem
        + public_pem(leaf())
        + csr_for(leaf()).public_bytes(serialization.Encoding.PEM)
        + b"-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n"
    )
    items = read_material(data, "mixed.pem")
    assert [(i.kind, i.index) for i in items] == [
        ("certificate", 1),
        ("public-key", 2),
        ("csr", 3),
    ]
    assert len({i.pin for i in items}) == 1
    assert items[1].label == "mixed.pem #2"


def test_unparsable_der_is_still_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.der"
    path.write_bytes(b"\x30\x03\x02\x01\x00")
    code, out, _ = run(capsys, str(path), "--json")
    assert code == 0
    (item,) = json.loads(out)
    assert item["kind"] == "certificate"
    assert item["parse_error"].startswith("not a parsable certificate")
    assert item["sha256"] == analyze_der(b"\x30\x03\x02\x01\x00").sha256


def test_unusable_files_exit_1_and_the_rest_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "dh.pem").write_text(
        "-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n"
    )
    (tmp_path / "leaf.pem").write_bytes(leaf().pem)
    code, out, err = run(
        capsys,
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.pem"),
        str(tmp_path / "dh.pem"),
        str(tmp_path / "leaf.pem"),
    )
    assert code == 1
    assert "notes.txt: not a PEM or DER certificate, public key, CSR or private key" in err
    assert "missing.pem: cannot read" in err
    assert "(only DH PARAMETERS)" in err
    assert "inspect.test" in out


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_bytes_are_described_or_refused_never_crash(data: bytes) -> None:
    try:
        items = read_material(data, "fuzz")
    except ValueError as exc:
        assert str(exc).startswith("fuzz")
    else:
        assert items
        for item in items:
            json.dumps(item.to_json())
