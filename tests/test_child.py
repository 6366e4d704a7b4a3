"""``run._child``: the one way a stage runs in a child process (the writer process and the
``--workers`` scanners use it). Driven here with a scripted stage (``tests/child_stage.py``) in
real child processes: lines appended, the error line, death reports, torn lines, the config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import trio

from chainscan._errors import ChainscanError, OutputError
from chainscan._models import BadLine, CertFormat, ScanOptions
from chainscan.output._output import OutputDir
from chainscan.run._child import STOP_GRACE, Child, ChildConfig, run_children
from chainscan.run._display import Display

STAGE = "tests.child_stage"


def _output(tmp_path: Path) -> OutputDir:
    output = OutputDir(tmp_path / "out")
    output.prepare()
    return output


def _hosts(output: OutputDir) -> list[str]:
    data = (output.root / "manifest.jsonl").read_bytes()
    assert not data or data.endswith(b"\n")
    return [orjson.loads(line).get("host") or orjson.loads(line)["input"]["text"]
            for line in data.splitlines()]  # fmt: skip


async def _run(
    output: OutputDir,
    scripts: list[bytes],
    *,
    interrupted: Callable[[], bool] = lambda: False,
    bad: list[BadLine] | None = None,
) -> None:
    async def feed(children: list[Child], local: trio.MemorySendChannel[list[BadLine]]) -> None:
        if bad:
            await local.send(bad)
        for child, script in zip(children, scripts, strict=True):
            await child.stdin.send_all(script)

    config = ChildConfig(ScanOptions(), output.root, os.getpid())
    await run_children(
        STAGE,
        config,
        [f"test child {number}" for number in range(1, len(scripts) + 1)],
        output=output,
        display=Display(quiet=True),
        feed=feed,
        interrupted=interrupted,
    )


def _leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        assert len(group.exceptions) == 1, group
        group = group.exceptions[0]
    return group


async def test_lines_from_every_child_and_invalid_lines_are_appended(tmp_path: Path) -> None:
    output = _output(tmp_path)
    bad = BadLine(source="hosts.txt", line=4, raw="bad:0", reason="port 0 is out of range")
    await _run(output, [b"ok a\nok b\n", b"ok c\nexit 0\nok never\n"], bad=[bad])
    assert sorted(_hosts(output)) == ["a", "b", "bad:0", "c"]
    assert output.summary["targets"] == 4 and output.summary["invalid"] == 1


async def test_the_error_line_becomes_an_output_error_after_the_lines_before_it(
    tmp_path: Path,
) -> None:
    output = _output(tmp_path)
    with pytest.raises(BaseExceptionGroup) as caught:
        await _run(output, [b"ok a\nfail cannot write /x/y.der: no space left on device\n"])
    error = _leaf(caught.value)
    assert type(error) is OutputError
    assert str(error) == "cannot write /x/y.der: no space left on device"
    assert _hosts(output) == ["a", "before"]  # the lines before it are in the manifest


async def test_a_child_that_dies_is_named_with_its_exit_code(tmp_path: Path) -> None:
    output = _output(tmp_path)
    with pytest.raises(BaseExceptionGroup) as caught:
        await _run(output, [b"ok a\n", b"ok b\nexit 5\n"])
    error = _leaf(caught.value)
    assert type(error) is ChainscanError
    assert str(error) == (
        "test child 2 stopped unexpectedly (exit code 5); the manifest lists every target it"
        " finished: finish the scan with --resume"
    )
    assert "b" in _hosts(output)


async def test_a_torn_last_line_is_dropped_and_the_death_reported(tmp_path: Path) -> None:
    output = _output(tmp_path)
    with pytest.raises(BaseExceptionGroup) as caught:
        await _run(output, [b"ok a\ntorn\n"])
    assert "test child 1 stopped unexpectedly (exit code 3)" in str(_leaf(caught.value))
    assert _hosts(output) == ["a"]


async def test_no_death_is_reported_while_the_run_is_interrupted(tmp_path: Path) -> None:
    output = _output(tmp_path)
    await _run(output, [b"ok a\nexit 5\n"], interrupted=lambda: True)
    assert _hosts(output) == ["a"]


async def test_a_write_error_is_reported_even_while_interrupted(tmp_path: Path) -> None:
    output = _output(tmp_path)
    with pytest.raises(BaseExceptionGroup) as caught:
        await _run(output, [b"fail disk full\n"], interrupted=lambda: True)
    assert str(_leaf(caught.value)) == "disk full"


async def test_cancelled_it_kills_the_children_at_once(tmp_path: Path) -> None:
    output = _output(tmp_path)
    started: list[Child] = []

    async def feed(children: list[Child], local: trio.MemorySendChannel[list[BadLine]]) -> None:
        started.extend(children)
        await trio.sleep_forever()  # never ends their input

    with trio.move_on_after(1):
        await run_children(
            STAGE,
            ChildConfig(ScanOptions(), output.root, os.getpid()),
            ["test child"],
            output=output,
            display=Display(quiet=True),
            feed=feed,
            interrupted=lambda: False,
        )
    assert started and started[0].returncode is not None  # killed and reaped, not left behind
    assert started[0].returncode < 0


async def test_the_child_gets_the_config_it_was_given(tmp_path: Path) -> None:
    output = OutputDir(tmp_path / "out", cert_format=CertFormat.PEM)
    output.prepare()

    async def feed(children: list[Child], local: trio.MemorySendChannel[list[BadLine]]) -> None:
        await children[0].stdin.send_all(b"env\n")

    config = ChildConfig(ScanOptions(cert_format=CertFormat.PEM), output.root, os.getpid())
    await run_children(
        STAGE,
        config,
        ["test child"],
        output=output,
        display=Display(quiet=True),
        feed=feed,
        interrupted=lambda: False,
    )
    assert _hosts(output) == [f"pem,{output.root}"]


def test_the_config_round_trips_and_names_the_format_once() -> None:
    options = ScanOptions(concurrency=7, rate=2.5, sni="x.test", cert_format=CertFormat.PEM)
    config = ChildConfig(options, Path("/tmp/out"), 1234)
    assert ChildConfig.loads(config.dumps()) == config
    assert config.dumps().count("cert_format") == 1


def test_the_grace_is_one_documented_value() -> None:
    assert STOP_GRACE == 30.0
