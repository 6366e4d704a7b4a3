"""A stage of the scan in a child process: the writer process and the ``--workers`` scanners.

Theory of operation
-------------------
A child is ``python -m chainscan.run.<stage> CONFIG``. The parent feeds its stdin (in the
stage's own format: pickled results for the writer process, JSON lines of targets for a
scanning process) and reads manifest lines back from its stdout::

    parent:  feed ──► child stdin
    child:   stage: certificate files ──► stdout: each target's manifest line, after its files
    parent:  collect ──► append (the only task writing manifest.jsonl) ──► progress

Every child follows the same rules, whatever its stage:

* **Config** (:class:`ChildConfig`, JSON on the command line): the scan options (the output
  settings among them: certificate format, trust store, ``--warn-days``, ``--deployments``),
  the output folder the parent prepared, and the parent's process id.
* **Bootstrap** (:func:`child_main`): the child opens the folder as ``OutputDir`` (no
  ``prepare``: only the parent appends to ``manifest.jsonl``), exits within ``_WATCH_INTERVAL``
  of its parent's death (a ``kill -9``: a ``--resume`` started at once must not find it still
  writing), and stops quietly when the parent stops reading (a broken pipe).
* **Ready**: a stage may send ``READY_LINE`` first, once it has loaded what it needs (the
  writer process does: until then the parent writes in threads itself, ``Child.ready``).
* **Batching**: the parent reads whatever whole lines the pipe holds (``_batch.line_batches``;
  a torn last line, from a child that died mid-write, is dropped) and appends them in batches.
* **Errors**: a write error in the child (a full disk) is sent as its last line: ``!`` and the
  error's message, after the lines of the targets finished before it (:func:`write_results`:
  all of them for the writer process, which writes one target at a time; none of the failing
  batch for a scanning process, which writes a batch's folders in parallel). The parent appends
  those lines, then raises ``OutputError`` with that message: the scan stops at once, and the
  run reports the file and the error exactly as the thread writer would.
* **Death**: a child that exits with a non-zero code without an error line is reported as
  ``NAME stopped unexpectedly (exit code N)`` and stops the scan too. Not while the run is
  being interrupted: a signal may stop a child before it can handle it, and the manifest is
  marked incomplete anyway.
* **Shutdown**: the end of its input tells a child to finish: it writes what it was given,
  then exits. Once its stdout has ended, it gets ``STOP_GRACE`` seconds to exit before it is
  killed. When the parent stops on an error or a second signal, it kills its children at once;
  folders they wrote without a manifest line are cleared and written again by ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .._errors import ChainscanError, OutputError
from .._models import BadLine, CertFormat, ScanOptions, ScanResult
from ..analysis._inventory import Inventory
from ..output._output import OutputDir

if TYPE_CHECKING:  # the parent side's; a child writing files imports neither (start-up CPU)
    import trio

    from ._display import Display

__all__ = [
    "READY_LINE",
    "STOP_GRACE",
    "Child",
    "ChildConfig",
    "LineOut",
    "child_main",
    "options_from_json",
    "options_to_json",
    "run_children",
    "write_results",
]

STOP_GRACE = 30.0
"""Seconds a child may take to exit once its stdout has ended; then it is killed."""
ERROR_PREFIX = b"!"
"""Starts a child's error line: the write error that stopped it."""
READY_LINE = b"+\n"
"""A stage may send this line once, first, when it can take work (``Child.ready``)."""
_WATCH_INTERVAL = 0.05
_APPEND_BATCH = 64
"""Chunks of lines (or of invalid input lines) appended per thread hop, at most."""
SEND_INTERVAL = 0.02
"""Seconds a child writing one target at a time holds finished lines before it sends them."""


def options_to_json(options: ScanOptions) -> dict[str, Any]:
    """``options`` as JSON-ready values, for a child process's command line."""
    return {
        f.name: getattr(options, f.name).value
        if isinstance(getattr(options, f.name), CertFormat)
        else getattr(options, f.name)
        for f in dataclasses.fields(options)
    }


def options_from_json(raw: dict[str, Any]) -> ScanOptions:
    """The inverse of :func:`options_to_json` (JSON lists back to the tuples they were)."""
    values: dict[str, Any] = dict(raw)
    for key in ("fetch_allow", "fetch_deny"):
        if key in values:
            values[key] = tuple(values[key])
    values["cert_format"] = CertFormat(raw["cert_format"])
    return ScanOptions(**values)


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What a child is told on its command line."""

    options: ScanOptions
    """The scan options: a scanning process's share of the limits, and the output settings
    every stage uses (``cert_format``, ``trust_store``, ``warn_days``, ``deployments``)."""
    root: Path
    """The output folder, prepared by the parent."""
    parent: int
    """The parent's process id: the child exits when that process is gone."""

    def dumps(self) -> str:
        return orjson.dumps(
            {
                "options": options_to_json(self.options),
                "root": str(self.root),
                "parent": self.parent,
            }
        ).decode()

    @classmethod
    def loads(cls, text: str) -> ChildConfig:
        raw = orjson.loads(text)
        return cls(options_from_json(raw["options"]), Path(raw["root"]), int(raw["parent"]))

    def output(self) -> OutputDir:
        """The child's view of the output folder: it writes files and makes lines, never
        appends (loads the trust store: the parent already checked that it loads)."""
        return OutputDir(
            self.root,
            cert_format=self.options.cert_format,
            inventory=Inventory.from_options(self.options),
        )


# ---------------------------------------------------------------- parent side

Appended = list[BadLine] | list[bytes] | ChainscanError
"""What the append task receives: invalid input lines, a child's manifest lines, or the
failure that stops the scan (raised after everything sent before it is appended)."""

Feed = Callable[["list[Child]", "trio.MemorySendChannel[Appended]"], Awaitable[None]]
"""Feeds the children's stdin; invalid input lines (and manifest lines the parent made itself)
go to the channel (written here)."""


class Child:
    """One running child process, as the parent sees it."""

    def __init__(self, proc: trio.Process, name: str) -> None:
        import trio

        self.name = name
        """How messages name it: ``the writer process``, ``scanning process 2 of 4``."""
        self._proc = proc
        self.error: str | None = None
        """The write error it reported (its error line), if any."""
        self.ready = trio.Event()
        """Set when it sent ``READY_LINE`` (a stage that does not send it is never ready)."""
        self.returned = 0
        """Manifest lines received from it so far."""
        self._returns = trio.lowlevel.ParkingLot()
        self._output_ended = False
        self._killed = False

    @classmethod
    async def start(cls, stage: str, config: ChildConfig, name: str) -> Child:
        import trio

        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", stage, config.dumps()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return cls(proc, name)

    @property
    def stdin(self) -> trio.abc.SendStream:
        assert self._proc.stdin is not None
        return self._proc.stdin

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def widen_input(self, size: int) -> None:
        """Ask for a pipe to its stdin of ``size`` bytes (Linux; elsewhere, or refused: as is),
        so that a batch goes down in one write instead of one per 64 KiB the child reads."""
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.stdin.fileno(), fcntl.F_SETPIPE_SZ, size)  # type: ignore[attr-defined]

    async def wait_returned(self, count: int) -> None:
        """Wait until it has sent ``count`` manifest lines in all, or its output has ended."""
        while self.returned < count and not self._output_ended:
            await self._returns.park()

    async def close_input(self) -> None:
        """End its input: it finishes what it was given, then exits."""
        import trio

        with (
            trio.CancelScope(shield=True),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self.stdin.aclose()

    async def wait(self) -> int:
        return await self._proc.wait()

    def terminate(self) -> None:
        """SIGTERM, if it still runs (a scanning process then stops scanning and reports)."""
        if self._proc.returncode is None:
            self._proc.terminate()

    def kill(self) -> None:
        if self._proc.returncode is None:
            self._killed = True
            self._proc.kill()

    async def stop(self) -> None:
        """Wait ``STOP_GRACE`` seconds for it to exit, then kill it. Shielded."""
        import trio

        with trio.CancelScope(shield=True):
            with trio.move_on_after(STOP_GRACE):
                await self._proc.wait()
            if self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()

    def failure(self, *, interrupted: bool) -> ChainscanError | None:
        """Why this child stopped the scan, if it did (see the module docstring)."""
        if self.error is not None:
            return OutputError(self.error)
        code = self._proc.returncode
        if code is None or code == 0 or self._killed or interrupted:
            return None
        return ChainscanError(
            f"{self.name} stopped unexpectedly (exit code {code}); the manifest lists every"
            " target it finished: finish the scan with --resume"
        )

    async def collect(
        self, sink: trio.MemorySendChannel[Appended], interrupted: Callable[[], bool]
    ) -> None:
        """Its manifest lines to ``sink``, whole lines only, until its stdout ends or it
        reports a write error; then, if it stopped the scan, why (see :meth:`failure`)."""
        stdout = self._proc.stdout
        assert stdout is not None
        async with sink:
            try:
                reported = await self._collect(stdout, sink)
            finally:
                self._output_ended = True
                self._returns.unpark_all()
            if reported:
                return
            await self.stop()
            failure = self.failure(interrupted=interrupted())
            if failure is not None:
                await sink.send(failure)

    async def _collect(
        self, stdout: trio.abc.ReceiveStream, sink: trio.MemorySendChannel[Appended]
    ) -> bool:
        """Forward its lines until its stdout ends (False) or its error line (True)."""
        from ._batch import line_batches

        async with aclosing(line_batches(stdout)) as chunks:
            async for lines in chunks:
                if lines[0] == READY_LINE and not self.ready.is_set():
                    self.ready.set()
                    del lines[0]
                    if not lines:
                        continue
                for index, line in enumerate(lines):
                    if line.startswith(ERROR_PREFIX):
                        message = line[len(ERROR_PREFIX) :].decode("utf-8", "replace").strip()
                        self.error = message
                        if index:
                            await sink.send(lines[:index])
                        await sink.send(OutputError(message))
                        return True
                await sink.send(lines)
                self.returned += len(lines)
                self._returns.unpark_all()
        return False


async def _append(
    receive: trio.MemoryReceiveChannel[Appended],
    output: OutputDir,
    display: Display,
    written: Callable[[int], None] | None,
) -> None:
    """The only task that appends to ``manifest.jsonl`` while children run; ``written(n)``
    after each ``n`` lines of results (not of invalid input lines) are appended."""
    import trio

    from ._batch import batches

    async def flush(lines: list[bytes]) -> None:
        if lines:
            counted = await trio.to_thread.run_sync(output.append_lines, lines)
            if written is not None:
                written(len(lines))
            display.update_counts(counted)

    # ``receive`` stays open when this raises: a closed channel would break the senders'
    # pending sends before the error cancels them (and add their errors to this one).
    async with aclosing(batches(receive, _APPEND_BATCH)) as chunks:
        async for batch in chunks:
            lines: list[bytes] = []
            for item in batch:
                if isinstance(item, ChainscanError):
                    await flush(lines)
                    raise item  # stops the scan: everything sent before it is in the manifest
                bad = [entry for entry in item if isinstance(entry, BadLine)]
                if bad:
                    await flush(lines)
                    lines = []
                    await trio.to_thread.run_sync(output.write, bad)
                    display.update(list(bad))
                else:
                    lines += [line for line in item if isinstance(line, bytes)]
            await flush(lines)


async def run_children(
    stage: str,
    config: ChildConfig,
    names: Sequence[str],
    *,
    output: OutputDir,
    display: Display,
    feed: Feed,
    interrupted: Callable[[], bool],
    written: Callable[[int], None] | None = None,
) -> None:
    """Run one child of module ``stage`` per name in ``names`` until ``feed`` returns and every
    child has sent its last line; their lines are appended to ``output`` here (and counted
    to ``written``, when given).

    Raises ``OutputError`` for a write error in a child and ``ChainscanError`` for a child
    that died (see the module docstring). Cancelled (a second signal), it kills them at once.
    """
    import trio

    children: list[Child] = []
    try:
        for name in names:
            children.append(await Child.start(stage, config, name))
        send, receive = trio.open_memory_channel[Appended](4 * len(children))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_append, receive, output, display, written)
            async with send:
                for child in children:
                    nursery.start_soon(child.collect, send.clone(), interrupted)
                nursery.start_soon(_feed, feed, children, send.clone())
    except BaseException:
        for child in children:
            child.kill()
        raise
    finally:
        for child in children:
            await child.stop()


async def _feed(feed: Feed, children: list[Child], local: trio.MemorySendChannel[Appended]) -> None:
    try:
        async with local:
            await feed(children, local)
    finally:
        for child in children:
            await child.close_input()


# ---------------------------------------------------------------- child side


class LineOut:
    """A child's stdout: manifest lines, then at most one error line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def send(self, lines: Sequence[bytes]) -> None:
        self._stream.write(b"".join(lines))
        self._stream.flush()

    def fail(self, lines: Sequence[bytes], error: ChainscanError) -> None:
        """The lines of the targets finished before ``error``, then the error line."""
        message = str(error).replace("\r", " ").replace("\n", " ")
        self._stream.write(b"".join(lines) + ERROR_PREFIX + message.encode() + b"\n")
        self._stream.flush()


def write_results(
    output: OutputDir,
    results: Sequence[ScanResult],
    out: LineOut,
    *,
    inline: bool,
    sent: Callable[[int], None] | None = None,
) -> bool:
    """Write the files of ``results`` and send their lines; False after a write error, which
    is sent as the error line after the lines of the targets finished before it.

    Lines go out as they are made, held ``SEND_INTERVAL`` seconds at most, not until the
    batch is done; ``sent(n)`` after each ``n`` lines go. ``inline`` (a process that does
    nothing else): one target after another in this thread; otherwise the targets' folders
    are written in parallel (``OutputDir.file_lines``), each line still sent in order once
    its own folder is complete.
    """
    lines: list[bytes] = []
    try:
        at = time.monotonic()
        for line in output.file_lines(results, inline=inline):
            lines.append(line)
            if time.monotonic() - at >= SEND_INTERVAL:
                out.send(lines)
                if sent is not None:
                    sent(len(lines))
                lines = []
                at = time.monotonic()
    except ChainscanError as exc:
        out.fail(lines, exc)
        return False
    out.send(lines)
    if sent is not None:
        sent(len(lines))
    return True


def _die_with(parent: int) -> None:
    """Exit within ``_WATCH_INTERVAL`` of the parent's death (kill -9).

    Without this a child would finish the work in hand behind its back, and a ``--resume``
    started at once could find it still writing its folders. (Linux's PR_SET_PDEATHSIG follows
    the *thread* that started us, one of trio's short-lived worker threads: not usable.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="chainscan-watch-parent", daemon=True).start()


def child_main(argv: Sequence[str], stage: Callable[[ChildConfig, OutputDir, LineOut], int]) -> int:
    """A child's ``main``: read the config, bootstrap, run ``stage``; its exit code."""
    config = ChildConfig.loads(argv[0])
    _die_with(config.parent)
    output = config.output()
    stdout = sys.stdout.buffer
    try:
        return stage(config, output, LineOut(stdout))
    except BrokenPipeError:  # the parent is gone: nobody will append our lines
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 1
    finally:
        output.shutdown()
