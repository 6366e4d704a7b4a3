"""Batches of what a channel or a pipe has ready: results for a writer, manifest lines from a
child process."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TypeVar

import trio

__all__ = ["batches", "line_batches"]

_T = TypeVar("_T")


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
