"""The library API: scan targets from Python code, results as they come, from trio, asyncio or
plain synchronous code.

    import asyncio, chainscan          # or trio: the same code under trio.run(main)

    async def main():
        async with chainscan.open_scan(["example.com", "example.net:8443"]) as results:
            async for result in results:
                print(result.target.host, result.status, len(result.chain))

    asyncio.run(main())

Strings are parsed like lines of an input file; a string that is not a valid target comes back
as a :class:`~chainscan.BadLine` in the same stream. Leaving the ``async with`` block early
(``break``, an exception, the caller's cancellation) cancels what is still running, and the
block is left only once the scan has stopped.

Which event loop? :func:`open_scan` asks ``sniffio`` which library runs the calling task. Under
trio the scan core runs in the caller's own run, as one more nursery. Under asyncio it runs in
a trio run of its own, and ``_bridge`` carries the results over with bounded buffers and
cancellation (its header explains how, and why that way: the choice was measured). The
synchronous :func:`open_scan_sync` / :func:`scan_all_sync` use the same bridge without a loop.

``inventory=True`` adds :class:`~chainscan.ChainInventory` (trust, hostname, problems and the
facts of each certificate: what the writer puts in the manifest) to each result with a chain,
as ``result.inventory``. It is computed as the caller takes each result, in the caller's
thread; callers who only want chains leave it off and pay nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Literal

import sniffio

from ._errors import UsageError
from ._models import BadLine, ScanOptions, ScanResult, Target
from .scan._targets import Deduplicator, parse_line

if TYPE_CHECKING:
    import trio

    from .analysis._chain_inventory import Inventorizer

# trio, the scheduler and the bridge are imported when a scan starts, not with the package:
# ``import chainscan`` (and every command that reads a scan) stays free of the network stack.

__all__ = ["ScanResults", "open_scan", "open_scan_sync", "scan_all", "scan_all_sync"]

Item = ScanResult | BadLine


def _coerce(targets: Iterable[Target | str], options: ScanOptions) -> Iterator[Target | BadLine]:
    for number, item in enumerate(targets, start=1):
        if isinstance(item, Target):
            yield item
            continue
        parsed = parse_line(
            item,
            line=number,
            source="<api>",
            default_port=options.default_port,
            sni=options.sni,
            starttls=options.starttls,
        )
        if parsed is not None:
            yield parsed


class ScanResults:
    """The results of an open scan, in completion order: ``async for result in results``.

    Each item is a :class:`~chainscan.ScanResult` or, for a string that is not a valid target,
    a :class:`~chainscan.BadLine`. Iterate it inside the ``open_scan`` block only. Made by
    :func:`open_scan`, not by callers.
    """

    __slots__ = ("_next", "_transform")

    def __init__(
        self,
        next_item: Callable[[], Awaitable[Item]],
        transform: Callable[[Item], Item] | None = None,
    ) -> None:
        self._next = next_item
        """The next item; raises StopAsyncIteration at the end."""
        self._transform = transform

    def __aiter__(self) -> ScanResults:
        return self

    async def __anext__(self) -> Item:
        item = await self._next()
        return item if self._transform is None else self._transform(item)


_YIELD_EVERY = 32
"""Under trio, results taken without a schedule point in a row, at most (see _trio_next)."""


def _trio_next(receive: trio.MemoryReceiveChannel[Item]) -> Callable[[], Awaitable[Item]]:
    """``receive.receive()`` without its schedule point when a result is waiting.

    As in the scheduler's hot path (``scan/_schedule``, "Cost per target"): a schedule point
    per result is a round trip through the run loop, which the asyncio bridge, taking results
    in batches, does not pay. Cancellation is still checked at every result, and every
    ``_YIELD_EVERY`` results the caller yields once, so a slow loop body cannot hold up the
    scan for more than that many results.
    """
    import trio

    taken = 0

    async def next_item() -> Item:
        nonlocal taken
        await trio.lowlevel.checkpoint_if_cancelled()
        taken += 1
        if taken % _YIELD_EVERY:
            try:
                return receive.receive_nowait()
            except trio.WouldBlock:
                pass
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        try:
            return await receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    return next_item


def _prepare(
    targets: Iterable[Target | str], options: ScanOptions | None, inventory: bool
) -> tuple[ScanOptions, Iterator[Target | BadLine], Deduplicator, Inventorizer | None]:
    options = options or ScanOptions()
    inventorizer = None
    if inventory:
        from .analysis._chain_inventory import Inventorizer

        # Loads the trust store before anything is sent: a bad trust_store is a UsageError now.
        inventorizer = Inventorizer(options)
    return options, _coerce(targets, options), Deduplicator(), inventorizer


@asynccontextmanager
async def open_scan(
    targets: Iterable[Target | str],
    options: ScanOptions | None = None,
    *,
    inventory: bool = False,
    _host: Literal["thread", "guest"] | None = None,
) -> AsyncIterator[ScanResults]:
    """Scan ``targets`` concurrently; yields :class:`ScanResults` in completion order.

    Works under trio and under asyncio. Duplicate targets are scanned once. ``targets`` is
    consumed lazily, so it may be a generator over a huge input; it must not block for long
    (read files in batches). Under asyncio it is consumed in the scan's own thread.
    ``inventory=True`` sets ``result.inventory`` (see :class:`~chainscan.ChainInventory`).
    """
    options, items, dedup, inventorizer = _prepare(targets, options, inventory)
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        from .scan._schedule import Scheduler

        send, receive = trio.open_memory_channel[Item](options.concurrency)
        scheduler = Scheduler(options)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(scheduler.run, items, send, skip=dedup.seen, blocking_source=False)
            )
            # The caller's exception (or cancellation) leaves the block as it came, not
            # wrapped in the nursery's ExceptionGroup: the same as under asyncio.
            body_error: BaseException | None = None
            try:
                async with receive:
                    yield ScanResults(_trio_next(receive), inventorizer)
            except BaseException as exc:
                body_error = exc
            nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
        return
    if library != "asyncio":
        raise UsageError(
            f"chainscan.open_scan runs under trio or asyncio, not {library}; "
            "use open_scan_sync from a thread instead"
        )
    import asyncio

    from ._bridge import ASYNCIO_HOST, AsyncioInbox, start_run

    loop = asyncio.get_running_loop()
    inbox = start_run(items, options, dedup.seen, loop=loop, host=_host or ASYNCIO_HOST)
    assert isinstance(inbox, AsyncioInbox)
    try:
        yield ScanResults(inbox.next, inventorizer)
    finally:
        await inbox.close()
    error = inbox.error
    if error is not None:
        raise error


async def scan_all(
    targets: Iterable[Target | str],
    options: ScanOptions | None = None,
    *,
    inventory: bool = False,
) -> list[ScanResult | BadLine]:
    """Scan ``targets`` and return every result (completion order). For small target lists.

    Works under trio and under asyncio.
    """
    async with open_scan(targets, options, inventory=inventory) as results:
        return [result async for result in results]


@contextmanager
def open_scan_sync(
    targets: Iterable[Target | str],
    options: ScanOptions | None = None,
    *,
    inventory: bool = False,
) -> Iterator[Iterator[ScanResult | BadLine]]:
    """:func:`open_scan` for synchronous code: ``with`` block, plain ``for`` loop.

    The scan runs in a thread of its own; the loop blocks until the next result. Leaving the
    block early cancels the scan and waits for it to stop. ``targets`` is consumed in the
    scan's thread.
    """
    from ._bridge import SyncInbox, start_run

    options, items, dedup, inventorizer = _prepare(targets, options, inventory)
    inbox = start_run(items, options, dedup.seen, loop=None)
    assert isinstance(inbox, SyncInbox)

    def results() -> Generator[Item, None, None]:
        while True:
            try:
                item = inbox.next()
            except StopIteration:
                return
            yield item if inventorizer is None else inventorizer(item)

    stream = results()
    try:
        yield stream
    finally:
        stream.close()
        inbox.close()
    error = inbox.error
    if error is not None:
        raise error


def scan_all_sync(
    targets: Iterable[Target | str],
    options: ScanOptions | None = None,
    *,
    inventory: bool = False,
) -> list[ScanResult | BadLine]:
    """Scan ``targets`` and return every result, from synchronous code (no event loop)."""
    with open_scan_sync(targets, options, inventory=inventory) as results:
        return list(results)
