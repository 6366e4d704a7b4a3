"""``--workers N``: several scanning processes, one manifest. Uses every core.

Theory of operation
-------------------
One process does about 1,000 handshakes a second on one core; most of that CPU is OpenSSL's.
To use more cores, the main process starts N worker processes (``python -m chainscan.run._workers
CONFIG``, see ``_child``) and becomes a dispatcher and a manifest writer::

    main: input ──► parse, dedup (``_intake``) ──► shard ──► worker i stdin (JSON lines of targets)
    worker i: Scheduler ──► write its targets' certificate files ──► stdout (manifest lines)
    main: every worker's stdout ──► append to manifest.jsonl, progress

* **Placement** (``_partition.Placement``) is by where a target connects: its explicit
  ``{ip}``, its IP literal, or the first address its name resolves to here (with ``--per-net``:
  that address's /24 or /64), hashed. Every connection to one address (one network) is thus
  made by one worker, whose scheduler counts ``--per-ip`` (``--per-net``) for the whole run.
  The main process's answer for a name travels with the target (``"resolved"`` in its line):
  the worker's first lookup of that name takes it (``_GivenAnswers``), so both connect to the
  same addresses in the same order. The exception (fallback addresses in another network) is
  described in ``_partition``. With both caps off, a target is placed by
  ``shard_of`` (address, else host name) and nothing is resolved here.
* **Limits are divided**: each worker gets ``ceil(concurrency / N)`` slots and ``rate / N``
  connections per second, so the run as a whole keeps the limits given; ``--per-ip`` and
  ``--per-net`` are not divided (one worker owns each address and network).
* **Back-pressure**: a worker admits a bounded number of targets (its scheduler reads its stdin
  lazily); when it is full its pipe fills and the dispatcher waits. Memory stays bounded.
* **Crash safety** is unchanged: a manifest line reaches ``manifest.jsonl`` only after its
  worker has written the target's files, and only the main process appends to the file.
* **Errors** follow the rules of every child process (``_child``, shared with the writer
  process): a write error in a worker (a full disk) comes back as its error line and stops the
  scan with the same message a single process gives; a worker that dies is reported as
  ``scanning process K of N stopped unexpectedly (exit code C)``.
* **Interruption**: Ctrl-C reaches the whole process group; SIGTERM to the main process is
  forwarded. Each worker stops scanning, reports what it finished and exits; the main process
  drains every pipe, then writes ``manifest.json`` marked incomplete, as a single process does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, BinaryIO

import orjson
import trio

from .._models import BadLine, ScanOptions, ScanResult, Target
from ..output._output import OutputDir
from ..scan._backlog import Backlog
from ..scan._fdlimit import fit_concurrency
from ..scan._intake import take_input
from ..scan._resolve import Address, Resolver
from ..scan._schedule import Scheduler
from ._batch import WRITE_BATCH, ThreadAcks, batches, result_buffer
from ._child import (
    Appended,
    Child,
    ChildConfig,
    LineOut,
    child_main,
    run_children,
    write_results,
)
from ._partition import Placement, placed, shard_of, worker_options

if TYPE_CHECKING:  # the parent's; a scanning process imports rich only to warn
    from ._display import Display

__all__ = ["run_workers"]

_SEND_BATCH = 64
"""Target lines per write to a worker's pipe, at most."""


def _target_line(target: Target, resolved: tuple[str, ...] | None = None) -> bytes:
    """A target for a worker's stdin; ``resolved``: the main process's answer for its name."""
    fields = dataclasses.asdict(target)
    if resolved:
        fields["resolved"] = resolved
    return orjson.dumps(fields) + b"\n"


# ---------------------------------------------------------------- main process side


class _Dispatch:
    """The input router of ``--workers``: each target to the worker of its place (``placement``;
    None: ``shard_of``), invalid lines to the main process's append task. A batch of input goes
    out at once (``flush``)."""

    def __init__(
        self,
        children: list[Child],
        local: trio.MemorySendChannel[Appended],
        placement: Placement | None = None,
    ) -> None:
        self._children = children
        self._place = shard_of if placement is None else placement.place
        self._answer = None if placement is None or not placement.exact else placement.answer
        self._local = local
        self._outgoing: list[list[bytes]] = [[] for _ in children]
        self._bad: list[BadLine] = []

    async def record(self, bad: BadLine) -> None:
        self._bad.append(bad)

    async def route(self, target: Target) -> None:
        line = _target_line(target, None if self._answer is None else self._answer(target))
        self._outgoing[self._place(target, len(self._children))].append(line)

    async def flush(self) -> None:
        if self._bad:
            bad, self._bad = self._bad, []
            await self._local.send(bad)
        for child, lines in zip(self._children, self._outgoing, strict=True):
            for start in range(0, len(lines), _SEND_BATCH):
                await child.stdin.send_all(b"".join(lines[start : start + _SEND_BATCH]))
            lines.clear()


async def run_workers(
    *,
    workers: int,
    options: ScanOptions,
    output: OutputDir,
    items: Iterable[Target | BadLine],
    skip: Callable[[Target], bool],
    display: Display,
    scan_scope: trio.CancelScope,
) -> None:
    """The main process's half: start, feed and drain ``workers`` scanning processes."""

    async def feed(children: list[Child], local: trio.MemorySendChannel[Appended]) -> None:
        with scan_scope:
            # A worker that died breaks its pipe: its collector says why (and stops the scan).
            with contextlib.suppress(trio.BrokenResourceError):
                placement = Placement(options)
                router = placed(_Dispatch(children, local, placement), placement)
                await take_input(items, router, skip=skip)
            for child in children:
                await child.close_input()
            for child in children:  # a signal after the last target was sent must stop them too
                await child.wait()
        if scan_scope.cancelled_caught:
            for child in children:  # Ctrl-C reached them already; SIGTERM may not have
                child.terminate()

    config = ChildConfig(worker_options(options, workers), output.root, os.getpid())
    await run_children(
        "chainscan.run._workers",
        config,
        [f"scanning process {number} of {workers}" for number in range(1, workers + 1)],
        output=output,
        display=display,
        feed=feed,
        interrupted=lambda: scan_scope.cancel_called,
    )


# ---------------------------------------------------------------- worker process side


class _GivenAnswers(Resolver):
    """A worker's resolver: the first lookup of a name takes the main process's answer, so the
    worker connects where the main process placed the target (``_partition``). The stdin reader
    runs in a thread: it hands answers over in a plain dict (one store there, one ``pop`` here,
    both atomic), and only the event loop touches the resolver's cache."""

    def __init__(self) -> None:
        super().__init__()
        self.given: dict[str, tuple[str, ...]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        if self.given:
            answer = self.given.pop(host, None)
            if answer is not None:
                self.remember(host, answer)
        return await super().resolve(host, port)


def _read_targets(stream: BinaryIO, resolver: _GivenAnswers | None = None) -> Iterator[Target]:
    """The targets of a worker's stdin; the main process's answers go to ``resolver``."""
    for line in stream:
        fields = orjson.loads(line)
        resolved = fields.pop("resolved", None)
        target = Target(**fields)
        if resolved is not None and resolver is not None:
            resolver.given[target.host] = tuple(resolved)
        yield target


def _scan(config: ChildConfig, output: OutputDir, out: LineOut) -> int:
    options = config.options
    concurrency, warning = fit_concurrency(options.concurrency)
    if warning:
        from ._display import Display

        Display(quiet=False).warn(warning)
        options = dataclasses.replace(options, concurrency=concurrency)
    return trio.run(_worker, options, output, out)


async def _worker(options: ScanOptions, output: OutputDir, out: LineOut) -> int:
    resolver = _GivenAnswers()
    backlog = Backlog(options.concurrency)
    scheduler = Scheduler(options, resolver=resolver, backlog=backlog)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](
        result_buffer(options.concurrency)
    )
    scan_scope = trio.CancelScope()
    failed = False

    async def produce() -> None:
        with scan_scope:
            await scheduler.run(_read_targets(sys.stdin.buffer, resolver), send)

    async def watch(task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                scan_scope.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        nursery.start_soon(produce)
        acks = ThreadAcks(backlog.written)  # each result once its line is sent to the parent
        async with aclosing(batches(receive, WRITE_BATCH)) as chunks:
            async for batch in chunks:
                results = [r for r in batch if isinstance(r, ScanResult)]
                try:
                    done = await trio.to_thread.run_sync(
                        functools.partial(
                            write_results, output, results, out, inline=False, sent=acks
                        )
                    )
                finally:
                    acks.flush()
                if not done:
                    failed = True  # the error line is sent: stop scanning (``receive`` stays open,
                    break  # so no sender breaks before the cancellation reaches it)
        nursery.cancel_scope.cancel()
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    return child_main(argv, _scan)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
