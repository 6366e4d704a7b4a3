"""One scan from input file to output folder: wires targets, scheduler, writer and display.

    input lines ──(thread, batches)──► Scheduler ──channel──► writer task ──(thread)──► OutputDir
                                                                   └──► Display (progress)

Each mode is a part slotted into that line (``_execute``): the *source* of results is the local
``Scheduler``; the *writer* works in threads or in a child process (``--writer``,
``_writer_process``); ``--shard`` narrows the input before either (``_shard``). ``--workers``
replaces source and writer with child processes that scan and write, leaving this process the
input and the manifest (``_workers``); ``--dask`` replaces them with a cluster whose workers scan
and analyse, leaving this process the input and the writing of ready files and lines (``_dask``).

The thread writer takes whatever results are waiting (up to ``WRITE_BATCH``) and hands them to a
worker thread, which analyses the certificates and writes files and manifest lines; the event
loop keeps handshaking meanwhile. A signal (SIGINT, SIGTERM) cancels the scheduler only: the
writer still drains every result already produced, then ``manifest.json`` is written and marked
incomplete. In-flight targets are simply not recorded, so ``--resume`` scans them again. A
second signal stops the writer as well (the batch in its thread is finished, the rest dropped),
and ``manifest.json`` is still written.

A write error (full disk) is an ``OutputError`` raised inside the nursery, so it arrives in an
exception group: it stops the scan and becomes ``RunReport.error`` (exit code 2) with the
manifest marked incomplete; if ``manifest.json`` cannot be written either, both are reported.
"""

from __future__ import annotations

import datetime as dt
import functools
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import aclosing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import trio

from .._errors import ChainscanError
from .._models import BadLine, ScanOptions, ScanResult, Status, Target
from .._untrusted import json_terminal_safe
from ..analysis._inventory import Inventory
from ..output._output import OutputDir
from ..scan._backlog import Backlog
from ..scan._fdlimit import fit_concurrency
from ..scan._inputs import MAX_RANGE, count_targets, iter_inputs
from ..scan._schedule import Scheduler
from ..scan._targets import (
    Deduplicator,
    check_options,
    open_lines,
)
from ._batch import WRITE_BATCH, ThreadAcks, batches, result_buffer
from ._display import Display
from ._shard import Shard, select_shard
from ._workers import run_workers
from ._writer_process import PROCESS_BATCH, write_in_process, writer_process_useful

__all__ = ["RunConfig", "RunReport", "run_scan"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything the CLI decided, as a value."""

    input: str
    """Path of the target list, ``-`` for stdin."""
    output: Path
    options: ScanOptions = field(default_factory=ScanOptions)
    resume: bool = False
    overwrite: bool = False
    workers: int = 1
    """Scanning processes; above 1, see ``_workers`` (the limits are divided among them)."""
    writer: Literal["auto", "process", "thread"] = "auto"
    """With one scanning process: write in a child process (``_writer_process``) or in
    threads; ``auto``: a process when there are two cores or more."""
    shard: Shard | None = None
    """``--shard K/N``: scan only this slice of the input (see ``_shard``)."""
    dask: str | None = None
    """``--dask``: a scheduler address or ``local:N``; the scan runs on its workers (``_dask``)."""
    argv: tuple[str, ...] = ()
    csv_input: bool | None = None
    """``--csv``: read the input as CSV with a header (None: when its first line is one)."""
    max_range: int = MAX_RANGE
    """``--max-range``: addresses one CIDR line may stand for (``scan._inputs``)."""
    jsonl: BinaryIO | None = None
    """``--jsonl`` / ``-o -``: also write each manifest line here (standard output) as it is
    appended; messages and progress stay on stderr."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """How the run ended."""

    counts: dict[str, int]
    """Entries of the manifest by status (``ok``, ``failed``, ``invalid``), a resumed run's
    included: a scan finished with ``--resume`` exits as the same scan run in one go would."""
    error_kinds: dict[str, int]
    seconds: float
    manifest: Path | None
    signal: int | None = None
    """The signal that interrupted the run, if any."""
    error: str | None = None
    """A run-level error (output folder, input file), if the run stopped on one."""
    no_targets: bool = False
    """The input held no target and no invalid line (empty, or only comments): exit code 3."""

    @property
    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        if self.error is not None:
            return 2
        if self.no_targets:
            return 3
        if self.counts.get(Status.FAILED, 0) or self.counts.get(Status.INVALID, 0):
            return 1
        return 0


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _options_json(options: ScanOptions) -> dict[str, Any]:
    return {
        key: str(value) if hasattr(value, "value") else value
        for key, value in asdict(options).items()
    }


class _Tally:
    """How many input items (targets and bad lines) the run read."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = 0

    def count(self, items: Iterable[Target | BadLine]) -> Iterator[Target | BadLine]:
        for item in items:
            self.items += 1
            yield item


def _messages(error: BaseException) -> list[str]:
    """The messages of the leaves of a (possibly nested) exception group."""
    if isinstance(error, BaseExceptionGroup):
        return [message for inner in error.exceptions for message in _messages(inner)]
    return [str(error)]


class _Source(Protocol):
    """Where results come from: ``Scheduler.run``. Sends every result (and
    every BadLine) of ``items`` to ``send`` and closes it; its connections wait while the
    writer is behind (the ``Backlog`` the writer acknowledges results to)."""

    async def __call__(
        self,
        items: Iterable[Target | BadLine],
        send: trio.MemorySendChannel[ScanResult | BadLine],
        *,
        skip: Callable[[Target], bool],
    ) -> None: ...


class _Writer(Protocol):
    """Where results go: threads of this process or the writer process. Returns when every
    result of ``receive`` is in the manifest; calls ``written(n)`` as each ``n`` more
    results' lines are (``scan._backlog``)."""

    async def __call__(
        self,
        receive: trio.MemoryReceiveChannel[ScanResult | BadLine],
        output: OutputDir,
        options: ScanOptions,
        display: Display,
        *,
        interrupted: Callable[[], bool],
        written: Callable[[int], None],
    ) -> None: ...


async def _write_in_threads(
    receive: trio.MemoryReceiveChannel[ScanResult | BadLine],
    output: OutputDir,
    options: ScanOptions,
    display: Display,
    *,
    interrupted: Callable[[], bool],
    written: Callable[[int], None],
) -> None:
    # ``receive`` stays open on an error: closing it would break the scheduler's sends
    # before the error cancels them.
    acks = ThreadAcks(written)  # each line's result acknowledged as it is appended
    async with aclosing(batches(receive, WRITE_BATCH)) as chunks:
        async for batch in chunks:
            try:
                await trio.to_thread.run_sync(output.write, batch, acks)
            finally:
                acks.flush()
            display.update(batch)


def _writer_mode(config: RunConfig) -> Literal["process", "thread"] | None:
    """Where a single scanning process writes; None with ``--workers`` (the workers write)
    and ``--dask`` (its workers analyse; the client writes what they made, in a thread)."""
    if config.workers > 1 or config.dask is not None:
        return None
    if config.writer == "auto":
        return "process" if writer_process_useful() else "thread"
    return config.writer


def _source(config: RunConfig, options: ScanOptions, backlog: Backlog) -> _Source:
    return Scheduler(options, backlog=backlog).run


def _writer(config: RunConfig) -> _Writer:
    if _writer_mode(config) == "process":
        return functools.partial(write_in_process, batch_size=PROCESS_BATCH)
    return _write_in_threads


@dataclass(frozen=True, slots=True)
class _Input:
    """The run's input, ready to read: items (sharded), what to skip, and a count of them."""

    items: Iterable[Target | BadLine]
    skip: Callable[[Target], bool]
    """Targets already done: duplicates, and those of the run being resumed."""
    tally: _Tally


def _open_input(config: RunConfig, options: ScanOptions, output: OutputDir) -> _Input:
    """Open the input, then prepare the output folder: a missing or binary input file must not
    leave a new, empty scan behind, and a bad output folder is refused before any connection."""
    lines = open_lines(config.input)  # raises InputError now for a missing file
    try:
        done_keys = output.prepare()
    except BaseException:
        lines.close()
        raise
    dedup = Deduplicator()
    for key in done_keys:
        dedup.add_key(key)
    tally = _Tally()
    targets = iter_inputs(
        lines,
        source=config.input,
        default_port=options.default_port,
        sni=options.sni,
        csv_input=config.csv_input,
        max_range=config.max_range,
        starttls=options.starttls,
    )
    return _Input(select_shard(tally.count(targets), config.shard), dedup.seen, tally)


class _Signals:
    """SIGINT and SIGTERM: the first stops the scan (``scan_scope``; what was scanned is still
    written), the second stops the writing too (``abort_scope``)."""

    def __init__(self, display: Display) -> None:
        self._display = display
        self.scan_scope = trio.CancelScope()
        self.abort_scope = trio.CancelScope()
        self.received: int | None = None
        """The first signal, if any."""

    def interrupted(self) -> bool:
        return self.received is not None

    async def watch(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.received is None:
                    self.received = signum
                    self._display.warn("interrupted: finishing the manifest (again to abort now)")
                    self.scan_scope.cancel()
                else:  # stop writing too: results not written yet are scanned again on resume
                    self._display.warn("interrupted again: writing manifest.json and stopping")
                    self.abort_scope.cancel()


async def _execute(
    config: RunConfig,
    options: ScanOptions,
    output: OutputDir,
    source: _Input,
    display: Display,
    signals: _Signals,
) -> None:
    """Scan ``source`` into ``output`` in the mode ``config`` picks (see the module docstring)."""
    if config.workers > 1:
        await run_workers(
            workers=config.workers,
            options=options,
            output=output,
            items=source.items,
            skip=source.skip,
            display=display,
            scan_scope=signals.scan_scope,
        )
        return
    if config.dask is not None:
        from ._dask import run_dask  # the optional extra: imported only when asked for

        await run_dask(
            config.dask,
            options,
            output=output,
            items=source.items,
            skip=source.skip,
            display=display,
            scan_scope=signals.scan_scope,
        )
        return
    backlog = Backlog(options.concurrency)
    produce = _source(config, options, backlog)
    write = _writer(config)
    # A small channel; while the writer is behind, new connections wait (``scan._backlog``).
    send, receive = trio.open_memory_channel[ScanResult | BadLine](
        result_buffer(options.concurrency)
    )

    async def scan() -> None:
        with signals.scan_scope:
            await produce(source.items, send, skip=source.skip)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(scan)
        await write(
            receive,
            output,
            options,
            display,
            interrupted=signals.interrupted,
            written=backlog.written,
        )


def _run_record(
    config: RunConfig,
    options: ScanOptions,
    *,
    started: str,
    seconds: float,
    interrupted: int | None,
    error: str | None,
) -> dict[str, Any]:
    """The ``run`` header of ``manifest.json`` (docs/manifest.md)."""
    return {
        "started": started,
        "finished": _utc_now(),
        "seconds": round(seconds, 3),
        "input": config.input,
        "output": str(config.output),
        "argv": list(config.argv),
        "options": _options_json(options),
        "resumed": config.resume,
        "workers": config.workers,
        "writer": _writer_mode(config),
        "shard": None if config.shard is None else str(config.shard),
        "dask": config.dask,
        "interrupted": signal.Signals(interrupted).name if interrupted else None,
        "error": error,
    }


def _fitted_options(config: RunConfig, display: Display) -> ScanOptions:
    """The options, ``--concurrency`` lowered to what the descriptor limit allows. With
    worker processes the sockets are theirs: each fits its own share to its limit."""
    options = config.options
    if config.workers > 1 or config.dask is not None:
        return options
    concurrency, warning = fit_concurrency(options.concurrency)
    if warning:
        display.warn(warning)
        options = replace(options, concurrency=concurrency)
    return options


class _Echo:
    """Writes manifest lines to a stream (``--jsonl``); a reader that went away (``| head``)
    stops the echo, not the scan: the manifest in the output folder is still complete."""

    __slots__ = ("_stream",)

    def __init__(self, stream: BinaryIO) -> None:
        self._stream: BinaryIO | None = stream

    def __call__(self, line: bytes) -> None:
        if self._stream is None:
            return
        try:  # JSON escapes for what a terminal must not receive raw: jq reads the same value
            self._stream.write(json_terminal_safe(line.decode("utf-8")).encode("utf-8"))
            self._stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._stream = None


async def _scan(config: RunConfig, display: Display) -> RunReport:
    # Every option first: a rejected run leaves the output folder as it found it.
    check_options(default_port=config.options.default_port, sni=config.options.sni)
    options = _fitted_options(config, display)
    output = OutputDir(
        config.output,
        cert_format=options.cert_format,
        resume=config.resume,
        overwrite=config.overwrite,
        inventory=Inventory.from_options(options),  # loads the trust store: UsageError if not
    )
    if config.jsonl is not None:
        output.echo = _Echo(config.jsonl)
    started_wall = time.monotonic()
    started = _utc_now()
    source = _open_input(config, options, output)
    display.start(
        count_targets(config.input, csv_input=config.csv_input, max_range=config.max_range),
        in_flight=options.concurrency,
        deadline=options.deadline,
    )
    signals = _Signals(display)
    error: str | None = None
    ended = False  # the scan's body returned (else a bug escaped it: the manifest is incomplete)
    try:
        with signals.abort_scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(signals.watch)
                await _execute(config, options, output, source, display, signals)
                nursery.cancel_scope.cancel()
        ended = True
    except* ChainscanError as group:  # a write error, raised inside the nursery: stop, report
        error = "; ".join(_messages(group))
    finally:
        display.stop()
        run = _run_record(
            config,
            options,
            started=started,
            seconds=time.monotonic() - started_wall,
            interrupted=signals.received,
            error=error,
        )
        manifest: Path | None = None
        try:
            complete = ended and signals.received is None and error is None
            manifest = output.close(run=run, complete=complete)
        except ChainscanError as exc:  # e.g. the disk is full: keep the first error too
            error = f"{error}; {exc}" if error else str(exc)
    no_targets = source.tally.items == 0 and signals.received is None and error is None
    if no_targets:  # a CI job fed an empty list must not pass: exit code 3
        display.error(
            f"{'standard input' if config.input == '-' else config.input} has no targets:"
            " it is empty or holds only blank lines and comments"
        )
    summary = output.summary
    return RunReport(
        counts={status: summary[status] for status in Status},
        error_kinds=dict(summary["by_error_kind"]),
        seconds=time.monotonic() - started_wall,
        manifest=manifest,
        signal=signals.received,
        error=error,
        no_targets=no_targets,
    )


def run_scan(config: RunConfig, display: Display | None = None) -> RunReport:
    """Run one scan to completion (or interruption) and return how it ended.

    Raises :class:`~chainscan.ChainscanError` subclasses for problems found before the scan
    starts (unusable output folder, unreadable input); a problem during the scan ends it with
    ``RunReport.error`` set and a valid, incomplete manifest.
    """
    return trio.run(_scan, config, display or Display(quiet=True))
