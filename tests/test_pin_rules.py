"""Issue 14: pin configurations that can never brick an app.

Each format's output is fed to a checker that applies that platform's own rules, written here
from reading them (never from chainscan's code):

* TrustKit: :func:`trustkit_parse` re-implements the checks of TrustKit's
  ``parse_configuration.m`` (``GetRegistryLength`` from domain-registry-provider: 0 for a
  non-ASCII name, one over 255 bytes, or one whose registry is not on the Public Suffix List;
  the pin-count and includeSubdomains checks) and raises where TrustKit raises at start-up.
* ATS: :func:`ats_connects` applies Apple's NSPinnedDomains rules: a match in *each* identity
  list written (the leaf's key for NSPinnedLeafIdentities, a CA key of the chain for
  NSPinnedCAIdentities).
* Android: :func:`android_violations` applies the network security config parser's and lint's
  rules (NetworkSecurityConfigDetector: one <pin-set>, SHA-256 digests of 32 bytes, no
  duplicate domains, ASCII host names, element order of the documented schema).
* OkHttp: the Java snippet is compiled and run against stub classes whose ``add()`` applies
  the rules of OkHttp's ``CertificatePinner.Pin`` (and demands the canonical ASCII host OkHttp
  compares with).

The fleet is on loopback: public-style names, private-style names and an IP target, scanned
with the test PKI's root as the trust store.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import plistlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from publicsuffixlist import PublicSuffixList

from chainscan.analysis._analyze import analyze_der
from chainscan.commands._pins import Backup, PinOptions, observations_from_entries, plan_pins
from chainscan.commands._pins_cli import main as pins_main
from chainscan.manifest._model import ManifestEntry
from chainscan.manifest._reader import read_manifest_entries
from tests.inventory_fleet import run
from tests.pki import CA
from tests.scan_output import Target, write_scan
from tests.servers import TLSServer, served_chain

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "8", "-q"]

# --------------------------------------------------------------------------------------------
# The platforms' rules, re-implemented from their sources and documentation


class TrustKitRaised(Exception):
    """What TrustKit's parseTrustKitConfiguration raises: the app crashes at start-up."""


_PSL = PublicSuffixList(accept_unknown=False)


def registry_length(name: str) -> int:
    """domain-registry-provider's GetRegistryLength (unknown registries not allowed)."""
    if len(name) > 255 or not name.isascii():
        return 0
    labels = name.lower().rstrip(".").split(".")
    if not all(labels):
        return 0
    suffix = _PSL.publicsuffix(".".join(labels))
    return 0 if suffix is None else len(suffix)


def trustkit_parse(text: str) -> dict[str, set[bytes]]:
    """parse_configuration.m's checks, in its order; returns domain -> pin digests."""
    config = plistlib.loads(text.encode())["TSKConfiguration"]
    domains = config.get("TSKPinnedDomains")
    if not domains:
        raise TrustKitRaised("TrustKit was initialized with no pinned domains")
    out = {}
    for name, policy in domains.items():
        if registry_length(name) == 0:
            raise TrustKitRaised(f"TrustKit was initialized with an invalid domain {name}")
        if policy.get("TSKIncludeSubdomains") is True and registry_length(name) == len(name):
            raise TrustKitRaised(f"includeSubdomains for a domain suffix {name}")
        enforce = policy.get("TSKEnforcePinning", True)
        for uri in policy.get("TSKReportUris", []):
            if not uri or any(ch.isspace() for ch in uri):  # NSURL URLWithString: nil
                raise TrustKitRaised(f"invalid value for TSKReportUris for domain {name}")
        pins = set()
        for value in policy.get("TSKPublicKeyHashes", []):
            try:
                digest = base64.b64decode(value, validate=True)
            except binascii.Error:
                digest = b""
            if len(digest) != 32:
                raise TrustKitRaised(f"invalid Pin {value} for domain {name}")
            pins.add(digest)
        required = 2 if enforce else 1
        if len(pins) < required:
            raise TrustKitRaised(
                f"TrustKit was initialized with less than {required} pins (ie. no backup "
                f"pins) for domain {name}"
            )
        out[name] = pins
    return out


def ats_connects(text: str, host: str, leaf_key: str, ca_keys: set[str]) -> bool:
    """ATS with NSPinnedDomains: a match in each identity list written."""
    domains = plistlib.loads(text.encode())["NSAppTransportSecurity"]["NSPinnedDomains"]
    config = domains[host]
    lists = {
        k: config[k] for k in ("NSPinnedLeafIdentities", "NSPinnedCAIdentities") if k in config
    }
    assert lists, "a pinned domain needs one of the identity lists"
    for key, items in lists.items():
        values = {i["SPKI-SHA256-BASE64"] for i in items}
        wanted = {leaf_key} if key == "NSPinnedLeafIdentities" else ca_keys
        if not values & wanted:
            return False
    return True


_ANDROID_ORDER = {"domain": 0, "certificateTransparency": 1, "trust-anchors": 2, "pin-set": 3}


def android_violations(text: str) -> list[str]:
    """The network security config parser's and lint's errors (NetworkSecurityConfigDetector)."""
    root = ET.fromstring(text)
    problems = []
    if root.tag != "network-security-config":
        problems.append(f"root <{root.tag}>")
    seen: set[str] = set()
    for config in root.iter("domain-config"):
        children = [c.tag for c in config]
        if "domain" not in children:
            problems.append("No <domain> elements in <domain-config>")
        ranks = [_ANDROID_ORDER.get(tag, 9) for tag in children]
        if ranks != sorted(ranks) or 9 in ranks:
            problems.append(f"unexpected elements or order: {children}")
        if children.count("pin-set") > 1:
            problems.append("Multiple <pin-set> elements are not allowed")
        for domain in config.findall("domain"):
            name = (domain.text or "").strip()
            if name.lower() in seen:
                problems.append(f"Duplicate domain names are not allowed: {name}")
            seen.add(name.lower())
            if not name or not name.isascii() or any(ch in name for ch in "/\\ ?#@"):
                problems.append(f"not a host name: {name!r}")
            if domain.get("includeSubdomains") not in (None, "true", "false"):
                problems.append("includeSubdomains must be true or false")
        for ct in config.findall("certificateTransparency"):
            if ct.get("enabled") not in ("true", "false"):
                problems.append("certificateTransparency enabled must be true or false")
        for pin_set in config.findall("pin-set"):
            expiration = pin_set.get("expiration")
            if expiration is not None:
                dt.datetime.strptime(expiration, "%Y-%m-%d")  # the parser's format
            for pin in pin_set.findall("pin"):
                if pin.get("digest") != "SHA-256":
                    problems.append("Invalid digest algorithm. Supported digests: SHA-256")
                if len(base64.b64decode(pin.text or "", validate=True)) != 32:
                    problems.append("Decoded digest length does not match SHA-256")
        for certificates in config.iter("certificates"):
            src = certificates.get("src") or ""
            if not (src in ("system", "user") or src.startswith("@raw/")):
                problems.append(f"Unknown certificates src attribute {src!r}")
    return problems


# --------------------------------------------------------------------------------------------
# A loopback fleet: public-style names, private-style names, an IP target, a private PKI

PUBLIC = ("api.example.com", "www.example.com", "login.example.org")
PRIVATE_NAMES = ("db.internal", "git.corp", "nas.local", "printer.lan", "ci.test")
PRIVATE_PKI = "vault.example.net"


@dataclass(frozen=True, slots=True)
class FleetScan:
    out: Path
    root: CA
    inter: CA
    spare: CA
    tmp: Path
    private_inter: CA


@pytest.fixture(scope="module")
def fleet_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetScan]:
    tmp = tmp_path_factory.mktemp("pinfleet")
    root = CA("fleet root")
    inter = root.child_ca("fleet issuing CA")
    other_root = CA("private root")
    other_inter = other_root.child_ca("private issuing CA")
    chains = {}
    for index, name in enumerate(PUBLIC + PRIVATE_NAMES):
        folder = tmp / f"c{index}"
        folder.mkdir()
        chains[name] = served_chain(folder, inter.issue(name), inter)
    folder = tmp / "private"
    folder.mkdir()
    chains[PRIVATE_PKI] = served_chain(folder, other_inter.issue(PRIVATE_PKI), other_inter)
    folder = tmp / "ip"
    folder.mkdir()
    chains[None] = served_chain(folder, inter.issue("ip.example.com", "127.0.0.1"), inter)
    (tmp / "root.pem").write_bytes(root.pem)
    with TLSServer(chains) as handle:
        hosts = tmp / "hosts.txt"
        lines = [f"{name}:{handle.port}{{127.0.0.1}}" for name in (*PUBLIC, *PRIVATE_NAMES)]
        lines += [f"{PRIVATE_PKI}:{handle.port}{{127.0.0.1}}", f"127.0.0.1:{handle.port}"]
        hosts.write_text("\n".join(lines) + "\n")
        out = tmp / "out"
        code, _stdout, stderr = run(
            str(hosts), "-o", str(out), "--trust-store", str(tmp / "root.pem"), *FAST
        )
    assert code == 0, stderr
    yield FleetScan(
        out=out,
        root=root,
        inter=inter,
        spare=CA("fleet spare CA"),
        tmp=tmp,
        private_inter=other_inter,
    )


def pins(*argv: str) -> tuple[int, str, str]:
    return run("pins", *argv)


def spki(ca: CA) -> str:
    value = analyze_der(ca.der).spki_sha256
    assert value is not None
    return value


def test_the_manifest_records_the_verified_root(fleet_scan: FleetScan) -> None:
    entries = {
        e["sni"] or e["host"]: e for e in read_manifest_entries(fleet_scan.out / "manifest.json")
    }
    trust = entries["api.example.com"]["trust"]
    assert trust["trusted"] is True
    store = trust["chain"][-1]
    assert store["source"] == "store"
    assert store["spki_sha256"] == spki(fleet_scan.root)
    assert store["cn"] == "fleet root" and store["not_after"]
    assert entries[PRIVATE_PKI]["trust"]["trusted"] is False


def test_default_trustkit_output_loads_and_names_every_refused_host(
    fleet_scan: FleetScan,
) -> None:
    code, out, err = pins(str(fleet_scan.out), "-f", "trustkit")
    assert code == 1  # hosts were left out, and --allow-partial was not given
    domains = trustkit_parse(out)  # raises where TrustKit would crash the app
    assert set(domains) == set(PUBLIC)
    for name in PUBLIC:  # the intermediate and the verified chain's root: 2 pins by default
        assert domains[name] == {
            base64.b64decode(spki(fleet_scan.inter)),
            base64.b64decode(spki(fleet_scan.root)),
        }
    for name in (*PRIVATE_NAMES, "127.0.0.1"):
        assert f"error: {name}: TrustKit raises 'invalid domain'" in err
        assert name not in out
    assert err.count("[trustkit-invalid-domain]") == len(PRIVATE_NAMES) + 1
    # the private PKI's root is in no store and not sent: its intermediate alone is 1 pin
    assert f"error: {PRIVATE_PKI}: TrustKit raises at start-up with fewer than 2 pins" in err
    assert "7 hosts left out (6 trustkit-invalid-domain, 1 trustkit-too-few-pins)" in err
    config = plistlib.loads(out.encode())["TSKConfiguration"]["TSKPinnedDomains"]
    assert all(p["TSKDisableDefaultReportUri"] is True for p in config.values())
    code, again, _ = pins(str(fleet_scan.out), "-f", "trustkit", "--allow-partial")
    assert (code, again) == (0, out)


def test_trustkit_single_pin_is_refused_not_written(fleet_scan: FleetScan) -> None:
    # issue 14, problem 1: one intermediate pin with TSKEnforcePinning crashes at start-up
    code, out, err = pins(
        str(fleet_scan.out), "-f", "trustkit", "--pin", "intermediate", "--host", "api.example.com"
    )
    assert (code, out) == (1, "")
    assert "api.example.com: TrustKit raises at start-up with fewer than 2 pins" in err
    assert "[trustkit-too-few-pins]" in err
    code, out, _ = pins(
        str(fleet_scan.out),
        "-f",
        "trustkit",
        "--pin",
        "intermediate",
        "--no-enforce",
        "--host",
        "api.example.com",
    )
    assert code == 0
    assert set(trustkit_parse(out)) == {"api.example.com"}


def test_trustkit_include_subdomains_on_a_public_suffix_is_refused(tmp_path: Path) -> None:
    root = CA("suffix root")
    inter = root.child_ca("suffix CA")
    write_scan(
        tmp_path / "out",
        [Target("github.io", [inter.issue("github.io").der, inter.der, root.der])],
    )
    code, out, err = pins(str(tmp_path / "out"), "-f", "trustkit", "--include-subdomains")
    assert (code, out) == (1, "")
    assert "[trustkit-subdomains-on-suffix]" in err
    code, out, _ = pins(str(tmp_path / "out"), "-f", "trustkit")
    assert code == 0 and set(trustkit_parse(out)) == {"github.io"}


def test_trustkit_report_uri_goes_only_where_asked(fleet_scan: FleetScan) -> None:
    code, out, _ = pins(
        str(fleet_scan.out),
        "-f",
        "trustkit",
        "--host",
        "api.example.com",
        "--report-uri",
        "https://reports.example.com/pins",
    )
    assert code == 0
    policy = plistlib.loads(out.encode())["TSKConfiguration"]["TSKPinnedDomains"]
    assert policy["api.example.com"]["TSKDisableDefaultReportUri"] is True
    assert policy["api.example.com"]["TSKReportUris"] == ["https://reports.example.com/pins"]


def test_ios_list_of_backups_only_is_refused(tmp_path: Path, fleet_scan: FleetScan) -> None:
    # issue 14, problem 4: a server that sends no intermediate, --pin leaf,intermediate and a
    # spare CA: NSPinnedCAIdentities would hold only the spare, and ATS needs a match in each
    root = CA("ats root")
    inter = root.child_ca("ats CA")
    leaf = inter.issue("solo.example.com")
    write_scan(tmp_path / "out", [Target("solo.example.com", [leaf.der])])
    (tmp_path / "spare.pem").write_bytes(fleet_scan.spare.pem)
    for roles in ("leaf,intermediate", "leaf"):
        code, out, err = pins(
            str(tmp_path / "out"),
            "-f",
            "ios",
            "--pin",
            roles,
            "--backup",
            str(tmp_path / "spare.pem"),
        )
        assert (code, out) == (1, ""), roles
        assert "NSPinnedCAIdentities holds no key of its live chains" in err
        assert "[ats-list-without-live-key]" in err
    # what the default writes for the fleet connects under ATS's rules
    code, out, err = pins(str(fleet_scan.out), "-f", "ios", "--allow-partial")
    assert code == 0
    assert "127.0.0.1: App Transport Security pins domain names" in err
    for name in PUBLIC:
        assert ats_connects(
            out, name, "leaf-not-pinned", {spki(fleet_scan.inter), spki(fleet_scan.root)}
        )
        assert not ats_connects(out, name, "x", {spki(fleet_scan.spare)})


def test_android_default_output_follows_the_parser_and_lint(fleet_scan: FleetScan) -> None:
    code, out, err = pins(
        str(fleet_scan.out), "-f", "android", "--expiration", "auto", "--certificate-transparency"
    )
    assert code == 0, err  # Android accepts every name here, the IP included
    assert android_violations(out) == []
    domains = {d.text for d in ET.fromstring(out).iter("domain")}
    assert domains == {*PUBLIC, *PRIVATE_NAMES, PRIVATE_PKI, "127.0.0.1"}
    assert out.count('<certificateTransparency enabled="true"/>') == len(ET.fromstring(out))
    # auto: the latest expiry of the pins (the root's), and a warning that pinning stops then
    root_expiry = spki_expiry(fleet_scan.root)
    for pin_set in ET.fromstring(out).iter("pin-set"):
        if len(pin_set.findall("pin")) == 2:
            assert pin_set.get("expiration") == root_expiry
    assert f"after {root_expiry} Android stops enforcing the pins of " in err
    # one line per date, not per host: the fleet root's, and the private CA's if it differs
    assert 1 <= err.count("[expiration]") <= 2
    assert f"{PRIVATE_PKI}: no trust store the scan used trusts its chain" in err
    assert "<trust-anchors>" in err


def test_android_carries_the_private_ca_as_a_trust_anchor(
    fleet_scan: FleetScan, tmp_path: Path
) -> None:
    # issue 14, problem 6: Android checks trust before pins; a private CA must be trusted
    target = tmp_path / "res" / "xml" / "network_security_config.xml"
    code, out, err = pins(str(fleet_scan.out), "-f", "android", "-o", str(target))
    assert (code, out) == (0, "")
    (saved,) = (tmp_path / "res" / "raw").iterdir()
    assert saved.read_bytes() == fleet_scan.private_inter.der
    assert saved.name.startswith("ca_private_issuing_ca_") and saved.suffix == ".der"
    assert f"saved the private CA {saved}" in err
    assert "[private-ca]" not in err
    text = target.read_text()
    assert android_violations(text) == []
    configs = {tuple(d.text for d in c.findall("domain")): c for c in ET.fromstring(text)}
    (vault,) = [c for hosts, c in configs.items() if PRIVATE_PKI in hosts]
    assert [c.get("src") for c in vault.iter("certificates")] == [f"@raw/{saved.stem}"]
    others = [c for hosts, c in configs.items() if PRIVATE_PKI not in hosts]
    assert all(c.find("trust-anchors") is None for c in others)


def spki_expiry(ca: CA) -> str:
    return ca.cert.not_valid_after_utc.strftime("%Y-%m-%d")


def test_pin_root_uses_the_verified_chain_root(fleet_scan: FleetScan) -> None:
    # issue 14, problem 7: no server of the fleet sends its root; the trust store has it
    _code, out, err = pins(str(fleet_scan.out), "-f", "json", "--pin", "root")
    report = json.loads(out)
    pinned = {
        h["host"]: [p["spki_sha256"] for p in h["pins"]] for h in report["hosts"] if h["pinned"]
    }
    assert pinned["api.example.com"] == [spki(fleet_scan.root)]
    assert PRIVATE_PKI not in pinned  # untrusted: no verified root to pin
    assert "vault.example.net: the chain from" in err and "[missing-role]" in err


def test_private_pki_is_flagged_per_host_and_format(fleet_scan: FleetScan) -> None:
    wanted = {
        "ios": "trust that CA in code",
        "okhttp": "HandshakeCertificates",
        "trustkit": "SecTrustSetAnchorCertificates",
        "voltmx": "bundle the CA certificate",
    }
    for fmt, words in wanted.items():
        _code, _out, err = pins(
            str(fleet_scan.out), "-f", fmt, "--allow-partial", "--pin", "leaf,intermediate"
        )
        lines = [line for line in err.splitlines() if "[private-ca]" in line]
        assert len(lines) == 1 and PRIVATE_PKI in lines[0] and words in lines[0], fmt


# --------------------------------------------------------------------------------------------
# OkHttp: patterns, IDNA, and the Java snippet run against OkHttp's pattern rules

JAVA_STUBS = {
    "okhttp3/CertificatePinner.java": """
package okhttp3;
import java.util.*;
public final class CertificatePinner {
  public static final List<String> PATTERNS = new ArrayList<>();
  public static final class Builder {
    public Builder add(String pattern, String... pins) {
      // CertificatePinner.Pin: '*' only as a leading "*." or "**."
      boolean ok = (pattern.startsWith("*.") && pattern.indexOf("*", 1) == -1)
          || (pattern.startsWith("**.") && pattern.indexOf("*", 2) == -1)
          || pattern.indexOf("*") == -1;
      if (!ok) throw new IllegalArgumentException("Unexpected pattern: " + pattern);
      String host = pattern.startsWith("**.") ? pattern.substring(3)
          : pattern.startsWith("*.") ? pattern.substring(2) : pattern;
      // toCanonicalHost: IDNA to ASCII, then no character a host may not hold
      String canonical = java.net.IDN.toASCII(host).toLowerCase(Locale.US);
      for (char c : canonical.toCharArray()) {
        if (c <= ' ' || c == 127 || "#%/:?@[\\\\]".indexOf(c) >= 0)
          throw new IllegalArgumentException("Invalid pattern: " + pattern);
      }
      // OkHttp compares canonical hosts: a pattern that is not one never matches
      if (!canonical.equals(host)) throw new IllegalArgumentException("Not canonical: " + pattern);
      if (pins.length == 0) throw new IllegalArgumentException("no pins");
      for (String pin : pins) {
        if (!pin.startsWith("sha256/"))
          throw new IllegalArgumentException("pins must start with 'sha256/': " + pin);
        if (Base64.getDecoder().decode(pin.substring(7)).length != 32)
          throw new IllegalArgumentException("Invalid pin hash: " + pin);
      }
      PATTERNS.add(pattern);
      return this;
    }
    public CertificatePinner build() { return new CertificatePinner(); }
  }
}
""",
    "okhttp3/OkHttpClient.java": """
package okhttp3;
public final class OkHttpClient {
  public static final class Builder {
    public Builder certificatePinner(CertificatePinner pinner) { return this; }
    public OkHttpClient build() { return new OkHttpClient(); }
  }
}
""",
}

JAVAC = shutil.which("javac")
needs_javac = pytest.mark.skipif(
    JAVAC is None and not os.environ.get("CI"),
    reason="javac not found (tests/setup-system.sh installs it; CI fails instead of skipping)",
)


def run_java_snippet(snippet: str, tmp: Path) -> list[str]:
    """Compile and run the snippet against the stubs; return the patterns add() accepted."""
    for rel, source in JAVA_STUBS.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(source)
    imports = [line for line in snippet.splitlines() if line.startswith("import ")]
    body = [line for line in snippet.splitlines() if not line.startswith("import ")]
    (tmp / "Snippet.java").write_text(
        "\n".join(imports)
        + "\npublic class Snippet {\n public static void main(String[] args) {\n"
        + "\n".join(body)
        + "\n for (String p : CertificatePinner.PATTERNS) System.out.println(p);\n }\n}\n",
        encoding="utf-8",
    )
    assert JAVAC is not None, "javac is needed: run tests/setup-system.sh"
    sources = [str(tmp / rel) for rel in JAVA_STUBS] + [str(tmp / "Snippet.java")]
    subprocess.run(
        [JAVAC, "-encoding", "UTF-8", "-d", str(tmp / "classes"), *sources],
        check=True,
        capture_output=True,
        timeout=300,
    )
    proc = subprocess.run(
        ["java", "-cp", str(tmp / "classes"), "Snippet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _hostile_scan(tmp_path: Path) -> Path:
    root = CA("okhttp root")
    inter = root.child_ca("okhttp CA")
    names = [
        "bücher.example.com",
        "evil.example.com/x",
        "back\\slash.example.com",
        "ok.example.com",
    ]
    return write_scan(
        tmp_path / "out",
        [
            Target(f"h{i}", [inter.issue("ok.example.com").der, inter.der, root.der], sni=n)
            for i, n in enumerate(names)
        ],
    )


def test_okhttp_refuses_patterns_add_throws_on_and_writes_idna(tmp_path: Path) -> None:
    # issue 14, problem 8: '/', '\\' and non-ASCII names from a hand-edited manifest
    _hostile_scan(tmp_path)
    code, out, err = pins(str(tmp_path / "out"), "-f", "okhttp", "--language", "java")
    assert code == 1
    assert "evil.example.com/x: CertificatePinner.Builder.add() throws" in err
    assert "[okhttp-invalid-pattern]" in err and err.count("[okhttp-invalid-pattern]") == 2
    assert '"xn--bcher-kva.example.com"' in out
    assert "?" not in out.replace("// ", "")
    assert "evil" not in out and "slash" not in out


@needs_javac
def test_okhttp_java_snippet_runs_against_the_pattern_rules(
    tmp_path: Path, fleet_scan: FleetScan
) -> None:
    _hostile_scan(tmp_path)
    code, snippet, _ = pins(
        str(tmp_path / "out"),
        "-f",
        "okhttp",
        "--language",
        "java",
        "--allow-partial",
        "--include-subdomains",
        "ok.example.com",
    )
    assert code == 0
    patterns = run_java_snippet(snippet, tmp_path / "java1")
    assert patterns == ["xn--bcher-kva.example.com", "**.ok.example.com"]
    code, snippet, _ = pins(str(fleet_scan.out), "-f", "okhttp", "--language", "java")
    assert code == 0
    accepted = run_java_snippet(snippet, tmp_path / "java2")
    assert set(accepted) == {*PUBLIC, *PRIVATE_NAMES, PRIVATE_PKI, "127.0.0.1"}


def test_voltmx_writes_a_labels_and_per_host_subdomains(tmp_path: Path) -> None:
    _hostile_scan(tmp_path)
    code, out, err = pins(
        str(tmp_path / "out"),
        "-f",
        "voltmx",
        "--allow-partial",
        "--host",
        "*.ok.example.com",
        "--host",
        "bücher.example.com",
    )
    assert code == 0, err
    assert set(json.loads(out)) == {
        "ok.example.com",
        "*.ok.example.com",
        "xn--bcher-kva.example.com",
    }


# --------------------------------------------------------------------------------------------
# --check: any format read back and held to its platform's rules


def test_check_passes_what_chainscan_writes(fleet_scan: FleetScan, tmp_path: Path) -> None:
    for fmt in ("android", "ios", "trustkit", "okhttp", "voltmx", "json", "text"):
        target = tmp_path / f"pins.{fmt}"
        code, _out, _err = pins(
            str(fleet_scan.out), "-f", fmt, "-o", str(target), "--allow-partial"
        )
        assert code == 0, fmt
        code, out, err = pins("--check", str(target))
        assert (code, err) == (0, ""), (fmt, out)
        assert f"{fmt}, " in out and " 0 errors" in out


def test_check_reports_every_rule_a_hand_edited_file_breaks(tmp_path: Path) -> None:
    good = base64.b64encode(bytes(32)).decode()
    other = base64.b64encode(bytes(range(32))).decode()
    trustkit = {
        "TSKConfiguration": {
            "TSKSwizzleNetworkDelegates": False,
            "TSKPinnedDomains": {
                "db.internal": {"TSKPublicKeyHashes": [good, other]},
                "api.example.com": {"TSKPublicKeyHashes": [good]},
                "appspot.com": {"TSKPublicKeyHashes": [good, other], "TSKIncludeSubdomains": True},
                "ok.example.com": {
                    "TSKPublicKeyHashes": [good, other],
                    "TSKDisableDefaultReportUri": True,
                },
            },
        }
    }
    path = tmp_path / "Info.plist"
    path.write_bytes(plistlib.dumps(trustkit))
    code, out, _ = pins("--check", str(path))
    assert code == 1
    assert "error: db.internal: TrustKit raises 'invalid domain'" in out
    assert "error: api.example.com: TrustKit raises at start-up with fewer than 2 pins" in out
    assert "error: appspot.com: TrustKit raises at start-up: TSKIncludeSubdomains" in out
    assert "warning: api.example.com: TSKDisableDefaultReportUri is not true" in out
    assert "ok.example.com" not in out.split("trustkit, ")[0]
    with pytest.raises(TrustKitRaised):
        trustkit_parse(path.read_text())

    android = f"""<network-security-config>
  <domain-config>
    <domain>a.example.com</domain>
    <domain>A.example.com</domain>
    <pin-set expiration="2020-01-01"><pin digest="SHA-1">{good}</pin></pin-set>
  </domain-config>
</network-security-config>"""
    path = tmp_path / "nsc.xml"
    path.write_text(android)
    code, out, _ = pins("--check", str(path))
    assert code == 1
    for rule in (
        "android-duplicate-domain",
        "android-invalid-config",
        "android-missing-backup-pin",
        "android-pin-set-expired",
    ):
        assert f"[{rule}]" in out, rule

    ats = {
        "NSAppTransportSecurity": {
            "NSPinnedDomains": {
                "10.0.0.1": {"NSPinnedCAIdentities": [{"SPKI-SHA256-BASE64": good}]},
                "a.example.com": {"NSPinnedLeafIdentities": []},
            }
        }
    }
    path = tmp_path / "ats.plist"
    path.write_bytes(plistlib.dumps(ats))
    code, out, _ = pins("--check", str(path), "--format", "ios")
    assert code == 1
    assert "[ats-not-a-domain]" in out and "[ats-no-identities]" in out

    path = tmp_path / "Pins.java"
    path.write_text(f'CertificatePinner.Builder().add("a.example.com/x", "sha256/{good}")')
    code, out, _ = pins("--check", str(path))
    assert code == 1 and "[okhttp-invalid-pattern]" in out

    code, _out, err = pins("--check", str(tmp_path / "missing.xml"))
    assert code == 2 and "missing.xml" in err


# --------------------------------------------------------------------------------------------
# Warnings that help


def test_warnings_one_line_per_host_and_kind_with_a_summary(fleet_scan: FleetScan) -> None:
    _code, _out, err = pins(
        str(fleet_scan.out), "-f", "android", "--pin", "leaf,intermediate", "--warn-days", "400000"
    )
    lines = [line for line in err.splitlines() if "[expiring]" in line]
    hosts = [line.split("warning: ")[1].split(":")[0] for line in lines]
    assert len(hosts) == len(set(hosts))  # one line per host and kind
    assert "(and 1 more like it)" in err  # leaf and intermediate both expiring
    assert "summary:" in err and "expiring" in err.split("summary:")[1]
    _code, _out, quiet = pins(
        str(fleet_scan.out),
        "-f",
        "android",
        "--pin",
        "leaf,intermediate",
        "--warn-days",
        "400000",
        "--quiet-warnings",
        "expiring",
    )
    assert "[expiring]" not in quiet
    _code, out, _ = pins(
        str(fleet_scan.out),
        "-f",
        "json",
        "--pin",
        "leaf,intermediate",
        "--warn-days",
        "400000",
        "--quiet-warnings",
        "expiring",
    )
    assert any(w["kind"] == "expiring" for w in json.loads(out)["warnings"])


def test_expiration_auto_on_a_plan_is_the_latest_expiry() -> None:
    root = CA("auto root")
    inter = root.child_ca("auto CA", not_after=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    leaf = inter.issue("auto.example.com", not_after=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    from tests.scan_output import cert_entry

    entries = [
        ManifestEntry.from_json(
            {
                "host": "auto.example.com",
                "sni": "auto.example.com",
                "status": "ok",
                "chain": [cert_entry(leaf.der, 0, "x"), cert_entry(inter.der, 1, "y")],
            }
        )
    ]
    scan = observations_from_entries(entries)
    plan = plan_pins(
        scan,
        PinOptions(
            roles=("leaf", "intermediate"),
            expiration="auto",
            backups=(Backup(spki_sha256=base64.b64encode(bytes(32)).decode(), source="v"),),
        ),
        now=NOW,
    )
    assert plan.hosts[0].expiration == "2030-01-01"


def test_main_in_process_exit_codes(tmp_path: Path) -> None:
    root = CA("codes root")
    inter = root.child_ca("codes CA")
    write_scan(
        tmp_path / "out",
        [Target("a.example.com", [inter.issue("a.example.com").der, inter.der, root.der])],
    )
    assert pins_main([str(tmp_path / "out"), "-f", "trustkit"], now=NOW) == 0


def test_default_voltmx_public_keys_json_follows_its_rules(fleet_scan: FleetScan) -> None:
    # public_keys.json: {"host" or "*.host": [base64 SHA-256 of an SPKI, ...]}, ASCII names
    code, out, _err = pins(str(fleet_scan.out), "-f", "voltmx", "--include-subdomains")
    assert code == 0
    keys = json.loads(out)
    name = re.compile(r"^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
    for host, values in keys.items():
        assert name.match(host) or host == "127.0.0.1", host
        assert values and all(len(base64.b64decode(v, validate=True)) == 32 for v in values)
    assert "*.127.0.0.1" not in keys  # an IP has no subdomains
    assert keys["*.api.example.com"] == keys["api.example.com"]
    assert len(keys["api.example.com"]) == 2


@pytest.mark.parametrize("value", ["out/", "second-scan"])
def test_include_subdomains_never_swallows_a_scan_folder(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--include-subdomains`` takes an optional HOST: a folder after it is refused, not read
    as a host name (which would silently drop that scan from the pin set)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "first").mkdir()
    (tmp_path / value.rstrip("/")).mkdir()
    with pytest.raises(SystemExit) as stopped:
        pins_main(["first", "-f", "json", "--include-subdomains", value])
    assert stopped.value.code == 2
    assert "looks like a scan folder" in capsys.readouterr().err
