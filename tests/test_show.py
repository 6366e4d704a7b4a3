"""``chainscan show HOST...``: the one-host view, against real loopback servers.

What is checked: the text names each certificate with its validity and days left, key, pin and
fingerprint, the trust and hostname verdicts and the problems; the exit code follows the
verdicts; nothing is written unless --save; --save writes the scan folder the manifest reader
reads; --json gives manifest entries; every argument is checked before any connection; the view
never imports trio; and server text cannot reach the terminal as control characters.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from chainscan._cli import main
from chainscan._models import BadLine
from chainscan.analysis._analyze import analyze_der
from chainscan.commands._show_text import days_left, render_entry, terminal_safe
from chainscan.manifest._reader import read_entries
from tests.pki import CA
from tests.servers import ServerHandle, TLSServer, refused_port, served_chain

NOW = dt.datetime.now(dt.UTC)


class Site(NamedTuple):
    server: ServerHandle
    store: Path
    good_leaf: bytes
    expired_leaf: bytes


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("show")
    root = CA("show test root")
    inter = root.child_ca("show test issuing CA")
    good = inter.issue(
        "good.test", not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=80)
    )
    old = inter.issue(
        "expired.test",
        not_before=NOW - dt.timedelta(days=100),
        not_after=NOW - dt.timedelta(days=3, hours=1),
    )
    (tmp / "g").mkdir()
    (tmp / "e").mkdir()
    store = tmp / "roots.pem"
    store.write_bytes(root.pem)
    good_chain = served_chain(tmp / "g", good, inter)
    chains = {
        "good.test": good_chain,
        "expired.test": served_chain(tmp / "e", old, inter),
        None: good_chain,
    }
    with TLSServer(chains) as server:
        yield Site(server, store, good.der, old.der)


def target(site: Site, name: str) -> str:
    return f"{name}:{site.server.address[1]}{{127.0.0.1}}"


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["show", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_good_host(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = show(capsys, target(site, "good.test"), "--trust-store", str(site.store))
    facts = analyze_der(site.good_leaf)
    assert code == 0, err
    assert out.startswith(f"good.test:{site.server.address[1]} {{127.0.0.1}}")
    assert f"trusted ({site.store})" in out
    assert "hostname  good.test matches (DNS:good.test)" in out
    assert "chain     2 certificates as sent" in out
    assert "[0] leaf: good.test" in out and "[1] intermediate: show test issuing CA" in out
    assert f"pin      {facts.pin}" in out
    assert f"sha256   {facts.sha256}" in out
    assert "79 days left" in out
    assert "problems  none" in out
    assert "\x1b" not in out  # not a terminal: no colour
    assert list(tmp_path.iterdir()) == []  # no output folder


def test_expired_host_exits_1(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, target(site, "expired.test"), "--trust-store", str(site.store))
    assert code == 1
    assert "EXPIRED 3 days ago" in out
    assert "NOT trusted" in out
    assert "error   expired  leaf 'expired.test' expired on" in out


def test_refused_and_several_in_input_order(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    port = refused_port()
    code, out, _ = show(
        capsys, f"127.0.0.1:{port}", target(site, "good.test"), "--trust-store", str(site.store)
    )
    assert code == 1
    first, second = out.split("\n\n")
    assert first == f"127.0.0.1:{port}  no SNI\n  FAILED (refused): connection to 127.0.0.1 refused"
    assert second.startswith("good.test:")


def test_untrusted_by_default_store(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, target(site, "good.test"))
    assert code == 1
    assert "NOT trusted (certifi)" in out
    assert "untrusted-root" in out


def test_json_lines_are_manifest_entries(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(
        capsys,
        target(site, "good.test"),
        target(site, "expired.test"),
        "--json",
        "--trust-store",
        str(site.store),
    )
    assert code == 1
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["host"] for e in entries] == ["good.test", "expired.test"]
    assert entries[0]["chain"][0]["pin"] == analyze_der(site.good_leaf).pin
    assert entries[0]["trust"]["trusted"] is True
    assert [p["code"] for p in entries[1]["problems"]] == ["expired"]
    assert entries[0]["dir"] is None and entries[0]["chain"][0]["file"] is None


def test_save_writes_the_scan_folder(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "saved"
    args = [target(site, "good.test"), "--trust-store", str(site.store), "--save", str(out_dir)]
    code, out, err = show(capsys, *args)
    assert code == 0, err
    assert f"saved: {out_dir / 'manifest.json'}" in err
    folder = f"good.test_{site.server.address[1]}_127.0.0.1"
    assert (out_dir / folder / "good_test.der").read_bytes() == site.good_leaf
    assert f"file     {folder}/good_test.der" in out
    (entry,) = read_entries(out_dir / "manifest.json")
    assert entry.chain[0].facts.sha256 == analyze_der(site.good_leaf).sha256
    code, _, err = show(capsys, *args)  # a second save into the same folder is refused
    assert code == 2 and "already holds a scan" in err
    code, _, err = show(capsys, *args, "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["good.test:99999"], "port 99999 is out of range"),
        (["good.test", "--sni", "bad name"], "--sni"),
        (["good.test", "--overwrite"], "--overwrite goes with --save DIR"),
        (["good.test", "--trust-store", "/nonexistent/roots.pem"], "roots.pem"),
    ],
)
def test_bad_arguments_fetch_nothing(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    accepted = len(site.server.snis)  # the server must see no connection
    code, out, err = (
        show(capsys, *argv, "--save", str(tmp_path / "x"))
        if argv[-1] != "--overwrite"
        else show(capsys, *argv)
    )
    assert code == 2
    assert message in err and out == ""
    assert not (tmp_path / "x").exists()
    assert len(site.server.snis) == accepted


def test_show_never_imports_trio(site: Site) -> None:
    script = (
        "import sys\n"
        "from chainscan._cli import main\n"
        f"argv = ['show', {target(site, 'good.test')!r}, '--trust-store', {str(site.store)!r}]\n"
        "code = main(argv)\n"
        "assert 'trio' not in sys.modules, 'trio imported'\n"
        "assert 'rich' not in sys.modules, 'rich imported'\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "good.test matches" in run.stdout


def test_no_color_and_colour(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {
        "host": "h.test",
        "port": 443,
        "sni": "h.test",
        "requested_address": None,
        "address": "127.0.0.1",
        "status": "failed",
        "error_kind": "refused",
        "error": "connection to 127.0.0.1 refused",
        "input": {"text": "h.test"},
    }
    assert "\x1b[31m" in render_entry(entry, now=NOW, warn_days=30, color=True)
    assert "\x1b" not in render_entry(entry, now=NOW, warn_days=30, color=False)


def test_hostile_server_text_is_escaped() -> None:
    shown = terminal_safe("evil\x1b]0;title\x07\u202etxt.exe")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    entry = {
        "host": "h.test",
        "port": 443,
        "sni": "h.test",
        "requested_address": None,
        "address": None,
        "status": "ok",
        "error_kind": None,
        "error": None,
        "input": {"text": "h.test"},
        "tls_version": "TLSv1.3",
        "cipher": None,
        "chain_length": 1,
        "trust": None,
        "hostname": None,
        "problems": [],
        "chain": [
            {
                "position": 0,
                "role": "leaf",
                "cn": "\x1b[2Jx",
                "subject": "CN=\x1b[2Jx",
                "issuer": "CN=\x9b31m",
                "sans": ["DNS:\x1b"],
                "not_before": None,
                "not_after": None,
                "key_type": "EC",
                "key_size": 256,
                "pin": "sha256/x",
                "sha256": "ab",
            }
        ],
    }
    text = render_entry(entry, now=NOW, warn_days=30, color=False)
    assert "\x1b" not in text and "\x9b" not in text
    assert "\\x1b[2Jx" in text


def test_days_left() -> None:
    assert days_left("2026-01-10T00:00:00Z", dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)) == 8
    assert days_left("2026-01-01T00:00:00Z", dt.datetime(2026, 1, 4, 1, tzinfo=dt.UTC)) == -3
    assert days_left(None, NOW) is None


def test_a_host_given_as_file_points_to_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["example.test", "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert "cannot read input file 'example.test'" in err
    assert "chainscan show example.test" in err
    assert main(["no such file.txt", "-o", "out"]) == 2  # not a target: no hint
    assert "chainscan show" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["good.test", "expired.test", "other.test"])
@pytest.mark.parametrize("store", ["bundle", "certifi"])
def test_verdicts_equal_the_whole_stores(site: Site, name: str, store: str) -> None:
    """The view builds its trust store from the roots that can matter for the chain only: its
    entries must be those of the scan's inventory with the whole store."""
    from chainscan._models import ScanOptions
    from chainscan.analysis._entry import EntryBuilder
    from chainscan.analysis._inventory import Inventory
    from chainscan.commands._show import Describer
    from chainscan.scan._blocking import fetch_chain
    from chainscan.scan._targets import parse_line

    options = ScanOptions(trust_store=str(site.store) if store == "bundle" else "certifi")
    parsed = parse_line(target(site, name), line=1, source="<argv>")
    assert parsed is not None and not isinstance(parsed, BadLine)
    result = fetch_chain(parsed, options)
    assert result.chain
    shown = Describer(options).entry(result)
    builder = EntryBuilder(Inventory.from_options(options))
    whole = builder.entry(builder.analyse(result), ["f"] * len(result.chain), "d")
    for key in ("trust", "hostname", "problems"):
        assert shown[key] == whole[key], key
