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

* **Back-pressure**: the pipe is small; when the child falls behind, sending blocks the writer
  task, the result channel fills and the scheduler stops admitting targets. Memory stays bounded.
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
from ._child import Child, ChildConfig, LineOut, child_main, run_children, write_results

if TYPE_CHECKING:  # the scanning process's side: the writer process imports neither trio
    import trio  # nor the display (about 0.1 s of CPU at its start)

    from ._display import Display

__all__ = ["write_in_process", "writer_process_useful"]

_HEADER = struct.Struct("<I")


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
) -> None:
    """Drain ``receive`` through a writer process; return when every result is in the manifest.

    Raises ``OutputError`` for a write error in the child and ``ChainscanError`` if the child
    dies. Cancelled (a second Ctrl-C), it kills the child at once.
    """
    import trio

    from ._batch import batches

    async def feed(children: list[Child], local: trio.MemorySendChannel[list[BadLine]]) -> None:
        # ``receive`` is left open when this stops on an error: closing it would break the
        # scheduler's sends before the error cancels them.
        (child,) = children
        try:
            async with aclosing(batches(receive, batch_size)) as chunks:
                async for batch in chunks:
                    bad = [item for item in batch if isinstance(item, BadLine)]
                    if bad:
                        await local.send(bad)
                    results = [item for item in batch if isinstance(item, ScanResult)]
                    if results:
                        data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
                        await child.stdin.send_all(_HEADER.pack(len(data)) + data)
        except trio.BrokenResourceError:
            # The child is gone and its collector says why (and stops the scan). While the
            # run is interrupted it does not: what is left is not written, --resume does it.
            async for _ in receive:
                pass

    config = ChildConfig(options, output.root, os.getpid())
    await run_children(
        "chainscan.run._writer_process",
        config,
        ["the writer process"],
        output=output,
        display=display,
        feed=feed,
        interrupted=interrupted,
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
