"""``chainscan diff OLD NEW [--pins FILE]``: two scans of one loopback fleet whose certificates
were renewed in between (same key, new key, new intermediate, ...), and the pin gate fed with
every pin format ``chainscan pins`` writes, plus a plain list.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chainscan.commands._pinconfig import parse_pin_config
from chainscan.commands._pins import FORMATS, PinOptions, plan_pins, render
from chainscan.commands._pins_cli import load_scan
from tests.inventory_fleet import RenewableServer, run
from tests.pki import CA
from tests.servers import ServedChain, TLSServer, served_chain

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]
DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TwoScans:
    old: Path
    new: Path
    tmp: Path
    port: int


@pytest.fixture(scope="module")
def two_scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoScans]:
    tmp = tmp_path_factory.mktemp("diff")
    now = dt.datetime.now(dt.UTC)
    root = CA("diff root")
    inter = root.child_ca("diff intermediate")
    inter2 = root.child_ca("diff intermediate 2")
    private = CA("diff private root").child_ca("diff private intermediate")
    first = {name: inter.issue(f"{name}.test") for name in ("same", "newkey", "newinter")}
    first |= {name: inter.issue(f"{name}.test") for name in ("stable", "expiring", "untrust")}

    def chains(leaves: dict[str, Any], cas: dict[str, CA]) -> dict[str | None, ServedChain]:
        out: dict[str | None, ServedChain] = {
            f"{name}.test": served_chain(tmp, leaf, cas.get(name, inter))
            for name, leaf in leaves.items()
        }
        out[None] = out["stable.test"]
        return out

    old_chains = chains({**first, "gone": inter.issue("gone.test")}, {})
    new_leaves = {
        "same": inter.issue("same.test", key=first["same"].key),
        "newkey": inter.issue("newkey.test"),
        "newinter": inter2.issue("newinter.test", key=first["newinter"].key),
        "stable": first["stable"],
        "expiring": inter.issue(
            "expiring.test", key=first["expiring"].key, not_after=now + 10 * DAY
        ),
        "untrust": private.issue("untrust.test"),
        "added": inter.issue("added.test"),
    }
    new_chains = chains(new_leaves, {"newinter": inter2, "untrust": private})
    root_pem = tmp / "root.pem"
    root_pem.write_bytes(root.pem)
    server = RenewableServer(old_chains)
    down = TLSServer({None: served_chain(tmp, inter.issue("down.test"), inter)})
    port, down_port = server.start().port, down.start().port
    try:
        base = ["same", "newkey", "newinter", "stable", "expiring", "untrust"]
        lines = [f"{name}.test:{port}{{127.0.0.1}}" for name in base]
        lines.append(f"down.test:{down_port}{{127.0.0.1}}")
        old_hosts, new_hosts = tmp / "old.txt", tmp / "new.txt"
        old_hosts.write_text("\n".join([*lines, f"gone.test:{port}{{127.0.0.1}}"]) + "\n")
        new_hosts.write_text("\n".join([*lines, f"added.test:{port}{{127.0.0.1}}"]) + "\n")
        common = ["--trust-store", str(root_pem), *FAST]
        code, _out, err = run(str(old_hosts), "-o", str(tmp / "old"), *common)
        assert code == 0, err
        down.stop()  # down.test is refused from now on
        server.renew(new_chains)  # every certificate renewed, same port
        code, _out, err = run(str(new_hosts), "-o", str(tmp / "new"), *common)
        assert code == 1, err
    finally:
        down.stop()
        server.stop()
    yield TwoScans(old=tmp / "old", new=tmp / "new", tmp=tmp, port=port)


def changes(scans: TwoScans, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run("diff", str(scans.old), str(scans.new), "--json", *extra)
    assert code in (0, 1), err
    return code, json.loads(out)


def by_host(result: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for change in result["changes"]:
        out.setdefault(change["host"], []).append(change["kind"])
    return out


def test_diff_names_every_kind_of_change(two_scans: TwoScans) -> None:
    code, result = changes(two_scans)
    assert code == 0
    assert by_host(result) == {
        "same.test": ["leaf-renewed-same-key"],
        "newkey.test": ["leaf-renewed-new-key"],
        "newinter.test": ["leaf-renewed-same-key", "intermediate-changed"],
        "expiring.test": ["leaf-renewed-same-key", "newly-expiring"],
        "untrust.test": [
            "leaf-renewed-new-key",
            "intermediate-changed",
            "newly-untrusted",
            "new-problems",
        ],
        "down.test": ["newly-failing"],
        "added.test": ["added"],
        "gone.test": ["removed"],
    }
    assert result["counts"] == {
        "old": 8,
        "new": 8,
        "added": 1,
        "removed": 1,
        "changed": 6,
        "unchanged": 1,
    }
    messages = {(c["host"], c["kind"]): c["message"] for c in result["changes"]}
    assert "new keys" in messages[("newinter.test", "intermediate-changed")]
    assert "'diff intermediate 2'" in messages[("newinter.test", "intermediate-changed")]
    assert "untrusted-root" in messages[("untrust.test", "new-problems")]
    assert messages[("down.test", "newly-failing")].startswith("no chain now: ")  # refused
    assert "kept" in messages[("same.test", "leaf-renewed-same-key")]


def test_diff_table_is_readable(two_scans: TwoScans) -> None:
    code, out, err = run("diff", str(two_scans.old / "manifest.json"), str(two_scans.new))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("OLD  ") and "8 targets" in lines[0]
    header = next(line for line in lines if line.startswith("CHANGE"))
    assert header.split() == ["CHANGE", "TARGET", "DETAIL"]
    row = next(line for line in lines if line.startswith("leaf-renewed-new-key"))
    assert f"newkey.test:{two_scans.port}{{127.0.0.1}}" in row
    assert "6 changed, 1 added, 1 removed, 1 unchanged" in out


def pins_file(scans: TwoScans, fmt: str, *options: str) -> Path:
    path = scans.tmp / f"pins-{fmt}-{'-'.join(options) or 'default'}.txt"
    if fmt == "trustkit":
        # `chainscan pins` refuses .test names for TrustKit (it would crash at start-up: no
        # Public Suffix List suffix), so this stands for a hand-made file: the reader is tested
        assert options == ("--pin", "leaf")
        scan = load_scan([scans.old])
        plan = plan_pins(scan, PinOptions(roles=("leaf",)))
        path.write_text(render(plan, "trustkit"))
        return path
    code, _out, err = run("pins", str(scans.old), "--format", fmt, "-o", str(path), "-q", *options)
    assert code == 0, err
    return path


def gate(scans: TwoScans, pins: Path) -> tuple[int, dict[str, str]]:
    code, result = changes(scans, "--pins", str(pins))
    return code, {h["host"]: h["status"] for h in result["pins"]["hosts"]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_pin_gate_reads_every_format_and_fails_on_a_new_leaf_key(
    two_scans: TwoScans, fmt: str
) -> None:
    path = pins_file(two_scans, fmt, "--pin", "leaf")
    assert parse_pin_config(path.read_bytes()).format == fmt
    code, status = gate(two_scans, path)
    assert code == 1
    assert status == {
        "same.test": "ok",
        "newkey.test": "broken",
        "newinter.test": "ok",  # its leaf kept its key
        "stable.test": "ok",
        "expiring.test": "ok",
        "untrust.test": "broken",
        "down.test": "no-chain",
        "gone.test": "not-scanned",
    }


def test_intermediate_pins_break_on_a_new_intermediate(two_scans: TwoScans) -> None:
    code, status = gate(two_scans, pins_file(two_scans, "okhttp", "--pin", "intermediate"))
    assert code == 1
    broken = {host for host, state in status.items() if state == "broken"}
    assert broken == {"newinter.test", "untrust.test"}
    code, out, _err = run(
        "diff",
        str(two_scans.old),
        str(two_scans.new),
        "--pins",
        str(pins_file(two_scans, "okhttp", "--pin", "intermediate")),
    )
    assert code == 1 and "-> FAIL" in out
    assert "the chain from 127.0.0.1 (leaf 'newinter.test') has none of its pins" in out


def test_a_plain_list_and_pins_that_still_hold(two_scans: TwoScans) -> None:
    old = {
        e["sni"]: e for e in json.loads((two_scans.old / "manifest.json").read_text())["targets"]
    }
    new = {
        e["sni"]: e for e in json.loads((two_scans.new / "manifest.json").read_text())["targets"]
    }
    plain = two_scans.tmp / "plain.txt"
    plain.write_text(
        "# host pins\n"
        f"same.test {old['same.test']['chain'][0]['pin']}\n"
        f"stable.test {old['stable.test']['chain'][0]['spki_sha256']}, "
        f"{old['stable.test']['chain'][1]['pin']}\n"
    )
    code, status = gate(two_scans, plain)
    assert code == 0 and status == {"same.test": "ok", "stable.test": "ok"}
    # a root pin holds although no server sends the root: the built chain has it
    root_pin = new["same.test"]["trust"]["chain"][-1]["spki_sha256"]
    everywhere = two_scans.tmp / "root-pin.txt"
    everywhere.write_text(f"{root_pin}\n")
    code, status = gate(two_scans, everywhere)
    assert code == 1 and status["untrust.test"] == "broken"
    assert {s for h, s in status.items() if h != "untrust.test"} <= {"ok", "no-chain"}


def test_expired_pins_are_not_enforced(two_scans: TwoScans) -> None:
    path = pins_file(two_scans, "android", "--pin", "leaf", "--expiration", "2001-01-01")
    code, result = changes(two_scans, "--pins", str(path))
    assert code == 0
    broken = [h for h in result["pins"]["hosts"] if h["status"] == "broken"]
    assert {h["host"] for h in broken} == {"newkey.test", "untrust.test"}
    assert not any(h["enforced"] for h in broken)
    assert result["pins"]["failed"] is False


def test_diff_usage_errors(two_scans: TwoScans, tmp_path: Path) -> None:
    code, _out, err = run("diff", str(two_scans.old), str(tmp_path / "missing"))
    assert code == 2 and "missing" in err
    bad = tmp_path / "bad.xml"
    bad.write_text("<other/>")
    code, _out, err = run("diff", str(two_scans.old), str(two_scans.new), "--pins", str(bad))
    assert code == 2 and "not a pin configuration" in err
