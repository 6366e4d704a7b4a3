"""Small helpers about the machine: finding or installing programs, child process hygiene."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
from collections.abc import Sequence

from ._requirements import SETUP_COMMAND, apt_install

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the harness dies, however it dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def find_program(name: str, packages: Sequence[str], candidates: Sequence[str] = ()) -> str:
    """Path of ``name`` (PATH, then ``candidates``); else apt-get installs the first package
    of ``packages`` that installs. RuntimeError if none does."""

    def lookup() -> str | None:
        return shutil.which(name) or next((p for p in candidates if os.access(p, os.X_OK)), None)

    found = lookup()
    if found:
        return found
    for package in packages:
        print(f"benchmarks: {name} not found", file=sys.stderr)
        apt_install([package])
        found = lookup()
        if found:
            return found
    raise RuntimeError(
        f"{name} is not installed and apt-get could not install {list(packages)}: "
        f"run `apt-get install -y {packages[0]}` as root, or `{SETUP_COMMAND}`"
    )
