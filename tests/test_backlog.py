"""Results reach the writer soon (issue 16, part 3), checked by counting, never by timing:
the scheduler starts no connection while a finished result waits for the writer
(``scan._backlog``), the writer process sends each line as it is made, not at the end of its
batch (``run._child.write_results``), and a child's ready line is not a manifest line."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
import trio

from chainscan._errors import OutputError
from chainscan._models import BadLine, ScanOptions, ScanResult, Status
from chainscan.output._output import OutputDir
from chainscan.run import _child
from chainscan.run._batch import RESULT_BUFFER, result_buffer
from chainscan.run._child import Child, ChildConfig, run_children, write_results
from chainscan.run._display import Display
from chainscan.scan._backlog import Backlog
from chainscan.scan._schedule import Scheduler
from tests.test_schedule import FakeNetwork, target


async def _stalled_scan(
    count: int, options: ScanOptions, capacity: int, stall: float, *, backpressure: bool = True
) -> tuple[FakeNetwork, int, list[ScanResult | BadLine]]:
    """Scan ``count`` targets into a channel of ``capacity`` that nobody reads for ``stall``
    seconds; return the network, the connections made during the stall, and the results."""
    network = FakeNetwork(hold=1.0)
    scheduler = Scheduler(
        options, probe_fn=network, rng=random.Random(7), writer_backpressure=backpressure
    )
    send, receive = trio.open_memory_channel[ScanResult | BadLine](capacity)
    results: list[ScanResult | BadLine] = []
    async with trio.open_nursery() as nursery:
        items = [target(n) for n in range(count)]
        # Read in this thread: MockClock's autojump would pass the stall while a thread reads.
        nursery.start_soon(functools.partial(scheduler.run, items, send, blocking_source=False))
        await trio.sleep(stall)  # the writer is stuck (a slow disk, a busy core)
        during_stall = len(network.connect_times)
        async with receive:
            async for item in receive:
                results.append(item)
    return network, during_stall, results


async def test_a_stalled_writer_stops_new_connections(autojump_clock: object) -> None:
    options = ScanOptions(concurrency=4, rate=0, per_ip=0, deadline=5.0)
    _, during_stall, results = await _stalled_scan(100, options, capacity=2, stall=50.0)
    # Admission alone lets 64 targets in; they would all connect, finish and wait. With the
    # back-pressure: only the connections open when the channel filled (the first 4; targets
    # queued for a slot wait for room too).
    assert during_stall == options.concurrency
    assert len(results) == 100
    # Waiting for the writer is not the server's fault: the deadline (5 s) was paused.
    assert all(isinstance(r, ScanResult) and r.status is Status.OK for r in results)


async def test_the_library_api_keeps_its_consumer_paced_scan(autojump_clock: object) -> None:
    options = ScanOptions(concurrency=4, rate=0, per_ip=0, deadline=5.0)
    _, during_stall, results = await _stalled_scan(
        100, options, capacity=2, stall=50.0, backpressure=False
    )
    assert during_stall == 64 + 2  # admission, then the channel: as before this change
    assert len(results) == 100


async def test_without_a_stall_every_slot_is_used(autojump_clock: object) -> None:
    options = ScanOptions(concurrency=7, rate=0, per_ip=0)
    network, _, results = await _stalled_scan(70, options, capacity=RESULT_BUFFER, stall=0.0)
    assert len(results) == 70
    assert network.max_open == 7  # a writer that keeps up never holds connections back


async def test_backlog_counts_blocked_senders_and_wakes_waiters() -> None:
    backlog = Backlog()
    send, receive = trio.open_memory_channel[int](1)
    woken: list[str] = []

    async def connect() -> None:
        await backlog.wait_room()
        woken.append("connected")

    async with trio.open_nursery() as nursery:
        await backlog.send(send, 1)  # room: no wait, not counted
        assert backlog.blocked == 0 and not backlog.full
        nursery.start_soon(backlog.send, send, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert backlog.blocked == 1 and backlog.full
        nursery.start_soon(connect)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []  # a connection waits while a result does
        assert await receive.receive() == 1
        await trio.testing.wait_all_tasks_blocked()
        assert backlog.blocked == 0 and woken == ["connected"]
        assert await receive.receive() == 2


def test_result_buffer_is_small_and_never_above_the_concurrency() -> None:
    assert result_buffer(500) == RESULT_BUFFER <= 256
    assert result_buffer(10) == 10
    assert result_buffer(0) == 1


class _Out:
    def __init__(self) -> None:
        self.sends: list[list[bytes]] = []

    def send(self, lines: Sequence[bytes]) -> None:
        self.sends.append(list(lines))

    def fail(self, lines: Sequence[bytes], error: Exception) -> None:
        self.sends.append([*lines, b"!" + str(error).encode()])


class _Output:
    """Makes one line per result; fails on the result whose host is ``fail``."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail

    def write_files(self, results: Sequence[ScanResult], *, inline: bool = False) -> list[bytes]:
        if results[0].target.host == self.fail:
            raise OutputError("disk full")
        return [orjson.dumps({"host": r.target.host}) + b"\n" for r in results]


def _results(count: int) -> list[ScanResult]:
    return [
        ScanResult(target=target(n), status=Status.OK, chain=(b"x",), elapsed=0.0)
        for n in range(count)
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.monotonic`` in ``run._child``, moved by the test."""
    now = [0.0]
    monkeypatch.setattr(_child.time, "monotonic", lambda: now[0])
    return now


def test_the_writer_process_sends_lines_during_its_batch(clock: list[float]) -> None:
    out, output = _Out(), _Output()

    class Slow(_Output):
        def write_files(
            self, results: Sequence[ScanResult], *, inline: bool = False
        ) -> list[bytes]:
            clock[0] += 2 * _child.SEND_INTERVAL  # each target takes longer than the interval
            return output.write_files(results)

    assert write_results(Slow(), _results(5), out, inline=True)  # type: ignore[arg-type]
    assert [len(sent) for sent in out.sends] == [1, 1, 1, 1, 1, 0]  # not one send of 5
    assert sum(len(sent) for sent in out.sends) == 5


def test_fast_targets_share_a_send(clock: list[float]) -> None:
    out = _Out()
    assert write_results(_Output(), _results(5), out, inline=True)  # type: ignore[arg-type]
    assert [len(sent) for sent in out.sends] == [5]  # no time passed: one write to the pipe


def test_an_error_still_sends_the_lines_before_it(clock: list[float]) -> None:
    out = _Out()
    results = _results(3)
    assert not write_results(_Output(fail=results[2].target.host), results, out, inline=True)  # type: ignore[arg-type]
    assert [line.startswith(b"!") for line in out.sends[-1]] == [False, False, True]


async def test_the_ready_line_marks_the_child_ready_and_is_not_appended(tmp_path: Path) -> None:
    output = OutputDir(tmp_path / "out")
    output.prepare()
    seen: list[bool] = []

    async def feed(children: list[Child], local: trio.MemorySendChannel[object]) -> None:
        (child,) = children
        seen.append(child.ready.is_set())
        await child.stdin.send_all(b"ready\nok a\nexit 0\n")
        await child.ready.wait()
        seen.append(child.ready.is_set())

    await run_children(
        "tests.child_stage",
        ChildConfig(ScanOptions(), output.root, os.getpid()),
        ["test child"],
        output=output,
        display=Display(quiet=True),
        feed=feed,  # type: ignore[arg-type]
        interrupted=lambda: False,
    )
    assert seen == [False, True]
    lines = (output.root / "manifest.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["host"] for line in lines] == ["a"]


async def test_the_feed_can_wait_for_lines_to_come_back(tmp_path: Path) -> None:
    """``Child.wait_returned`` (the writer process's cap on results in the child): counts the
    lines received, and returns once the child's output has ended, never waiting forever."""
    output = OutputDir(tmp_path / "out")
    output.prepare()
    seen: list[int] = []

    async def feed(children: list[Child], local: trio.MemorySendChannel[object]) -> None:
        (child,) = children
        await child.stdin.send_all(b"ok a\nok b\n")
        await child.wait_returned(2)
        seen.append(child.returned)
        await child.stdin.send_all(b"exit 0\n")
        await child.wait_returned(10)  # only 2 will ever come: its output ends
        seen.append(child.returned)

    await run_children(
        "tests.child_stage",
        ChildConfig(ScanOptions(), output.root, os.getpid()),
        ["test child"],
        output=output,
        display=Display(quiet=True),
        feed=feed,  # type: ignore[arg-type]
        interrupted=lambda: False,
    )
    assert seen == [2, 2]
