"""The scheduler: many targets, bounded everything, a result for each. The core of chainscan.

Theory of operation
-------------------
A target's life, and what it holds at each step::

    admitted ──► resolve ──► gate(ip) ──► connect + handshake ──► result
      │            (cached)    │ per-address cap  (socket open)      │
      │                        │ per-network cap                     │
      │                        │ global slot                         │
      │                        │ rate token                          │
      │                        └──────── released ◄──────────────────┘
      │   transient failure? ──► backoff sleep (holds NO slot) ──► next attempt
      └── admission released when the result is handed to the writer

* **Admission** (``4 × concurrency`` targets) bounds how many targets exist at once: the
  producer stops pulling input lines when it is full. That is what keeps memory proportional
  to the concurrency instead of the input: a million-line file is read lazily, a batch of
  lines at a time, in a worker thread (``_intake.take_input``, the input loop of every mode).
* **Concurrency slots** (``--concurrency``) are held only while a socket is open, never
  during DNS or a backoff wait. Open sockets therefore never exceed the limit.
* **Per-address cap** (``--per-ip``): many names often resolve to one load balancer; it is
  taken *before* the global slot so a busy address never ties up slots other addresses could
  use.
* **Per-network cap** (``--per-net``, off by default): the same for the address's IPv4 /24 or
  IPv6 /64 (``_limits.network_of``; a fleet of addresses behind one load balancer or in one
  hosting block), taken after the per-address cap and before the global slot, for the same
  reason.
* **Rate** (``--rate``): a token bucket for new connections, taken last, right before
  ``connect()``, so a token is never spent by a task that then waits for something else.
* **Deadlines**: ``_probe`` bounds connect and handshake, and ``--deadline`` bounds the whole
  target (every attempt and backoff wait). The probe keeps that deadline too: it gets the
  target's ``_Progress`` as ``deadline=`` and ends each phase at the earlier of its own
  timeout and the target's deadline (``_probe.DEADLINE`` if the latter), so no cancel scope of
  the scheduler's is open around it (one scope fewer per connection in flight); a backoff wait
  never starts past the deadline. A probe injected for tests is not told the deadline and
  runs under a ``trio.CancelScope`` on it (``_Bounded``). Nothing a server does can hold a
  target longer. The deadline is *paused* while the target waits at the gate for a
  per-address slot, a global slot or a rate token (``_Progress.__aenter__``): that wait
  depends on the other targets and on our own limits, not on this server, and counting it
  made healthy targets queued behind a busy address fail with ``timeout`` before they ever
  connected. ``elapsed`` leaves those waits out too.
* **Retries**: only for ``TRANSIENT_KINDS``, with full-jitter exponential backoff, and never
  past the deadline: a retry that could not start before it is not waited for.

Results go into a trio memory channel; a slow consumer blocks ``send``, which keeps tasks
admitted, which stops the producer: back-pressure all the way to the input file. And for a
scan's own writer, a new connection starts only while open connections plus results the
writer has not acknowledged fit a window that closes while the writer is behind
(``_backlog``): the admitted targets do not all finish and queue up for a slow writer, where
a crash would lose them.

Cost per target
---------------
Every trio checkpoint is a round trip through the run loop, so the per-target path takes none
it does not need. When all the gate limits are free (the common case) ``_Limits.try_acquire``
takes them synchronously, and the deadline is not paused because nothing is waited for; only a
limit that is taken goes through the queued ``acquire`` path above. In the same way admission
and the result channel use ``acquire_nowait`` / ``send_nowait`` when they have room, and fall
back to waiting when they do not. Neither shortcut lets anyone jump a queue: a trio
``Semaphore`` has a value above zero only when nobody waits on it. For the scan's duration the
young-generation threshold of the garbage collector is raised (``_fewer_gc_passes``).
"""

from __future__ import annotations

import gc
import math
import random
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Protocol

import trio

from .._models import (
    TRANSIENT_KINDS,
    BadLine,
    ErrorKind,
    ProbeOutcome,
    ScanOptions,
    ScanResult,
    Status,
    Target,
)
from ._aia import ChainCompleter
from ._backlog import Backlog
from ._deployments import DeploymentProber
from ._intake import take_input
from ._limits import AddressLimiter, RateLimiter, backoff_delays, network_of
from ._probe import DEADLINE, Gate, probe
from ._resolve import Resolver
from ._revocation import RevocationChecker
from ._tls import client_context
from ._trace import finished_trace

__all__ = ["FollowUp", "ProbeFn", "Scheduler"]

_GC_THRESHOLD = 10_000
"""Net container allocations between young collections during a scan (CPython's default: 700)."""
_TASK_NAME = "chainscan target"


class ProbeFn(Protocol):
    """A probe injected for tests (``Scheduler(probe_fn=...)``): it is not told the target's
    deadline, so the scheduler runs it under a cancel scope on it (``_Bounded``)."""

    async def __call__(
        self,
        target: Target,
        *,
        options: ScanOptions,
        context: ssl.SSLContext,
        resolver: Resolver,
        gate: Gate,
    ) -> ProbeOutcome: ...


class _DeadlineProbe(Protocol):
    """What a target's attempts call: ``_probe.probe`` itself, or a ``_Bounded`` injected probe.
    It ends by ``deadline.deadline`` and returns ``DEADLINE`` if that ended it."""

    async def __call__(
        self,
        target: Target,
        *,
        options: ScanOptions,
        context: ssl.SSLContext,
        resolver: Resolver,
        gate: Gate,
        deadline: _Progress,
    ) -> ProbeOutcome: ...


class FollowUp(Protocol):
    """Optional extra work on a finished result before it is sent, through the same gates
    (``--deployments``: ``_deployments.DeploymentProber``)."""

    async def __call__(
        self, result: ScanResult, *, resolver: Resolver, gate: Gate
    ) -> ScanResult: ...


class _Limits:
    """What a connection holds: a per-address place, a per-network place, a global slot, then a
    rate token; and, once it has the slot, room at the writer (``_backlog``, when there is one)."""

    __slots__ = ("backlog", "per_ip", "per_net", "rate", "slots")

    def __init__(
        self,
        slots: trio.Semaphore,
        rate: RateLimiter | None,
        per_ip: AddressLimiter | None,
        per_net: AddressLimiter | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.slots = slots
        self.rate = rate
        self.per_ip = per_ip
        self.per_net = per_net
        """Keyed by ``network_of(address)``: the address's /24 or /64."""
        self.backlog = backlog

    def try_acquire(self, address: str) -> bool:
        """Take all of them at once if all are free now (no waiting, no checkpoint); else none."""
        if self.backlog is not None and self.backlog.full:
            return False
        per_ip = self.per_ip
        if per_ip is not None and not per_ip.try_acquire(address):
            return False
        per_net = self.per_net
        network = "" if per_net is None else network_of(address)
        if per_net is None or per_net.try_acquire(network):
            slots = self.slots
            if slots.value > 0:  # nobody waits on a semaphore with a value: no queue jumping
                slots.acquire_nowait()
                if self.rate is None or self.rate.try_acquire():
                    if self.backlog is not None:
                        self.backlog.started()  # not full (above): takes its place
                    return True
                slots.release()
            if per_net is not None:
                per_net.release(network)
        if per_ip is not None:
            per_ip.release(address)
        return False

    async def acquire(self, address: str) -> None:
        """Take them all, waiting in line for each in turn; with the global slot, wait for
        room at the writer (a target queued for a slot before the writer fell behind must not
        connect: ``_backlog``)."""
        if self.per_ip is not None:
            await self.per_ip.acquire(address)
        try:
            if self.per_net is not None:
                await self.per_net.acquire(network_of(address))
            try:
                await self.slots.acquire()
                try:
                    backlog = self.backlog
                    if backlog is not None:
                        await backlog.wait_room()
                    try:
                        if self.rate is not None:
                            await self.rate.acquire()
                    except BaseException:
                        if backlog is not None:
                            backlog.ended(trio.current_time())
                        raise
                except BaseException:
                    self.slots.release()
                    raise
            except BaseException:
                if self.per_net is not None:
                    self.per_net.release(network_of(address))
                raise
        except BaseException:
            if self.per_ip is not None:
                self.per_ip.release(address)
            raise

    def release(self, address: str, opened: float) -> None:
        """Give back what ``acquire`` took for a connection that got it at ``opened``."""
        if self.backlog is not None:
            self.backlog.ended(opened)
        self.slots.release()
        if self.per_net is not None:
            self.per_net.release(network_of(address))
        if self.per_ip is not None:
            self.per_ip.release(address)


class _Gate:
    """``async with gate(ip)``: holds the scheduler's limits for ``ip`` around a connection."""

    __slots__ = ("_address", "_limits", "_opened")

    def __init__(self, limits: _Limits, address: str) -> None:
        self._limits = limits
        self._address = address
        self._opened = 0.0
        """When the connection got through the gate (the writer's window ages it)."""

    async def __aenter__(self) -> None:
        if not self._limits.try_acquire(self._address):
            await self._limits.acquire(self._address)
        self._opened = trio.current_time()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limits.release(self._address, self._opened)


class _Progress(_Gate):
    """One target's attempts so far, its deadline, and its ``gate(ip)``.

    A slotted object rather than a closure over the counters: every target in flight holds
    one, and a closure (function, tuple, three cells) costs about 300 bytes more. It is also the
    target's gate itself (``gate(ip)`` returns it), not a gate object per connection: a
    target's attempts, and the addresses of one attempt, are tried one at a time.

    ``deadline`` is the target's (trio time). While the target waits at the gate it is paused
    (pushed back by the time waited), and so is ``scope``, the cancel scope on it that
    ``_Bounded`` opens around an injected probe; the built-in probe reads ``deadline``
    (``_probe.TargetDeadline``) and needs no scope of the scheduler's around it.
    """

    __slots__ = ("attempts", "deadline", "outcome", "scope", "waited")

    def __init__(self, limits: _Limits, deadline: float) -> None:
        super().__init__(limits, "")
        self.deadline = deadline
        self.scope: trio.CancelScope | None = None
        self.attempts = 0
        self.outcome: ProbeOutcome | None = None
        self.waited = 0.0
        """Seconds spent waiting at the gate, with the deadline paused."""

    def __call__(self, address: str) -> _Progress:
        self._address = address
        return self

    async def __aenter__(self) -> None:
        if self._limits.try_acquire(self._address):
            self._opened = trio.current_time()
            return  # nothing to wait for: the deadline runs on
        scope = self.scope
        began = trio.current_time()
        if scope is not None:
            scope.deadline = math.inf
        try:
            await self._limits.acquire(self._address)
        finally:
            waited = trio.current_time() - began
            self.waited += waited
            self.deadline += waited
            if scope is not None:
                scope.deadline = self.deadline
        self._opened = trio.current_time()


class _Bounded:
    """An injected ``ProbeFn``, run under a cancel scope on the target's deadline."""

    __slots__ = ("_probe",)

    def __init__(self, probe_fn: ProbeFn) -> None:
        self._probe = probe_fn

    async def __call__(
        self,
        target: Target,
        *,
        options: ScanOptions,
        context: ssl.SSLContext,
        resolver: Resolver,
        gate: Gate,
        deadline: _Progress,
    ) -> ProbeOutcome:
        outcome = DEADLINE
        with trio.CancelScope(deadline=deadline.deadline) as deadline.scope:
            outcome = await self._probe(
                target, options=options, context=context, resolver=resolver, gate=gate
            )
        deadline.scope = None
        return outcome


class _Admit:
    """The scheduler's input router (``_intake``): an invalid line goes straight to the results,
    a target is admitted (waiting while ``max_admitted`` are in flight) and gets its task."""

    __slots__ = ("_admission", "_nursery", "_run_target", "_send")

    def __init__(
        self,
        scheduler: Scheduler,
        nursery: trio.Nursery,
        send: trio.MemorySendChannel[ScanResult | BadLine],
    ) -> None:
        self._admission = scheduler._admission
        self._run_target = scheduler._run_target
        self._nursery = nursery
        self._send = send

    async def record(self, bad: BadLine) -> None:
        await self._send.send(bad)

    async def route(self, target: Target) -> None:
        admission = self._admission
        if admission.value > 0:  # room: no need to yield (reading the batch did)
            admission.acquire_nowait()
        else:
            await admission.acquire()
        # A fixed name: trio would otherwise format one string per task (about 100 bytes each).
        self._nursery.start_soon(self._run_target, target, self._send, name=_TASK_NAME)

    async def flush(self) -> None:
        pass


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raise the collector's first threshold for the scan; restore it afterwards.

    A scan allocates a few dozen container objects per target (tasks, cancel scopes, results)
    and frees nearly all of them by reference counting. At CPython's default (a young
    collection every 700 net allocations) the young collections keep promoting them into the
    older generations, whose passes walk every object of the process (the imported modules of
    ``cryptography`` and ``trio`` included). Fewer, larger young collections cut that work.
    """
    threshold = gc.get_threshold()
    if threshold[0] == 0 or threshold[0] >= _GC_THRESHOLD:  # disabled, or raised by the caller
        yield
        return
    gc.set_threshold(_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


class Scheduler:
    """Runs targets under the limits of ``options``; see the module docstring.

    ``probe_fn``, ``resolver`` and ``rng`` are injectable so the scheduling logic can be tested
    on trio's MockClock with a fake network (an injected probe runs under a cancel scope on the
    target's deadline; the default, ``_probe.probe``, keeps it itself). ``backlog`` (a scan's
    own writer, in ``run``, which acknowledges each result it is done with): new connections
    wait while the writer is behind (``_backlog``); the library API has none, so its
    consumer's pace alone holds the scan back, as before.
    """

    def __init__(
        self,
        options: ScanOptions,
        *,
        probe_fn: ProbeFn | None = None,
        resolver: Resolver | None = None,
        context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
        follow_up: FollowUp | None = None,
        completer: ChainCompleter | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.options = options
        self._probe: _DeadlineProbe = probe if probe_fn is None else _Bounded(probe_fn)
        self._follow_up = follow_up or (DeploymentProber(options) if options.deployments else None)
        self._resolver = resolver or Resolver()
        self._completer = completer or (
            ChainCompleter(options, self._resolver) if options.fetch else None
        )
        """Fetches missing intermediates (AIA) after a handshake, in the target's deadline."""
        self._revocation = (
            RevocationChecker(options, self._completer)
            if self._completer is not None and options.revocation != "off"
            else None
        )
        """Asks the leaf's CRL / OCSP responder (``--revocation``), after the completer."""
        self._context = context or client_context()
        self._rng = rng or random.Random()
        self._limits = _Limits(
            trio.Semaphore(options.concurrency),
            RateLimiter(
                options.rate, options.burst or max(1, min(int(options.rate), options.concurrency))
            )
            if options.rate > 0
            else None,
            AddressLimiter(options.per_ip) if options.per_ip > 0 else None,
            AddressLimiter(options.per_net) if options.per_net > 0 else None,
            backlog,
        )
        self.max_admitted = max(4 * options.concurrency, 64)
        self._admission = trio.Semaphore(self.max_admitted)
        self._trace = finished_trace()
        """``CHAINSCAN_TRACE_FINISHED``: when each result was ready (benchmarks only)."""

    def gate(self, address: str) -> _Gate:
        return _Gate(self._limits, address)

    async def run(
        self,
        items: Iterable[Target | BadLine],
        send: trio.MemorySendChannel[ScanResult | BadLine],
        *,
        skip: Callable[[Target], bool] | None = None,
        blocking_source: bool = True,
    ) -> None:
        """Scan every target of ``items``, sending each result (and each BadLine) to ``send``.

        ``items`` is pulled lazily, in batches, from a worker thread when ``blocking_source`` (a
        file or stdin); ``skip(target)`` drops targets before admission (duplicates, resumed).
        Closes ``send`` at the end.
        """
        with _fewer_gc_passes():
            await self._run(items, send, skip, blocking_source)

    async def _run(
        self,
        items: Iterable[Target | BadLine],
        send: trio.MemorySendChannel[ScanResult | BadLine],
        skip: Callable[[Target], bool] | None,
        blocking_source: bool,
    ) -> None:
        backlog = self._limits.backlog
        async with send, trio.open_nursery() as pacing:
            if backlog is not None:
                pacing.start_soon(backlog.pace)
            async with trio.open_nursery() as nursery:
                # ``send`` is closed after the nursery, so the tasks share it unclosed.
                await take_input(
                    items, _Admit(self, nursery, send), skip=skip, blocking=blocking_source
                )
            pacing.cancel_scope.cancel()

    async def scan_one(self, target: Target) -> ScanResult:
        """All attempts at one target, under its total deadline. Never raises for the target."""
        return await self._run_target(target, None)

    async def _run_target(
        self, target: Target, send: trio.MemorySendChannel[ScanResult | BadLine] | None
    ) -> ScanResult:
        """All attempts at ``target``, under its total deadline. In a scan (``send``), this is
        the target's task: the result then goes through ``_deliver``, and the admission is
        given back at the end.

        One coroutine for the task, the deadline and the attempts: its frame is held by every
        target in flight, so neither the attempt loop nor the task around it is a coroutine
        of its own (``scan_one`` adds one, outside a scan).
        """
        try:
            options = self.options
            started = trio.current_time()
            progress = _Progress(self._limits, started + options.deadline)
            timed_out = False
            delays: Iterator[float] | None = None
            attempt = 0
            while attempt <= options.retries:
                attempt += 1
                progress.attempts = attempt
                outcome = await self._probe(
                    target,
                    options=options,
                    context=self._context,
                    resolver=self._resolver,
                    gate=progress,
                    deadline=progress,
                )
                if outcome is DEADLINE:
                    timed_out = True
                    break
                progress.outcome = outcome
                if outcome.ok or outcome.error_kind not in TRANSIENT_KINDS:
                    break
                if attempt > options.retries:
                    break
                if delays is None:
                    delays = backoff_delays(options.backoff_base, options.backoff_cap, self._rng)
                wake = trio.current_time() + next(delays)
                if wake >= progress.deadline:
                    break  # the retry could not even start in time: report this failure now
                await trio.sleep_until(wake)  # holds admission only, no slot, no socket
            elapsed = trio.current_time() - started - progress.waited
            result = self._result(target, progress, timed_out, elapsed)
            if send is not None:
                await self._deliver(result, send)
            return result
        finally:
            if send is not None:
                self._admission.release()

    def _result(
        self, target: Target, progress: _Progress, timed_out: bool, elapsed: float
    ) -> ScanResult:
        options = self.options
        last = progress.outcome
        if timed_out or last is None:
            before = f"; attempt {progress.attempts - 1} failed: {last.error}" if last else ""
            return ScanResult(
                target=target,
                status=Status.FAILED,
                error_kind=ErrorKind.TIMEOUT,
                error=f"no result within the {options.deadline:g}s deadline "
                f"(attempt {progress.attempts} was still running){before}",
                attempts=progress.attempts,
                elapsed=elapsed,
                address=last.address if last else None,
            )
        return ScanResult(
            target=target,
            status=Status.OK if last.ok else Status.FAILED,
            chain=last.chain,
            chain_sent=last.chain_sent,
            error_kind=last.error_kind,
            error=last.error,
            attempts=progress.attempts,
            elapsed=elapsed,
            address=last.address,
            tls_version=last.tls_version,
            cipher=last.cipher,
            timings=last.timings,
        )

    async def _deliver(
        self, result: ScanResult, send: trio.MemorySendChannel[ScanResult | BadLine]
    ) -> None:
        """Complete the chain (AIA), check revocation, follow up, then send the result."""
        if self._completer is not None and result.chain:
            remaining = max(0.0, self.options.deadline - result.elapsed)
            deadline = trio.current_time() + remaining
            result = await self._completer(result, deadline)
            if self._revocation is not None:
                result = await self._revocation(result, deadline)
        if self._follow_up is not None:
            result = await self._follow_up(result, resolver=self._resolver, gate=self.gate)
        if self._trace is not None:
            self._trace.finished(result.target.host)
        # ``send.send`` without its yield when the channel has room (the common case);
        # with a ``backlog``, the result counts as unwritten until the writer says so.
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._limits.backlog is not None:
            await self._limits.backlog.send(send, result)
        else:
            try:
                send.send_nowait(result)
            except trio.WouldBlock:
                await send.send(result)
