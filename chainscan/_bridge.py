"""Running the trio scan core for a caller that is not in trio: asyncio, or no event loop at all.

Theory of operation
-------------------
The scan core (``scan/_schedule``, ``_probe``, ``_resolve``) is trio code: it needs a trio run
loop to exist. A caller inside ``trio.run`` gets the core directly (``_api``). Any other caller gets
a trio run of its own, started here, and the results cross from that run to the caller through
a *bridge*: a bounded hand-over with one message type each way.

* **trio -> host: batches.** A trio task (``_pump``) takes results from the scheduler's memory
  channel; after the first one it keeps taking them for up to ``_LINGER`` (50 ms) or until it
  has ``_BATCH``, then posts the batch to the host in one call. Results already in the channel
  are taken without a checkpoint (``receive_nowait``): an ``await receive()`` is a turn of the
  run loop even when a result is ready, and one per result cost the asyncio path about 1.6%
  more instructions per target than the trio path (callgrind, below). A busy scan therefore
  wakes the caller's thread about twenty times a second, not once per result or per trio tick: each
  wake-up is a GIL hand-over between the two threads, and on a loaded machine each hand-over
  waits for the OS to schedule the other thread. When the scheduler closes its channel and
  the run ends, the last message is :class:`_Done` (with the run's exception, if any).
* **host -> trio: credits.** The pump may have at most ``capacity`` results posted and not yet
  taken by the caller; past that it waits. The host hands consumed counts back (``credit``)
  every ``capacity // 2`` results (enough for the pump never to wait on a caller that reads).
  A caller that stops reading therefore stops the pump, which fills the scheduler's channel,
  which stops admission, which stops reading ``targets``: the same back-pressure as in trio,
  one bounded buffer longer.
* **Cancellation.** Leaving the caller's block early (``break``, an exception in the loop
  body, the caller's own cancellation) calls :meth:`_Run.cancel`: it cancels the run's
  outermost cancel scope from inside the run (``TrioToken.run_sync_soon``; the token and scope
  are published under a lock, and a cancel that comes before the run has started is applied by
  the run when it starts). The caller then *waits for the run to end* before its block is left,
  so no socket of the scan outlives the block: structured concurrency across the two loops.

Two ways to host the trio run
-----------------------------
* **A thread of its own** (``_start_thread``; used for asyncio and for synchronous callers):
  ``trio.run`` in a new thread, its results posted with ``loop.call_soon_threadsafe`` (asyncio)
  or under a condition variable (sync). The scan keeps trio's own epoll loop, unchanged.
* **trio guest mode** (``_start_guest``; asyncio only): ``trio.lowlevel.start_guest_run`` on
  the caller's loop. trio's tasks run in the caller's thread, interleaved with asyncio
  callbacks, and only trio's I/O wait runs in a helper thread, which posts each wake-up back.

Both keep the trio core. anyio at the boundary alone cannot: anyio runs code written *against
anyio* on the current backend, and the core is written against trio; porting the core to anyio
would run the scan on asyncio's loop, which is what this module exists to avoid (the core's hot
path is tuned to trio's run loop, see ``scan/_schedule``). anyio is what the dual-backend tests use.

The choice between the two hosts was made by measurement: ``python -m benchmarks.api_backends``
(the loopback nginx fleet of ``benchmarks/fleet.py``, 4,000 targets, concurrency 500, no rate or
per-address limit, one fresh process per run, modes in rotating order, 5 repeats, medians; a
2-core machine on which other jobs used 1.2-1.7 cores meanwhile, so each mode is also compared
with the trio run of the same repeat, "paired"). Last run (``results/latest-api.json``):

    mode             targets/s  x trio  paired  CPU ms/target  caller's loop lag, p99
    trio                  222    1.00    1.00      1.53             1,674 ms
    asyncio, thread       242    1.09    0.98      1.88                26 ms
    asyncio, guest        185    0.83    0.83      1.83             2,056 ms

The rates alone do not settle it on a shared machine: each mode's rate swung twice over with
the other jobs' load, and an earlier run of the same benchmark had the thread at 0.65 (medians)
/ 1.02 (paired) and guest mode at 0.90 / 1.19. What separates the two hosts in every run is the
caller's loop. In guest mode the scan's tasks run in the caller's thread, and a trio tick that
admits hundreds of targets or finishes hundreds of handshakes holds up the caller's other tasks
for one to three seconds at the 99th percentile (as a scan inside trio does to its own run: the
``trio`` line). On a thread of its own, the scan gives the caller's loop the GIL at least every
switch interval (5 ms), and the caller's tasks ran 10-45 ms late at the 99th percentile. A web
server or notebook embedding a scan must keep answering, so the thread is the host. Its cost is
the GIL hand-overs between the two threads: 10-20% more CPU per target while other jobs compete
for the cores. Re-measured on a quiet machine (other CPU 0.00-0.02 cores, 4,000 targets,
medians of 9 runs): trio 752 targets/s at 1.33 CPU ms/target, the thread 652/s at 1.54 ms
(0.87 of trio's rate, 0.94 paired; 0.93 / 0.98 in a 5-run set): the hand-overs cost 8-15% of
CPU per target, and the goal (>= 0.95 of trio's rate) was not met. Re-measured at b12ed00 on a
quiet machine: 0.986 over 5 runs (paired 0.974), then 0.915 over 9 runs (paired 0.911; trio
1.21, the thread 1.32 CPU ms/target) the same hour: near the goal, not reliably over it.
After the pump stopped taking a turn of the run loop per result (below), at ad3feec on a
quiet machine, 9 runs: trio 662 targets/s at 1.50 CPU ms/target, the thread 761/s at 1.32 ms,
1.15x trio's rate (paired 1.10x): the goal is met (``results/latest-api.json``). A scan
inside trio still pays that turn per result in the caller's own ``async for``.
Where the extra CPU goes: not the hand-overs (the caller's thread wakes about 40 times a
second) and not OpenSSL in a thread as such (in-memory handshakes cost the same in a thread as
in the main thread). The lead is glibc's allocator: the scan's thread gets an arena of its
own, and its results are freed in the caller's thread. With ``MALLOC_ARENA_MAX=1`` in the
environment (7 runs) the ratio was 0.962 (paired 0.937, 4% more CPU per target); an earlier
run with ``MALLOC_TRIM_THRESHOLD_`` set gave 1.00. Both are process-wide settings of the
embedding program, which a library must not change behind its back; an embedder who wants
the last percent can set them.

Counted rather than timed (``valgrind --tool=callgrind`` on the benchmark's child, 100 and 300
targets per mode, the difference per target, so start-up is left out; instruction counts do
not depend on the machine's load): the trio path executed 8.12 M instructions per target, the
asyncio path 8.48 M (+4.4%). Of the 0.36 M extra, 0.13 M were the pump's turns of the run loop
(one per result, now gone: 8.35 M, +2.8%) and 0.10 M glibc's ``malloc``/``free`` taking their
locks, which they skip in a process that never started a thread (as the benchmark's trio
process never does: its targets name their addresses, so no lookup runs in a thread); the
rest is the bridge's and asyncio's own Python. What a thread costs beyond instructions (caches,
GIL hand-overs) does not show in these counts; the rate ratio is measured by the benchmark.

``open_scan`` under asyncio uses :data:`ASYNCIO_HOST`; the other host stays selectable
(``open_scan(..., _host="guest")``, private) so the benchmark can keep measuring both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import outcome
import trio

from ._models import BadLine, ScanOptions, ScanResult, Target
from .scan._schedule import Scheduler

__all__ = [
    "ASYNCIO_HOST",
    "AsyncioInbox",
    "Host",
    "SyncInbox",
    "start_run",
]

Item = ScanResult | BadLine
Host = Literal["thread", "guest"]

ASYNCIO_HOST: Host = "thread"
"""How ``open_scan`` hosts the trio run under asyncio (see the module header)."""

_BATCH = 256
"""Most results posted to the host in one message."""

_LINGER = 0.05
"""Seconds a batch waits for more results before it is posted (if it is not full before)."""


@dataclass(frozen=True, slots=True)
class _Done:
    """The trio run has ended; ``error`` is what it raised (None: every result was posted)."""

    error: BaseException | None


class _Run:
    """One trio run's handles, shared by the host and the run. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._cancelled = False
        self._finished = False
        self.in_flight = 0
        """Results posted and not yet credited back (touched only inside the run)."""
        self._space: trio.Event | None = None
        self.thread: threading.Thread | None = None
        """The thread the run has, when it has one; joined once the run has ended."""

    def started(self, scope: trio.CancelScope) -> None:
        """Called inside the run, first thing."""
        with self._lock:
            self._token = trio.lowlevel.current_trio_token()
            self._scope = scope
            if self._cancelled:
                scope.cancel()

    def finished(self) -> None:
        with self._lock:
            self._finished = True

    def join(self) -> None:
        """After :class:`_Done` arrived: the run's thread, if any, has only to return."""
        if self.thread is not None:
            self.thread.join()

    def _soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` inside the trio run, from any thread; nothing if it has ended."""
        with self._lock:
            token = self._token
            if token is None or self._finished:
                return
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(fn)

    def cancel(self) -> None:
        """Cancel the run (from any thread); applied at start if it has not started yet."""
        with self._lock:
            self._cancelled = True
            scope = self._scope
        if scope is not None:
            self._soon(scope.cancel)

    def credit(self, count: int) -> None:
        """The host has handed ``count`` more results to its caller (from any thread)."""
        self._soon(partial(self._on_credit, count))

    def _on_credit(self, count: int) -> None:
        self.in_flight -= count
        if self._space is not None:
            self._space.set()
            self._space = None

    async def wait_for_space(self, capacity: int) -> None:
        while self.in_flight >= capacity:
            self._space = event = trio.Event()
            await event.wait()


async def _pump(
    receive: trio.MemoryReceiveChannel[Item],
    post: Callable[[list[Item]], None],
    run: _Run,
    capacity: int,
) -> None:
    limit = min(_BATCH, capacity)
    ended = False
    async with receive:
        while not ended:
            try:
                batch = [await receive.receive()]
            except trio.EndOfChannel:
                break
            # A batch goes when full or _LINGER after its first result: a fast scan makes a
            # few dozen posts a second, not one per trio tick. What the channel holds already
            # is taken without a checkpoint (a turn of the run loop each); only an empty
            # channel is waited on.
            with trio.move_on_after(_LINGER):
                try:
                    while len(batch) < limit:
                        try:
                            batch.append(receive.receive_nowait())
                        except trio.WouldBlock:
                            batch.append(await receive.receive())
                except trio.EndOfChannel:
                    ended = True
            await run.wait_for_space(capacity)
            run.in_flight += len(batch)
            post(batch)


async def _scan(
    targets: Iterable[Target | BadLine],
    options: ScanOptions,
    skip: Callable[[Target], bool],
    post: Callable[[list[Item]], None],
    run: _Run,
    capacity: int,
) -> None:
    with trio.CancelScope() as scope:
        run.started(scope)
        send, receive = trio.open_memory_channel[Item](options.concurrency)
        scheduler = Scheduler(options)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, receive, post, run, capacity)
            await scheduler.run(targets, send, skip=skip, blocking_source=False)


class AsyncioInbox:
    """The asyncio side of a bridge: results posted by the run, taken by ``next``.

    Everything but :meth:`post_threadsafe` runs in the loop's thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, run: _Run, capacity: int) -> None:
        self._loop = loop
        self._run = run
        self._items: deque[Item] = deque()
        self._done: _Done | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._taken = 0
        self._credit_every = max(1, capacity // 2)

    def post_threadsafe(self, message: list[Item] | _Done) -> None:
        try:
            self._loop.call_soon_threadsafe(self.post, message)
        except RuntimeError:  # the caller's loop is closed: nobody will read; stop the scan
            self._run.cancel()

    def post(self, message: list[Item] | _Done) -> None:
        if isinstance(message, _Done):
            self._done = message
        else:
            self._items.extend(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> Item:
        """The next result; StopAsyncIteration at the end; the run's exception if it failed."""
        while not self._items:
            if self._done is not None:
                if self._done.error is not None:
                    raise self._done.error
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        self._taken += 1
        if self._taken >= self._credit_every:
            self._run.credit(self._taken)
            self._taken = 0
        return item

    async def close(self) -> None:
        """Cancel the run if it is still going, and wait until it has ended."""
        if self._done is None:
            self._run.cancel()
        # Wait for the end even if the caller is cancelled again meanwhile (anyio's scopes
        # re-deliver cancellation at every await): the run is cancelled already and ends soon,
        # and the block must not be left while its sockets are open. The cancellation is
        # raised once the run has ended.
        cancelled: asyncio.CancelledError | None = None
        while self._done is None:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError as exc:
                cancelled = exc
            finally:
                self._waiter = None
        self._items.clear()
        self._run.join()
        if cancelled is not None:
            raise cancelled

    @property
    def error(self) -> BaseException | None:
        return None if self._done is None else self._done.error


class SyncInbox:
    """The synchronous side of a bridge: the caller's thread blocks in ``next``."""

    def __init__(self, run: _Run, capacity: int) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._items: deque[Item] = deque()
        self._done: _Done | None = None
        self._taken = 0
        self._credit_every = max(1, capacity // 2)

    def post_threadsafe(self, message: list[Item] | _Done) -> None:
        with self._cond:
            if isinstance(message, _Done):
                self._done = message
            else:
                self._items.extend(message)
            self._cond.notify()

    def next(self) -> Item:
        with self._cond:
            while not self._items:
                if self._done is not None:
                    if self._done.error is not None:
                        raise self._done.error
                    raise StopIteration
                self._cond.wait()
            item = self._items.popleft()
        self._taken += 1
        if self._taken >= self._credit_every:
            self._run.credit(self._taken)
            self._taken = 0
        return item

    def close(self) -> None:
        with self._cond:
            done = self._done is not None
        if not done:
            self._run.cancel()
        with self._cond:
            while self._done is None:
                self._cond.wait()
            self._items.clear()
        self._run.join()

    @property
    def error(self) -> BaseException | None:
        return None if self._done is None else self._done.error


def _start_thread(
    targets: Iterable[Target | BadLine],
    options: ScanOptions,
    skip: Callable[[Target], bool],
    run: _Run,
    post: Callable[[list[Item] | _Done], None],
    capacity: int,
) -> threading.Thread:
    def main() -> None:
        error: BaseException | None = None
        try:
            trio.run(_scan, targets, options, skip, post, run, capacity)
        except BaseException as exc:  # handed to the caller's thread, raised there
            error = exc
        finally:
            run.finished()
        post(_Done(error))

    run.thread = thread = threading.Thread(target=main, name="chainscan-trio", daemon=True)
    thread.start()
    return thread


def _start_guest(
    targets: Iterable[Target | BadLine],
    options: ScanOptions,
    skip: Callable[[Target], bool],
    run: _Run,
    inbox: AsyncioInbox,
    loop: asyncio.AbstractEventLoop,
    capacity: int,
) -> None:
    def done(result: outcome.Outcome[None]) -> None:
        run.finished()
        inbox.post(_Done(result.error if isinstance(result, outcome.Error) else None))

    # The guest's tasks run in the loop's thread, so results are posted directly.
    trio.lowlevel.start_guest_run(
        _scan,
        targets,
        options,
        skip,
        inbox.post,
        run,
        capacity,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=done,
        host_uses_signal_set_wakeup_fd=True,
    )


def start_run(
    targets: Iterable[Target | BadLine],
    options: ScanOptions,
    skip: Callable[[Target], bool],
    *,
    loop: asyncio.AbstractEventLoop | None,
    host: Host = "thread",
) -> AsyncioInbox | SyncInbox:
    """Start a trio run scanning ``targets``; its results come out of the returned inbox.

    ``loop``: the caller's asyncio loop (an :class:`AsyncioInbox`), or None for a synchronous
    caller (a :class:`SyncInbox`, always on a thread).
    """
    run = _Run()
    capacity = max(1, options.concurrency)
    if loop is None:
        sync_inbox = SyncInbox(run, capacity)
        _start_thread(targets, options, skip, run, sync_inbox.post_threadsafe, capacity)
        return sync_inbox
    inbox = AsyncioInbox(loop, run, capacity)
    if host == "guest":
        _start_guest(targets, options, skip, run, inbox, loop, capacity)
    else:
        _start_thread(targets, options, skip, run, inbox.post_threadsafe, capacity)
    return inbox
