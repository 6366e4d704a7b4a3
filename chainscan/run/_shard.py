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

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .._models import BadLine, Target
from ._partition import shard_of

__all__ = ["COUNT_VARIABLE", "INDEX_VARIABLE", "Shard", "parse_shard", "select_shard"]

INDEX_VARIABLE = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes in the pods of an indexed Job: this pod's index, 0-based."""
COUNT_VARIABLE = "CHAINSCAN_SHARD_COUNT"
"""Set by the user (the Job's ``completions``): the number of shards, for ``--shard auto``."""
AUTO = "auto"


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


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """``K/N`` with ``1 <= K <= N``; or ``auto`` / ``auto/N``, read from ``environ`` (see the
    module docstring; ``os.environ`` by default). ``ValueError`` naming the problem otherwise."""
    index, slash, count = text.partition("/")
    if index.strip().lower() == AUTO:
        return _from_environment(
            count if slash else None, os.environ if environ is None else environ
        )
    try:
        k, n = int(index), int(count)
    except ValueError:
        k = n = 0
    if not slash or n < 1:
        raise ValueError(f"expected K/N with 1 <= K <= N (e.g. 2/8) or auto, got {text!r}")
    if not 1 <= k <= n:
        raise ValueError(f"shard {k} is out of range 1-{n} in {text!r}")
    return Shard(k, n)


def _whole(text: str) -> int | None:
    """A non-negative decimal integer, or None (no sign, no spaces inside, no other digits)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _from_environment(given: str | None, environ: Mapping[str, str]) -> Shard:
    """``--shard auto`` (``given`` None) or ``auto/N``: K from ``JOB_COMPLETION_INDEX``, N from
    ``given`` or ``CHAINSCAN_SHARD_COUNT`` (both, then they must agree)."""
    raw_index = environ.get(INDEX_VARIABLE)
    if raw_index is None:
        raise ValueError(
            f"--shard auto reads the shard from {INDEX_VARIABLE}, which is not set (Kubernetes"
            " sets it in the pods of a Job with completionMode: Indexed); elsewhere give"
            " --shard K/N"
        )
    index = _whole(raw_index)
    if index is None:
        raise ValueError(f"{INDEX_VARIABLE}={raw_index!r} is not a whole number (0, 1, 2, ...)")
    raw_count = environ.get(COUNT_VARIABLE)
    count = None if raw_count is None else _whole(raw_count)
    if raw_count is not None and (count is None or count < 1):
        raise ValueError(
            f"{COUNT_VARIABLE}={raw_count!r} is not a number of shards (1 or more): set it to"
            " the Job's spec.completions"
        )
    if given is not None:
        explicit = _whole(given)
        if explicit is None or explicit < 1:
            raise ValueError(f"expected auto/N with N >= 1 (e.g. auto/8), got 'auto/{given}'")
        if count is not None and count != explicit:
            raise ValueError(
                f"--shard auto/{explicit} disagrees with {COUNT_VARIABLE}={raw_count}: give one"
            )
        count = explicit
    if count is None:
        raise ValueError(
            f"--shard auto needs the number of shards: set {COUNT_VARIABLE} to the Job's"
            " spec.completions (Kubernetes does not pass it to the pod), or give --shard auto/N"
        )
    if index >= count:
        raise ValueError(
            f"{INDEX_VARIABLE}={index} is out of range for {count} shards (0-{count - 1}):"
            f" {COUNT_VARIABLE} (or auto/N) must equal the Job's spec.completions"
        )
    return Shard(index + 1, count)


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
