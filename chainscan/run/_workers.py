"""``--workers N``: several scanning processes, one manifest. Uses every core.

Theory of operation
-------------------
One process does about 1,000 handshakes a second on one core; most of that CPU is OpenSSL's.
To use more cores, the main process starts N worker processes (``python -m chainscan.run._workers
CONFIG``) and becomes a dispatcher and a manifest writer::

    main: input ──► parse, dedup ──► shard ──► worker i stdin (JSON lines of targets)
    worker i: Scheduler ──► write its targets' certificate files ──► stdout (manifest lines)
    main: every worker's stdout ──► append to manifest.jsonl, progress

* **Sharding** is by the address a target names (``{ip}`` or an IP literal), else by its host
  name, hashed: one name or one explicit address always lands on one worker, so its per-address
  cap holds exactly. Distinct names that resolve to one address may land on different workers:
  then at most ``--per-ip × N`` connections reach that address at once.
* **Limits are divided**: each worker gets ``ceil(concurrency / N)`` slots and ``rate / N``
  connections per second, so the run as a whole keeps the limits given.
* **Back-pressure**: a worker admits a bounded number of targets (its scheduler reads its stdin
  lazily); when it is full its pipe fills and the dispatcher waits. Memory stays bounded.
* **Crash safety** is unchanged: a manifest line reaches ``manifest.jsonl`` only after its
  worker has written the target's files, and only the main process appends to the file.
* **Interruption**: Ctrl-C reaches the whole process group; SIGTERM to the main process is
  forwarded. Each worker stops scanning, reports what it finished and exits; the main process
  drains every pipe, then writes ``manifest.json`` marked incomplete, as a single process does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import trio

from .._errors import ChainscanError
from .._models import BadLine, CertFormat, ScanOptions, ScanResult, Target
from ..analysis._inventory import Inventory
from ..output._output import OutputDir
from ..scan._fdlimit import fit_concurrency
from ..scan._schedule import Scheduler
from ._batch import batches, line_batches
from ._display import Display

__all__ = ["options_from_json", "options_to_json", "run_workers", "worker_options"]

_SEND_BATCH = 64
_READ_SIZE = 1 << 16
_WRITE_BATCH = 512


def worker_options(options: ScanOptions, workers: int) -> ScanOptions:
    """The share of the limits one of ``workers`` processes gets."""
    return dataclasses.replace(
        options,
        concurrency=max(1, math.ceil(options.concurrency / workers)),
        rate=options.rate / workers if options.rate > 0 else 0.0,
    )


def shard_of(target: Target, workers: int) -> int:
    """Which worker scans ``target``: stable across runs, by address or else host name."""
    key = (target.address or target.host).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % workers


def _target_line(target: Target) -> bytes:
    return orjson.dumps(dataclasses.asdict(target)) + b"\n"


# ---------------------------------------------------------------- main process side


async def _dispatch(
    items: Iterable[Target | BadLine],
    procs: list[trio.Process],
    local: trio.MemorySendChannel[list[BadLine]],
    skip: Any,
) -> None:
    """Send targets to their workers; BadLines go to the local writer. Closes every stdin."""
    workers = len(procs)
    iterator = iter(items)
    try:
        async with local:
            while True:
                batch = await trio.to_thread.run_sync(
                    lambda: [x for _, x in zip(range(256), iterator, strict=False)],
                    abandon_on_cancel=True,
                )
                if not batch:
                    break
                outgoing: list[list[bytes]] = [[] for _ in range(workers)]
                bad: list[BadLine] = []
                for item in batch:
                    if isinstance(item, BadLine):
                        bad.append(item)
                    elif not skip(item):
                        outgoing[shard_of(item, workers)].append(_target_line(item))
                if bad:
                    await local.send(bad)
                for proc, lines in zip(procs, outgoing, strict=True):
                    for start in range(0, len(lines), _SEND_BATCH):
                        assert proc.stdin is not None
                        await proc.stdin.send_all(b"".join(lines[start : start + _SEND_BATCH]))
    finally:
        for proc in procs:
            if proc.stdin is not None:
                with (
                    trio.CancelScope(shield=True),
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await proc.stdin.aclose()


async def _collect(proc: trio.Process, sink: trio.MemorySendChannel[list[bytes]]) -> None:
    """Forward a worker's manifest lines, whole lines only, until it closes its stdout."""
    assert proc.stdout is not None
    async with sink:
        async for lines in line_batches(proc.stdout):
            await sink.send(lines)


async def run_workers(
    *,
    workers: int,
    options: ScanOptions,
    output: OutputDir,
    items: Iterable[Target | BadLine],
    skip: Any,
    display: Display,
    scan_scope: trio.CancelScope,
) -> None:
    """The main process's half: start, feed and drain ``workers`` scanning processes."""
    config = orjson.dumps(
        {
            "options": options_to_json(worker_options(options, workers)),
            "root": str(output.root),
            "cert_format": output.cert_format.value,
        }
    ).decode()
    procs: list[trio.Process] = []
    for _ in range(workers):
        procs.append(
            await trio.lowlevel.open_process(
                [sys.executable, "-m", "chainscan.run._workers", config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=False,
            )
        )
    send_lines, receive_lines = trio.open_memory_channel[list[bytes]](workers * 4)
    send_bad, receive_bad = trio.open_memory_channel[list[BadLine]](4)

    async def write_lines() -> None:
        async with receive_lines:
            async for lines in receive_lines:
                while len(lines) < _WRITE_BATCH:
                    try:
                        lines.extend(receive_lines.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                counted = await trio.to_thread.run_sync(output.append_lines, lines)
                display.update_counts(counted)

    async def write_bad() -> None:
        async with receive_bad:
            async for bad in receive_bad:
                await trio.to_thread.run_sync(output.write, bad)
                display.update(list(bad))

    async def dispatch() -> None:
        with scan_scope:
            with contextlib.suppress(trio.BrokenResourceError):  # a worker died: see below
                await _dispatch(items, procs, send_bad, skip)
            for proc in procs:  # a signal after the last target was sent must stop them too
                await proc.wait()
        if scan_scope.cancelled_caught:
            for proc in procs:  # Ctrl-C reached them already; SIGTERM may not have
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_lines)
            nursery.start_soon(write_bad)
            async with send_lines:
                for proc in procs:
                    nursery.start_soon(_collect, proc, send_lines.clone())
            nursery.start_soon(dispatch)
    finally:
        with trio.CancelScope(shield=True):
            for proc in procs:
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    failed = [(i, proc.returncode) for i, proc in enumerate(procs, 1) if proc.returncode != 0]
    if failed and not scan_scope.cancel_called:
        number, code = failed[0]
        raise ChainscanError(
            f"scanning process {number} of {workers} failed (exit code {code}); the targets it"
            " had not finished are not in the manifest: finish the scan with --resume"
        )


def options_to_json(options: ScanOptions) -> dict[str, Any]:
    """``options`` as JSON-ready values, for a child process's command line."""
    return {
        f.name: getattr(options, f.name).value
        if isinstance(getattr(options, f.name), CertFormat)
        else getattr(options, f.name)
        for f in dataclasses.fields(options)
    }


def options_from_json(raw: dict[str, Any]) -> ScanOptions:
    """The inverse of :func:`options_to_json`."""
    return ScanOptions(**{**raw, "cert_format": CertFormat(raw["cert_format"])})


# ---------------------------------------------------------------- worker process side


def _read_targets(stream: Any) -> Iterator[Target]:
    for line in stream:
        yield Target(**orjson.loads(line))


async def _worker(options: ScanOptions, output: OutputDir) -> None:
    concurrency, warning = fit_concurrency(options.concurrency)
    if warning:
        Display(quiet=False).warn(warning)
        options = dataclasses.replace(options, concurrency=concurrency)
    scheduler = Scheduler(options)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](options.concurrency)
    out = sys.stdout.buffer
    scan_scope = trio.CancelScope()

    def emit(results: list[ScanResult]) -> None:
        out.write(b"".join(output.write_files(results)))
        out.flush()

    async def produce() -> None:
        with scan_scope:
            await scheduler.run(_read_targets(sys.stdin.buffer), send)

    async def watch(task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                scan_scope.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        nursery.start_soon(produce)
        async with receive:
            async for batch in batches(receive, _WRITE_BATCH):
                results = [r for r in batch if isinstance(r, ScanResult)]
                await trio.to_thread.run_sync(emit, results)
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    config = orjson.loads(argv[0])
    options = options_from_json(config["options"])
    output = OutputDir(
        Path(config["root"]),
        cert_format=CertFormat(config["cert_format"]),
        inventory=Inventory.from_options(options),
    )
    try:
        trio.run(_worker, options, output)
    except BrokenPipeError:
        return 1
    finally:
        output.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
