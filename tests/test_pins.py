"""``chainscan pins``: pin sets, warnings and every output format, checked against each
platform's documented structure and against the OpenSSL pin pipeline.

Scan folders are written by hand (``tests/scan_output.py``) from the in-memory test PKI, so
these tests need no sockets; the end-to-end test at the bottom scans a loopback server.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
import plistlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from chainscan.commands._pins import (
    FORMATS,
    Backup,
    PinOptions,
    PinPlan,
    canonical_pin,
    observations_from_entries,
    plan_pins,
    render,
)
from chainscan.commands._pins_cli import main
from chainscan.manifest._model import ManifestEntry
from tests.conftest import PKI
from tests.pki import CA, Issued
from tests.scan_output import Target, needs_openssl, openssl_pin, write_scan
from tests.servers import ServerHandle

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PIN_RE = re.compile(r"^sha256/[A-Za-z0-9+/]{43}=$")
B64_PIN_RE = re.compile(r"^[A-Za-z0-9+/]{43}=$")
SPARE_VALUE = base64.b64encode(bytes(range(32))).decode()


@functools.cache
def root() -> CA:
    return CA("pins test root")


@functools.cache
def inter() -> CA:
    return root().child_ca("pins test intermediate")


@functools.cache
def inter_rsa() -> CA:
    return root().child_ca("pins test intermediate RSA", key_type="rsa")


@functools.cache
def leaf(name: str, key_type: str = "ec") -> Issued:
    issuer = inter_rsa() if name.startswith("c.") else inter()
    return issuer.issue(name, key_type="rsa" if key_type == "rsa" else "ec")


def pin_of(issued: Issued | CA) -> str:
    cert = issued.issued.cert if isinstance(issued, CA) else issued.cert
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


def fleet(out: Path, tld: str = "test") -> Path:
    """a.test (EC) and b.test (RSA) under one intermediate; c.test under another.

    ``tld="example.com"`` gives public-style names (a.example.com, ...), which TrustKit
    accepts: it refuses names whose suffix is not on the Public Suffix List, ``.test`` too.
    """
    return write_scan(
        out,
        [
            Target(f"a.{tld}", [leaf(f"a.{tld}").der, inter().der]),
            Target(f"b.{tld}", [leaf(f"b.{tld}", "rsa").der, inter().der]),
            Target(f"c.{tld}", [leaf(f"c.{tld}").der, inter_rsa().der, root().der]),
        ],
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), now=NOW)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# Pins equal the OpenSSL pipeline


@needs_openssl
@pytest.mark.parametrize("fmt", ["android", "okhttp", "ios", "trustkit", "voltmx", "json", "text"])
def test_every_format_carries_the_openssl_pins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    tld = "example.com" if fmt == "trustkit" else "test"
    fleet(tmp_path / "out", tld)
    code, out, _err = run(capsys, str(tmp_path / "out"), "--format", fmt, "--pin", "all")
    assert code == 0
    for issued in (leaf(f"a.{tld}"), leaf(f"b.{tld}", "rsa"), inter(), inter_rsa(), root()):
        pem = issued.pem
        expected = openssl_pin(pem)
        assert expected == pin_of(issued)
        assert expected in out, f"{fmt}: missing pin {expected}"


# --------------------------------------------------------------------------------------------
# android


def test_android_config_has_the_documented_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(capsys, str(tmp_path / "out"), "-f", "android", "--expiration", "2027-06-30")
    assert code == 0
    assert out.startswith('<?xml version="1.0" encoding="utf-8"?>')
    config = ET.fromstring(out)
    assert config.tag == "network-security-config"
    assert {child.tag for child in config} == {"domain-config"}
    for domain_config in config:
        assert {c.tag for c in domain_config} <= {"domain", "pin-set"}
        domains = domain_config.findall("domain")
        assert domains
        for domain in domains:
            assert domain.get("includeSubdomains") == "false"
            assert domain.text and domain.text == domain.text.strip().lower()
        (pin_set,) = domain_config.findall("pin-set")
        assert pin_set.get("expiration") == "2027-06-30"
        pins = pin_set.findall("pin")
        assert pins
        for pin in pins:
            assert pin.get("digest") == "SHA-256"
            assert B64_PIN_RE.match(pin.text or "")
            assert len(base64.b64decode(pin.text or "")) == 32


def test_android_groups_hosts_sharing_a_pin_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(
        capsys,
        str(tmp_path / "out"),
        "-f",
        "android",
        "--include-subdomains",
        "--pin",
        "intermediate",
    )
    assert code == 0
    groups = {
        tuple(d.text for d in dc.findall("domain")): [p.text for p in dc.iter("pin")]
        for dc in ET.fromstring(out)
    }
    # a.test and b.test share the intermediate: one <domain-config>, two <domain>s
    assert groups == {("a.test", "b.test"): [pin_of(inter())], ("c.test",): [pin_of(inter_rsa())]}
    assert all(d.get("includeSubdomains") == "true" for d in ET.fromstring(out).iter("domain"))


def test_android_expiration_auto_is_the_latest_pinned_expiry(tmp_path: Path) -> None:
    # issue 14: "auto" took the earliest expiry, so pinning switched off when the leaf expired,
    # years before the intermediate pin would stop matching. It is the date after which no
    # pin of the set can match a valid chain: the latest expiry.
    soon = inter().issue("soon.test", not_after=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    manifest = write_scan(tmp_path / "out", [Target("soon.test", [soon.der, inter().der])])
    plan = _plan(manifest, PinOptions(roles=("leaf", "intermediate"), expiration="auto"))
    pin_set = ET.fromstring(render(plan, "android")).find("domain-config/pin-set")
    assert pin_set is not None and pin_set.get("expiration") == "3000-01-01"


def test_android_without_expiration_has_no_attribute(tmp_path: Path) -> None:
    plan = _plan(fleet(tmp_path / "out"), PinOptions())
    for pin_set in ET.fromstring(render(plan, "android")).iter("pin-set"):
        assert "expiration" not in pin_set.attrib


# --------------------------------------------------------------------------------------------
# okhttp


def _okhttp_adds(snippet: str) -> dict[str, list[str]]:
    adds: dict[str, list[str]] = {}
    for match in re.finditer(r"\.add\(\s*(.*?)\s*\)", snippet, re.DOTALL):
        args = re.findall(r'"([^"]*)"', match.group(1))
        adds[args[0]] = args[1:]
    return adds


@pytest.mark.parametrize("language", ["kotlin", "java"])
def test_okhttp_snippet_pins_match_sha256_base64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], language: str
) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(
        capsys,
        str(tmp_path / "out"),
        "-f",
        "okhttp",
        "--pin",
        "leaf,intermediate",
        "--language",
        language,
    )
    assert code == 0
    assert "CertificatePinner.Builder()" in out
    assert ".certificatePinner(certificatePinner)" in out
    adds = _okhttp_adds(out)
    assert set(adds) == {"a.test", "b.test", "c.test"}
    for pins in adds.values():
        assert len(pins) == 2
        assert all(PIN_RE.match(p) for p in pins)
    assert adds["a.test"] == [f"sha256/{pin_of(leaf('a.test'))}", f"sha256/{pin_of(inter())}"]
    if language == "java":
        assert "new CertificatePinner.Builder()" in out and out.rstrip().endswith(";")
    else:
        assert "val certificatePinner = CertificatePinner.Builder()" in out and ";" not in out


def test_okhttp_subdomains_use_the_any_depth_pattern(tmp_path: Path) -> None:
    plan = _plan(fleet(tmp_path / "out"), PinOptions(include_subdomains=True))
    assert set(_okhttp_adds(render(plan, "okhttp"))) == {"**.a.test", "**.b.test", "**.c.test"}


# --------------------------------------------------------------------------------------------
# ios


def test_ios_fragment_parses_as_plist_with_pinned_domains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(capsys, str(tmp_path / "out"), "-f", "ios", "--pin", "leaf,intermediate")
    assert code == 0
    info = plistlib.loads(out.encode())
    domains = info["NSAppTransportSecurity"]["NSPinnedDomains"]
    assert set(domains) == {"a.test", "b.test", "c.test"}
    a = domains["a.test"]
    assert a["NSIncludesSubdomains"] is False
    assert a["NSPinnedLeafIdentities"] == [{"SPKI-SHA256-BASE64": pin_of(leaf("a.test"))}]
    assert a["NSPinnedCAIdentities"] == [{"SPKI-SHA256-BASE64": pin_of(inter())}]
    for config in domains.values():
        assert set(config) <= {
            "NSIncludesSubdomains",
            "NSPinnedCAIdentities",
            "NSPinnedLeafIdentities",
        }
    assert "xpiration" not in out  # ATS has no expiration key


def test_ios_warns_about_a_single_pin_in_either_list(tmp_path: Path) -> None:
    from chainscan.commands._pins import format_warnings

    plan = _plan(fleet(tmp_path / "out"), PinOptions(roles=("leaf", "intermediate")))
    assert plan.warnings == ()
    warnings = [w for w in format_warnings(plan, "ios") if w.host == "a.test"]
    assert [w.kind for w in warnings] == ["too-few-pins", "too-few-pins"]
    assert "NSPinnedLeafIdentities has only 1 pin" in warnings[0].message
    spare = Backup(spki_sha256=SPARE_VALUE, source="spare", kind=None)
    options = PinOptions(roles=("leaf", "intermediate"), backups=(spare,))
    assert format_warnings(_plan(fleet(tmp_path / "out2"), options), "ios") == ()


def test_ios_backups_go_to_the_list_of_their_kind(tmp_path: Path) -> None:
    spare_ca = CA("spare CA")
    backups = (
        Backup(spki_sha256=pin_of(spare_ca), source="spare-ca.pem", kind="ca"),
        Backup(spki_sha256="A" * 43 + "=", source="base64 value", kind=None),
    )
    plan = _plan(fleet(tmp_path / "out"), PinOptions(roles=("leaf",), backups=backups))
    ats = plistlib.loads(render(plan, "ios").encode())["NSAppTransportSecurity"]
    a = ats["NSPinnedDomains"]["a.test"]
    leaf_pins = [d["SPKI-SHA256-BASE64"] for d in a["NSPinnedLeafIdentities"]]
    ca_pins = [d["SPKI-SHA256-BASE64"] for d in a["NSPinnedCAIdentities"]]
    assert leaf_pins == [pin_of(leaf("a.test")), "A" * 43 + "="]
    assert ca_pins == [pin_of(spare_ca), "A" * 43 + "="]


# --------------------------------------------------------------------------------------------
# trustkit


def test_trustkit_policy_parses_with_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out", "example.com")
    code, out, _ = run(
        capsys,
        str(tmp_path / "out"),
        "-f",
        "trustkit",
        "--pin",
        "leaf",
        "--pin",
        "intermediate",
        "--expiration",
        "2027-01-31",
        "--report-uri",
        "https://reports.example/log",
        "--include-subdomains",
    )
    assert code == 0
    config = plistlib.loads(out.encode())["TSKConfiguration"]
    assert config["TSKSwizzleNetworkDelegates"] is False
    domains = config["TSKPinnedDomains"]
    assert set(domains) == {"a.example.com", "b.example.com", "c.example.com"}
    a = domains["a.example.com"]
    assert a["TSKPublicKeyHashes"] == [pin_of(leaf("a.example.com")), pin_of(inter())]
    assert a["TSKEnforcePinning"] is True
    assert a["TSKIncludeSubdomains"] is True
    assert a["TSKExpirationDate"] == "2027-01-31"
    assert a["TSKReportUris"] == ["https://reports.example/log"]
    for domain in domains.values():
        assert len(domain["TSKPublicKeyHashes"]) >= 2  # else TrustKit raises at start-up


def test_trustkit_report_only(tmp_path: Path) -> None:
    plan = _plan(fleet(tmp_path / "out"), PinOptions(enforce=False))
    config = plistlib.loads(render(plan, "trustkit").encode())["TSKConfiguration"]
    a = config["TSKPinnedDomains"]["a.test"]
    assert a["TSKEnforcePinning"] is False
    assert "TSKExpirationDate" not in a and "TSKReportUris" not in a


# --------------------------------------------------------------------------------------------
# voltmx, json, text


def test_voltmx_public_keys_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(capsys, str(tmp_path / "out"), "-f", "voltmx", "--include-subdomains")
    assert code == 0
    keys = json.loads(out)
    assert set(keys) == {"a.test", "*.a.test", "b.test", "*.b.test", "c.test", "*.c.test"}
    assert keys["a.test"] == keys["*.a.test"] == [pin_of(inter())]
    for pins in keys.values():
        assert all(B64_PIN_RE.match(p) for p in pins)


def test_json_lists_every_certificate_and_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out")
    code, out, err = run(capsys, str(tmp_path / "out"), "-f", "json", "--pin", "intermediate")
    assert code == 0
    report = json.loads(out)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {"a.test", "b.test", "c.test"}
    certs = hosts["c.test"]["endpoints"][0]["certificates"]
    assert [(c["role"], c["cn"]) for c in certs] == [
        ("leaf", "c.test"),
        ("intermediate", "pins test intermediate RSA"),
        ("root", "pins test root"),
    ]
    for cert in certs:
        assert cert["not_after"] == "3000-01-01T00:00:00Z"
        assert PIN_RE.match(cert["pin"])
    assert [c["pinned"] for c in certs] == [False, True, False]
    assert hosts["a.test"]["pins"][0]["pin"] == f"sha256/{pin_of(inter())}"
    kinds = {(w["host"], w["kind"]) for w in report["warnings"]}
    assert kinds == {(h, "too-few-pins") for h in ("a.test", "b.test", "c.test")}
    assert err.count("warning:") == 3


def test_text_shows_hosts_roles_expiry_and_pins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out")
    code, out, _ = run(capsys, str(tmp_path / "out"), "-f", "text", "-q")
    assert code == 0
    assert "a.test  (1 pin, seen at 127.0.0.1:443)" in out
    line = next(x for x in out.splitlines() if "pins test intermediate RSA" in x)
    assert line.split() == [
        "*",
        "intermediate",
        "pins",
        "test",
        "intermediate",
        "RSA",
        "3000-01-01",
        f"sha256/{pin_of(inter_rsa())}",
    ]


# --------------------------------------------------------------------------------------------
# Warnings


def _plan(manifest: Path, options: PinOptions) -> PinPlan:
    entries = [
        ManifestEntry.from_json(json.loads(line))
        for line in manifest.read_text().splitlines()
        if line
    ]
    scan = observations_from_entries(entries, root=str(manifest.parent))
    return plan_pins(scan, options, now=NOW)


def _kinds(plan: PinPlan) -> set[tuple[str | None, str]]:
    return {(w.host, w.kind) for w in plan.warnings}


def test_two_pins_and_no_warning(tmp_path: Path) -> None:
    plan = _plan(fleet(tmp_path / "out"), PinOptions(roles=("leaf", "intermediate")))
    assert plan.warnings == ()
    assert [len(h.pins) for h in plan.hosts] == [2, 2, 2]


def test_backup_from_the_live_chain_is_no_backup(tmp_path: Path) -> None:
    backups = (Backup(spki_sha256=pin_of(leaf("a.test")), source="a.pem", kind="leaf"),)
    plan = _plan(fleet(tmp_path / "out"), PinOptions(backups=backups))
    assert ("a.test", "backup-in-chain") in _kinds(plan)
    assert ("b.test", "backup-in-chain") not in _kinds(plan)
    # every host gets the backup as its second pin (a.test too: it is not one of its pins)
    assert all(len(h.pins) == 2 for h in plan.hosts)


def test_expiring_and_expired_pins_are_flagged(tmp_path: Path) -> None:
    certs = {
        "soon.test": inter().issue("soon.test", not_after=NOW + dt.timedelta(days=10)),
        "gone.test": inter().issue("gone.test", not_after=NOW - dt.timedelta(days=1)),
        "later.test": inter().issue("later.test", not_after=NOW + dt.timedelta(days=45)),
    }
    manifest = write_scan(
        tmp_path / "out", [Target(name, [c.der, inter().der]) for name, c in certs.items()]
    )
    plan = _plan(manifest, PinOptions(roles=("leaf", "intermediate")))
    assert _kinds(plan) == {("soon.test", "expiring"), ("gone.test", "expired")}
    (message,) = [w.message for w in plan.warnings if w.kind == "expiring"]
    assert "in 10 days" in message and "2026-01-11" in message
    wider = _plan(manifest, PinOptions(roles=("leaf", "intermediate"), warn_days=60))
    assert ("later.test", "expiring") in _kinds(wider)


def test_chains_that_disagree_across_addresses_are_unsafe(tmp_path: Path) -> None:
    other = inter_rsa().issue("a.test")
    manifest = write_scan(
        tmp_path / "out",
        [
            Target("a.test", [leaf("a.test").der, inter().der], address="127.0.0.1"),
            Target("a.test", [other.der, inter_rsa().der], address="127.0.0.2"),
        ],
    )
    plan = _plan(manifest, PinOptions())
    (host,) = plan.hosts
    assert ("a.test", "chains-disagree") in _kinds(plan)
    (warning,) = [w for w in plan.warnings if w.kind == "chains-disagree"]
    assert "leaf keys and intermediates" in warning.message
    assert "127.0.0.1:443" in warning.message and "127.0.0.2:443" in warning.message
    # both intermediates are pinned, so every chain seen still validates
    assert {p.spki_sha256 for p in host.pins} == {pin_of(inter()), pin_of(inter_rsa())}


def test_chains_that_disagree_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_scan(tmp_path / "monday", [Target("a.test", [leaf("a.test").der, inter().der])])
    renewed = inter().issue("a.test")
    write_scan(tmp_path / "tuesday", [Target("a.test", [renewed.der, inter().der])])
    code, out, err = run(
        capsys,
        str(tmp_path / "monday"),
        str(tmp_path / "tuesday" / "manifest.jsonl"),
        "-f",
        "json",
        "--pin",
        "leaf",
    )
    assert code == 0
    assert "[chains-disagree]" in err and "leaf keys differ" in err
    assert f"127.0.0.1:443 in {tmp_path / 'monday' / 'manifest.jsonl'}" in err
    (host,) = json.loads(out)["hosts"]
    assert [p["spki_sha256"] for p in host["pins"]] == [pin_of(leaf("a.test")), pin_of(renewed)]
    assert len(host["endpoints"]) == 2


def test_same_chain_at_several_addresses_agrees(tmp_path: Path) -> None:
    chain = [leaf("a.test").der, inter().der]
    manifest = write_scan(
        tmp_path / "out",
        [Target("a.test", chain, address="127.0.0.1"), Target("a.test", chain, address="::1")],
    )
    plan = _plan(manifest, PinOptions(roles=("leaf", "intermediate")))
    assert plan.warnings == ()


def test_missing_role_failed_hosts_and_hosts_left_out(tmp_path: Path) -> None:
    manifest = write_scan(
        tmp_path / "out",
        [
            Target("a.test", [leaf("a.test").der, inter().der]),
            Target("down.test", status="failed", error_kind="refused"),
        ],
    )
    plan = _plan(manifest, PinOptions(roles=("root",)))
    assert _kinds(plan) == {
        ("a.test", "missing-role"),
        ("a.test", "no-live-pin"),
        ("down.test", "no-chain"),
    }
    assert plan.pinned == ()
    assert "servers seldom send their root" in str(plan.warnings[0])


def test_nothing_pinned_exits_1_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_scan(tmp_path / "out", [Target("a.test", [leaf("a.test").der])])
    code, out, err = run(capsys, str(tmp_path / "out"), "-f", "android")
    assert (code, out) == (1, "")
    assert "no intermediate certificate" in err and "nothing written" in err


def test_host_filter_and_sni_name(tmp_path: Path) -> None:
    manifest = write_scan(
        tmp_path / "out",
        [
            Target("127.0.0.1", [leaf("a.test").der, inter().der], sni="A.Test"),
            Target("b.test", [leaf("b.test", "rsa").der, inter().der]),
        ],
    )
    plan = _plan(manifest, PinOptions(hosts=("a.test", "missing.test")))
    assert [h.host for h in plan.pinned] == ["a.test"]
    assert ("missing.test", "no-chain") in _kinds(plan)


def test_ip_hosts_get_a_warning_for_apple_formats(tmp_path: Path) -> None:
    manifest = write_scan(
        tmp_path / "out", [Target("127.0.0.1", [leaf("a.test").der, inter().der], sni=None)]
    )
    from chainscan.commands._pins import format_warnings

    plan = _plan(manifest, PinOptions())
    assert [h.host for h in plan.pinned] == ["127.0.0.1"]
    assert "not-a-domain" in {w.kind for w in format_warnings(plan, "ios")}
    assert "not-a-domain" not in {w.kind for w in format_warnings(plan, "android")}


# --------------------------------------------------------------------------------------------
# CLI: backups, output file, strict, errors


@needs_openssl
def test_backup_pins_from_files_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet(tmp_path / "out", "example.com")  # TrustKit refuses .test names
    spare = CA("spare CA")
    spare_leaf_key = spare.issue("next.a.test").key
    (tmp_path / "spare-ca.pem").write_bytes(spare.pem)
    (tmp_path / "spare.pub.pem").write_bytes(
        spare_leaf_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "next.b.test")]))
        .sign(spare_leaf_key, hashes.SHA256())
    )
    (tmp_path / "next.csr").write_bytes(csr.public_bytes(serialization.Encoding.DER))
    value = "sha256/" + SPARE_VALUE
    code, out, err = run(
        capsys,
        str(tmp_path / "out"),
        "-f",
        "trustkit",
        "--backup",
        str(tmp_path / "spare-ca.pem"),
        "--backup",
        str(tmp_path / "spare.pub.pem"),
        "--backup",
        str(tmp_path / "next.csr"),
        "--backup",
        value,
    )
    assert code == 0 and err == ""
    hashes_a = plistlib.loads(out.encode())["TSKConfiguration"]["TSKPinnedDomains"]["a.example.com"]
    # the public key and the CSR carry the same key: one pin
    assert hashes_a["TSKPublicKeyHashes"] == [
        pin_of(inter()),
        openssl_pin(spare.pem),
        pin_of(spare.issue("x.test", key=spare_leaf_key)),
        SPARE_VALUE,
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backup", "not-a-pin"], "neither a base64 SHA-256 pin"),
        (["--backup", "sha256/" + "A" * 10], "neither a base64 SHA-256 pin"),
        (["--pin", "branch"], "unknown role"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    fleet(tmp_path / "out")
    code, out, err = run(capsys, str(tmp_path / "out"), "-f", "android", *args)
    assert (code, out) == (2, "")
    assert message in err


def test_missing_manifest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, str(tmp_path), "-f", "json")
    assert code == 2 and "no manifest.jsonl or manifest.json" in err
    code, _out, err = run(capsys, str(tmp_path / "nope"), "-f", "json")
    assert code == 2 and "no such file or folder" in err


def test_bad_expiration_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path), "-f", "android", "--expiration", "31/12/2026"])
    assert excinfo.value.code == 2


def test_output_file_and_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet(tmp_path / "out")
    target = tmp_path / "app" / "res" / "xml" / "network_security_config.xml"
    code, out, err = run(
        capsys, str(tmp_path / "out"), "-f", "android", "-o", str(target), "--pin", "intermediate"
    )
    assert code == 0 and out == ""
    assert "warning: a.test: only 1 pin: add a backup pin (--backup)" in err
    assert err.count("[too-few-pins]") == 3
    ET.fromstring(target.read_text())
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind
    code, _out, _err = run(
        capsys, str(tmp_path / "out"), "-f", "android", "--strict", "--pin", "intermediate"
    )
    assert code == 1
    code, _out, err = run(
        capsys, str(tmp_path / "out"), "-f", "android", "--strict", "--pin", "all", "-q"
    )
    assert (code, err) == (0, "")  # 2+ pins each; a root nobody sent is no news for "all"


def test_reads_manifest_json_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = fleet(tmp_path / "out")
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.unlink()
    (tmp_path / "out" / "manifest.json").write_text(json.dumps({"schema": "x", "targets": entries}))
    code, out, _ = run(capsys, str(tmp_path / "out" / "manifest.json"), "-f", "voltmx")
    assert code == 0
    assert set(json.loads(out)) == {"a.test", "b.test", "c.test"}


def test_render_rejects_unknown_format(tmp_path: Path) -> None:
    plan = _plan(fleet(tmp_path / "out"), PinOptions())
    with pytest.raises(ValueError, match="unknown pin format 'pem'"):
        render(plan, "pem")
    assert set(FORMATS) == {"android", "okhttp", "ios", "trustkit", "voltmx", "json", "text"}


@pytest.mark.parametrize(
    "cn",
    [
        'x"--><pin digest="SHA-256">AAAA</pin><!--',
        "bell\x07 and\nnewline",
        "java \\u000a CertificatePinner.DEFAULT",
    ],
)
def test_hostile_names_stay_inert(tmp_path: Path, cn: str) -> None:
    evil = inter().issue("evil.test", cn=cn)
    manifest = write_scan(tmp_path / "out", [Target("evil.test", [evil.der, inter().der])])
    plan = _plan(manifest, PinOptions(roles=("leaf", "intermediate")))
    pins = [p.text for p in ET.fromstring(render(plan, "android")).iter("pin")]
    assert pins == [pin_of(evil), pin_of(inter())]
    ios = plistlib.loads(render(plan, "ios").encode())["NSAppTransportSecurity"]
    assert len(ios["NSPinnedDomains"]["evil.test"]["NSPinnedLeafIdentities"]) == 1
    trustkit = plistlib.loads(render(plan, "trustkit").encode())["TSKConfiguration"]
    assert len(trustkit["TSKPinnedDomains"]["evil.test"]["TSKPublicKeyHashes"]) == 2
    for language in ("kotlin", "java"):
        options = PinOptions(roles=("leaf", "intermediate"), language=language)
        code = render(_plan(manifest, options), "okhttp")
        assert "\\" not in code and "\x07" not in code
        assert len(code.splitlines()) == 14
    assert (
        json.loads(render(plan, "json"))["hosts"][0]["endpoints"][0]["certificates"][0]["cn"] == cn
    )


@given(st.binary(min_size=32, max_size=32))
def test_canonical_pin_accepts_every_sha256_digest(digest: bytes) -> None:
    value = base64.b64encode(digest).decode()
    assert canonical_pin(value) == value
    assert canonical_pin(f"sha256/{value}") == value
    assert canonical_pin(value[:-1]) is None


@given(st.binary(max_size=64).filter(lambda b: len(b) != 32))
def test_canonical_pin_rejects_other_lengths(data: bytes) -> None:
    assert canonical_pin(base64.b64encode(data).decode()) is None


# --------------------------------------------------------------------------------------------
# End to end: scan a loopback fleet, then pins, bundle and inspect on what the scan wrote


ROOT = Path(__file__).resolve().parent.parent


def chainscan(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "chainscan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.integration
@needs_openssl
def test_from_a_loopback_scan_to_pins_bundle_and_inspect(
    tmp_path: Path, tls_server: ServerHandle, pki: PKI
) -> None:
    port = tls_server.port
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test:{port}{{127.0.0.1}}\nb.test:{port}{{127.0.0.1}}\n")
    out = tmp_path / "out"
    scan = chainscan(hosts, "-o", out, "-q")
    assert scan.returncode == 0, scan.stderr

    leaf_a, leaf_b = openssl_pin(pki.a_ec.pem), openssl_pin(pki.b_rsa.pem)
    intermediate = openssl_pin(pki.intermediate.pem)

    android = chainscan(
        "pins",
        out,
        "--format",
        "android",
        "--pin",
        "leaf,intermediate",
        "--quiet-warnings",
        "private-ca",
    )
    assert android.returncode == 0, android.stderr
    assert android.stderr == ""
    domains = {
        dc.findtext("domain"): [p.text for p in dc.iter("pin")]
        for dc in ET.fromstring(android.stdout)
    }
    assert domains == {"a.test": [leaf_a, intermediate], "b.test": [leaf_b, intermediate]}

    # the intermediate alone: one shared <domain-config>, and the missing backup is flagged
    shared = chainscan(
        "pins", out / "manifest.json", "--format", "android", "--pin", "intermediate"
    )
    assert shared.returncode == 0
    (group,) = ET.fromstring(shared.stdout)
    assert [d.text for d in group.findall("domain")] == ["a.test", "b.test"]
    assert shared.stderr.count("[too-few-pins]") == 2

    # TrustKit raises at start-up on a name without a Public Suffix List suffix: refused
    trustkit = chainscan("pins", out, "-f", "trustkit", "--pin", "leaf", "--pin", "intermediate")
    assert (trustkit.returncode, trustkit.stdout) == (1, "")
    assert "a.test: TrustKit raises 'invalid domain'" in trustkit.stderr
    assert "[trustkit-invalid-domain]" in trustkit.stderr

    okhttp = chainscan("pins", out, "-f", "okhttp", "--language", "java", "--pin", "intermediate")
    adds = _okhttp_adds(okhttp.stdout)
    assert adds == {"a.test": [f"sha256/{intermediate}"], "b.test": [f"sha256/{intermediate}"]}

    ios = chainscan("pins", out, "-f", "ios", "--pin", "leaf")
    pinned = plistlib.loads(ios.stdout.encode())["NSAppTransportSecurity"]["NSPinnedDomains"]
    assert pinned["b.test"]["NSPinnedLeafIdentities"] == [{"SPKI-SHA256-BASE64": leaf_b}]

    app = tmp_path / "workspace" / "App"
    (app / "resources" / "common").mkdir(parents=True)
    (app / "resources" / "common" / "infoplist_configuration.json").write_text('{"keep": 1}')
    bundle = chainscan("bundle", out, "--kony-app", app, "--pin", "both")
    assert bundle.returncode == 0, bundle.stderr
    for folder in (
        "resources/mobile/native/iphone/certs",
        "resources/tablet/native/ipad/certs",
        "resources/mobile/native/android/assets/certs",
        "resources/tablet/native/androidtab/assets/certs",
    ):
        files = {p.name: p.read_bytes() for p in (app / folder).iterdir()}
        assert files == {
            "a_test.der": pki.a_ec.der,
            "b_test.der": pki.b_rsa.der,
            "chainscan_test_intermediate.der": pki.intermediate.der,
        }
    config = json.loads((app / "resources/common/infoplist_configuration.json").read_text())
    assert config == {"keep": 1, "allowbundledonly": True}

    saved = next(out.glob("a.test_*/a_test.der"))
    inspect = chainscan("inspect", saved, "--json")
    assert inspect.returncode == 0, inspect.stderr
    (facts,) = json.loads(inspect.stdout)
    assert facts["pin"] == f"sha256/{leaf_a}" and facts["cn"] == "a.test"
