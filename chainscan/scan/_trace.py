"""A debug trace of when each handshake finished, for ``benchmarks/disk_latency.py``.

Off unless the environment variable ``CHAINSCAN_TRACE_FINISHED`` names a file. Then the
scheduler appends, as each target's result is ready for the writer, one line ``TIME HOST``
(``time.time()``) to that file, at once (``O_APPEND``, one ``write`` a line: the processes of
``--workers`` share the file, and a ``kill -9`` loses nothing already recorded). The benchmark
compares these times with when each target's line appeared in ``manifest.jsonl``. Off, the
cost is one ``is None`` test per target; on, one small ``write`` per target.
"""

from __future__ import annotations

import os
import time

__all__ = ["ENV", "FinishedTrace", "finished_trace"]

ENV = "CHAINSCAN_TRACE_FINISHED"


class FinishedTrace:
    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def finished(self, host: str) -> None:
        os.write(self._fd, f"{time.time():.6f} {host}\n".encode())


def finished_trace() -> FinishedTrace | None:
    """The trace the environment asks for, or None (the normal case)."""
    path = os.environ.get(ENV)
    return FinishedTrace(path) if path else None
