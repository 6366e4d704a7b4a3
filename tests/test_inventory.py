"""Every problem code, trust and hostname in the manifest, and ``chainscan report``, end to end:
a loopback fleet with one target per problem is scanned once by ``chainscan`` with the fleet's
root as ``--trust-store``, and its report is loaded in a real headless browser (chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chainscan.analysis._problems import PROBLEMS
from chainscan.commands._report import build_report, render_html, render_text
from chainscan.manifest._model import ManifestEntry
from chainscan.manifest._reader import read_manifest_entries
from tests.inventory_fleet import EXPECTED, SECLEVEL0, fleet, run
from tests.servers import TLSServer

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]


@dataclass(frozen=True, slots=True)
class FleetScan:
    out: Path
    port: int
    entries: dict[str, dict[str, Any]]
    """SNI -> manifest entry."""


@pytest.fixture(scope="module")
def fleet_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetScan]:
    tmp = tmp_path_factory.mktemp("fleet")
    servers = fleet(tmp)
    with TLSServer(servers.chains, ciphers=SECLEVEL0) as handle:
        hosts = tmp / "hosts.txt"
        hosts.write_text("".join(f"{name}:{handle.port}{{127.0.0.1}}\n" for name in EXPECTED))
        out = tmp / "out"
        code, _stdout, stderr = run(
            str(hosts), "-o", str(out), "--trust-store", str(servers.root_pem(tmp)), *FAST
        )
    assert code == 0, stderr
    entries = {e["sni"]: e for e in read_manifest_entries(out / "manifest.json")}
    yield FleetScan(out=out, port=handle.port, entries=entries)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_problem_code_on_its_target(fleet_scan: FleetScan, name: str) -> None:
    entry = fleet_scan.entries[name]
    assert entry["status"] == "ok"
    found = {p["code"] for p in entry["problems"]}
    assert found == EXPECTED[name], entry["problems"]
    for problem in entry["problems"]:
        assert problem["severity"] == PROBLEMS[problem["code"]][0]
        assert problem["message"]
    trust = entry["trust"]
    breaks_trust = {"expired", "not-yet-valid", "self-signed-leaf", "untrusted-root"}
    breaks_trust |= {"incomplete-chain", "weak-signature", "no-san", "untrusted"}
    breaks_trust |= {"weak-key"}  # issue 12: clients refuse RSA under 2048 bits
    assert trust["trusted"] is not (found & breaks_trust), trust
    assert (trust["reason"] is None) is trust["trusted"]
    assert entry["hostname"]["name"] == name
    assert entry["deployments"] is None  # not asked for


ELSEWHERE = frozenset({"no-sct", "too-few-scts", "revoked", "revocation-unknown"})
"""Codes the fleet cannot show: CT applies under a public root only (``--trust-store certifi``
or ``system``), and the fleet's root is a file (``tests/test_ct.py`` covers them); its leaves
publish no CRL or OCSP URL (``tests/test_revocation.py``)."""


def test_every_problem_code_is_covered_by_the_fleet() -> None:
    assert set().union(*EXPECTED.values()) == set(PROBLEMS) - ELSEWHERE


def test_trust_fields_record_the_built_chain(fleet_scan: FleetScan) -> None:
    good = fleet_scan.entries["good.test"]
    assert list(good)[-4:] == ["trust", "hostname", "problems", "deployments"]
    trust = good["trust"]
    assert trust["store"].endswith("fleet-root.pem") and trust["error"] is None
    sent = [c["sha256"] for c in good["chain"]]
    assert [c["sha256"] for c in trust["chain"][:2]] == sent
    assert [c["source"] for c in trust["chain"]] == ["sent", "sent", "store"]
    assert trust["chain"][2]["subject"] == "CN=fleet root,O=chainscan tests"
    assert good["hostname"] == {"name": "good.test", "matches": True, "matched_by": "DNS:good.test"}
    wrong = fleet_scan.entries["wrong.test"]
    assert wrong["hostname"]["matches"] is False and wrong["trust"]["trusted"] is True
    sha1 = fleet_scan.entries["sha1.test"]["trust"]
    assert "forbidden signature algorithm" in sha1["reason"].lower()
    incomplete = fleet_scan.entries["incomplete.test"]["trust"]
    assert incomplete["reason"].startswith("incomplete chain")


def test_the_default_store_does_not_trust_the_test_root(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    with TLSServer(fleet(tmp_path).chains, ciphers=SECLEVEL0) as handle:
        hosts.write_text(f"good.test:{handle.port}{{127.0.0.1}}\n")
        code, _out, err = run(str(hosts), "-o", str(tmp_path / "out"), *FAST)
    assert code == 0, err
    (entry,) = read_manifest_entries(tmp_path / "out" / "manifest.jsonl")
    assert entry["trust"]["store"] == "certifi" and entry["trust"]["trusted"] is False
    assert [p["code"] for p in entry["problems"]] == ["untrusted-root"]
    assert "fleet root" in entry["problems"][0]["message"]


def test_worker_processes_write_the_same_fields(tmp_path: Path) -> None:
    servers = fleet(tmp_path)
    names = ["good.test", "incomplete.test", "dup.test"]
    with TLSServer(servers.chains, ciphers=SECLEVEL0) as handle:
        hosts = tmp_path / "hosts.txt"
        hosts.write_text("".join(f"{name}:{handle.port}{{127.0.0.1}}\n" for name in names))
        root = str(servers.root_pem(tmp_path))
        out = tmp_path / "out"
        code, _out, err = run(
            str(hosts), "-o", str(out), "--trust-store", root, "--workers", "2", *FAST
        )
    assert code == 0, err
    entries = {e["sni"]: e for e in read_manifest_entries(out / "manifest.json")}
    assert {name: {p["code"] for p in entries[name]["problems"]} for name in names} == {
        name: EXPECTED[name] for name in names
    }


def test_a_bad_trust_store_is_a_usage_error(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("127.0.0.1:1\n")
    code, _out, err = run(
        str(hosts), "-o", str(tmp_path / "out"), "--trust-store", str(tmp_path / "no.pem")
    )
    assert code == 2 and "--trust-store" in err and "no.pem" in err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


# --------------------------------------------------------------------------------------------
# chainscan report


def test_report_summary_on_the_terminal(fleet_scan: FleetScan) -> None:
    code, out, err = run("report", str(fleet_scan.out))
    assert code == 0, err
    assert f"{len(EXPECTED)} targets: {len(EXPECTED)} ok, 0 failed" in out
    problems = out.split("problems (targets):")[1].split("soonest expiries")[0]
    for code_name in set(PROBLEMS) - ELSEWHERE:
        assert re.search(rf"^  {re.escape(code_name)}\s+(error|warning)\s+1$", problems, re.M)
    soonest = out.split("soonest expiries")[1].split("untrusted (")[0].splitlines()[1:3]
    assert "expired.test" in soonest[0] and "soon.test" in soonest[1]
    untrusted = out.split("untrusted (")[1].split("hostname mismatch")[0]
    assert "private.test" in untrusted and "good.test" not in untrusted
    mismatch = out.split("hostname mismatch (")[1]
    assert "wrong.test" in mismatch and "other.test" in mismatch


def test_report_html_is_self_contained_and_escaped(fleet_scan: FleetScan) -> None:
    raw = list(read_manifest_entries(fleet_scan.out / "manifest.json"))
    hostile = dict(raw[0], host="<script>alert(1)</script>", sni="x</script><b>")
    entries = [ManifestEntry.from_json(entry) for entry in raw]
    page = render_html(build_report([*entries, ManifestEntry.from_json(hostile)], source="<out>"))
    assert "<script>alert(1)" not in page and "</script><b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no fetch at all
    assert "<svg" in page and 'id="timeline"' in page
    text = render_text(build_report(entries, source="x"))
    assert "chainscan report: x" in text


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed by ``tests/setup-system.sh`` (never by a test).

    Missing on a developer's machine: skipped with the command that installs it. Missing in CI
    (``CI`` set): a failure, because ``.ci/run`` runs that set-up step, so a gap there must show.
    """
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if path is None:
        message = "chromium is not installed: run `sudo bash tests/setup-system.sh`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_report_html_loads_in_a_headless_browser(
    fleet_scan: FleetScan, chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    code, out, err = run("report", str(fleet_scan.out), "--html", str(page), "-q")
    assert code == 0 and out == "", err
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None, dom[:500]
    assert 'data-ready="1"' in html_tag.group(0), proc.stderr[-2000:]  # its script ran to the end
    assert "data-error" not in html_tag.group(0)  # and no script error happened
    table = dom.split('id="hosts"')[1]
    for name in EXPECTED:
        assert f"{name}:{fleet_scan.port}" in table
    assert f'<span id="host-count">{len(EXPECTED)}</span>' in dom
