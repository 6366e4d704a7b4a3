"""Make room for the sockets a scan will open, or scale the scan down to the room there is.

A scan holds at most ``concurrency`` sockets, plus a few descriptors of its own (output files,
DNS lookups in worker threads, the event loop). If the soft RLIMIT_NOFILE is lower than that it
is raised, up to the hard limit; if the hard limit is lower too, the concurrency is lowered
instead, with a warning, so no target ever fails with EMFILE.
"""

from __future__ import annotations

import resource

__all__ = ["RESERVED_FDS", "fit_concurrency"]

RESERVED_FDS = 160
"""Descriptors kept for everything but the scan's sockets (DNS threads, files, stdio, trio)."""


def fit_concurrency(concurrency: int, *, reserved: int = RESERVED_FDS) -> tuple[int, str | None]:
    """Raise the soft fd limit for ``concurrency`` sockets; return what fits, and a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = concurrency + reserved
    if hard != resource.RLIM_INFINITY and wanted > hard:
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    room = soft - reserved if soft != resource.RLIM_INFINITY else concurrency
    if room >= concurrency:
        return concurrency, None
    fitted = max(1, room)
    return fitted, (
        f"--concurrency {concurrency} needs {concurrency + reserved} file descriptors but the "
        f"limit is {soft} (hard {hard}); scanning with --concurrency {fitted} instead"
    )
