"""The scheduler's building blocks: rate limiter, per-address and per-network caps, backoff.
Clock-injected.

All waiting goes through ``trio.sleep_until`` / ``trio.current_time``, so on trio's
``MockClock(autojump_threshold=0)`` the tests see exact, instant timing.

Each limit has a synchronous ``try_acquire`` besides its ``acquire``: the scheduler takes every
limit of a connection at once when all of them are free, which is the common case, without a
trio checkpoint (a scheduler round trip) per limit and without pausing the target's deadline.
``try_acquire`` never takes a place that a waiting task is queued for: a trio ``Semaphore`` has
a value above zero only when nobody waits on it, and the rate limiter grants only times that
are already due.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterator

import trio

__all__ = ["AddressLimiter", "RateLimiter", "backoff_delays", "network_of"]


class RateLimiter:
    """Token bucket for new connections, written as a reservation queue (GCRA).

    Each ``acquire()`` reserves the next free send time: ``rate`` per second on average, with up
    to ``burst`` reservations granted at once after an idle period. Callers are served in the
    order they ask (each computes its own time, then sleeps until it), so there is no thundering
    herd and no polling. A caller cancelled while it waits gives its slot up silently (the bucket
    then runs at most one token slow); that errs on the polite side.
    """

    __slots__ = ("_interval", "_next", "_tolerance")

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self._interval = 1.0 / rate
        self._tolerance = max(0, burst - 1) * self._interval
        self._next = -math.inf

    def try_acquire(self) -> bool:
        """Take a token if one is due now; never waits, never reserves a future time."""
        now = trio.current_time()
        start = max(self._next, now - self._tolerance)
        if start > now:
            return False
        self._next = start + self._interval
        return True

    async def acquire(self) -> None:
        now = trio.current_time()
        start = max(self._next, now - self._tolerance)
        self._next = start + self._interval
        if start > now:
            await trio.sleep_until(start)
        else:
            await trio.lowlevel.checkpoint()


class _Slot:
    __slots__ = ("holders", "semaphore")

    def __init__(self, limit: int) -> None:
        self.semaphore = trio.Semaphore(limit)
        self.holders = 0


class AddressLimiter:
    """At most ``limit`` concurrent holders per address; entries vanish when unused.

    Memory is proportional to the addresses *in use*, not to all addresses ever seen.
    ``acquire(address)`` (or ``try_acquire``) and ``release(address)`` pair up like a lock's.
    """

    __slots__ = ("_limit", "_slots")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"per-address limit must be at least 1, got {limit!r}")
        self._limit = limit
        self._slots: dict[str, _Slot] = {}

    def try_acquire(self, address: str) -> bool:
        """Take a place for ``address`` if one is free now; never waits."""
        slot = self._slots.get(address)
        if slot is None:
            slot = self._slots[address] = _Slot(self._limit)
        elif slot.semaphore.value == 0:
            return False
        slot.semaphore.acquire_nowait()
        slot.holders += 1
        return True

    async def acquire(self, address: str) -> None:
        """Take a place for ``address``, waiting in line for it."""
        slot = self._slots.get(address)
        if slot is None:
            slot = self._slots[address] = _Slot(self._limit)
        slot.holders += 1
        try:
            await slot.semaphore.acquire()
        except BaseException:
            self._drop(address, slot)
            raise

    def release(self, address: str) -> None:
        slot = self._slots[address]
        slot.semaphore.release()
        self._drop(address, slot)

    def in_use(self, address: str) -> int:
        """Holders of ``address`` now (for tests and progress)."""
        slot = self._slots.get(address)
        return 0 if slot is None else self._limit - slot.semaphore.value

    def _drop(self, address: str, slot: _Slot) -> None:
        slot.holders -= 1
        if slot.holders == 0:
            del self._slots[address]


def network_of(ip: str) -> str:
    """The network ``--per-net`` counts ``ip`` in: its IPv4 /24 or its IPv6 /64.

    ``ip`` is an address as the resolver and ``literal_address`` give it (canonical text). An
    IPv4-mapped IPv6 address counts in its IPv4 /24. The result is a key, printed like
    ``192.0.2.0/24`` or ``2001:db8::/64``; anything that is not an address is its own key.
    """
    if ":" not in ip:
        head, dot, _ = ip.rpartition(".")
        if dot and head.count(".") == 2:
            return f"{head}.0/24"
        return ip
    try:
        address = ipaddress.IPv6Address(ip.partition("%")[0])
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return network_of(str(address.ipv4_mapped))
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


def backoff_delays(base: float, cap: float, rng: random.Random | None = None) -> Iterator[float]:
    """Delays before retry 1, 2, 3, ...: "full jitter" exponential backoff.

    Retry *n* waits a uniform random time in ``[0, min(cap, base * 2**(n-1))]`` (AWS
    Architecture Blog, "Exponential Backoff And Jitter"): spreads retries of many targets that
    failed together, so they don't hit the server again in lockstep.
    """
    draw = (rng or random.Random()).uniform
    ceiling = base
    while True:
        yield draw(0.0, min(cap, ceiling))
        ceiling *= 2
