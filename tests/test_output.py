"""The output folder: certificate files, manifest.jsonl, manifest.json, resume and overwrite."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import chainscan
from chainscan._errors import OutputError, UsageError
from chainscan._models import (
    BadLine,
    CertFacts,
    CertFormat,
    ErrorKind,
    ScanResult,
    Status,
    Target,
    Timings,
)
from chainscan.analysis._analyze import analyze_der, der_to_pem
from chainscan.analysis._entry import bad_line_entry, entry_for
from chainscan.manifest._model import JSON_NAME, JSONL_NAME
from chainscan.manifest._reader import read_manifest_entries
from chainscan.output._output import OutputDir

from .pki import CA, Issued
from .servers import ServerHandle

RUN = {"started": "2026-01-01T00:00:00Z", "argv": ["hosts.txt"]}

# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@dataclasses.dataclass(frozen=True)
class Chain:
    root: CA
    inter: CA
    leaf: Issued

    @property
    def ders(self) -> tuple[bytes, ...]:
        return (self.leaf.der, self.inter.der, self.root.der)


@pytest.fixture(scope="module")
def chain() -> Chain:
    root = CA("chainscan output root")
    inter = root.child_ca("chainscan output intermediate")
    return Chain(root, inter, inter.issue("*.example.com", "example.com"))


def target(host: str = "example.com", port: int = 443, **kwargs: Any) -> Target:
    kwargs.setdefault("sni", host)
    kwargs.setdefault("source", "hosts.txt")
    return Target(host=host, port=port, raw=f"{host}:{port}", line=kwargs.pop("line", 1), **kwargs)


def ok(ders: Sequence[bytes], tgt: Target | None = None) -> ScanResult:
    return ScanResult(
        target=tgt or target(),
        status=Status.OK,
        chain=tuple(ders),
        attempts=1,
        elapsed=0.12345,
        address="192.0.2.7",
        tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        timings=Timings(resolve=0.0011, connect=0.0222, handshake=0.0999),
    )


def failed(host: str, kind: ErrorKind = ErrorKind.REFUSED) -> ScanResult:
    return ScanResult(
        target=target(host),
        status=Status.FAILED,
        error_kind=kind,
        error=f"{host}: connection refused",
        attempts=1,
    )


def bad(line: int, raw: str = "example.com:99999") -> BadLine:
    return BadLine(source="hosts.txt", line=line, raw=raw, reason="port 99999 is out of range")


def jsonl_entries(root: Path) -> list[dict[str, Any]]:
    data = (root / JSONL_NAME).read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def prepared(root: Path, **kwargs: Any) -> OutputDir:
    out = OutputDir(root, **kwargs)
    out.prepare()
    return out


# --------------------------------------------------------------------------------------------
# Files


def test_writes_each_certificate_as_der_named_after_its_cn(tmp_path: Path, chain: Chain) -> None:
    out = prepared(tmp_path / "out")
    out.write([ok(chain.ders)])
    folder = tmp_path / "out" / "example.com_443"
    expected = {
        "__example_com.der": chain.leaf.der,
        "chainscan_output_intermediate.der": chain.inter.der,
        "chainscan_output_root.der": chain.root.der,
    }
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == expected

    (entry,) = jsonl_entries(tmp_path / "out")
    assert entry["dir"] == "example.com_443"
    assert [c["file"] for c in entry["chain"]] == [f"example.com_443/{n}" for n in expected]
    assert [c["role"] for c in entry["chain"]] == ["leaf", "intermediate", "root"]
    assert [c["position"] for c in entry["chain"]] == [0, 1, 2]
    for cert, der in zip(entry["chain"], chain.ders, strict=True):
        assert (tmp_path / "out" / cert["file"]).read_bytes() == der
        assert cert["sha256"] == analyze_der(der).sha256


def test_pem_format(tmp_path: Path, chain: Chain) -> None:
    out = prepared(tmp_path, cert_format=CertFormat.PEM)
    out.write([ok(chain.ders)])
    (entry,) = jsonl_entries(tmp_path)
    assert [c["file"].rsplit(".", 1)[1] for c in entry["chain"]] == ["pem"] * 3
    for cert, der in zip(entry["chain"], chain.ders, strict=True):
        data = (tmp_path / cert["file"]).read_bytes()
        assert data == der_to_pem(der)
        assert x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER) == der


def test_same_names_get_numbered(tmp_path: Path, chain: Chain) -> None:
    a = chain.inter.issue("a.example")
    b = chain.inter.issue("a-example")
    c = chain.inter.issue("x", cn="A.EXAMPLE")
    out = prepared(tmp_path)
    out.write([ok([a.der, b.der, c.der, a.der])])
    (entry,) = jsonl_entries(tmp_path)
    names = [c["file"].split("/", 1)[1] for c in entry["chain"]]
    assert names == ["a_example.der", "a_example_2.der", "A_EXAMPLE_3.der", "a_example_4.der"]
    assert (tmp_path / entry["chain"][3]["file"]).read_bytes() == a.der


def test_certificate_without_cn_is_named_by_fingerprint(tmp_path: Path, chain: Chain) -> None:
    leaf = chain.inter.issue("no-cn.example", cn=None)
    out = prepared(tmp_path)
    out.write([ok([leaf.der])])
    (entry,) = jsonl_entries(tmp_path)
    sha = analyze_der(leaf.der).sha256
    assert entry["chain"][0]["file"] == f"example.com_443/sha256_{sha[:16]}.der"
    assert entry["chain"][0]["cn"] is None


def test_unparsable_der_is_saved_and_listed(tmp_path: Path, chain: Chain) -> None:
    garbage = b"\x30\x03\x02\x01\x01"
    out = prepared(tmp_path)
    out.write([ok([chain.leaf.der, garbage])])
    (entry,) = jsonl_entries(tmp_path)
    cert = entry["chain"][1]
    facts = analyze_der(garbage)
    assert cert["file"] == f"example.com_443/sha256_{facts.sha256[:16]}.der"
    assert (tmp_path / cert["file"]).read_bytes() == garbage
    assert cert["parse_error"] and cert["parse_error"] == facts.parse_error
    assert cert["role"] == "intermediate"
    assert cert["size"] == len(garbage)
    assert cert["subject"] is None and cert["pin"] is None and cert["sans"] == []


def test_hostile_names_stay_inside(tmp_path: Path, chain: Chain) -> None:
    evil = chain.inter.issue("evil.example", cn="../../../../tmp/evil\x00CON")
    tgt = target("::1", sni="../../x")
    out = prepared(tmp_path / "out")
    out.write([ok([evil.der], tgt)])
    (entry,) = jsonl_entries(tmp_path / "out")
    path = (tmp_path / "out" / entry["chain"][0]["file"]).resolve()
    assert path.is_relative_to((tmp_path / "out").resolve())
    assert path.read_bytes() == evil.der
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftover_folder_of_an_interrupted_run_is_cleared(tmp_path: Path, chain: Chain) -> None:
    folder = tmp_path / "example.com_443"
    folder.mkdir()
    (folder / "stale.der").write_bytes(b"old")
    (folder / "stale.pem").write_bytes(b"old")
    (folder / ".chainscan-x.der.tmp").write_bytes(b"half")
    (folder / "notes.txt").write_text("mine")
    out = prepared(tmp_path)
    out.write([ok(chain.ders)])
    assert sorted(p.name for p in folder.iterdir()) == [
        "__example_com.der",
        "chainscan_output_intermediate.der",
        "chainscan_output_root.der",
        "notes.txt",
    ]


# --------------------------------------------------------------------------------------------
# Entries


def test_entry_fields(tmp_path: Path, chain: Chain) -> None:
    tgt = target("example.com", 8443, address="192.0.2.7", line=7)
    out = prepared(tmp_path)
    out.write([ok(chain.ders[:2], tgt)])
    (entry,) = jsonl_entries(tmp_path)
    cert = entry["chain"][0]
    assert list(entry) == [
        "input", "host", "port", "sni", "requested_address", "address", "status",
        "error_kind", "error", "attempts", "elapsed", "timings", "tls_version", "cipher",
        "dir", "chain_length", "chain",
    ]  # fmt: skip
    assert entry["input"] == {"source": "hosts.txt", "line": 7, "text": "example.com:8443"}
    assert (entry["host"], entry["port"], entry["sni"]) == ("example.com", 8443, "example.com")
    assert entry["requested_address"] == "192.0.2.7"
    assert entry["address"] == "192.0.2.7"
    assert (entry["status"], entry["error_kind"], entry["error"]) == ("ok", None, None)
    assert entry["elapsed"] == 0.123
    assert entry["timings"] == {"resolve": 0.001, "connect": 0.022, "handshake": 0.1}
    assert entry["dir"] == "example.com_8443_192.0.2.7"
    assert entry["chain_length"] == 2
    facts = analyze_der(chain.leaf.der)
    expected_fields = [f.name for f in dataclasses.fields(CertFacts)] + ["pin"]
    assert set(cert) == {"position", "file", "role", *expected_fields}
    assert cert["pin"] == facts.pin and cert["pin"].startswith("sha256/")
    assert cert["spki_sha256"] == facts.spki_sha256
    assert cert["sans"] == ["DNS:*.example.com", "DNS:example.com"]
    assert cert["cn"] == "*.example.com"
    assert cert["self_signed"] is False and cert["is_ca"] is False


def test_failed_and_invalid_entries(tmp_path: Path) -> None:
    out = prepared(tmp_path)
    out.write([failed("down.example"), bad(3)])
    fail, invalid = jsonl_entries(tmp_path)
    assert fail["status"] == "failed" and fail["error_kind"] == "refused"
    assert fail["dir"] is None and fail["chain"] == [] and fail["chain_length"] == 0
    assert invalid == bad_line_entry(bad(3))
    assert invalid["status"] == "invalid" and invalid["error_kind"] == "bad-input"
    assert invalid["error"] == "port 99999 is out of range"
    assert invalid["host"] is None and invalid["chain"] == []
    assert invalid["input"] == {"source": "hosts.txt", "line": 3, "text": "example.com:99999"}
    assert list(invalid) == list(fail)
    assert [p.name for p in tmp_path.iterdir()] == [JSONL_NAME]


def test_root_role_and_self_signed_leaf(chain: Chain) -> None:
    ders = [chain.root.der, chain.root.der]
    facts = [analyze_der(d) for d in ders]
    entry = entry_for(ok(ders), facts, ["d/a.der", "d/a_2.der"], "d")
    assert [c["role"] for c in entry["chain"]] == ["leaf", "root"]


def test_strings_that_are_not_unicode_are_escaped(tmp_path: Path) -> None:
    out = prepared(tmp_path)
    out.write([bad(1, raw="caf\udce9.example")])
    (entry,) = jsonl_entries(tmp_path)
    assert entry["input"]["text"] == "caf\\udce9.example"


# --------------------------------------------------------------------------------------------
# manifest.json


def test_close_streams_jsonl_into_manifest_json(
    tmp_path: Path, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = prepared(tmp_path)
    items: list[ScanResult | BadLine] = []
    for i in range(30):
        items.append(ok(chain.ders, target(f"h{i}.example")))
        items.append(failed(f"f{i}.example", ErrorKind.TIMEOUT_CONNECT))
    items.append(bad(99))
    out.write(items[:25])
    out.write(items[25:])

    def no_parsing(*args: object) -> object:
        raise AssertionError("close() must copy lines, not parse them")

    monkeypatch.setattr(orjson, "loads", no_parsing)
    path = out.close(run=RUN, complete=True)
    monkeypatch.undo()

    assert path == tmp_path / JSON_NAME
    document = json.loads(path.read_bytes())
    assert document["schema"] == "chainscan-manifest/1"
    assert document["tool"] == {"name": "chainscan", "version": chainscan.__version__}
    assert document["run"] == {**RUN, "complete": True}
    assert document["summary"] == {
        "targets": 61,
        "ok": 30,
        "failed": 30,
        "invalid": 1,
        "by_error_kind": {"bad-input": 1, "timeout-connect": 30},
    }
    assert out.summary == document["summary"]
    assert document["targets"] == jsonl_entries(tmp_path)
    assert [e["host"] for e in document["targets"][:3]] == [
        "h0.example",
        "f0.example",
        "h1.example",
    ]
    assert list(read_manifest_entries(path)) == document["targets"]
    assert list(read_manifest_entries(tmp_path / JSONL_NAME)) == document["targets"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [JSON_NAME, JSONL_NAME]


def test_empty_run_and_incomplete_flag(tmp_path: Path) -> None:
    out = prepared(tmp_path)
    path = out.close(run={}, complete=False)
    document = json.loads(path.read_bytes())
    assert document["targets"] == []
    assert document["run"] == {"complete": False}
    assert document["summary"] == {
        "targets": 0, "ok": 0, "failed": 0, "invalid": 0, "by_error_kind": {}
    }  # fmt: skip
    assert list(read_manifest_entries(path)) == []


def test_read_manifest_entries_of_any_json_layout(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"targets": [{"host": "a"}, {"host": "b"}]}, indent=2))
    assert [e["host"] for e in read_manifest_entries(path)] == ["a", "b"]
    path.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(ValueError, match="targets"):
        list(read_manifest_entries(path))


def test_read_jsonl_tolerates_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b'{"host": "a"}\n{"host": "b"}\n{"host": "c", "ch')
    assert [e["host"] for e in read_manifest_entries(path)] == ["a", "b"]
    path.write_bytes(b'{"host": "a"}\n{"host": \n{"host": "c"}\n')
    with pytest.raises(ValueError, match=r"manifest\.jsonl:2"):
        list(read_manifest_entries(path))


# --------------------------------------------------------------------------------------------
# An existing scan: refuse, overwrite, resume


def finished_scan(root: Path, chain: Chain) -> None:
    out = prepared(root)
    out.write([ok(chain.ders), ok(chain.ders[:1], target("b.example")), failed("c.example")])
    out.write([bad(4)])
    out.close(run=RUN, complete=True)


@pytest.mark.parametrize("names", [[JSONL_NAME], [JSON_NAME], [JSONL_NAME, JSON_NAME]])
def test_refuses_a_folder_with_a_previous_scan(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(OutputError) as info:
        OutputDir(tmp_path).prepare()
    message = str(info.value)
    assert str(tmp_path) in message and names[0] in message
    assert "use --resume to continue it or --overwrite to replace it" in message


def test_a_folder_with_other_files_is_fine(tmp_path: Path, chain: Chain) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = prepared(tmp_path)
    out.write([ok(chain.ders)])
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_and_overwrite_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        OutputDir(tmp_path, resume=True, overwrite=True)


def test_overwrite_removes_only_what_chainscan_wrote(tmp_path: Path, chain: Chain) -> None:
    finished_scan(tmp_path, chain)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.der").write_bytes(b"mine")
    (tmp_path / "b.example_443" / "keep.txt").write_text("mine")

    out = OutputDir(tmp_path, overwrite=True)
    assert out.prepare() == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "b.example_443",
        JSONL_NAME,
        "mine",
        "notes.txt",
    ]
    assert [p.name for p in (tmp_path / "b.example_443").iterdir()] == ["keep.txt"]
    assert (tmp_path / "mine" / "x.der").read_bytes() == b"mine"
    assert (tmp_path / JSONL_NAME).read_bytes() == b""
    out.write([failed("z.example")])
    document = json.loads(out.close(run=RUN, complete=True).read_bytes())
    assert document["summary"]["targets"] == 1


def test_overwrite_ignores_dirs_that_lead_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.der").write_bytes(b"x")
    lines = [{"dir": "../victim"}, {"dir": ".."}, {"dir": "/etc"}, {"dir": str(victim)}]
    (root / JSONL_NAME).write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    OutputDir(root, overwrite=True).prepare()
    assert (victim / "a.der").read_bytes() == b"x"


def test_resume_returns_done_keys_and_continues(tmp_path: Path, chain: Chain) -> None:
    finished_scan(tmp_path, chain)
    before = jsonl_entries(tmp_path)
    out = OutputDir(tmp_path, resume=True)
    done = out.prepare()
    assert done == {
        ("example.com", 443, None, "example.com"),
        ("b.example", 443, None, "b.example"),
        ("c.example", 443, None, "c.example"),
    }
    assert done == {target().key, target("b.example").key, target("c.example").key}
    out.write([ok(chain.ders[:1], target("d.example")), bad(4), bad(5)])
    after = jsonl_entries(tmp_path)
    assert after[: len(before)] == before
    assert [e["input"]["line"] for e in after[len(before) :]] == [1, 5]  # line 4 is listed
    document = json.loads(out.close(run=RUN, complete=True).read_bytes())
    assert document["summary"] == {
        "targets": 6,
        "ok": 3,
        "failed": 1,
        "invalid": 2,
        "by_error_kind": {"bad-input": 2, "refused": 1},
    }
    assert document["targets"] == after


def test_resume_keys_of_explicit_addresses_and_sni(tmp_path: Path, chain: Chain) -> None:
    targets = [
        target("example.com", address="192.0.2.7"),
        target("192.0.2.8", sni=None),
        target("192.0.2.9", 8443, sni="forced.example"),
    ]
    out = prepared(tmp_path)
    out.write([ok(chain.ders[:1], t) for t in targets])
    out.close(run=RUN, complete=False)
    assert OutputDir(tmp_path, resume=True).prepare() == {t.key for t in targets}


@pytest.mark.parametrize(
    "tail", [b'{"host": "x.example", "port": 4', b"\x00\x00\x00", b'{"host": "y"}', b"{\n"]
)
def test_resume_cuts_a_torn_last_line(tmp_path: Path, chain: Chain, tail: bytes) -> None:
    out = prepared(tmp_path)
    out.write([ok(chain.ders[:1]), failed("c.example")])
    good = (tmp_path / JSONL_NAME).read_bytes()
    (tmp_path / JSONL_NAME).write_bytes(good + tail)

    resumed = OutputDir(tmp_path, resume=True)
    assert resumed.prepare() == {target().key, target("c.example").key}
    assert (tmp_path / JSONL_NAME).read_bytes() == good
    resumed.write([failed("e.example")])
    assert [e["host"] for e in jsonl_entries(tmp_path)] == [
        "example.com",
        "c.example",
        "e.example",
    ]
    document = json.loads(resumed.close(run=RUN, complete=True).read_bytes())
    assert document["summary"]["targets"] == 3


def test_resume_refuses_a_corrupt_middle_line(tmp_path: Path) -> None:
    (tmp_path / JSONL_NAME).write_bytes(b'{"host": "a", "port": 1}\nnot json\n{"host": "b"}\n')
    with pytest.raises(OutputError, match=r"line 2 is not a valid entry.*--overwrite"):
        OutputDir(tmp_path, resume=True).prepare()


def test_resume_refuses_a_folder_with_only_manifest_json(tmp_path: Path) -> None:
    (tmp_path / JSON_NAME).write_bytes(b"{}")
    with pytest.raises(OutputError, match="--overwrite"):
        OutputDir(tmp_path, resume=True).prepare()


def test_resume_of_a_new_folder_starts_a_scan(tmp_path: Path) -> None:
    assert OutputDir(tmp_path / "new", resume=True).prepare() == set()
    assert (tmp_path / "new" / JSONL_NAME).exists()


# --------------------------------------------------------------------------------------------
# Unusable folders and full disks


def test_creates_missing_parents(tmp_path: Path) -> None:
    OutputDir(tmp_path / "a" / "b" / "c").prepare()
    assert (tmp_path / "a" / "b" / "c" / JSONL_NAME).is_file()
    assert [p.name for p in (tmp_path / "a" / "b" / "c").iterdir()] == [JSONL_NAME]


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file", "proc"])
def test_unusable_folder_fails_before_anything(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    root = {
        "under-a-file": afile / "out",
        "is-a-file": afile,
        "proc": Path("/proc/self/chainscan-out"),
    }[where]
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    with pytest.raises(OutputError, match=str(root)):
        OutputDir(root).prepare()
    assert afile.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.fixture
def fail_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make ``os.write`` fail with ENOSPC for data whose kind is listed (``der``, ``line``).

    A manifest line is half-written before the failure, as a full disk does.
    """
    real = os.write
    kinds: list[str] = []

    def write(fd: int, data: Any) -> int:
        head = bytes(data[:1])
        if ("der" in kinds and head == b"\x30") or ("line" in kinds and head == b"{"):
            if "line" in kinds and head == b"{" and len(data) > 1:
                kinds.remove("line")
                kinds.append("line-rest")
                return real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if "line-rest" in kinds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    yield kinds


def test_full_disk_while_writing_certificates(
    tmp_path: Path, chain: Chain, fail_writes: list[str]
) -> None:
    out = prepared(tmp_path)
    out.write([ok(chain.ders), failed("c.example")])
    fail_writes.append("der")
    with pytest.raises(OutputError) as info:
        out.write([failed("d.example"), ok(chain.ders, target("b.example"))])
    message = str(info.value)
    assert "b.example_443" in message and "no space left on device" in message
    assert "the manifest up to the previous target is intact" in message
    assert [e["host"] for e in jsonl_entries(tmp_path)] == ["example.com", "c.example", "d.example"]
    assert not [p for p in (tmp_path / "b.example_443").iterdir()]  # no temporary file left
    fail_writes.clear()
    document = json.loads(out.close(run=RUN, complete=False).read_bytes())
    assert [e["host"] for e in document["targets"]] == ["example.com", "c.example", "d.example"]
    assert document["summary"]["targets"] == 3


def test_full_disk_while_appending_a_manifest_line(
    tmp_path: Path, chain: Chain, fail_writes: list[str]
) -> None:
    out = prepared(tmp_path)
    out.write([failed("c.example")])
    fail_writes.append("line")
    with pytest.raises(OutputError, match=r"manifest\.jsonl: no space left on device"):
        out.write([failed("d.example")])
    fail_writes.clear()
    assert [e["host"] for e in jsonl_entries(tmp_path)] == ["c.example"]  # torn half cut off
    out.write([failed("e.example")])
    assert [e["host"] for e in jsonl_entries(tmp_path)] == ["c.example", "e.example"]


def test_write_before_prepare_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        OutputDir(tmp_path).write([])


# --------------------------------------------------------------------------------------------
# End to end: a real scan on loopback writes what the server sent


@pytest.mark.integration
def test_scan_on_loopback_writes_the_served_chains(
    tmp_path: Path, tls_server: ServerHandle
) -> None:
    from chainscan.run._run import RunConfig, run_scan

    port = tls_server.port
    lines = [
        f"a.test:{port}{{127.0.0.1}}",
        f"127.0.0.1:{port}",
        "bad:99999",
        f"b.test:{port}{{127.0.0.1}}",
    ]
    (tmp_path / "hosts.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    config = RunConfig(input=str(tmp_path / "hosts.txt"), output=out)
    report = run_scan(config)
    assert report.exit_code == 1  # the bad line
    document = json.loads((out / JSON_NAME).read_bytes())
    assert document["run"]["complete"] is True
    assert document["summary"] == {
        "targets": 4, "ok": 3, "failed": 0, "invalid": 1, "by_error_kind": {"bad-input": 1}
    }  # fmt: skip
    by_dir = {e["dir"]: e for e in document["targets"] if e["status"] == "ok"}
    served = {
        f"a.test_{port}_127.0.0.1": tls_server.chains["a.test"],
        f"b.test_{port}_127.0.0.1": tls_server.chains["b.test"],
        f"127.0.0.1_{port}": tls_server.chains[None],
    }
    assert set(by_dir) == set(served)
    for dirname, ders in served.items():
        entry = by_dir[dirname]
        assert [(out / c["file"]).read_bytes() for c in entry["chain"]] == list(ders)
        assert entry["chain"][0]["file"].startswith(f"{dirname}/")
    assert by_dir[f"127.0.0.1_{port}"]["chain"][0]["file"].endswith("/default_test.der")
    assert [c["role"] for c in by_dir[f"127.0.0.1_{port}"]["chain"]] == [
        "leaf", "intermediate", "root"
    ]  # fmt: skip

    again = run_scan(dataclasses.replace(config, resume=True))
    assert again.exit_code == 1
    assert len(jsonl_entries(out)) == 4
