"""The manifest model and reader (chainscan.manifest): typed entries from written ones, tolerance
of odd input, the schema's small rules. No sockets: entries are built by the writer's own code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from chainscan._models import BadLine
from chainscan.analysis._analyze import analyze_der
from chainscan.analysis._entry import bad_line_entry, entry_for
from chainscan.manifest._model import (
    CertEntry,
    ManifestEntry,
    cert_role,
    entry_key,
    parse_time,
    short_pin,
)
from chainscan.manifest._reader import find_manifest, read_entries, read_header

from .pki import CA
from .test_output import ok, target


@pytest.fixture(scope="module")
def ders() -> tuple[bytes, ...]:
    root = CA("manifest model root")
    inter = root.child_ca("manifest model intermediate")
    leaf = inter.issue("model.example", "www.model.example")
    return (leaf.der, inter.der, root.der)


def test_a_written_entry_reads_back_as_the_same_facts(ders: tuple[bytes, ...]) -> None:
    facts = [analyze_der(der) for der in ders]
    files = [f"d/{i}.der" for i in range(3)]
    result = ok(ders, target("model.example"))
    raw = orjson.loads(orjson.dumps(entry_for(result, facts, files, "d")))
    entry = ManifestEntry.from_json(raw)
    assert entry.key == entry_key(raw) == ("model.example", 443, None, "model.example")
    assert entry.ok and entry.sent_chain == entry.chain and entry.dir == "d"
    assert [c.role for c in entry.chain] == ["leaf", "intermediate", "root"]
    for cert, fact, file in zip(entry.chain, facts, files, strict=True):
        assert cert.file == file
        assert cert.facts == fact
    assert entry.chain[0].expires == parse_time(facts[0].not_after)
    assert not entry.analysed and entry.trust is None and entry.problems == ()


def test_a_bad_line_entry_has_no_key_but_an_identity() -> None:
    raw = bad_line_entry(BadLine(source="hosts.txt", line=7, raw="x:0", reason="port 0"))
    entry = ManifestEntry.from_json(raw)
    assert entry.key is None and entry_key(raw) is None
    assert entry.status == "invalid" and entry.bad_line == ("hosts.txt", 7, "x:0")
    assert entry.sent_chain == ()


def test_odd_fields_read_as_none_never_raise() -> None:
    entry = ManifestEntry.from_json(
        {
            "host": 7,
            "port": True,
            "status": "ok",
            "chain": ["not an object", {"position": "x", "role": "boss", "self_signed": True}],
            "trust": {"trusted": "yes", "chain": [1, {"spki_sha256": "k"}]},
            "problems": [{"code": 5}, {"message": "no code"}, "junk"],
            "deployments": {"verdict": 1, "chains": [{"seen": [{"variant": "no-sni"}]}]},
        }
    )
    assert entry.host is None and entry.port is None and entry.key is None
    (cert,) = entry.chain
    assert cert.position == 0 and cert.role == "leaf"  # index 0 after the skipped item
    assert entry.trust is not None and entry.trust.trusted is None
    assert [link.spki_sha256 for link in entry.trust.chain] == ["k"]
    assert entry.problem_codes == ("5",)
    assert entry.deployments is not None and entry.deployments.verdict is None
    assert entry.deployments.chains[0].seen == ((None, "no-sni"),)
    assert entry.analysed


def test_the_role_rule_in_a_chain_and_alone() -> None:
    assert cert_role(self_signed=True, position=0) == "leaf"
    assert cert_role(self_signed=True, position=2) == "root"
    assert cert_role(self_signed=False, is_ca=False, position=1) == "intermediate"
    assert cert_role(self_signed=True, is_ca=True, position=None) == "root"
    assert cert_role(self_signed=False, is_ca=True, position=None) == "intermediate"
    assert cert_role(self_signed=False, is_ca=None, position=None) == "leaf"
    assert CertEntry.from_json({"self_signed": True}, 3).role == "root"
    assert CertEntry.from_json({"role": "intermediate", "self_signed": True}, 3).role == (
        "intermediate"
    )


def test_time_and_short_pin_forms() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_time("2026-01-01T00:00:00") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_time("soon") is None and parse_time(None) is None and parse_time("") is None
    assert short_pin("A" * 44) == "sha256/AAAAAAAAAAAA..."
    assert short_pin(None) == short_pin("") == "(no key)"


def test_reader_finds_streams_and_reads_the_header(tmp_path: Path) -> None:
    assert find_manifest(tmp_path) is None
    lines = [
        {"host": "a", "port": 1, "status": "ok"},
        {"host": "b", "port": 2, "status": "failed"},
    ]
    header = b'{"schema":"chainscan-manifest/1",'
    header += b'"run":{"started":"2026-01-01T00:00:00Z"},"targets":['
    body = b",\n".join(orjson.dumps(line) for line in lines)
    (tmp_path / "manifest.json").write_bytes(header + b"\n" + body + b"\n]}\n")
    assert find_manifest(tmp_path) == tmp_path / "manifest.json"
    (tmp_path / "manifest.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert find_manifest(tmp_path) == tmp_path / "manifest.jsonl"
    for name in ("manifest.json", "manifest.jsonl"):
        assert [e.key for e in read_entries(tmp_path / name)] == [
            ("a", 1, None, None),
            ("b", 2, None, None),
        ]
    read = read_header(tmp_path / "manifest.json")
    assert read is not None and read["run"] == {"started": "2026-01-01T00:00:00Z"}
    assert read_header(tmp_path / "manifest.jsonl") is None
    assert read_header(tmp_path / "missing.json") is None
