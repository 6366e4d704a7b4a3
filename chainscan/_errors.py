"""chainscan's exceptions: one root, split by who is at fault.

Failures of *targets* are never exceptions: they are :class:`~chainscan.ScanResult` values with an
:class:`~chainscan.ErrorKind`. Exceptions are for the run itself: bad usage, an output folder that
cannot be written, an input file that cannot be read.
"""

from __future__ import annotations


class ChainscanError(Exception):
    """Root of every exception chainscan raises on purpose."""


class UsageError(ChainscanError):
    """The user asked for something that cannot work (bad option value, missing file)."""


class OutputError(ChainscanError):
    """The output folder cannot be created or written (permissions, full disk, not empty)."""


class InputError(ChainscanError):
    """The input file cannot be read at all (missing, unreadable, a directory)."""
