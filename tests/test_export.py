"""``chainscan export``: CSV rows per certificate and per target, formula cells neutralised,
and an appendable SQLite database whose documented queries answer the usual questions."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from chainscan._cli import main
from chainscan.analysis._analyze import analyze_der
from chainscan.commands._export import CERT_COLUMNS, TARGET_COLUMNS, spreadsheet_safe
from chainscan.manifest._model import parse_time
from tests.servers import ServerHandle

FAST = ["--rate", "0", "--connect-timeout", "2", "--handshake-timeout", "2", "-q"]


@pytest.fixture
def scan(tls_server: ServerHandle, tmp_path: Path) -> Path:
    hosts = tmp_path / "hosts.txt"
    port = tls_server.port
    hosts.write_text(f"a.test:{port}{{127.0.0.1}}\nb.test:{port}{{127.0.0.1}}\n127.0.0.1:1\n")
    out = tmp_path / "out"
    assert main([str(hosts), "-o", str(out), *FAST]) == 1
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_csv_per_certificate(
    scan: Path, tls_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(scan), "--csv", str(tmp_path / "c.csv")]) == 0
    rows = read_csv(tmp_path / "c.csv")
    assert tuple(rows[0]) == CERT_COLUMNS
    served = {row["target"]: [] for row in rows}  # type: dict[str, list[str]]
    for row in rows:
        served[row["target"]].append(row["sha256"])
    port = tls_server.port
    chain = [analyze_der(der).sha256 for der in tls_server.chain_for("a.test")]
    assert served[f"a.test:{port}{{127.0.0.1}}"] == chain
    failed = next(r for r in rows if r["target"] == "127.0.0.1:1")
    assert failed["status"] == "failed" and failed["sha256"] == ""
    leaf = next(r for r in rows if r["target"].startswith("a.test") and r["position"] == "0")
    assert leaf["role"] == "leaf" and int(leaf["days_left"]) > 0
    assert leaf["pin"] == analyze_der(tls_server.chain_for("a.test")[0]).pin
    assert "untrusted-root" in leaf["problems"] or leaf["trusted"] == "no"


def test_csv_per_target(scan: Path, tmp_path: Path) -> None:
    assert main(["export", str(scan), "--csv", str(tmp_path / "t.csv"), "--per", "target"]) == 0
    rows = read_csv(tmp_path / "t.csv")
    assert tuple(rows[0]) == TARGET_COLUMNS
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok"]
    assert {r["leaf_cn"] for r in rows} == {"a.test", "b.test", ""}


def test_formula_cells_are_neutralised(tmp_path: Path) -> None:
    assert spreadsheet_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for text in ("+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(text) == "'" + text
    assert spreadsheet_safe("CN=ok") == "CN=ok" and spreadsheet_safe(-3) == -3
    out = tmp_path / "scan"
    out.mkdir()
    entry = {
        "input": {"source": "f", "line": 1, "text": "=evil"},
        "host": "=cmd|' /C calc'!A0", "port": 443, "sni": None, "status": "failed",
        "error_kind": "refused", "error": "@SUM(1)", "chain": [],
    }  # fmt: skip
    (out / "manifest.jsonl").write_text(json.dumps(entry) + "\n")
    assert main(["export", str(out), "--csv", str(tmp_path / "e.csv"), "--per", "target"]) == 0
    (row,) = read_csv(tmp_path / "e.csv")
    assert row["host"] == "'=cmd|' /C calc'!A0" and row["error"] == "'@SUM(1)"


def test_sqlite_is_appendable_and_answers_the_usual_questions(
    scan: Path, tls_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "inventory.db"
    assert main(["export", str(scan), "--sqlite", str(db_path)]) == 0
    assert main(["export", str(scan), "--sqlite", str(db_path)]) == 0  # the same scan: no-op
    assert "already holds this scan; nothing added" in capsys.readouterr().out
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM scans").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM targets").fetchone() == (3,)
    intermediate = analyze_der(tls_server.chain_for("a.test")[1]).sha256
    where = db.execute(
        "SELECT t.host FROM chain ch JOIN targets t USING (target_id) WHERE ch.sha256 = ?"
        " ORDER BY t.host",
        (intermediate,),
    ).fetchall()
    assert where == [("a.test",), ("b.test",)]
    not_after = parse_time(analyze_der(tls_server.chain_for("a.test")[0]).not_after)
    assert not_after is not None
    days = (not_after - dt.datetime.now(dt.UTC)).days + 2
    soon = db.execute(
        "SELECT t.host FROM targets t JOIN certificates c ON c.sha256 = t.leaf_sha256"
        f" WHERE c.not_after < datetime('now', '+{days} days') ORDER BY t.host"
    ).fetchall()
    assert soon == [("a.test",), ("b.test",)]
    none_soon = db.execute(
        "SELECT count(*) FROM targets t JOIN certificates c ON c.sha256 = t.leaf_sha256"
        " WHERE c.not_after < datetime('now', '+1 days')"
    ).fetchone()
    assert none_soon == (0,)
    stored = db.execute("SELECT count(*) FROM certificates").fetchone()[0]
    assert stored == len(
        {analyze_der(d).sha256 for s in ("a.test", "b.test") for d in tls_server.chain_for(s)}
    )
    assert (
        db.execute("SELECT count(*) FROM problems WHERE code = 'untrusted-root'").fetchone()[0] == 2
    )
    db.close()
    # A second scan of the same folder (a new start time) is appended beside the first.
    text = (scan / "manifest.json").read_text()
    started = json.loads(text)["run"]["started"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(text.replace(started, "2030-01-01T00:00:00.000000Z", 1))
    assert main(["export", str(other), "--sqlite", str(db_path)]) == 0
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT scanned_at FROM scans ORDER BY scan_id").fetchall()[1] == (
        "2030-01-01 00:00:00",
    )
    assert db.execute("SELECT count(*) FROM targets").fetchone() == (6,)
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == stored
    db.close()


def test_export_needs_a_destination(scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(scan)]) == 2
    assert "say what to write: --csv FILE, --sqlite FILE, or both" in capsys.readouterr().err
