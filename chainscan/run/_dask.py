"""``--dask ADDRESS|local:N``: the scan runs on the workers of a Dask cluster, the output here.

Theory of operation
-------------------
The client (this process) reads and parses the input, drops duplicates and targets a resumed
run already has (the input loop every mode shares, ``scan._intake``, with :class:`_ShardBuffers`
as its router), and writes the folder and both manifests. Everything that costs CPU per target
happens where the handshakes are: each batch is scanned on a worker by :func:`scan_batch` (the
same :class:`~chainscan.scan._schedule.Scheduler` in its own ``trio.run``), and the same worker
analyses and verifies each chain as it arrives, names its files and builds its manifest line
(``output._ready``: the planner a local run uses). A batch comes back as a
:class:`~chainscan.output._ready.ReadyBatch`: lines, statuses, folder and file names, and each
distinct certificate file once::

    input ─► parse, dedup, resume-skip ─► shard buffers ─► client.submit(scan_batch, batch)
                                   (Dask worker: trio + Scheduler, analysis in a thread) │
    OutputDir.write_ready (a thread) ◄── trio channel ◄── each batch as it completes ◄───┘

* **The client only writes bytes**: per target a folder, a file per certificate and its share
  of one append per batch (``OutputDir.write_ready``); no JSON, no certificate parsing.
  ``benchmarks/ingest_bench.py`` measures what one client core absorbs. The client writes
  (rather than each worker writing its part on shared storage, to be merged): workers need no
  access to the output folder, a line still reaches ``manifest.jsonl`` only after its files,
  from one appending process, and a lost worker leaves nothing half-written behind.
* **What the analysis needs travels with each task** (``ReadySpec``): certificate format,
  ``--warn-days``, ``--deployments`` and the trust store's bytes as the client read them, so a
  worker on another machine judges against the same roots. Revocation answers
  (``--revocation``) and AIA fetches (unless ``--no-fetch``) are made by the worker's
  scheduler with the task's options, as in a local run.

* **Shards**: a target goes to buffer ``Placement.place(target, 4 × slots)``
  (``_partition.Placement``: a hash of the address it connects to, resolved here for a name,
  or of that address's /24 or /64 with ``--per-net``; with both caps off, of its address else
  its host name). A buffer is sent as one task when it holds ``BATCH`` targets, and every
  buffer is sent at the end of the input.
* **Bounded memory**: at most ``2 × slots`` batches are in flight (submitted, not yet
  written); while that many are out, the client stops reading the input. The client holds at
  most ``(4 + 2) × slots × BATCH`` targets and ``2 × slots`` batches of results.
* **Limits are global**: ``slots`` is the number of tasks the cluster runs at once (the sum of
  its workers' threads, read when the scan starts). Each task gets ``--rate / slots`` and
  ``ceil(--concurrency / slots)`` (``_partition.worker_options``), so whatever tasks run at one
  moment stay within the limits given. ``--per-ip`` and ``--per-net`` are not divided: every
  target of one address (one network) is in one shard, and while a batch of a shard is out no
  other batch of that shard is sent (the client waits, reading no input), so one task at a
  time connects to an address or network and its scheduler counts the cap for the whole scan
  (the exceptions are those of ``_partition``). A scan of one busy network therefore runs one
  task at a time: that is the cap doing its job. With both caps off, batches of a shard may
  run side by side.
* **Lost workers**: :func:`scan_batch` is pure (targets and options in, results out, no side
  effect), so Dask may run a batch again when its worker dies (the scheduler reassigns it;
  ``retries`` covers a task that raised). Results are written only when a whole batch comes
  back, so a batch is never recorded twice, and never half.
* **Threads**: every call into Dask (connecting, submitting, waiting) runs in a worker thread
  (:class:`_Driver`), so the event loop keeps writing meanwhile; a thread hands each finished
  batch to the trio side (``trio.from_thread``).
* **Interruption**: a thread waiting on the cluster checks for cancellation (a signal cancels
  the scan) between waits; the batches in flight are then cancelled, not recorded, so
  ``--resume`` scans them again, as for the targets in flight in a local run. Batches already
  back are written; a second signal stops the writing too (``_run``).

``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes for the duration of
the scan; any other value is the address of a running scheduler (``tcp://host:8786``).
Dask is an optional extra (``pip install chainscan[dask]``): this module is imported only for
``--dask``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import trio

from .._errors import UsageError
from .._models import BadLine, ScanOptions, ScanResult, Target
from ..output._output import OutputDir
from ..output._ready import ReadyBatch, ReadyMaker, ReadySpec
from ..scan._fdlimit import fit_concurrency
from ..scan._intake import take_input
from ..scan._schedule import Scheduler
from ._batch import batches
from ._display import Display
from ._partition import Placement, placed, worker_options

__all__ = ["BATCH", "run_dask", "scan_batch"]

BATCH = 500
"""Targets per task, at most."""
_SHARDS_PER_SLOT = 4
_IN_FLIGHT_PER_SLOT = 2
_RETRIES = 3
_POLL = 0.25
"""Seconds between two checks for cancellation while waiting on the cluster."""
_PLAN_CHUNK = 64
"""Results a worker analyses per thread hop, at most."""

Delivered = ReadyBatch | list[BadLine]
"""What reaches the client's writing task: a batch back from the cluster, or invalid lines."""


def scan_batch(targets: list[Target], options: ScanOptions, spec: ReadySpec) -> ReadyBatch:
    """Scan ``targets`` with ``options`` (already this task's share) and plan their output
    with ``spec``; runs on a Dask worker."""
    concurrency, _ = fit_concurrency(options.concurrency)
    if concurrency < options.concurrency:  # this worker's descriptor limit is lower
        options = dataclasses.replace(options, concurrency=concurrency)
    return trio.run(_scan_batch, targets, options, spec)


async def _scan_batch(targets: list[Target], options: ScanOptions, spec: ReadySpec) -> ReadyBatch:
    send, receive = trio.open_memory_channel[ScanResult | BadLine](options.concurrency)
    maker = ReadyMaker(spec)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: Scheduler(options).run(targets, send, blocking_source=False))
        async with receive:
            async for chunk in batches(receive, _PLAN_CHUNK):
                results = [result for result in chunk if isinstance(result, ScanResult)]
                await trio.to_thread.run_sync(maker.add, results)  # the loop keeps handshaking
    return maker.batch


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--dask needs Dask's distributed scheduler: pip install 'chainscan[dask]'"
        ) from None
    return distributed


@contextlib.contextmanager
def _connect(spec: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (``local:N`` starts and stops a LocalCluster).

    Closed with ``close()``, not ``with client:``: the client is entered in one worker thread
    and left in another (each ``trio.to_thread`` call runs in a copy of the context), and
    ``Client.__exit__`` resets a context variable that ``__enter__`` set, which raises
    ``ValueError`` from another context (distributed 2026.8) and ended every scan in a
    traceback, after its last results were handed over but before they were written."""
    distributed = _import_distributed()
    if spec.startswith("local:"):
        with (
            distributed.LocalCluster(
                n_workers=int(spec.removeprefix("local:")),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            contextlib.closing(distributed.Client(cluster)) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(spec, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {spec}: {exc}") from None
    with contextlib.closing(client):
        yield client


class _Driver:
    """The cluster side of a scan. Its methods block: call them in a worker thread."""

    def __init__(
        self,
        client: Any,
        options: ScanOptions,
        spec: ReadySpec,
        deliver: Callable[[ReadyBatch], None],
    ) -> None:
        self._distributed = _import_distributed()
        self._client = client
        slots = sum(client.nthreads().values())
        if slots == 0:
            client.wait_for_workers(1, timeout=60)
            slots = sum(client.nthreads().values())
        self.slots = slots
        self._options = worker_options(options, slots)
        self._spec = spec
        self._max_in_flight = _IN_FLIGHT_PER_SLOT * slots
        self._deliver = deliver
        self._in_flight: set[Any] = set()
        self._shards: dict[Any, int] = {}
        """The shard of each batch in flight that must not run beside another of its shard."""

    def submit(self, batch: list[Target], shard: int | None = None) -> None:
        """Send ``batch`` to the cluster, first waiting while ``2 × slots`` batches are out and,
        for a ``shard``, while a batch of that shard is out (one at a time per shard)."""
        while len(self._in_flight) >= self._max_in_flight or (
            shard is not None and shard in self._shards.values()
        ):
            self._collect()
        future = self._client.submit(
            scan_batch, batch, self._options, self._spec, retries=_RETRIES, pure=False
        )
        self._in_flight.add(future)
        if shard is not None:
            self._shards[future] = shard

    def drain(self) -> None:
        """Wait for every batch in flight, delivering each."""
        while self._in_flight:
            self._collect()

    def cancel(self) -> None:
        """Cancel the batches still in flight (interrupted: they are not recorded)."""
        if self._in_flight:
            with contextlib.suppress(Exception):
                self._client.cancel(list(self._in_flight))
            self._in_flight.clear()
            self._shards.clear()

    def _collect(self) -> None:
        """Wait for at least one batch, deliver every finished one."""
        while True:
            trio.from_thread.check_cancelled()  # a signal: stop waiting (see run_dask)
            try:
                done, _ = self._distributed.wait(
                    list(self._in_flight), timeout=_POLL, return_when="FIRST_COMPLETED"
                )
            except TimeoutError:
                continue
            if done:
                break
        for future in done:
            self._in_flight.discard(future)
            self._shards.pop(future, None)
            ready: ReadyBatch = future.result()
            future.release()
            self._deliver(ready)


class _ShardBuffers:
    """The input router of a Dask scan: each target to its shard's buffer, a full buffer to the
    cluster as one batch; invalid lines straight to the results."""

    def __init__(
        self, driver: _Driver, send: trio.MemorySendChannel[Delivered], placement: Placement
    ) -> None:
        self._driver = driver
        self._send = send
        self._buffers: list[list[Target]] = [[] for _ in range(_SHARDS_PER_SLOT * driver.slots)]
        self._place = placement.place
        self._one_at_a_time = placement.exact
        """A limit must hold across tasks: never two batches of one shard at once."""

    async def _submit(self, shard: int) -> None:
        buffer = self._buffers[shard]
        batch, key = buffer[:], shard if self._one_at_a_time else None
        await trio.to_thread.run_sync(self._driver.submit, batch, key)
        buffer.clear()

    async def record(self, bad: BadLine) -> None:
        await self._send.send([bad])

    async def route(self, target: Target) -> None:
        shard = self._place(target, len(self._buffers))
        buffer = self._buffers[shard]
        buffer.append(target)
        if len(buffer) >= BATCH:
            await self._submit(shard)

    async def flush(self) -> None:
        pass  # a buffer waits for BATCH targets, or the end of the input

    async def finish(self) -> None:
        """The input has ended: send every buffer, wait for every batch."""
        for shard, buffer in enumerate(self._buffers):
            if buffer:
                await self._submit(shard)
        await trio.to_thread.run_sync(self._driver.drain)


async def run_dask(
    spec: str,
    options: ScanOptions,
    *,
    output: OutputDir,
    items: Iterable[Target | BadLine],
    skip: Callable[[Target], bool],
    display: Display,
    scan_scope: trio.CancelScope,
) -> None:
    """Scan ``items`` on the Dask cluster ``spec`` into ``output``; returns when every batch
    back from the cluster is written. Cancelling ``scan_scope`` (a signal) stops the scan,
    not the writing of what came back. See the module docstring."""
    ready = ReadySpec.from_options(options)
    send, receive = trio.open_memory_channel[Delivered](_IN_FLIGHT_PER_SLOT)

    async def scan() -> None:
        with scan_scope:
            await _scan(spec, options, ready, items, send, skip=skip)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(scan)
        await _write(receive, output, display)


async def _write(
    receive: trio.MemoryReceiveChannel[Delivered], output: OutputDir, display: Display
) -> None:
    # ``receive`` stays open on an error: closing it would break the cluster side's sends
    # before the error cancels them.
    async for item in receive:
        if isinstance(item, ReadyBatch):
            display.update_counts(await trio.to_thread.run_sync(output.write_ready, item))
        else:
            await trio.to_thread.run_sync(output.write, item)
            display.update(list(item))


async def _scan(
    spec: str,
    options: ScanOptions,
    ready: ReadySpec,
    items: Iterable[Target | BadLine],
    send: trio.MemorySendChannel[Delivered],
    *,
    skip: Callable[[Target], bool],
) -> None:
    """Send ``items`` to the cluster; each batch back (and each invalid line) to ``send``,
    which is closed at the end."""

    def deliver(batch: ReadyBatch) -> None:
        trio.from_thread.run(send.send, batch)

    with contextlib.ExitStack() as cluster:

        def connect() -> _Driver:
            try:
                return _Driver(cluster.enter_context(_connect(spec)), options, ready, deliver)
            except BaseException:
                cluster.close()  # here, in the thread: closing a cluster blocks
                raise

        async with send:
            driver = await trio.to_thread.run_sync(connect)
            try:
                placement = Placement(options)
                router = _ShardBuffers(driver, send, placement)
                await take_input(items, placed(router, placement), skip=skip)
                await router.finish()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(driver.cancel)
                    await trio.to_thread.run_sync(cluster.close)
