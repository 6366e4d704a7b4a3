"""``scan._intake.take_input``: the input loop of every mode (the local scheduler,
``--workers``, ``--dask``), with a recording router: no sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import trio
import trio.testing

from chainscan._models import BadLine, Target
from chainscan.scan._intake import take_input
from chainscan.scan._targets import Deduplicator


def target(n: int) -> Target:
    return Target(host=f"h{n}.test", port=443, sni=f"h{n}.test", line=n)


def bad(n: int) -> BadLine:
    return BadLine(source="hosts.txt", line=n, raw="bad:0", reason="port 0 is out of range")


class Recorder:
    def __init__(self, *, wait: trio.Event | None = None) -> None:
        self.events: list[tuple[str, object]] = []
        self._wait = wait

    async def record(self, item: BadLine) -> None:
        self.events.append(("record", item))

    async def route(self, item: Target) -> None:
        if self._wait is not None:
            await self._wait.wait()
        self.events.append(("route", item))

    async def flush(self) -> None:
        self.events.append(("flush", None))


async def test_invalid_lines_are_recorded_done_targets_skipped_the_rest_routed_in_order() -> None:
    items: list[Target | BadLine] = [target(1), bad(2), target(3), target(1), bad(5), target(6)]
    router = Recorder()
    await take_input(items, router, skip=Deduplicator().seen, blocking=False)
    assert router.events == [
        ("route", target(1)),
        ("record", bad(2)),
        ("route", target(3)),
        ("record", bad(5)),
        ("route", target(6)),
        ("flush", None),
    ]


async def test_without_skip_every_target_is_routed() -> None:
    router = Recorder()
    await take_input([target(1), target(1)], router, blocking=False)
    assert [kind for kind, _ in router.events] == ["route", "route", "flush"]


async def test_the_router_is_flushed_after_each_batch_of_input() -> None:
    router = Recorder()
    await take_input([target(n) for n in range(600)], router)
    flushes = [i for i, (kind, _) in enumerate(router.events) if kind == "flush"]
    assert flushes == [256, 513, 602]  # batches of 256, 256, 88: a flush after each
    assert [item for kind, item in router.events if kind == "route"] == [
        target(n) for n in range(600)
    ]


async def test_a_blocking_source_is_read_in_a_worker_thread() -> None:
    readers: set[int] = set()

    def source() -> Iterator[Target]:
        for n in range(3):
            readers.add(threading.get_ident())
            yield target(n)

    await take_input(source(), Recorder())
    assert readers and threading.get_ident() not in readers
    readers.clear()
    await take_input(source(), Recorder(), blocking=False)
    assert readers == {threading.get_ident()}


async def test_a_router_that_waits_stops_the_reading() -> None:
    pulled = 0

    def source() -> Iterator[Target]:
        nonlocal pulled
        for n in range(10_000):
            pulled += 1
            yield target(n)

    gate = trio.Event()
    router = Recorder(wait=gate)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: take_input(source(), router, blocking=False))
        await trio.testing.wait_all_tasks_blocked()
        assert pulled == 256  # one batch read, then the loop waits for the router
        gate.set()
    assert pulled == 10_000 and len(router.events) == 10_000 + 40


async def test_cancelled_while_reading_a_blocking_source_it_does_not_wait_for_the_read() -> None:
    stuck = threading.Event()
    read_returned = threading.Event()

    def source() -> Iterator[Target]:
        yield target(0)
        stuck.wait(30)  # a terminal with no input
        read_returned.set()
        yield target(1)

    with trio.move_on_after(0.2) as scope:
        await take_input(source(), Recorder())
    assert scope.cancelled_caught
    assert not read_returned.is_set()  # the read was left behind, not waited for
    stuck.set()
