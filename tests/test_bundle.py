"""``chainscan bundle``: a scan's certificates (or pins) into a Kony / Volt MX app folder.

Checks the guide's four ``certs`` folders, the merge into ``infoplist_configuration.json``
(other keys kept), public-key mode, dry runs, and that nothing is written outside the app.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from chainscan.commands._bundle import CERT_DIRS, INFOPLIST
from chainscan.commands._bundle_cli import main
from tests.pki import CA, Issued
from tests.scan_output import Target, write_scan


@functools.cache
def root() -> CA:
    return CA("bundle test root")


@functools.cache
def inter() -> CA:
    return root().child_ca("bundle test intermediate")


@functools.cache
def inter2() -> CA:
    return root().child_ca("bundle test intermediate 2", key_type="rsa")


@functools.cache
def leaf(name: str) -> Issued:
    return (inter2() if name.startswith("c.") else inter()).issue(name)


def scan(out: Path, *, cert_format: str = "der") -> Path:
    write_scan(
        out,
        [
            Target("a.test", [leaf("a.test").der, inter().der]),
            Target("b.test", [leaf("b.test").der, inter().der]),
            Target("c.test", [leaf("c.test").der, inter2().der, root().der]),
            Target("down.test", status="failed", error_kind="refused"),
        ],
        cert_format=cert_format,
    )
    return out


def kony_app(tmp_path: Path, infoplist: object | None = None) -> Path:
    app = tmp_path / "workspace" / "MyApp"
    (app / "resources" / "common").mkdir(parents=True)
    (app / "projectProperties.json").write_text("{}\n")
    if infoplist is not None:
        (app / INFOPLIST).write_text(json.dumps(infoplist, indent=2))
    return app


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_certificates_land_in_the_four_folders_and_infoplist_keeps_its_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    existing = {"NSFaceIDUsageDescription": "Sign in", "allowbundledonly": False, "n": [1, 2]}
    app = kony_app(tmp_path, existing)
    code, stdout, _err = run(capsys, out, "--kony-app", app, "--pin", "both")
    assert code == 0
    expected = {
        "a_test.der": leaf("a.test").der,
        "b_test.der": leaf("b.test").der,
        "c_test.der": leaf("c.test").der,
        "bundle_test_intermediate.der": inter().der,
        "bundle_test_intermediate_2.der": inter2().der,
    }
    for folder in CERT_DIRS:
        assert tree(app / folder) == expected, folder
    assert CERT_DIRS == (
        "resources/mobile/native/iphone/certs",
        "resources/tablet/native/ipad/certs",
        "resources/mobile/native/android/assets/certs",
        "resources/tablet/native/androidtab/assets/certs",
    )
    config = json.loads((app / INFOPLIST).read_text())
    assert config == {**existing, "allowbundledonly": True}
    assert list(config) == list(existing)  # key order kept too
    assert "bundled: 5 certificates of 3 hosts" in stdout
    assert "Network Trust Config to Allow Pinned" in stdout
    assert stdout.count("created") == 4 * 5 + 0 and stdout.count("replaced") == 1


def test_default_is_the_intermediates_once_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = kony_app(tmp_path)
    code, _out, err = run(capsys, scan(tmp_path / "out"), "--kony-app", app)
    assert code == 0
    for folder in CERT_DIRS:
        assert sorted(tree(app / folder)) == [
            "bundle_test_intermediate.der",
            "bundle_test_intermediate_2.der",
        ]
    assert json.loads((app / INFOPLIST).read_text()) == {"allowbundledonly": True}
    assert "down.test: no chain" in err


def test_leaf_only_with_cer_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = kony_app(tmp_path)
    code, _out, _err = run(
        capsys, scan(tmp_path / "out"), "--kony-app", app, "--pin", "leaf", "--cer"
    )
    assert code == 0
    for folder in CERT_DIRS:
        assert sorted(tree(app / folder)) == ["a_test.cer", "b_test.cer", "c_test.cer"]


def test_pem_scans_are_bundled_as_der(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = kony_app(tmp_path)
    code, _out, _err = run(
        capsys, scan(tmp_path / "out", cert_format="pem"), "--kony-app", app, "--host", "a.test"
    )
    assert code == 0
    assert tree(app / CERT_DIRS[0]) == {"bundle_test_intermediate.der": inter().der}


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = kony_app(tmp_path, {"other": 1})
    before = tree(app)
    code, out, _err = run(capsys, scan(tmp_path / "out"), "--kony-app", app, "--dry-run")
    assert code == 0
    assert tree(app) == before
    assert not (app / "resources" / "mobile").exists()
    assert out.startswith("plan (dry run, nothing written): 2 certificates of 3 hosts")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert (
        "would create resources/tablet/native/androidtab/assets/certs/"
        "bundle_test_intermediate_2.der [intermediate bundle test intermediate 2 (c.test)]"
    ) in lines
    assert (
        'would replace resources/common/infoplist_configuration.json ["allowbundledonly": true]'
    ) in lines


def test_second_run_changes_nothing_and_replaces_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    app = kony_app(tmp_path)
    assert run(capsys, out, "--kony-app", app)[0] == 0
    stale = app / CERT_DIRS[2] / "bundle_test_intermediate.der"
    stale.write_bytes(b"old certificate")
    code, stdout, _err = run(capsys, out, "--kony-app", app)
    assert code == 0
    assert stdout.count("unchanged") == 8 and stdout.count("replaced") == 1
    assert stale.read_bytes() == inter().der


def test_public_keys_mode_merges_public_keys_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = kony_app(tmp_path, {"allowbundledonly": True})
    other = app / CERT_DIRS[1] / "public_keys.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"legacy.test": ["x"], "a.test": ["stale"]}))
    spare = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    code, _out, _err = run(
        capsys,
        scan(tmp_path / "out"),
        "--kony-app",
        app,
        "--public-keys",
        "--pin",
        "both",
        "--backup",
        spare,
        "--include-subdomains",
    )
    assert code == 0
    written = [json.loads((app / d / "public_keys.json").read_text()) for d in CERT_DIRS]
    plain = written[0]
    assert set(plain) == {"a.test", "*.a.test", "b.test", "*.b.test", "c.test", "*.c.test"}
    assert len(plain["a.test"]) == 3 and plain["a.test"][-1] == spare
    assert written[1] == {"legacy.test": ["x"], **plain}  # other hosts kept, ours replaced
    assert written[2] == written[3] == plain
    for folder in CERT_DIRS:
        assert sorted(tree(app / folder)) == ["public_keys.json"]
    config = json.loads((app / INFOPLIST).read_text())
    assert config == {"allowbundledonly": True, "KonyHTTPPublicKeyPinning": True}
    code, _out, _err = run(
        capsys, tmp_path / "out", "--kony-app", app, "--public-keys", "--product", "voltmx"
    )
    assert code == 0
    assert json.loads((app / INFOPLIST).read_text())["VoltMXHTTPPublicKeyPinning"] is True


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_infoplist_stops_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    app = kony_app(tmp_path)
    (app / INFOPLIST).write_text(content)
    code, out, err = run(capsys, scan(tmp_path / "out"), "--kony-app", app)
    assert (code, out) == (2, "")
    assert "infoplist_configuration.json: not" in err
    assert not (app / "resources" / "mobile").exists()
    assert (app / INFOPLIST).read_text() == content


def test_never_writes_through_a_symlink_out_of_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = kony_app(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, app / "resources" / "tablet")
    code, _out, err = run(capsys, scan(tmp_path / "out"), "--kony-app", app)
    assert code == 2
    assert "leads outside the app folder" in err
    assert list(outside.iterdir()) == []
    assert not (app / "resources" / "mobile").exists()


def test_a_certificate_changed_since_the_scan_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan(tmp_path / "out")
    (out / "a.test_443_127.0.0.1" / "bundle_test_intermediate.der").write_bytes(root().der)
    app = kony_app(tmp_path)
    code, _out, err = run(capsys, out, "--kony-app", app)
    assert code == 2 and "does not match the manifest's sha256" in err
    assert not (app / "resources" / "mobile").exists()


def test_certificates_sharing_a_name_get_numbered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = inter().issue("x.test", cn="shared name")
    two = inter().issue("y.test", cn="shared name")
    out = write_scan(
        tmp_path / "out",
        [Target("x.test", [one.der, inter().der]), Target("y.test", [two.der, inter().der])],
    ).parent
    app = kony_app(tmp_path)
    code, _out, _err = run(capsys, out, "--kony-app", app, "--pin", "leaf")
    assert code == 0
    files = tree(app / CERT_DIRS[0])
    assert sorted(files) == ["shared_name.der", "shared_name_2.der"]
    assert sorted(files.values()) == sorted([one.der, two.der])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kony-app", "{tmp}/nope"], "no such folder"),
        (["--kony-app", "{app}", "--backup", "x"], "need --public-keys"),
    ],
)
def test_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    app = kony_app(tmp_path)
    argv = [a.format(tmp=tmp_path, app=app) for a in args]
    code, _out, err = run(capsys, scan(tmp_path / "out"), *argv)
    assert code == 2 and message in err


def test_nothing_to_bundle_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = kony_app(tmp_path)
    code, _out, err = run(capsys, scan(tmp_path / "out"), "--kony-app", app, "--host", "down.test")
    assert code == 1 and "nothing written" in err
    assert not (app / "resources" / "mobile").exists()
