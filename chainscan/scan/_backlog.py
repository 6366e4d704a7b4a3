"""Back-pressure from the writer to new connections: a finished result reaches the manifest soon.

Theory of operation
-------------------
A finished result is worth something only once its line is in ``manifest.jsonl``: until then a
crash loses it. When the writer is slower than the handshakes (analysis and files cost about
as much CPU as a handshake, and on a loaded machine either side can fall behind), results
queue for it, and the time a result waits is the queue's length over the writer's rate.

A bounded result channel alone does not bound that queue. Connections already open keep
finishing after the channel is full, and when the writer takes a batch every free
concurrency slot is refilled at once: with ``--concurrency 500`` on a fast network, 500
results finish together and queue behind the writer each time (about a second of its work).
So the queue is bounded where it is filled, at the gate of every new connection, with a
*window*, like a TCP sender's congestion window, the writer playing the receiver::

    a connection may start while   young connections + unwritten results < window

* **Young** connections are those open for less than ``YOUNG`` (1 s): one held open longer
  (a blackholed or tarpitted server kept to its timeout, a slow one) is not about to hand
  the writer a result, and must not take the place of live connections that are (a ring of
  counts per ``PACE`` of start time ages them out).
* **Unwritten** results are those sent to the writer (``send``) and not yet acknowledged by
  it (``written``, called once a result's line is in the manifest, or the writer is done
  with it). The writer must acknowledge every result it was sent exactly once.
* **The window** closes while the writer is behind: each acknowledgement that leaves more
  than ``target`` results unwritten takes its count off the window (down to
  ``MIN_WINDOW``). It opens while the writer keeps up: while at most half the target is
  unwritten, it doubles every ``DOUBLING`` seconds (a pacing task, ``pace``, applies the time
  and wakes the connections waiting; an acknowledgement wakes them at once). It starts at
  ``START_WINDOW``: a scan does not open thousands of connections before it knows whether its
  writer keeps up, and reaches any concurrency within a second when it does, whether or not
  anything finishes (connections held open by slow servers).
* **The target** is what the writer does in ``TARGET_DELAY`` seconds at the rate it was last
  seen working (an average of its rate over the intervals in which it had work throughout),
  and never below ``MIN_TARGET``. So the wait of a result stays near ``TARGET_DELAY``, on a
  fast writer or a slow one.
* While the writer keeps up the window opens past the concurrency and the limit is the
  concurrency's alone: on a slow network (long handshakes, dead targets held to their
  timeout) the writer is idle and nothing is held back.

What it costs: when the writer is the slower side, targets start at its pace, so the dead
targets of the input start throughout the scan rather than all at its beginning, and the
scan ends up to one connect timeout after the writer's last result, where a scan that let
results pile up in memory would have waited out those timeouts while the writer caught up.
Measured in ``benchmarks/scenarios/latency --quick`` (3,000 targets, 10% dead, concurrency
1,000): the whole-run rate with dead targets was 1.10x the all-live run's before the window,
0.81x with a window counting every open connection, 0.95x now (young ones only); the steady
rates 1.07x, 1.05x, 1.19x.

Two rules of the old design remain: a result that finds the channel full waits in ``send``
(counted in ``blocked``) and no connection starts while one does; and a connection that
waits for the window waits in line (``full`` is true while any connection waits, so none
jumps the queue). A connection waits for the window once it holds its global slot (targets
queued for a slot wait too, in their order), and its deadline is paused meanwhile, as for any
limit: the server is not to blame.
"""

from __future__ import annotations

import math
from typing import TypeVar

import trio

__all__ = ["Backlog"]

_T = TypeVar("_T")

START_WINDOW = 64
"""Connections plus unwritten results allowed before the writer has been seen keeping up."""
MIN_WINDOW = 16
"""The window never closes below this: the scan always makes progress."""
MIN_TARGET = 32
"""Unwritten results the window aims at, at least (a writer's batch)."""
TARGET_DELAY = 0.2
"""Seconds of the writer's work the window lets wait for it (the issue's goal is 0.5 s at the
99th percentile from a finished handshake to its line)."""
DOUBLING = 0.1
"""Seconds in which an open window doubles while the writer keeps up."""
PACE = 0.05
"""Seconds between two checks of the pacing task, and the width of an age bucket."""
YOUNG = 1.0
"""Seconds a connection counts in the window: one open longer (a blackholed or tarpitted
server held to its timeout, a slow server) is not about to hand the writer a result."""
_BUCKETS = math.ceil(YOUNG / PACE)
_RATE_MEMORY = 1.0
"""Seconds over which the writer's measured rate is averaged."""


class Backlog:
    """The window between new connections and the writer; see the module docstring.

    The scheduler takes a place per connection (:meth:`started`, or :meth:`wait_room` in line)
    and gives it back (:meth:`ended`), sends results with :meth:`send` and runs :meth:`pace`
    beside its targets; the writer calls :meth:`written`.
    """

    __slots__ = (
        "_aged_to",
        "_ages",
        "_busy_since",
        "_rate",
        "_room",
        "_written_at",
        "blocked",
        "concurrency",
        "done",
        "sent",
        "window",
        "young",
    )

    def __init__(self, concurrency: int) -> None:
        self.blocked = 0
        """Results waiting in ``send`` for room in the channel."""
        self.young = 0
        """Connections open (between :meth:`started` and :meth:`ended`) for less than
        ``YOUNG`` seconds: the sum of ``_ages``."""
        self._ages = [0] * _BUCKETS
        """Young connections by the ``PACE``-wide slice of time they started in (a ring)."""
        self._aged_to = 0
        """The slice up to which connections have been aged out (:meth:`_age`)."""
        self.sent = 0
        """Results sent to the writer."""
        self.done = 0
        """Results the writer acknowledged."""
        self.concurrency = concurrency
        """The scan's own limit on open connections: a window past it plus twice the
        target is of no use, and would take long to close."""
        self.window = float(START_WINDOW)
        self._room = trio.lowlevel.ParkingLot()
        self._rate: float | None = None
        """The writer's rate, results per second, when it last had work throughout."""
        self._busy_since: float | None = None
        """When the writer's current stretch of work began (None: it has none)."""
        self._written_at = -math.inf
        """When the writer last acknowledged results (a pacing task's first check sets it)."""

    # ------------------------------------------------------------ the state

    @property
    def unwritten(self) -> int:
        return self.sent - self.done

    @property
    def target(self) -> float:
        """Unwritten results to aim at: ``TARGET_DELAY`` seconds of the writer's work."""
        rate = self._rate
        return MIN_TARGET if rate is None else max(MIN_TARGET, rate * TARGET_DELAY)

    @property
    def full(self) -> bool:
        """A connection must wait (no room in the window, a result waits for room in the
        channel, or connections wait already: no jumping)."""
        return (
            self.blocked > 0
            or len(self._room) > 0
            or self.young + self.sent - self.done >= self.window
        )

    # ------------------------------------------------------------ the scheduler's side

    def started(self) -> bool:
        """Take a place for a connection if one is free now and nobody waits (no checkpoint)."""
        if self.full:
            return False
        self._start(1)
        return True

    def ended(self, opened: float) -> None:
        """The connection opened at ``opened`` (trio time) has ended. Its place is free again
        (its result, if any, is sent separately: the place is handed on when the writer
        acknowledges, or by :meth:`pace`)."""
        self._age(trio.current_time())  # a connection aged out is not counted twice
        tick = int(opened / PACE)
        ages = self._ages
        # The slice it was counted in: the one of ``opened``, or the next (a connection woken
        # by ``_wake`` is counted when it is woken, and notes its start when it runs).
        for slot in (tick, tick + 1):
            if slot >= self._aged_to and ages[slot % _BUCKETS] > 0:
                ages[slot % _BUCKETS] -= 1
                self.young -= 1
                return

    async def wait_room(self) -> None:
        """Take a place for a connection, waiting in line for one (at once, without a
        checkpoint, if one is free and nobody waits). A waiter is woken with its place
        taken for it (:meth:`_wake`); cancelled while it waits, it holds none."""
        if self.started():
            return
        await self._room.park()

    async def send(self, send: trio.MemorySendChannel[_T], item: _T) -> None:
        """``send.send(item)``, counted as unwritten, and counted in ``blocked`` while it
        waits; without a yield when there is room."""
        if self.sent == self.done:
            self._busy_since = trio.current_time()
        self.sent += 1
        try:
            send.send_nowait(item)
            return
        except trio.WouldBlock:
            pass
        self.blocked += 1
        try:
            await send.send(item)
        finally:
            self.blocked -= 1
            if self.blocked == 0:
                self._wake()

    async def pace(self) -> None:
        """Age connections out of the window, open it with time while nothing is
        acknowledged and the writer keeps up, and wake the connections that may start; runs
        until cancelled."""
        now = trio.current_time()
        if self._written_at == -math.inf:
            self._written_at = now
        while True:
            await trio.sleep(PACE)
            now = trio.current_time()
            self._age(now)
            self._grow(now)
            self._wake()

    # ------------------------------------------------------------ the writer's side

    def written(self, count: int) -> None:
        """The writer is done with ``count`` more results (their lines are in the manifest)."""
        if count <= 0:
            return
        now = trio.current_time()
        if self._busy_since is not None:
            elapsed = now - self._busy_since
            if elapsed > 0:
                rate = count / elapsed
                weight = min(1.0, elapsed / _RATE_MEMORY)
                self._rate = rate if self._rate is None else self._rate + weight * (
                    rate - self._rate
                )
        self.done += count
        self._written_at = now
        unwritten = self.sent - self.done
        self._busy_since = now if unwritten > 0 else None
        target = self.target
        if unwritten > target:  # behind: close the window by what it just did
            self.window = max(float(MIN_WINDOW), self.window - count)
        elif unwritten <= target / 2:  # keeping up: open it by as much
            self.window = min(self.concurrency + 2 * target, self.window + count)
        self._wake()

    # ------------------------------------------------------------ internals

    def _grow(self, now: float) -> None:
        """With no acknowledgement for ``DOUBLING`` seconds and at most half the target
        unwritten (connections held open by slow servers, nothing finishing), double the
        window per ``DOUBLING`` seconds: acknowledgements cannot open it then."""
        if now - self._written_at < DOUBLING or self.sent - self.done > self.target / 2:
            return
        widest = self.concurrency + 2 * self.target
        if self.window < widest:
            self.window = min(widest, self.window * math.exp2(PACE / DOUBLING))

    def _start(self, count: int) -> None:
        now = trio.current_time()
        self._age(now)
        self._ages[int(now / PACE) % _BUCKETS] += count
        self.young += count

    def _age(self, now: float) -> None:
        """Connections that started ``YOUNG`` seconds ago or more leave the window."""
        oldest = int(now / PACE) - _BUCKETS + 1  # the oldest slice still young
        ages = self._ages
        if oldest - self._aged_to >= _BUCKETS:  # every slice is old (or nothing started yet)
            ages[:] = [0] * _BUCKETS
            self.young = 0
            self._aged_to = oldest
        while self._aged_to < oldest:
            slot = self._aged_to % _BUCKETS
            self.young -= ages[slot]
            ages[slot] = 0
            self._aged_to += 1

    def _wake(self) -> None:
        """Hand the free places, in order, to the connections that wait for one."""
        waiting = len(self._room)
        if waiting and self.blocked == 0:
            room = int(self.window - self.young - (self.sent - self.done))
            if room >= 1:
                self._start(len(self._room.unpark(count=min(waiting, room))))
