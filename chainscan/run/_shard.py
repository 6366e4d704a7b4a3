"""``--shard K/N``: scan only the K-th of N deterministic slices of the input.

For people who schedule shards themselves (cron on several hosts, Kubernetes indexed Jobs):
each host runs ``chainscan FILE -o OUT_K --shard K/N`` on the same input, into its own folder,
and ``chainscan merge OUT OUT_1 ... OUT_N`` joins the folders afterwards (``_merge``).

A target belongs to shard ``shard_of(target, N) + 1`` (``_partition.shard_of``: a hash of the
address the line names, else of its host name), so the split does not depend on the order of
the lines, reruns and ``--resume`` pick the same targets, and every target naming one address
is scanned by one host: the per-address cap (``--per-ip``) holds across hosts for them. Input
lines that are not valid targets are recorded by shard 1 only, so the merged manifest lists
each input line once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .._models import BadLine, Target
from ._partition import shard_of

__all__ = ["Shard", "parse_shard", "select_shard"]


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, item: Target | BadLine) -> bool:
        """True if this shard scans (or records) ``item``."""
        if isinstance(item, BadLine):
            return self.index == 1
        return shard_of(item, self.count) == self.index - 1


def parse_shard(text: str) -> Shard:
    """``K/N`` with ``1 <= K <= N``; ``ValueError`` naming the problem otherwise."""
    index, slash, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        k = n = 0
    if not slash or n < 1:
        raise ValueError(f"expected K/N with 1 <= K <= N (e.g. 2/8), got {text!r}")
    if not 1 <= k <= n:
        raise ValueError(f"shard {k} is out of range 1-{n} in {text!r}")
    return Shard(k, n)


def select_shard(
    items: Iterable[Target | BadLine], shard: Shard | None
) -> Iterable[Target | BadLine]:
    """The items of ``shard``, lazily; all of them when ``shard`` is None."""
    if shard is None:
        return items
    return _select(items, shard)


def _select(items: Iterable[Target | BadLine], shard: Shard) -> Iterator[Target | BadLine]:
    for item in items:
        if shard.holds(item):
            yield item
