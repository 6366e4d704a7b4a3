"""``chainscan bundle --prune`` (issue 14): what an earlier run wrote and the selection no
longer includes is removed, tracked so that a person's files are never touched; without
``--prune`` it is named in a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainscan.commands._bundle import CERT_DIRS, INFOPLIST
from chainscan.commands._bundle_cli import main
from chainscan.commands._bundle_track import TRACK_FILE
from tests.test_bundle import kony_app, scan


def bundle(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def names(app: Path) -> set[str]:
    return {p.name for p in (app / CERT_DIRS[0]).iterdir()}


def test_prune_removes_only_what_an_earlier_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    app = kony_app(tmp_path, {"keep": 1})
    assert bundle(capsys, out, "--kony-app", app, "--pin", "both")[0] == 0
    assert "a_test.der" in names(app)
    mine = app / CERT_DIRS[0] / "my_own.der"
    mine.write_bytes(b"a person's certificate")
    edited = app / CERT_DIRS[1] / "b_test.der"
    edited.write_bytes(b"edited by hand")

    code, stdout, err = bundle(capsys, out, "--kony-app", app, "--pin", "intermediate")
    assert code == 0
    assert "a_test.der in 4 folders: written by an earlier bundle run" in err
    assert "b_test.der in 3 folders: written by an earlier bundle run" in err
    assert "--prune removes it [stale]" in err
    assert f"{CERT_DIRS[1]}/b_test.der: an earlier bundle run wrote it and it changed" in err
    assert "a_test.der" in names(app) and "removed" not in stdout

    code, stdout, err = bundle(capsys, out, "--kony-app", app, "--pin", "intermediate", "--prune")
    assert code == 0
    assert names(app) == {
        "bundle_test_intermediate.der",
        "bundle_test_intermediate_2.der",
        "my_own.der",
    }
    assert mine.read_bytes() == b"a person's certificate"
    assert edited.read_bytes() == b"edited by hand"  # changed since: never touched
    assert stdout.count("removed") == 4 * 3 - 1  # 3 leaves x 4 folders, but the edited one
    assert "[stale]" in err and "changed since" in err
    # a second pruning run has nothing left to remove
    code, stdout, _err = bundle(capsys, out, "--kony-app", app, "--prune")
    assert code == 0 and "removed" not in stdout
    record = json.loads((app / TRACK_FILE).read_text())
    assert f"{CERT_DIRS[0]}/my_own.der" not in record["files"]


def test_prune_switches_from_public_keys_to_certificates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    app = kony_app(tmp_path, {"keep": 1})
    assert bundle(capsys, out, "--kony-app", app, "--public-keys")[0] == 0
    config = json.loads((app / INFOPLIST).read_text())
    assert config["KonyHTTPPublicKeyPinning"] is True
    code, _out, err = bundle(capsys, out, "--kony-app", app)
    assert code == 0
    assert '"KonyHTTPPublicKeyPinning" was set by an earlier bundle run' in err
    assert "public_keys.json in 4 folders: written by an earlier bundle run" in err
    code, _out, _err = bundle(capsys, out, "--kony-app", app, "--prune")
    assert code == 0
    assert "public_keys.json" not in names(app)
    assert json.loads((app / INFOPLIST).read_text()) == {"keep": 1, "allowbundledonly": True}


def test_prune_drops_only_the_hosts_an_earlier_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    app = kony_app(tmp_path)
    assert bundle(capsys, out, "--kony-app", app, "--public-keys")[0] == 0
    for folder in CERT_DIRS:  # a person adds a host of their own
        path = app / folder / "public_keys.json"
        keys = json.loads(path.read_text())
        keys["mine.example.com"] = ["A" * 43 + "="]
        path.write_text(json.dumps(keys))
    code, _out, err = bundle(capsys, out, "--kony-app", app, "--public-keys", "--host", "a.test")
    assert code == 0 and "b.test, c.test written by an earlier bundle run" in err
    keys = json.loads((app / CERT_DIRS[0] / "public_keys.json").read_text())
    assert set(keys) == {"a.test", "b.test", "c.test", "mine.example.com"}
    code, _out, _err = bundle(
        capsys, out, "--kony-app", app, "--public-keys", "--host", "a.test", "--prune"
    )
    assert code == 0
    for folder in CERT_DIRS:
        keys = json.loads((app / folder / "public_keys.json").read_text())
        assert set(keys) == {"a.test", "mine.example.com"}


def test_dry_run_prune_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = scan(tmp_path / "out")
    app = kony_app(tmp_path)
    assert bundle(capsys, out, "--kony-app", app, "--pin", "both")[0] == 0
    code, stdout, _err = bundle(capsys, out, "--kony-app", app, "--prune", "--dry-run")
    assert code == 0 and stdout.count("would remove") == 4 * 3
    assert "a_test.der" in names(app)
