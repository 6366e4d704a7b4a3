"""``chainscan report`` (commands/_report, _report_cli) on hand-made entries: the counts, the
problem and expiry lists, the text layout, the page's escaping, and the command's exit codes.
No sockets and no clock: ``now`` is fixed. ``test_inventory.py`` runs it on a real scan."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from chainscan.commands._report import build_report, render_html, render_text
from chainscan.commands._report_cli import main
from chainscan.manifest._model import ManifestEntry

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def cert(cn: str, not_after: str, role: str = "leaf", **extra: Any) -> dict[str, Any]:
    return {
        "role": role,
        "cn": cn,
        "sha256": f"{cn}-digest".ljust(64, "0"),
        "not_after": not_after,
        "issuer": "CN=Equiv CA,O=Test",
        "key_type": "EC",
        "curve": "secp256r1",
        "key_size": 256,
        "sans": [f"DNS:{cn}"],
        **extra,
    }


def entry(host: str, *chain: dict[str, Any], line: int = 1, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "input": {"source": "hosts.txt", "line": line, "text": host},
        "host": host,
        "port": 443,
        "sni": host,
        "requested_address": None,
        "status": "ok" if chain else "failed",
        "error_kind": None if chain else "refused",
        "chain": list(chain),
        "trust": {"trusted": True, "reason": None, "chain": []},
        "hostname": {"name": host, "matches": True, "matched_by": f"DNS:{host}"},
        "problems": [],
        "deployments": None,
    }
    data.update(fields)
    return data


def invalid(line: int) -> dict[str, Any]:
    return {
        "input": {"source": "hosts.txt", "line": line, "text": "x:0"},
        "host": None,
        "port": None,
        "status": "invalid",
        "error_kind": "bad-input",
        "chain": [],
    }


def entries() -> list[ManifestEntry]:
    inter = cert("Equiv CA", "2030-01-01T00:00:00Z", role="intermediate")
    raw = [
        entry("good.test", cert("good.test", "2027-01-01T00:00:00Z"), inter, line=1),
        entry(
            "soon.test",
            cert("soon.test", "2026-06-11T00:00:00Z"),
            inter,
            line=2,
            problems=[{"code": "expires-soon"}],
        ),
        entry(
            "old.test",
            cert("old.test", "2026-05-01T00:00:00Z"),
            line=3,
            trust={"trusted": False, "reason": "certificate expired", "chain": []},
            problems=[{"code": "expired"}, {"code": "incomplete-chain"}],
        ),
        entry(
            "wrong.test",
            cert("other.test", "2027-03-01T00:00:00Z", key_type="RSA", curve=None, key_size=2048),
            inter,
            line=4,
            hostname={"name": "wrong.test", "matches": False},
            problems=[{"code": "hostname-mismatch"}],
            deployments={"verdict": "pin-safe"},
        ),
        entry("down.test", line=5),
        invalid(6),
    ]
    return [ManifestEntry.from_json(item) for item in raw]


def test_counts_problems_and_expiries() -> None:
    report = build_report(entries(), source="scan", now=NOW, warn_days=30)
    counts = report.counts
    assert (counts["targets"], counts["ok"], counts["failed"], counts["invalid"]) == (6, 4, 1, 1)
    assert (counts["trusted"], counts["untrusted"], counts["mismatched"]) == (3, 1, 1)
    assert (counts["expiring"], counts["expired"]) == (1, 1)
    # documented order, not alphabetical or by count
    assert list(report.problems) == [
        "expired",
        "expires-soon",
        "incomplete-chain",
        "hostname-mismatch",
    ]
    assert [e.name for e in report.expiries] == [
        "old.test",
        "soon.test",
        "good.test",
        "other.test",
        "Equiv CA",
    ]
    shared = report.expiries[-1]
    assert shared.role == "intermediate"
    assert shared.targets == ("good.test:443", "soon.test:443", "wrong.test:443")
    assert report.issuers == {"Equiv CA": 4}
    assert report.key_types == {"EC secp256r1": 3, "RSA 2048": 1}
    assert report.verdicts == {"pin-safe": 1}
    assert [r.target for r in report.rows] == [
        "good.test:443",
        "soon.test:443",
        "old.test:443",
        "wrong.test:443",
        "down.test:443",
    ]
    assert report.analysed


def test_warn_days_moves_the_expiring_window() -> None:
    assert build_report(entries(), now=NOW, warn_days=5).counts["expiring"] == 0
    assert build_report(entries(), now=NOW, warn_days=400).counts["expiring"] == 3


def test_text_lists_each_section() -> None:
    text = render_text(build_report(entries(), source="scan", now=NOW), top=2)
    assert text.startswith("chainscan report: scan\n  6 targets: 4 ok, 1 failed, 1 invalid\n")
    assert "  chains: 3 trusted, 1 untrusted, 1 for another name; leaves: 1 expired" in text
    assert "  deployments: 1 pin-safe" in text
    problems = text.split("problems (targets):\n")[1].split("\n\n")[0].splitlines()
    assert problems[0].split() == ["expired", "error", "1"]
    soonest = text.split("soonest expiries (first 2):\n")[1].split("\n\n")[0].splitlines()
    assert len(soonest) == 2
    assert soonest[0].split()[:5] == ["2026-05-01", "expired", "31", "days", "ago"]
    assert soonest[1].split()[:4] == ["2026-06-11", "in", "10", "days"]
    assert "untrusted (1):\n  old.test:443  certificate expired\n" in text
    assert "hostname mismatch (1):\n  wrong.test:443  wrong.test not in DNS:other.test\n" in text
    assert text.endswith("failed (1):\n  down.test:443  refused\n")


def test_a_scan_without_inventory_fields_says_so() -> None:
    bare = [
        ManifestEntry.from_json({k: v for k, v in e.items() if k != "trust"})
        for e in [entry("a.test", cert("a.test", "2027-01-01T00:00:00Z"))]
    ]
    report = build_report(bare, now=NOW)
    assert not report.analysed
    assert "has no trust or problem data" in render_text(report)
    assert "no trust or problem data" in render_html(report)


def test_html_escapes_every_text_and_fetches_nothing() -> None:
    hostile = entry(
        "<b>x</b>",
        cert("</script><script>alert(1)</script>", "2027-01-01T00:00:00Z"),
        problems=[{"code": "<i>code</i>"}],
    )
    page = render_html(build_report([ManifestEntry.from_json(hostile)], source="<src>", now=NOW))
    assert "<b>x</b>" not in page and "<i>code</i>" not in page and "alert(1)</script>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "&lt;src&gt;" in page
    island = page.split('id="report-data">')[1].split("</script>")[0]
    assert "<" not in island and json.loads(island) == {
        "source": "<src>",
        "hosts": ["<b>x</b>:443"],
    }
    assert "default-src 'none'" in page


def write_manifest(folder: Path, items: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return folder


def test_command_prints_and_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = write_manifest(
        tmp_path / "scan", [entry("a.test", cert("a.test", "2030-01-01T00:00:00Z"))]
    )
    page = tmp_path / "pages" / "report.html"
    assert main([str(scan), "--html", str(page)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"chainscan report: {scan}\n  1 targets: 1 ok")
    assert out.endswith(f"\nHTML report: {page}\n") and err == ""
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # no temporary left
    assert main([str(scan / "manifest.jsonl"), "-q", "--html", str(page)]) == 0
    assert capsys.readouterr() == ("", "")


def test_command_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    missing = tmp_path / "missing"
    assert (
        capsys.readouterr().err == f"chainscan report: error: {missing}: no such file or folder\n"
    )
    assert main([str(tmp_path)]) == 2
    assert "no manifest.jsonl or manifest.json in this folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.jsonl").write_text("{not json\n{}\n")
    assert main([str(broken)]) == 2
    assert "cannot read the manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(broken), "--warn-days", "-1"])
    assert exit_info.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err
