"""``run._run``: one scan wired from input to folder. Its pure parts (exit codes, error
messages, the mode a config picks, the run header, the descriptor fit), the signal policy, and
in-process scans through the thread writer: a normal run, an empty input, a write error."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from chainscan._errors import OutputError
from chainscan._models import ScanOptions, Status
from chainscan.output._output import OutputDir
from chainscan.run import _run
from chainscan.run._display import Display
from chainscan.run._run import RunConfig, RunReport, run_scan
from chainscan.run._shard import Shard
from chainscan.scan._backlog import Backlog
from tests.servers import ServerHandle

FAST = ScanOptions(connect_timeout=2, handshake_timeout=2, deadline=6, rate=0)


def _report(**overrides: Any) -> RunReport:
    fields: dict[str, Any] = {"counts": {}, "error_kinds": {}, "seconds": 0.0, "manifest": None}
    return RunReport(**{**fields, **overrides})


def test_the_exit_code_says_how_the_run_ended() -> None:
    assert _report().exit_code == 0
    assert _report(counts={Status.OK: 3}).exit_code == 0
    assert _report(counts={Status.OK: 3, Status.FAILED: 1}).exit_code == 1
    assert _report(counts={Status.INVALID: 1}).exit_code == 1
    assert _report(counts={Status.FAILED: 1}, error="disk full").exit_code == 2
    assert _report(error="disk full", signal=signal.SIGTERM).exit_code == 143
    assert _report(signal=signal.SIGINT).exit_code == 130


def test_messages_of_nested_exception_groups() -> None:
    group = ExceptionGroup(
        "outer", [OutputError("a"), ExceptionGroup("inner", [OutputError("b"), ValueError("c")])]
    )
    assert _run._messages(group) == ["a", "b", "c"]
    assert _run._messages(OutputError("only")) == ["only"]


@pytest.mark.parametrize(
    ("workers", "writer", "useful", "expected"),
    [
        (2, "process", True, None),
        (1, "thread", True, "thread"),
        (1, "process", False, "process"),
        (1, "auto", True, "process"),
        (1, "auto", False, "thread"),
    ],
)
def test_where_a_single_process_writes(
    monkeypatch: pytest.MonkeyPatch, workers: int, writer: Any, useful: bool, expected: str | None
) -> None:
    monkeypatch.setattr(_run, "writer_process_useful", lambda: useful)
    config = RunConfig(input="x", output=Path("o"), workers=workers, writer=writer)
    assert _run._writer_mode(config) == expected


def test_the_modes_are_sources_and_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "writer_process_useful", lambda: False)
    config = RunConfig(input="x", output=Path("o"))
    assert _run._writer(config) is _run._write_in_threads
    source = _run._source(config, FAST, Backlog(FAST.concurrency))
    assert getattr(source, "__func__", None) is _run.Scheduler.run
    process = _run._writer(RunConfig(input="x", output=Path("o"), writer="process"))
    assert getattr(process, "func", None) is _run.write_in_process


def test_concurrency_is_fitted_to_the_descriptor_limit_by_the_process_that_scans() -> None:
    huge = ScanOptions(concurrency=10_000_000)
    stream = io.StringIO()
    fitted = _run._fitted_options(
        RunConfig(input="x", output=Path("o"), options=huge), Display(stream=stream)
    )
    assert fitted.concurrency < huge.concurrency and "warning" in stream.getvalue()
    for elsewhere in ({"workers": 2}, {"dask": "local:2"}):  # their processes fit their share
        config = RunConfig(input="x", output=Path("o"), options=huge, **elsewhere)
        assert _run._fitted_options(config, Display(quiet=True)) is huge


def test_the_run_header_has_the_documented_fields() -> None:
    config = RunConfig(
        input="hosts.txt", output=Path("out"), shard=Shard(2, 3), argv=("hosts.txt",), workers=2
    )
    header = _run._run_record(
        config, FAST, started="S", seconds=1.23456, interrupted=signal.SIGTERM, error=None
    )
    assert list(header) == [
        "started", "finished", "seconds", "input", "output", "argv", "options", "resumed",
        "workers", "writer", "shard", "dask", "interrupted", "error",
    ]  # fmt: skip
    documented = (Path(__file__).parents[1] / "docs" / "manifest.md").read_text()
    for key in header:
        assert f"`{key}`" in documented
    assert header["seconds"] == 1.235 and header["shard"] == "2/3"
    assert header["interrupted"] == "SIGTERM" and header["writer"] is None
    assert header["options"]["cert_format"] == "der"


async def test_the_first_signal_stops_the_scan_the_second_the_writing() -> None:
    stream = io.StringIO()
    signals = _run._Signals(Display(stream=stream))
    async with trio.open_nursery() as nursery:
        await nursery.start(signals.watch)
        with trio.fail_after(10), signals.scan_scope:
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep_forever()  # until the signal cancels the scan
        assert signals.scan_scope.cancelled_caught and signals.interrupted()
        assert not signals.abort_scope.cancel_called
        with trio.fail_after(10), signals.abort_scope:
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.sleep_forever()  # until the second one cancels the writing
        assert signals.abort_scope.cancelled_caught
        nursery.cancel_scope.cancel()
    assert signals.received == signal.SIGINT
    assert "interrupted again" in stream.getvalue()


# ---------------------------------------------------------------- in-process scans

pytestmark_integration = pytest.mark.integration


def _hosts(tmp_path: Path, lines: list[str]) -> str:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"{line}\n" for line in lines))
    return str(hosts)


@pytestmark_integration
def test_a_scan_through_the_thread_writer(tls_server: ServerHandle, tmp_path: Path) -> None:
    port = tls_server.port
    hosts = _hosts(
        tmp_path, [f"a.test:{port}{{127.0.0.1}}", "bad:0", f"b.test:{port}{{127.0.0.1}}"]
    )
    config = RunConfig(input=hosts, output=tmp_path / "out", options=FAST, writer="thread")
    report = run_scan(config)
    assert report.counts == {Status.OK: 2, Status.FAILED: 0, Status.INVALID: 1}
    assert report.exit_code == 1 and report.error is None and report.signal is None
    assert report.manifest == tmp_path / "out" / "manifest.json"
    header = json.loads(report.manifest.read_text())
    assert header["run"]["writer"] == "thread" and header["run"]["complete"] is True
    assert sorted(e["sni"] or "" for e in header["targets"]) == ["", "a.test", "b.test"]


@pytestmark_integration
@pytest.mark.parametrize("writer", ["thread", "process"])
def test_the_writer_acknowledges_every_result_once(
    tls_server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """The window of ``scan._backlog`` counts results sent minus results acknowledged: a
    writer that forgot one would hold connections back for good, one that counted one twice
    would let them pile up."""
    backlogs: list[Backlog] = []

    class Recorded(Backlog):
        def __init__(self, concurrency: int) -> None:
            super().__init__(concurrency)
            backlogs.append(self)

    monkeypatch.setattr(_run, "Backlog", Recorded)
    port = tls_server.port
    lines = [f"h{n}.test:{port}{{127.0.0.1}}" for n in range(40)]
    lines += ["bad:0", "down.test:1{127.0.0.1}"]
    hosts = _hosts(tmp_path, lines)
    config = RunConfig(input=hosts, output=tmp_path / "out", options=FAST, writer=writer)
    report = run_scan(config)
    assert report.counts == {Status.OK: 40, Status.FAILED: 1, Status.INVALID: 1}
    (backlog,) = backlogs
    assert backlog.sent == backlog.done == 41 and backlog.young == 0


@pytestmark_integration
def test_an_empty_input_is_said_to_be_empty(tmp_path: Path) -> None:
    stream = io.StringIO()
    hosts = _hosts(tmp_path, ["# nothing here", ""])
    config = RunConfig(input=hosts, output=tmp_path / "out", options=FAST, writer="thread")
    report = run_scan(config, Display(stream=stream))
    assert report.exit_code == 3  # fails visibly (issue 15): a CI job fed an empty list
    assert report.no_targets
    assert f"{hosts} has no targets" in stream.getvalue()


@pytestmark_integration
def test_a_write_error_ends_the_run_with_an_incomplete_manifest(
    tls_server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [f"n{i}.test:{tls_server.port}{{127.0.0.1}}" for i in range(30)]
    write = OutputDir.write
    calls = 0

    def failing_write(self: OutputDir, items: Any, written: Any = None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OutputError("cannot write X: no space left on device")
        write(self, items, written)

    monkeypatch.setattr(OutputDir, "write", failing_write)
    options = ScanOptions(connect_timeout=2, handshake_timeout=2, deadline=6, rate=20)
    config = RunConfig(
        input=_hosts(tmp_path, lines), output=tmp_path / "out", options=options, writer="thread"
    )
    report = run_scan(config)
    assert report.error == "cannot write X: no space left on device"
    assert report.exit_code == 2
    assert report.manifest is not None
    header = json.loads(report.manifest.read_text())
    assert header["run"]["complete"] is False and header["run"]["error"] == report.error
    assert 0 < len(header["targets"]) < 30


@pytestmark_integration
def test_an_unexpected_exception_leaves_the_manifest_incomplete(
    tls_server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug escaping the scan (not a ChainscanError) still closes the manifest, marked incomplete:
    # the entries it lost must be scanned again by --resume, not passed over as done.
    lines = [f"n{i}.test:{tls_server.port}{{127.0.0.1}}" for i in range(5)]

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_run, "_execute", broken)
    config = RunConfig(
        input=_hosts(tmp_path, lines), output=tmp_path / "out", options=FAST, writer="thread"
    )
    with pytest.raises(BaseExceptionGroup) as raised:
        run_scan(config)
    assert raised.group_contains(RuntimeError, match="a bug")
    header = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert header["run"]["complete"] is False
