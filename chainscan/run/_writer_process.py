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
* **Errors**: a write error in the child (a full disk) comes back as one line starting with
  ``!`` and is raised in the scanning process as ``OutputError``; a child that dies otherwise
  is reported with its exit code. Either way ``manifest.jsonl`` holds whole lines only.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson
import trio

from .._errors import ChainscanError, OutputError
from .._models import BadLine, CertFormat, ScanOptions, ScanResult
from ..analysis._inventory import Inventory
from ..output._output import OutputDir
from ._batch import batches, line_batches
from ._display import Display
from ._workers import options_from_json, options_to_json

__all__ = ["write_in_process", "writer_process_useful"]

_HEADER = struct.Struct("<I")
_ERROR_PREFIX = b"!"
_APPEND_BATCH = 1024
_WATCH_INTERVAL = 0.05
_STOP_GRACE = 30.0
"""Seconds the child may take to finish its last results once its input has ended."""


def writer_process_useful() -> bool:
    """A second core is there to run the writer on (``--writer auto``)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


# ---------------------------------------------------------------- scanning process side


async def _feed(
    receive: trio.MemoryReceiveChannel[ScanResult | BadLine],
    proc: trio.Process,
    local: trio.MemorySendChannel[list[BadLine] | list[bytes]],
    child: _Child,
    batch_size: int,
) -> None:
    """Results to the child, in pickled batches; invalid lines to the local appender."""
    stdin = proc.stdin
    assert stdin is not None
    async with receive, local:
        try:
            async for batch in batches(receive, batch_size):
                bad = [item for item in batch if isinstance(item, BadLine)]
                if bad:
                    await local.send(bad)
                results = [item for item in batch if isinstance(item, ScanResult)]
                if results:
                    data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
                    await stdin.send_all(_HEADER.pack(len(data)) + data)
        except trio.BrokenResourceError:
            # The child is gone: append what it finished, then say why it stopped.
            await local.aclose()
            await child.appended.wait()
            await proc.wait()
            raise child.failure(proc.returncode) from None
        finally:
            with (
                trio.CancelScope(shield=True),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stdin.aclose()


class _Child:
    """What the tasks talking to the writer process know about how it ended."""

    def __init__(self) -> None:
        self.error: str | None = None
        """The write error it reported (its last line), if any."""
        self.appended = trio.Event()
        """Every line it sent is in the manifest."""

    def failure(self, code: int | None) -> ChainscanError:
        if self.error is not None:
            return OutputError(self.error)
        return ChainscanError(
            f"the writer process stopped unexpectedly (exit code {code}); the manifest lists"
            " every target written before: finish the scan with --resume"
        )


async def _collect(
    stdout: trio.abc.ReceiveStream,
    sink: trio.MemorySendChannel[list[BadLine] | list[bytes]],
    child: _Child,
) -> None:
    """The child's manifest lines, whole lines only, until it closes its stdout or reports a
    write error (its last line, after the lines of the targets it finished)."""
    async with sink:
        async for lines in line_batches(stdout):
            for index, line in enumerate(lines):
                if line.startswith(_ERROR_PREFIX):
                    child.error = line[len(_ERROR_PREFIX) :].decode("utf-8", "replace").strip()
                    # Closed: _append has stopped (on an error of its own), appended is set.
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        if index:
                            await sink.send(lines[:index])
                        await sink.send([])  # "all sent": _append sets child.appended
                    await child.appended.wait()
                    raise child.failure(None)  # stops the scan now
            await sink.send(lines)


async def _append(
    receive: trio.MemoryReceiveChannel[list[BadLine] | list[bytes]],
    output: OutputDir,
    display: Display,
    child: _Child,
) -> None:
    """The only task that appends to ``manifest.jsonl``: lines from the child, invalid lines."""
    async with receive:
        try:
            await _append_all(receive, output, display, child)
        finally:
            child.appended.set()


async def _append_all(
    receive: trio.MemoryReceiveChannel[list[BadLine] | list[bytes]],
    output: OutputDir,
    display: Display,
    child: _Child,
) -> None:
    async for first in receive:
        if not first:
            child.appended.set()
            continue
        if first and isinstance(first[0], BadLine):
            bad = [item for item in first if isinstance(item, BadLine)]
            await trio.to_thread.run_sync(output.write, bad)
            display.update(list(bad))
            continue
        lines = [line for line in first if isinstance(line, bytes)]
        counted = await trio.to_thread.run_sync(output.append_lines, lines)
        display.update_counts(counted)


async def write_in_process(
    receive: trio.MemoryReceiveChannel[ScanResult | BadLine],
    output: OutputDir,
    options: ScanOptions,
    display: Display,
    *,
    batch_size: int,
) -> None:
    """Drain ``receive`` through a writer process; return when every result is in the manifest.

    Raises ``OutputError`` for a write error in the child and ``ChainscanError`` if the child
    dies. Cancelled (a second Ctrl-C), it kills the child at once.
    """
    config = orjson.dumps(
        {
            "options": options_to_json(options),
            "root": str(output.root),
            "cert_format": output.cert_format.value,
            "parent": os.getpid(),
        }
    ).decode()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "chainscan.run._writer_process", config],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    send_lines, receive_lines = trio.open_memory_channel[list[BadLine] | list[bytes]](8)
    child = _Child()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_append, receive_lines, output, display, child)
            nursery.start_soon(_collect, proc.stdout, send_lines.clone(), child)
            nursery.start_soon(_feed, receive, proc, send_lines, child, batch_size)
    except BaseException:
        proc.kill()
        raise
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_STOP_GRACE):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    if proc.returncode != 0 or child.error is not None:
        raise child.failure(proc.returncode)


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


def _die_with(parent: int) -> None:
    """Exit within ``_WATCH_INTERVAL`` of the scanning process's death (kill -9).

    Without this we would finish the batch in hand behind its back, and a ``--resume``
    started at once could find us still writing its folders. (Linux's PR_SET_PDEATHSIG follows
    the *thread* that started us, one of trio's short-lived worker threads: not usable.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="chainscan-watch-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    # The scanning process decides when to stop: it ends our stdin after its last result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = orjson.loads(argv[0])
    _die_with(config["parent"])
    options = options_from_json(config["options"])
    output = OutputDir(
        Path(config["root"]),
        cert_format=CertFormat(config["cert_format"]),
        inventory=Inventory.from_options(options),
    )
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (results := _read_batch(stdin)) is not None:
            lines: list[bytes] = []
            try:
                for result in results:  # one at a time: a write error keeps the lines before it
                    lines += output.write_files([result], inline=True)
            except ChainscanError as exc:
                stdout.write(b"".join(lines))
                stdout.write(_ERROR_PREFIX + str(exc).replace("\n", " ").encode() + b"\n")
                stdout.flush()
                return 1
            stdout.write(b"".join(lines))
            stdout.flush()
    except BrokenPipeError:  # the scanning process is gone: nobody will append our lines
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 1
    finally:
        output.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
