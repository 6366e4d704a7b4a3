"""Completion times from inside chainscan, for the harness's steady-state rate.

chainscan's manifest entries carry no completion time, and its writer appends them in batches
(several hundred lines at once), so the time a line appears in ``manifest.jsonl`` says little
about when its handshake ended. The chainscan runners put this directory first on
``PYTHONPATH`` and set ``CHAINSCAN_BENCH_COMPLETIONS`` to a directory; Python then imports this
``sitecustomize`` at start-up in every chainscan process (the scanning process, its writer
process, ``--workers`` children), and it does nothing else until ``chainscan._models`` is
imported. Then it wraps ``ScanResult.__init__``: every ``ScanResult`` built is one target
finished (``scan/_schedule.py`` and ``scan/_blocking.py`` build one per target; the writer
process receives them pickled, which does not call ``__init__``), and the wrapper appends
``time.monotonic()`` (the system-wide CLOCK_MONOTONIC, comparable across processes) as one
text line to ``<dir>/completions-<pid>.txt`` with one ``os.write`` (an ``O_APPEND`` file,
so nothing is lost however the process ends). Cost: a few microseconds per target, against
about 1.5 ms of chainscan's CPU per target.

Being first on ``PYTHONPATH``, it hides any other ``sitecustomize`` from those processes
(Debian's and python.org's Pythons ship none). Without the variable it does nothing. It
touches nothing of chainscan's code on disk; if ``ScanResult`` moves, no times are written and
the runner says so.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from types import ModuleType

_DIR = os.environ.get("CHAINSCAN_BENCH_COMPLETIONS")
_MODULE = "chainscan._models"


def _patch(module: ModuleType) -> None:
    cls = getattr(module, "ScanResult", None)
    if cls is None or _DIR is None:
        return
    fd = os.open(
        os.path.join(_DIR, f"completions-{os.getpid()}.txt"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        0o600,
    )
    original = cls.__init__

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        os.write(fd, b"%.6f\n" % time.monotonic())

    cls.__init__ = __init__


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when ``chainscan._models`` is found, patches it once loaded."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


if _DIR:
    sys.meta_path.insert(0, _Finder())
