"""File-system helpers shared by every layer that writes: the writer (``output``), ``merge``,
``pins -o``, ``report --html`` and ``bundle``. Plain ``os`` calls, no chainscan imports.

There is one atomic write (:func:`atomic_write`): a temporary file in the destination's folder,
then ``os.replace``, so a reader sees the old file or the new one, never half of one. The
writer's ``manifest.json`` asks for ``durable=True`` (``fsync`` of the file, then of the
folder, so the rename survives a power cut) and names its temporary file itself so that a
leftover is recognised and removed by the next run; the commands take a ``mkstemp`` name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "O_BINARY",
    "atomic_write",
    "current_umask",
    "fsync_dir",
    "is_plain_name",
    "os_reason",
    "write_fully",
]

O_BINARY: int = getattr(os, "O_BINARY", 0)
"""``os.O_BINARY`` where it exists (Windows), else 0."""


def os_reason(exc: OSError) -> str:
    """An ``OSError`` in a few words for a message (``no space left on device``, ...)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def write_fully(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write is retried, not lost)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(
    path: Path,
    content: bytes | Callable[[BinaryIO], None],
    *,
    tmp: Path | None = None,
    durable: bool = False,
) -> None:
    """Replace ``path`` with ``content`` (bytes, or a function writing into the open file).

    ``tmp``: the temporary file to use (default: a fresh ``mkstemp`` name, ``.NAME.*.tmp``, in
    ``path``'s folder). ``durable``: ``fsync`` the file before the rename and the folder after.
    The temporary file is removed on any failure; the ``OSError`` (or interruption) goes on.
    The file gets the mode of the one it replaces, or a new file's mode under the umask.
    """
    if tmp is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp, handle = Path(name), os.fdopen(fd, "wb")
    else:
        handle = tmp.open("wb")
    try:
        with handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                content(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
            # mkstemp makes 0600 files: give the file the mode it replaces, else the umask's
            with contextlib.suppress(OSError, NotImplementedError):
                os.chmod(handle.fileno(), _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def _mode_for(path: Path) -> int:
    """The permission bits a file written to ``path`` should get: those of the file it replaces,
    or those a new file gets under the process's umask (``0o666 & ~umask``)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc``), else by
    setting and restoring it."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def is_plain_name(name: str) -> bool:
    """A single path component that cannot lead outside the folder it is joined to."""
    return (
        bool(name)
        and name not in (".", "..")
        and not any(sep in name for sep in ("/", "\\", "\0", ":"))
    )
