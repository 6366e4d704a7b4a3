"""The writer in its own process: certificate analysis and files off the event loop's core.

Theory of operation
-------------------
Per target, the writer analyses every certificate, verifies the chain against the trust store,
finds its problems and creates a folder of files: about as much CPU as the handshake itself.
In a thread of the scanning process that work competes with the event loop for the GIL, so a
single process tops out at about half the handshake rate. With a second core, the writer runs
in a child process (``python -m chainscan.run._writer_process CONFIG``)::

    scanning process: Scheduler ──► results (pickled batches) ──► child stdin
    writer process:   analysis, trust, problems, certificate files ──► stdout (manifest lines)
    scanning process: manifest lines ──► manifest.jsonl, progress, manifest.json at the end

It is the ``--workers`` split with the roles turned around: the child writes what
``OutputDir.write_files`` writes and hands back the lines, and the scanning process appends
them with ``OutputDir.append_lines``. So the guarantees are unchanged: a line reaches
``manifest.jsonl`` only after its files are complete, only one process appends to it, and
invalid input lines are written by the scanning process itself.

* **Start-up**: the child takes about 0.4 s of CPU to start (imports, the trust store); it
  says ``READY_LINE`` when it can take work. Results finished before that are written by the
  scanning process itself, in threads, as ``--writer thread`` does: they do not wait for it.
  A child that was sent nothing by the end of the scan is killed, not waited for.
* **Lines as they are made**: the child sends each target's line within ``SEND_INTERVAL``
  (``_child.write_results``), not at the end of its batch; batches are ``PROCESS_BATCH``, one
  pipe write each (the pipe is widened to hold one).
* **Back-pressure**: each line appended acknowledges its result to the scan's window
  (``scan._backlog``), which holds new connections back while the writer is behind, so about
  0.2 s of the child's work waits for it. At most ``IN_CHILD`` results (plus a batch) are in
  the child at once in any case; then the feed waits and the result channel fills. Memory and
  the results a crash can lose stay bounded.
* **Signals**: the child ignores SIGINT and SIGTERM (Ctrl-C reaches the whole process group):
  it stops when its stdin ends, after writing every result it was sent, exactly as the thread
  writer drains its channel. A second signal makes the scanning process kill it; folders it
  wrote without a line are cleared and written again by ``--resume``.
* **Errors**: a write error in the child (a full disk) comes back as its error line and is
  raised in the scanning process as ``OutputError``, after the lines of the targets it
  finished; a child that dies otherwise is reported with its exit code. Either way
  ``manifest.jsonl`` holds whole lines only.

Starting the child, its config, the error line, shutdown and death reporting are those of every
child process (``_child``, shared with ``--workers``); this module is the stage: what goes down
the pipe (pickled batches of results) and what the child does with it (one target at a time,
in its main thread: it does nothing else).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, BinaryIO

from .._models import BadLine, ScanOptions, ScanResult
from ..output._output import OutputDir
from ._child import (
    READY_LINE,
    Appended,
    Child,
    ChildConfig,
    LineOut,
    child_main,
    run_children,
    write_results,
)

if TYPE_CHECKING:  # the scanning process's side: the writer process imports neither trio
    import trio  # nor the display (about 0.1 s of CPU at its start)

    from ._display import Display

__all__ = ["IN_CHILD", "PROCESS_BATCH", "write_in_process", "writer_process_useful"]

_HEADER = struct.Struct("<I")
_PIPE_SIZE = 1 << 20
"""Bytes of the pipe to the child: a batch of ``PROCESS_BATCH`` results (about 2.2 KB each
pickled) in one write, so handing it over takes one turn of the event loop, not one per
64 KiB (every turn waits behind the steps of every handshake in flight)."""
PROCESS_BATCH = 256
"""Results per pickled batch to the child, at most."""
IN_CHILD = 256
"""Results sent to the child whose lines have not come back, at most, before the next batch
is taken: the child always has work, and the rest waits in the result channel, where it
holds new connections back."""


def writer_process_useful() -> bool:
    """A second core is there to run the writer on (``--writer auto``)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


# ---------------------------------------------------------------- scanning process side


async def write_in_process(
    receive: trio.MemoryReceiveChannel[ScanResult | BadLine],
    output: OutputDir,
    options: ScanOptions,
    display: Display,
    *,
    batch_size: int,
    interrupted: Callable[[], bool],
    written: Callable[[int], None],
) -> None:
    """Drain ``receive`` through a writer process; return when every result is in the manifest
    (``written(n)`` as each ``n`` more are).

    Raises ``OutputError`` for a write error in the child and ``ChainscanError`` if the child
    dies. Cancelled (a second Ctrl-C), it kills the child at once.
    """
    import trio

    from ._batch import batches

    async def feed(children: list[Child], local: trio.MemorySendChannel[Appended]) -> None:
        # ``receive`` is left open when this stops on an error: closing it would break the
        # scheduler's sends before the error cancels them.
        (child,) = children
        child.widen_input(_PIPE_SIZE)
        sent = 0
        try:
            async with aclosing(batches(receive, batch_size)) as chunks:
                async for batch in chunks:
                    bad = [item for item in batch if isinstance(item, BadLine)]
                    if bad:
                        await local.send(bad)
                    results = [item for item in batch if isinstance(item, ScanResult)]
                    if results and not child.ready.is_set():
                        # The child is still starting (about 0.4 s of CPU): results finished
                        # meanwhile are written here, in threads, rather than wait for it.
                        lines = await trio.to_thread.run_sync(output.write_files, results)
                        await local.send(lines)
                    elif results:
                        data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
                        await child.stdin.send_all(_HEADER.pack(len(data)) + data)
                        sent += len(results)
                        # Take no more while the child holds more than IN_CHILD (the
                        # window of ``scan._backlog`` normally keeps it below that).
                        await child.wait_returned(sent - IN_CHILD)
        except trio.BrokenResourceError:
            # The child is gone and its collector says why (and stops the scan). While the
            # run is interrupted it does not: what is left is not written, --resume does it.
            async for _ in receive:
                pass
        if sent == 0:
            # It was sent nothing (the scan ended, or was interrupted, while it started): it
            # holds no work, so the run does not wait for its start-up to end.
            child.kill()

    config = ChildConfig(options, output.root, os.getpid())
    await run_children(
        "chainscan.run._writer_process",
        config,
        ["the writer process"],
        output=output,
        display=display,
        feed=feed,
        interrupted=interrupted,
        written=written,
    )


# ---------------------------------------------------------------- writer process side


def _read_batch(stream: BinaryIO) -> Sequence[ScanResult] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None  # the scanning process died mid-batch
    results: list[ScanResult] = pickle.loads(data)  # our own parent wrote it
    return results


def _write(config: ChildConfig, output: OutputDir, out: LineOut) -> int:
    out.send([READY_LINE])  # the trust store is loaded: send work here now
    stdin = sys.stdin.buffer
    while (results := _read_batch(stdin)) is not None:
        if not write_results(output, results, out, inline=True):
            return 1
    return 0


def main(argv: list[str]) -> int:
    # The scanning process decides when to stop: it ends our stdin after its last result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return child_main(argv, _write)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
