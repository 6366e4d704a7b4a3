"""How a scan is divided among processes: which one scans a target, what share of the limits
each one gets.

Used by every mode that splits a scan: ``--workers`` (``_workers``), ``--dask`` (``_dask``)
and ``--shard`` (``_shard``).

Theory of operation
-------------------
A per-address cap (``--per-ip``) or per-network cap (``--per-net``) is counted by the
scheduler of one process. It holds for the whole scan only if every connection to one address
(or one network) comes from one scheduler at a time. So ``--workers`` and ``--dask`` place a
target by *where it connects*, not by what it is called (:class:`Placement`):

* the key is the target's address: its explicit ``{ip}``, its IP literal, or else the first
  address its name resolves to **here, on the client** (the address the scanner tries first);
  with ``--per-net`` the key is that address's network (``scan._limits.network_of``: the
  IPv4 /24 or IPv6 /64), so all the addresses of one network share a place too;
* the place is a hash of the key, so one address (one network) always lands on one worker
  process, or in one Dask shard, whose batches run one at a time (``_dask``);
* names are looked up a batch at a time (:class:`Placed`, the input router that wraps the
  mode's own), concurrently, through a cached :class:`~chainscan.scan._resolve.Resolver`; a name
  that does not resolve is placed by its name (the scanner will report the failure);
* with neither limit set (``--per-ip 0``, ``--per-net 0``) nothing is resolved here and a
  target is placed by ``shard_of`` (its address, else its host name), as ``--shard`` does.

A ``--workers`` process is handed the client's answer with the target (``Placement.answer``,
``Resolver.remember``) and connects to exactly those addresses in that order. A Dask task, on
another machine, resolves the name again itself. What this cannot make exact:

* with ``--dask``, a name whose answer there differs from the client's (DNS changes, a
  round-robin answer rotated to an address in another network, another resolver);
* in both modes, the other addresses of a name (its fallbacks, tried after its first address
  fails to connect; every address with ``--deployments``) that lie in another network than the
  first (or are another address, without ``--per-net``).

Those connections are counted by the scanner the name was placed on, not by the one that owns
their address. ``--shard`` (separate hosts, no client) keeps placing by name: see
``docs/scale-out.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import OrderedDict

import trio

from .._models import BadLine, ErrorKind, ScanOptions, Target
from ..scan._intake import Router
from ..scan._limits import network_of
from ..scan._resolve import ResolveFailed, Resolver, literal_address

__all__ = ["Placed", "Placement", "placed", "shard_of", "worker_options"]

_ANSWERS = 65536
"""Names whose first address the client remembers (the resolver's own cache has as many)."""


def _place(key: str, places: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % places


def shard_of(target: Target, shards: int) -> int:
    """Which of ``shards`` places (0-based) scans ``target``: stable across runs, by address or
    else host name."""
    return _place(target.address or target.host, shards)


class Placement:
    """Where each target goes so that the per-address and per-network caps hold across places
    (see the module docstring). ``exact``: a limit needs it (else ``place`` is ``shard_of``)."""

    def __init__(self, options: ScanOptions, resolver: Resolver | None = None) -> None:
        self.by_network = options.per_net > 0
        self.exact = self.by_network or options.per_ip > 0
        self._resolver = resolver or Resolver()
        self._answers: OrderedDict[str, tuple[str, ...] | None] = OrderedDict()
        """Addresses of each name seen lately (None: it did not resolve); an LRU of
        ``_ANSWERS`` names, so a name met again costs no task and no lookup."""

    async def prepare(self, targets: list[Target]) -> None:
        """Look up the names of ``targets`` (concurrently, cached) before they are placed."""
        if not self.exact:
            return
        answers = self._answers
        names: set[str] = set()
        for t in targets:
            if t.address is not None or t.host in names:
                continue
            if t.host in answers:
                answers.move_to_end(t.host)
            elif literal_address(t.host, 0) is None:
                names.add(t.host)
        if not names:
            return
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(self._lookup, name)
        while len(answers) > _ANSWERS:
            answers.popitem(last=False)

    async def _lookup(self, name: str) -> None:
        try:
            addresses = await self._resolver.resolve(name, 443)
        except ResolveFailed as exc:
            if exc.kind is not ErrorKind.DNS_TEMPORARY:  # a temporary failure is asked again
                self._answers[name] = None
            return
        self._answers[name] = tuple(a.ip for a in addresses) or None

    def answer(self, target: Target) -> tuple[str, ...] | None:
        """The addresses the client got for ``target``'s name, if it looked it up (for the
        scanner to use: ``Resolver.remember``)."""
        return self._answers.get(target.host) if target.address is None else None

    def key(self, target: Target) -> str:
        """What ``target`` is placed by: its network, its address, or else its host name."""
        if not self.exact:
            return target.address or target.host
        ip = target.address
        if ip is None:
            literal = literal_address(target.host, 0)
            if literal is not None:
                ip = literal.ip
            elif answer := self._answers.get(target.host):
                ip = answer[0]
        if ip is None:
            return target.host
        return network_of(ip) if self.by_network else ip

    def place(self, target: Target, places: int) -> int:
        """Which of ``places`` (0-based) scans ``target``."""
        return _place(self.key(target), places)


class Placed:
    """The input router (``scan._intake``) in front of a mode's own: holds each batch's targets
    until the batch ends, resolves their names (``Placement.prepare``), then routes them in their
    input order and flushes. Invalid lines pass straight through."""

    def __init__(self, inner: Router, placement: Placement) -> None:
        self._inner = inner
        self._placement = placement
        self._held: list[Target] = []

    async def record(self, bad: BadLine) -> None:
        await self._inner.record(bad)

    async def route(self, target: Target) -> None:
        self._held.append(target)

    async def flush(self) -> None:
        held, self._held = self._held, []
        await self._placement.prepare(held)
        route = self._inner.route
        for target in held:
            await route(target)
        await self._inner.flush()


def placed(inner: Router, placement: Placement) -> Router:
    """``inner`` behind :class:`Placed` when names must be resolved to place targets, else as is."""
    return Placed(inner, placement) if placement.exact else inner


def worker_options(options: ScanOptions, workers: int) -> ScanOptions:
    """The share of the limits one of ``workers`` scanners running at once gets: together they
    keep the limits given (``ceil(concurrency / workers)`` slots, ``rate / workers``). The
    per-address and per-network caps are not divided: a :class:`Placement` gives each address
    and network to one scanner."""
    return dataclasses.replace(
        options,
        concurrency=max(1, math.ceil(options.concurrency / workers)),
        rate=options.rate / workers if options.rate > 0 else 0.0,
    )
