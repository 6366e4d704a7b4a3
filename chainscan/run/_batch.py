"""Batches of what a channel or a pipe has ready: results for a writer, manifest lines from a
child process."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

import trio

__all__ = [
    "RESULT_BUFFER",
    "WRITE_BATCH",
    "ThreadAcks",
    "batches",
    "line_batches",
    "result_buffer",
]

WRITE_BATCH = 512
"""Results a writer takes at once, at most: a thread hop per batch, and each hop waits a turn
of the event loop (behind every handshake in flight), so batches stay large for throughput.
A batch holds only what was waiting anyway: the thread writer appends each line as it is
made, and what can wait is bounded by ``RESULT_BUFFER`` and the back-pressure."""
RESULT_BUFFER = 128
"""Results the scheduler's channel holds for the writer, at most. What waits for the writer
is bounded first by the scan's window (``scan._backlog``: about 0.2 s of the writer's work);
should the channel fill all the same, finished results wait in ``send`` and no new
connection starts until there is room."""

_T = TypeVar("_T")


def result_buffer(concurrency: int) -> int:
    """The size of a scan's result channel: ``RESULT_BUFFER``, or less for a small scan."""
    return max(1, min(concurrency, RESULT_BUFFER))


async def batches(
    receive: trio.MemoryReceiveChannel[_T], limit: int
) -> AsyncGenerator[list[_T], None]:
    """Wait for one item, then take every item already waiting (up to ``limit``); repeat until
    the channel ends. A writer that handles a batch at a time pays its per-call cost (a thread
    hop, a pipe write) once per batch, and a quiet channel still gets each item at once."""
    while True:
        try:
            batch = [await receive.receive()]
        except trio.EndOfChannel:
            return
        while len(batch) < limit:
            try:
                batch.append(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        yield batch


async def line_batches(stream: trio.abc.ReceiveStream) -> AsyncGenerator[list[bytes], None]:
    """The whole lines (each with its newline) of each chunk read from ``stream``, as they come; a
    torn last line (the writer died mid-line) is dropped."""
    pending = b""
    async for chunk in stream:
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if cut:
            yield data[:cut].splitlines(keepends=True)


class ThreadAcks:
    """A writer thread's acknowledgements (``scan._backlog``), handed to the trio run.

    A thread that writes a batch calls this with each count of results it is done with; the
    counts are added up and posted to ``written`` in the trio thread (``run_sync_soon``, which
    never waits) at most every ``interval`` seconds, and by :meth:`flush` (called from
    either thread once the batch is done). Made in the trio thread."""

    __slots__ = ("_at", "_interval", "_pending", "_token", "_written")

    def __init__(self, written: Callable[[int], None], interval: float = 0.02) -> None:
        self._written = written
        self._token = trio.lowlevel.current_trio_token()
        self._interval = interval
        self._pending = 0
        self._at = time.monotonic()

    def __call__(self, count: int) -> None:
        self._pending += count
        if time.monotonic() - self._at >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._token.run_sync_soon(self._written, self._pending)
            self._pending = 0
        self._at = time.monotonic()
