"""One scan from input file to output folder: wires targets, scheduler, writer and display.

    input lines ──(thread, batches)──► Scheduler ──channel──► writer task ──(thread)──► OutputDir
                                                                   └──► Display (progress)

The writer takes whatever results are waiting (up to ``_WRITE_BATCH``) and hands them to a
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
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import trio

from .._errors import ChainscanError
from .._models import BadLine, ScanOptions, ScanResult, Status, Target
from ..analysis._inventory import Inventory
from ..output._output import OutputDir
from ..scan._fdlimit import fit_concurrency
from ..scan._schedule import Scheduler
from ..scan._targets import Deduplicator, count_lines, iter_targets, open_lines
from ._batch import batches
from ._display import Display
from ._shard import Shard, select_shard
from ._workers import run_workers
from ._writer_process import write_in_process, writer_process_useful

__all__ = ["RunConfig", "RunReport", "run_scan"]

_WRITE_BATCH = 1024


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

    @property
    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        if self.error is not None:
            return 2
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


async def _write_all(
    receive: trio.MemoryReceiveChannel[ScanResult | BadLine], output: OutputDir, display: Display
) -> None:
    async with receive:
        async for batch in batches(receive, _WRITE_BATCH):
            await trio.to_thread.run_sync(output.write, batch)
            display.update(batch)


def _writer_in_process(config: RunConfig) -> bool:
    if config.writer == "auto":
        return writer_process_useful()
    return config.writer == "process"


async def _scan(config: RunConfig, display: Display) -> RunReport:
    options = config.options
    # With worker processes the sockets are theirs: each fits its own share to its limit.
    concurrency, warning = (
        fit_concurrency(options.concurrency)
        if config.workers == 1 and config.dask is None
        else (options.concurrency, None)
    )
    if warning:
        display.warn(warning)
        options = replace(options, concurrency=concurrency)
    output = OutputDir(
        config.output,
        cert_format=options.cert_format,
        resume=config.resume,
        overwrite=config.overwrite,
        inventory=Inventory.from_options(options),  # loads the trust store: UsageError if not
    )
    started_wall = time.monotonic()
    started = _utc_now()
    # The input first: a missing or binary file must not leave a new, empty scan behind.
    lines = open_lines(config.input)  # raises InputError now for a missing file
    try:
        done_keys = output.prepare()  # refuses a bad output folder before any connection
    except BaseException:
        lines.close()
        raise
    dedup = Deduplicator()
    for key in done_keys:
        dedup.add_key(key)
    tally = _Tally()
    items = select_shard(
        tally.count(
            iter_targets(
                lines, source=config.input, default_port=options.default_port, sni=options.sni
            )
        ),
        config.shard,
    )
    display.start(count_lines(config.input))
    scheduler = Scheduler(options)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](options.concurrency)
    interrupted: int | None = None
    error: str | None = None
    scan_scope = trio.CancelScope()

    async def produce() -> None:
        with scan_scope:
            if config.dask is not None:
                from ._dask import run_dask  # the optional extra: imported only when asked for

                await run_dask(config.dask, options, items, send, skip=dedup.seen)
            else:
                await scheduler.run(items, send, skip=dedup.seen)

    async def watch_signals(task_status: trio.TaskStatus[None]) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if interrupted is None:
                    interrupted = signum
                    display.warn("interrupted: finishing the manifest (again to abort now)")
                    scan_scope.cancel()
                else:  # stop writing too: results not written yet are scanned again on resume
                    display.warn("interrupted again: writing manifest.json and stopping")
                    abort_scope.cancel()

    async def scan_in_workers() -> None:
        await run_workers(
            workers=config.workers,
            options=options,
            output=output,
            items=items,
            skip=dedup.seen,
            display=display,
            scan_scope=scan_scope,
        )

    abort_scope = trio.CancelScope()
    try:
        with abort_scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(watch_signals)
                if config.workers > 1:
                    await scan_in_workers()
                elif _writer_in_process(config):
                    nursery.start_soon(produce)
                    await write_in_process(
                        receive,
                        output,
                        options,
                        display,
                        batch_size=_WRITE_BATCH,
                        interrupted=lambda: scan_scope.cancel_called,
                    )
                else:
                    nursery.start_soon(produce)
                    await _write_all(receive, output, display)
                nursery.cancel_scope.cancel()
    except* ChainscanError as group:  # a write error, raised inside the nursery: stop, report
        error = "; ".join(_messages(group))
    finally:
        display.stop()
        run = {
            "started": started,
            "finished": _utc_now(),
            "seconds": round(time.monotonic() - started_wall, 3),
            "input": config.input,
            "output": str(config.output),
            "argv": list(config.argv),
            "options": _options_json(options),
            "resumed": config.resume,
            "workers": config.workers,
            "writer": None
            if config.workers > 1
            else ("process" if _writer_in_process(config) else "thread"),
            "shard": None if config.shard is None else str(config.shard),
            "dask": config.dask,
            "interrupted": signal.Signals(interrupted).name if interrupted else None,
            "error": error,
        }
        manifest: Path | None = None
        try:
            manifest = output.close(run=run, complete=interrupted is None and error is None)
        except ChainscanError as exc:  # e.g. the disk is full: keep the first error too
            error = f"{error}; {exc}" if error else str(exc)
    if tally.items == 0 and interrupted is None and error is None:
        display.warn(
            f"{'standard input' if config.input == '-' else config.input} has no targets:"
            " it is empty or holds only blank lines and comments"
        )
    seconds = time.monotonic() - started_wall
    summary = output.summary
    return RunReport(
        counts={status: summary[status] for status in Status},
        error_kinds=dict(summary["by_error_kind"]),
        seconds=seconds,
        manifest=manifest,
        signal=interrupted,
        error=error,
    )


def run_scan(config: RunConfig, display: Display | None = None) -> RunReport:
    """Run one scan to completion (or interruption) and return how it ended.

    Raises :class:`~chainscan.ChainscanError` subclasses for problems found before the scan
    starts (unusable output folder, unreadable input); a problem during the scan ends it with
    ``RunReport.error`` set and a valid, incomplete manifest.
    """
    return trio.run(_scan, config, display or Display(quiet=True))
