"""Rough edges a new user hits (issue 15): arguments checked before the output folder is
touched, no internal names in messages, an empty input fails, a resumed scan's summary covers
the whole manifest, an interrupted scan says how to resume, ``name{ip}:port``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chainscan._cli import main
from tests.servers import ServerHandle

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "--rate", "0"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--sni", "bad name"], "invalid --sni name 'bad name'"),
        (["--trust-store", "/nonexistent/roots.pem"], "cannot read /nonexistent/roots.pem"),
    ],
)
def test_a_rejected_run_leaves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: list[str], message: str
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("127.0.0.1:1\n")
    out = tmp_path / "out"
    code, err = run(capsys, str(hosts), "-o", str(out), *option)
    assert code == 2
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--rate", "nan"],
            "argument -r/--rate: expected a number of connections per second, got 'nan'",
        ),
        (
            ["--rate", "inf"],
            "argument -r/--rate: expected a number of connections per second, got 'inf'",
        ),
        (
            ["--rate", "abc"],
            "argument -r/--rate: expected a number of connections per second, got 'abc'",
        ),
        (["--deadline", "nan"], "argument --deadline: expected a number of seconds, got 'nan'"),
        (["--deadline", "inf"], "argument --deadline: expected a number of seconds, got 'inf'"),
        (["-c", "x"], "argument -c/--concurrency: expected a whole number, got 'x'"),
        (["--retries", "x"], "argument --retries: expected a whole number, got 'x'"),
        (["--port", "x"], "argument -p/--port: expected a port number, got 'x'"),
    ],
)
def test_bad_numbers_are_refused_in_the_users_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["hosts.txt", "-o", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "invalid _" not in err and "_rate" not in err
    assert not (tmp_path / "out").exists()


def test_name_ip_port_form_is_scanned(
    capsys: pytest.CaptureFixture[str], tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test{{127.0.0.1}}:{tls_server.port}\n")
    code, err = run(capsys, str(hosts), "-o", str(tmp_path / "out"), *FAST)
    assert code == 0, err
    assert tls_server.snis == ["a.test"]


def test_resumed_summary_covers_the_whole_manifest(
    capsys: pytest.CaptureFixture[str], tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    out = tmp_path / "out"
    hosts.write_text(f"a.test:{tls_server.port}{{127.0.0.1}}\nbad:99999\n")
    code, _ = run(capsys, str(hosts), "-o", str(out), *FAST)
    assert code == 1
    with hosts.open("a") as stream:
        stream.write(f"b.test:{tls_server.port}{{127.0.0.1}}\n")
    code, err = run(capsys, str(hosts), "-o", str(out), "--resume", *FAST)
    assert code == 1  # the invalid line of the first run still counts
    assert "this run: 2 targets in" in err and "ok 1, failed 0, invalid 1" in err
    assert "whole scan: 3 targets: ok 2, failed 0, invalid 1 (bad-input 1)" in err


@pytest.mark.integration
def test_an_interrupted_scan_says_how_to_resume(
    silent_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"{silent_server.hostport}\n")
    out = tmp_path / "out dir"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chainscan",
            str(hosts),
            "-o",
            str(out),
            "--handshake-timeout",
            "30",
            "--deadline",
            "40",
            "--overwrite",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert silent_server.wait_for(lambda h: h.accepted >= 1, timeout=30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    expected = f"chainscan {hosts} -o '{out}' --handshake-timeout 30 --deadline 40 --resume"
    assert f"chainscan: warning: the scan is incomplete; to finish it: {expected}" in err


@pytest.mark.parametrize(
    ("names", "sni", "matches", "mismatch"),
    [
        (("web.test",), None, None, False),  # by address, no name asked, no IP SAN: not checked
        (("web.test", "127.0.0.1"), None, True, False),  # IP SANs: checked, matches
        (("web.test", "192.0.2.9"), None, False, True),  # IP SANs, not this one: mismatch
        (("web.test",), "other.test", False, True),  # a name was sent: always checked
        (("web.test",), "web.test", True, False),
    ],
)
def test_ip_targets_without_sni_check_the_name_only_against_ip_sans(
    names: tuple[str, ...], sni: str | None, matches: bool | None, mismatch: bool
) -> None:
    from chainscan._models import ScanResult, Status, Target
    from chainscan.analysis._inventory import Inventory
    from chainscan.analysis._verify import TrustStore
    from tests.pki import CA

    root = CA("ip-target root")
    leaf = root.issue(*names)
    store = TrustStore.from_pem(root.pem, name="test", source="test")
    result = ScanResult(
        target=Target(host="127.0.0.1", port=443, sni=sni),
        status=Status.OK,
        chain=(leaf.der,),
        chain_sent=1,
    )
    fields = Inventory(store).entry_fields(result)
    assert fields["hostname"]["matches"] is matches
    assert ("hostname-mismatch" in [p["code"] for p in fields["problems"]]) is mismatch
    assert fields["trust"]["trusted"] is True


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["-o -", "--jsonl"])
def test_json_lines_on_stdout(tls_server: ServerHandle, tmp_path: Path, mode: str) -> None:
    import json

    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test:{tls_server.port}{{127.0.0.1}}\nbad:99999\n127.0.0.1:1\n")
    out = tmp_path / "out"
    where = ["-o", "-"] if mode == "-o -" else ["-o", str(out), "--jsonl"]
    proc = subprocess.run(
        [sys.executable, "-m", "chainscan", str(hosts), *where, *FAST],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 1, proc.stderr
    entries = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(e["status"] for e in entries) == ["failed", "invalid", "ok"]
    ok = next(e for e in entries if e["status"] == "ok")
    assert ok["chain"][0]["sha256"] and ok["host"] == "a.test"
    assert "port 99999 is out of range" in proc.stderr  # messages stay on stderr
    if mode == "-o -":
        assert "manifest: standard output" in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.txt"]  # no folder kept
    else:
        lines = (out / "manifest.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == entries


def test_report_json(
    capsys: pytest.CaptureFixture[str], tls_server: ServerHandle, tmp_path: Path
) -> None:
    import json

    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"a.test:{tls_server.port}{{127.0.0.1}}\n127.0.0.1:1\n")
    out = tmp_path / "out"
    run(capsys, str(hosts), "-o", str(out), *FAST)
    assert main(["report", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["targets"] == 2 and data["counts"]["failed"] == 1
    assert sorted(row["status"] for row in data["hosts"]) == ["failed", "ok"]
    assert data["expiries"] and data["expiries"][0]["not_after"].endswith("Z")
    assert data["problems"].get("untrusted-root") == 1  # the test PKI is not in certifi


def test_inspect_shows_days_left_and_expiry_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import datetime as dt

    from tests.pki import CA

    now = dt.datetime.now(dt.UTC)
    root = CA("inspect expiry root")
    old = root.issue(
        "old.test",
        not_before=now - dt.timedelta(days=50),
        not_after=now - dt.timedelta(days=3, hours=1),
    )
    fresh = root.issue(
        "fresh.test",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=40, hours=1),
    )
    future = root.issue(
        "future.test",
        not_before=now + dt.timedelta(days=2),
        not_after=now + dt.timedelta(days=90, hours=1),
    )
    for name, issued in (("old", old), ("fresh", fresh), ("future", future)):
        (tmp_path / f"{name}.pem").write_bytes(issued.pem)
    code = main(["inspect", *(str(tmp_path / f"{n}.pem") for n in ("old", "fresh", "future"))])
    out = capsys.readouterr().out
    assert code == 0
    expires = [
        line.split(None, 1)[1] for line in out.splitlines() if line.strip().startswith("expires")
    ]
    assert expires == ["3 days ago (EXPIRED)", "in 40 days (valid)", "in 90 days (NOT YET VALID)"]
    code = main(["inspect", str(tmp_path / "missing.pem"), str(tmp_path / "old.pem")])
    assert code == 1  # documented: some FILE could not be read, the others printed
    assert "3 days ago (EXPIRED)" in capsys.readouterr().out


def test_no_color_reaches_the_console() -> None:
    from chainscan.run._display import Display

    assert Display(color=False)._console.no_color is True
    assert Display()._console.no_color is ("NO_COLOR" in os.environ)


def test_progress_counts_targets_not_lines(tmp_path: Path) -> None:
    from chainscan.scan._inputs import count_targets

    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        "# header\n" * 40 + "\n" + "a.test\nb.test:8443  # x\n192.0.2.0/29\n10.0.0.0/8\n"
    )
    assert count_targets(str(hosts)) == 2 + 6 + 1  # the /8 is one bad line
    sheet = tmp_path / "inventory.csv"
    sheet.write_text("# export\nhost;port\na.test;443\nb.test;8443\n192.0.2.0/30;443\n")
    assert count_targets(str(sheet)) == 3
    assert count_targets("-") is None


def test_progress_bar_failed_excludes_invalid_and_eta_is_bounded_at_the_end() -> None:
    import io

    from rich.progress import Progress

    from chainscan._models import BadLine, ScanResult, Status, Target
    from chainscan.run._display import Display
    from chainscan.run._progress import _Remaining

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    display = Display(stream=Terminal())
    display.start(10, in_flight=4, deadline=30)
    failed = ScanResult(target=Target(host="a.test", port=1, sni=None), status=Status.FAILED)
    bad = BadLine(source="f", line=1, raw="x y", reason="space")
    display.update([failed, bad, bad])
    assert display._progress is not None
    fields = display._progress.tasks[0].fields
    display.stop()
    assert (fields["failed"], fields["invalid"], fields["ok"]) == (1, 2, 0)
    column = _Remaining(in_flight=4, deadline=30)
    with Progress(column, console=None, disable=True) as progress:
        task_id = progress.add_task("t", total=10, completed=7)
        assert column.render(progress.tasks[task_id]).plain == "<= 30s"  # 3 left, all in flight
        progress.update(task_id, completed=2)
        assert column.render(progress.tasks[task_id]).plain != "<= 30s"  # 8 left: rate-based


def test_report_groups_a_repeated_untrusted_reason_and_knows_an_empty_scan() -> None:
    from chainscan.commands._report import build_report, render_html, render_text
    from chainscan.manifest._model import ManifestEntry

    reason = "the chain ends at the root 'Corp Root', which is not in the trust store " * 3

    def entry(host: str, why: str) -> ManifestEntry:
        return ManifestEntry.from_json(
            {
                "input": {"source": "f", "line": 1, "text": host},
                "host": host, "port": 443, "sni": host, "status": "ok", "chain": [],
                "trust": {"store": "certifi", "trusted": False, "reason": why, "chain": []},
                "hostname": {"name": host, "matches": True, "matched_by": f"DNS:{host}"},
                "problems": [],
            }
        )  # fmt: skip

    hosts = [f"h{n}.test" for n in range(7)]
    report = build_report([*(entry(h, reason) for h in hosts), entry("x.test", "other")])
    text = render_text(report)
    section = text.split("untrusted (8):\n")[1].split("\n\n")[0]
    assert section.count(reason) == 1
    assert "  x.test:443  other" in section
    assert (
        "    7 targets: h0.test:443, h1.test:443, h2.test:443, h3.test:443, h4.test:443 +2"
        in section
    )
    empty = build_report([])
    assert empty.analysed
    assert "no trust or problem data" not in render_text(empty)
    assert "no trust or problem data" not in render_html(empty)
    assert '8 targets, <span id="host-count">8</span> in the' in render_html(report)
