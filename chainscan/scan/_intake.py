"""The input loop: every mode reads its input items the same way.

An input item is a :class:`Target` or a :class:`BadLine` (a line that is not a valid target).
:func:`take_input` reads them in batches and sorts each one:

    invalid line            ──► router.record(bad)    (it goes to the manifest as it is)
    target already done     ──► dropped               (``skip``: a duplicate, or resumed)
    any other target        ──► router.route(target)  (scan it: admit it, send it to a worker, ...)
    end of each batch       ──► router.flush()        (the next read may block: send on what
                                                       the router holds back)

The callers are the local scheduler (``Scheduler.run``: route = admit and start a task),
``--workers`` (``_workers``: route = the worker of the target's shard) and ``--dask``
(``_dask``: route = the shard's batch for the cluster). Items keep their input order through
the loop.

A file or stdin is read in a worker thread, ``_BATCH`` items at a time (``blocking=True``), so
a slow disk or a pipe never stalls the event loop, and the input is pulled only as fast as the
router takes it: a router that waits (admission full, a worker's pipe full) stops the reading,
which is what keeps memory bounded for any input size. An in-memory iterable (the library API)
is read in the event loop (``blocking=False``), with one checkpoint per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Protocol

import trio

from .._models import BadLine, Target

__all__ = ["Router", "take_input"]

_BATCH = 256
"""Input items read at a time."""


class Router(Protocol):
    """Where the input loop sends what it reads (see the module docstring)."""

    async def record(self, bad: BadLine) -> None:
        """An input line that is not a valid target: to the manifest, as ``invalid``."""

    async def route(self, target: Target) -> None:
        """A target to scan."""

    async def flush(self) -> None:
        """A batch of input is sorted; send on anything held back for it."""


async def take_input(
    items: Iterable[Target | BadLine],
    router: Router,
    *,
    skip: Callable[[Target], bool] | None = None,
    blocking: bool = True,
) -> None:
    """Read ``items`` to the end, sorting each to ``router``; ``skip(target)`` drops targets
    already done (duplicates, a resumed run's). ``blocking``: read in a worker thread."""
    iterator = iter(items)
    record, route = router.record, router.route
    while batch := await _next_batch(iterator, blocking):
        for item in batch:
            if isinstance(item, BadLine):
                await record(item)
            elif skip is None or not skip(item):
                await route(item)
        await router.flush()


async def _next_batch(
    iterator: Iterator[Target | BadLine], blocking: bool
) -> list[Target | BadLine]:
    if blocking:
        return await trio.to_thread.run_sync(
            lambda: list(islice(iterator, _BATCH)), abandon_on_cancel=True
        )
    await trio.lowlevel.checkpoint()
    return list(islice(iterator, _BATCH))
