"""How a scan is divided among processes: which one scans a target, what share of the limits
each one gets.

Used by every mode that splits a scan: ``--workers`` (``_workers``), ``--dask`` (``_dask``)
and ``--shard`` (``_shard``). A target is placed by the address it names (``{ip}`` or an IP
literal), else by its host name, hashed: one name or one explicit address always lands in one
place, so its per-address cap holds exactly there, and reruns and ``--resume`` place it the same
way whatever the order of the input lines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

from .._models import ScanOptions, Target

__all__ = ["shard_of", "worker_options"]


def shard_of(target: Target, shards: int) -> int:
    """Which of ``shards`` places (0-based) scans ``target``: stable across runs, by address or
    else host name."""
    key = (target.address or target.host).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % shards


def worker_options(options: ScanOptions, workers: int) -> ScanOptions:
    """The share of the limits one of ``workers`` scanners running at once gets: together they
    keep the limits given (``ceil(concurrency / workers)`` slots, ``rate / workers``)."""
    return dataclasses.replace(
        options,
        concurrency=max(1, math.ceil(options.concurrency / workers)),
        rate=options.rate / workers if options.rate > 0 else 0.0,
    )
