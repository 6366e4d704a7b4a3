"""Results reach the writer soon (issue 16, part 3), checked by counting, never by timing:
the scheduler starts no connection while a finished result waits for the writer
(``scan._backlog``), the writer process sends each line as it is made, not at the end of its
batch (``run._child.write_results``), and a child's ready line is not a manifest line."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Iterator, Sequence
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
from chainscan.scan._backlog import (
    MIN_WINDOW,
    PACE,
    START_WINDOW,
    TARGET_DELAY,
    YOUNG,
    Backlog,
)
from chainscan.scan._schedule import Scheduler
from tests.test_schedule import FakeNetwork, target


async def _stalled_scan(
    count: int, options: ScanOptions, capacity: int, stall: float, *, backpressure: bool = True
) -> tuple[FakeNetwork, int, list[ScanResult | BadLine]]:
    """Scan ``count`` targets into a channel of ``capacity`` that nobody reads for ``stall``
    seconds (then a writer that acknowledges each result at once); return the network, the
    connections made during the stall, and the results."""
    network = FakeNetwork(hold=1.0)
    backlog = Backlog(options.concurrency) if backpressure else None
    scheduler = Scheduler(options, probe_fn=network, rng=random.Random(7), backlog=backlog)
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
                if backlog is not None:
                    backlog.written(1)
    if backlog is not None:
        assert backlog.unwritten == 0 and backlog.young == 0
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


async def _scan_into_writer(
    network: FakeNetwork, backlog: Backlog | None, count: int, concurrency: int, per_result: float
) -> tuple[list[int], float]:
    """Scan ``count`` targets over ``network`` into a writer that takes ``per_result`` seconds
    per result and acknowledges each to ``backlog`` (None: a scan without one); return the
    unwritten count seen at each acknowledgement and the scan's duration."""
    options = ScanOptions(concurrency=concurrency, rate=0, per_ip=0, deadline=60.0)
    scheduler = Scheduler(options, probe_fn=network, rng=random.Random(7), backlog=backlog)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](result_buffer(concurrency))
    unwritten: list[int] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        items = [target(n) for n in range(count)]
        nursery.start_soon(functools.partial(scheduler.run, items, send, blocking_source=False))
        async with receive:
            async for _ in receive:
                await trio.sleep(per_result)
                if backlog is not None:
                    unwritten.append(backlog.unwritten)
                    backlog.written(1)
    if backlog is not None:
        assert backlog.unwritten == 0 and backlog.young == 0
    return unwritten, trio.current_time() - start


async def _paced_writer_scan(
    count: int, concurrency: int, hold: float, per_result: float
) -> tuple[FakeNetwork, Backlog, list[int], float]:
    """Handshakes of ``hold`` seconds into a writer of ``per_result`` seconds per result (see
    ``_scan_into_writer``); return the network, the backlog, the unwritten counts, and when
    the last result was written."""
    network = FakeNetwork(hold=hold)
    backlog = Backlog(concurrency)
    unwritten, _ = await _scan_into_writer(network, backlog, count, concurrency, per_result)
    return network, backlog, unwritten, trio.current_time()


async def test_a_slow_writer_gets_a_short_queue_and_never_waits(autojump_clock: object) -> None:
    # Fast handshakes (10 ms), 500 connections allowed, a writer at 500 results a second: the
    # old rule (no connection while a result waits for room in the channel) let every open
    # connection finish into the queue, about concurrency + channel = 628 results (1.3 s of
    # the writer's work). The window keeps about TARGET_DELAY of its work queued.
    start = trio.current_time()
    network, _, unwritten, end = await _paced_writer_scan(
        3000, concurrency=500, hold=0.01, per_result=0.002
    )
    assert len(unwritten) == 3000
    steady = unwritten[200:]  # after the start
    assert max(steady) <= 2 * 500 * TARGET_DELAY  # at most twice the target: 0.4 s of work
    assert max(unwritten) <= START_WINDOW + 500 * TARGET_DELAY
    # ... and the writer always had work: the scan took its time and barely more.
    assert end - start <= 1.05 * 3000 * 0.002 + 0.1
    assert network.max_open < 500  # connections were held back (it would reach 500)


async def test_a_slow_network_is_not_held_back(autojump_clock: object) -> None:
    # Handshakes of 1 s, a writer that keeps up: every slot is used (the window opens past
    # the concurrency within a second, whether or not anything has finished yet).
    network, _, _, _ = await _paced_writer_scan(2000, concurrency=400, hold=1.0, per_result=0)
    assert network.max_open == 400
    first_full = sorted(network.connect_times)[399]
    assert first_full <= 0.5  # doubling from 64 every DOUBLING seconds: 3 doublings


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

    def file_lines(
        self, results: Sequence[ScanResult], *, inline: bool = False
    ) -> Iterator[bytes]:
        for r in results:
            if r.target.host == self.fail:
                raise OutputError("disk full")
            yield orjson.dumps({"host": r.target.host}) + b"\n"


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
        def file_lines(
            self, results: Sequence[ScanResult], *, inline: bool = False
        ) -> Iterator[bytes]:
            for line in output.file_lines(results):
                clock[0] += 2 * _child.SEND_INTERVAL  # each target takes longer than that
                yield line

    counts: list[int] = []
    for inline in (True, False):  # the writer process, and a --workers process
        out.sends.clear()
        assert write_results(Slow(), _results(5), out, inline=inline, sent=counts.append)  # type: ignore[arg-type]
        assert [len(sent) for sent in out.sends] == [1, 1, 1, 1, 1, 0]  # not one send of 5
    assert counts == [1, 1, 1, 1, 1, 0] * 2  # each count as its lines went


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


async def test_servers_that_hold_every_connection_still_get_every_slot(
    autojump_clock: object,
) -> None:
    # Nothing finishes for 30 s, so nothing is acknowledged: the window opens by time.
    network, _, _, _ = await _paced_writer_scan(1000, concurrency=1000, hold=30.0, per_result=0)
    assert network.max_open == 1000
    assert sorted(network.connect_times)[999] <= 1.0


async def _mixed_scan(backlog: Backlog | None) -> float:
    """2,000 targets, 3 in 10 held 10 s (dead), the rest 0.1 s; a writer that keeps up."""
    network = FakeNetwork(hold_for=lambda t: 10.0 if t.line % 10 < 3 else 0.1)
    _, elapsed = await _scan_into_writer(network, backlog, 2000, 500, 0.0001)
    return elapsed


async def test_dead_targets_and_a_fast_writer_cost_no_time(autojump_clock: object) -> None:
    unlimited = await _mixed_scan(None)
    windowed = await _mixed_scan(Backlog(500))
    assert windowed <= 1.05 * unlimited


async def test_places_are_handed_on_in_order_as_the_writer_acknowledges(
    autojump_clock: object,
) -> None:
    backlog = Backlog(concurrency=1000)
    send, _receive = trio.open_memory_channel[int](10_000)
    for _ in range(START_WINDOW):
        assert backlog.started()
    assert backlog.full and not backlog.started()  # open + unwritten = window
    order: list[int] = []

    async def connect(n: int) -> None:
        await backlog.wait_room()
        order.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(connect, n)
            await trio.testing.wait_all_tasks_blocked()
        for _ in range(START_WINDOW):  # every connection finishes: its result is unwritten
            backlog.ended(trio.current_time())
            await backlog.send(send, 0)
        await trio.testing.wait_all_tasks_blocked()
        assert order == [] and backlog.unwritten == START_WINDOW
        assert not backlog.started()  # no jumping the line either
        backlog.window += 2  # (as the pacing task may open it) room for two: the first two
        backlog._wake()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == [0, 1] and backlog.young == 2
        backlog.written(START_WINDOW - 2)  # 2 unwritten <= target / 2: the window opens
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == [0, 1, 2, 3, 4] and backlog.young == 5
    assert backlog.window == START_WINDOW + 2 + START_WINDOW - 2


async def test_the_window_closes_by_what_a_writer_behind_acknowledges(
    autojump_clock: object,
) -> None:
    backlog = Backlog(concurrency=1000)
    send, _receive = trio.open_memory_channel[int](10_000)
    for _ in range(START_WINDOW):
        assert backlog.started()
        backlog.ended(trio.current_time())
        await backlog.send(send, 0)
    await trio.sleep(1.0)
    backlog.written(10)  # 10 results a second; 54 left > the target (MIN_TARGET)
    assert backlog.window == START_WINDOW - 10
    for _ in range(10):
        backlog.written(1)
    assert backlog.window == START_WINDOW - 20 and backlog.unwritten == 44
    backlog.written(40)  # 4 left: keeping up, the window opens by as much
    assert backlog.window == START_WINDOW + 20
    for _ in range(500):
        await backlog.send(send, 0)
    backlog.written(200)  # far behind: closed, but never below MIN_WINDOW
    assert backlog.window == MIN_WINDOW


async def test_connections_open_longer_than_young_leave_the_window(autojump_clock: object) -> None:
    # Servers that hold connections to their timeout (blackholed, tarpitted) hand the writer
    # nothing soon: after YOUNG seconds they stop taking places that live connections need.
    # A concurrency of 0 keeps the window at START_WINDOW (its widest is the concurrency plus
    # twice the target): what frees places here is the aging alone.
    backlog = Backlog(concurrency=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(backlog.pace)
        opened = trio.current_time()
        for _ in range(START_WINDOW):
            assert backlog.started()
        assert not backlog.started() and backlog.young == START_WINDOW
        await trio.sleep(YOUNG / 2)
        assert backlog.young == START_WINDOW and not backlog.started()
        await trio.sleep(YOUNG / 2 + PACE)
        assert backlog.young == 0 and backlog.started()  # aged out, still open
        for _ in range(START_WINDOW):
            backlog.ended(opened)  # an aged-out connection ends: nothing counted twice
        assert backlog.young == 1
        nursery.cancel_scope.cancel()
