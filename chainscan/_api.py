"""The library API: scan targets from Python code, results as they come.

    import trio, chainscan

    async def main():
        async with chainscan.open_scan(["example.com", "example.net:8443"]) as results:
            async for result in results:
                print(result.target.host, result.status, len(result.chain))

    trio.run(main)

Strings are parsed like lines of an input file; a string that is not a valid target comes back
as a :class:`~chainscan.BadLine` in the same stream. Leaving the ``async with`` block early
cancels what is still running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from ._models import BadLine, ScanOptions, ScanResult, Target
from .scan._targets import Deduplicator, parse_line

if TYPE_CHECKING:
    import trio

# trio and the scheduler are imported when a scan starts, not with the package: ``import
# chainscan`` (and every command that reads a scan) stays free of the network stack.

__all__ = ["open_scan", "scan_all"]


def _coerce(targets: Iterable[Target | str], options: ScanOptions) -> Iterator[Target | BadLine]:
    for number, item in enumerate(targets, start=1):
        if isinstance(item, Target):
            yield item
            continue
        parsed = parse_line(
            item, line=number, source="<api>", default_port=options.default_port, sni=options.sni
        )
        if parsed is not None:
            yield parsed


@asynccontextmanager
async def open_scan(
    targets: Iterable[Target | str], options: ScanOptions | None = None
) -> AsyncIterator[trio.MemoryReceiveChannel[ScanResult | BadLine]]:
    """Scan ``targets`` concurrently; yields a channel of results in completion order.

    Duplicate targets are scanned once. ``targets`` is consumed lazily, so it may be a
    generator over a huge input; it must not block for long (read files in batches).
    """
    import trio

    from .scan._schedule import Scheduler

    options = options or ScanOptions()
    dedup = Deduplicator()
    send, receive = trio.open_memory_channel[ScanResult | BadLine](options.concurrency)
    scheduler = Scheduler(options)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                scheduler.run,
                _coerce(targets, options),
                send,
                skip=dedup.seen,
                blocking_source=False,
            )
        )
        async with receive:
            yield receive
        nursery.cancel_scope.cancel()


async def scan_all(
    targets: Iterable[Target | str], options: ScanOptions | None = None
) -> list[ScanResult | BadLine]:
    """Scan ``targets`` and return every result (completion order). For small target lists."""
    async with open_scan(targets, options) as results:
        return [result async for result in results]
