"""The output folder: certificate files, ``manifest.jsonl`` as results arrive, ``manifest.json``.

The writer only names and writes. For each result, ``analysis._entry.EntryBuilder`` gives the
chain's facts (``analyse``) and, once the files are named and written, the entry (``entry``);
the manifest's file names and layout come from ``manifest._model`` / ``manifest._reader``, the
file-system primitives (``os_reason``, ``atomic_write``, ...) from ``chainscan._files``.

Theory of operation
-------------------

::

    OUT/
      manifest.jsonl        one JSON object per line, one line per finished target (appended)
      manifest.json         the whole run: header, summary, every entry (written at the end)
      example.com_443/      one folder per target with a chain (see _naming.target_dirname)
        www_example_com.der one file per certificate (see _naming.cert_filename)

``manifest.jsonl`` is the source of truth. A line is appended only after every certificate file
of its target is in place (written in place; the folders of a batch's targets in parallel by a
small thread pool), with a single ``write`` of the whole line (of a batch's whole lines, when a
child process or a Dask worker made them: ``append_lines``, ``write_ready``); if that write
fails half-way the file is truncated back to where it began (for a batch, the lines are then
written one at a time: those that fit are kept). So whenever the process dies (crash, kill,
full disk), the manifest lists exactly the targets whose files are complete, plus at most a
torn last line, which every reader (``manifest._reader``) ignores and ``--resume`` cuts off
before appending.
The file is flushed to the OS after each line and ``fsync``-ed every few seconds and at the
end; certificate files are not ``fsync``-ed one by one (it would cost more than the scan), so
after a power cut a listed file may be empty: its ``sha256`` in the manifest tells.

``manifest.json`` is written by :meth:`OutputDir.close` by *streaming* ``manifest.jsonl``
into a temporary file, then renamed over the old one: it is never half-written and never
needs all entries in memory. Its layout is fixed so it can be read back a line at a time too:
the header and ``"targets":[`` on the first line, one entry per line, then ``]}``.

Resuming (``--resume``) reads ``manifest.jsonl`` back once: the keys of the targets it lists
(host, port, requested address, SNI) are skipped by the scheduler, and the input lines it lists
as invalid (by source, line number and text) are not listed twice. Failed targets count as
done: they are not retried. A target folder that exists when its target is written is a
leftover of an interrupted run (no manifest line was written for it): its certificate files
are removed first. ``--overwrite`` removes the previous manifests and the folders the previous
manifest lists, and in those folders only the files chainscan writes (``*.der``, ``*.pem``
and its temporary files).

:class:`OutputDir` is not thread-safe: ``prepare``, ``write`` (from one worker thread at a
time) and ``close`` are called one after another, never concurrently.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .._errors import OutputError, UsageError
from .._files import O_BINARY, atomic_write, is_plain_name, os_reason, write_fully
from .._models import BadLine, CertFormat, ScanResult, Status
from ..analysis._entry import EntryBuilder
from ..manifest._model import JSON_NAME, JSONL_NAME, SCHEMA, EntryKey, entry_key
from ..manifest._reader import TARGETS_CLOSE, TARGETS_OPEN, read_manifest_entries
from ._fetched import save_fetched
from ._ready import ReadyBatch, dump_line, plan_chain
from ._ready import dumps as _dumps

if TYPE_CHECKING:
    from ..analysis._inventory import Inventory

__all__ = ["OutputDir", "dump_line"]

_FSYNC_INTERVAL = 5.0
"""Seconds between two ``fsync`` of ``manifest.jsonl`` while results arrive."""
_FILE_WRITERS = 1
"""Threads analysing and creating certificate files beside the caller's. One: more fight over
the GIL (measured on 2 cores, tmpfs: 4 threads cost 60% more CPU per target than 1)."""

_COPY_CHUNK = 1 << 20
"""Bytes of ``manifest.jsonl`` copied into ``manifest.json`` per write, about."""

_TMP_PREFIX = ".chainscan-"
_TMP_SUFFIX = ".tmp"
_CERT_SUFFIXES = tuple(f".{fmt.value}" for fmt in CertFormat)


def _bad_line_id(source: object, line: object, text: object) -> tuple[str, int, str] | None:
    if isinstance(source, str) and isinstance(line, int) and isinstance(text, str):
        return (source, line, text)
    return None


# --------------------------------------------------------------------------------------------
# The output folder


class OutputDir:
    """One scan's output folder: :meth:`prepare`, then :meth:`write` batches, then :meth:`close`.

    Every file-system failure is raised as :class:`~chainscan.OutputError` naming the path.
    """

    def __init__(
        self,
        root: Path,
        *,
        cert_format: CertFormat = CertFormat.DER,
        resume: bool = False,
        overwrite: bool = False,
        inventory: Inventory | None = None,
    ) -> None:
        if resume and overwrite:
            raise UsageError("--resume and --overwrite exclude each other: choose one")
        self.root = Path(root)
        self.cert_format = CertFormat(cert_format)
        self.resume = resume
        self.overwrite = overwrite
        self._jsonl = self.root / JSONL_NAME
        self._fd: int | None = None
        self._size = 0
        """Bytes of complete lines in manifest.jsonl: where to truncate after a torn write."""
        self._last_sync = 0.0
        self._counts: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()
        self._bad_lines: set[tuple[str, int, str]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self.inventory = inventory
        """Adds ``trust``, ``hostname``, ``problems``, ``deployments`` to entries (None: not)."""
        self._entry_builder = EntryBuilder(inventory)
        self.echo: Callable[[bytes], None] | None = None
        """Called with each manifest line once it is appended (``--jsonl``: to stdout)."""

    # ---- prepare

    def prepare(self) -> set[EntryKey]:
        """Make the folder ready before any connection; return the keys already done.

        Creates the folder (and its parents) and checks that a file can be created in it.
        Refuses (``OutputError``) a folder holding a previous manifest unless ``resume`` (read
        it back: return the :attr:`Target.key` of every target it lists, and cut a torn last
        line) or ``overwrite`` (remove it, with the folders it lists). The set is empty
        otherwise.
        """
        self._create_root()
        existing = [name for name in (JSONL_NAME, JSON_NAME) if (self.root / name).exists()]
        done: set[EntryKey] = set()
        if existing and self.overwrite:
            self._remove_previous(existing)
        elif existing and self.resume:
            if JSONL_NAME not in existing:
                raise OutputError(
                    f"cannot resume in {self.root}: it has {JSON_NAME} but no {JSONL_NAME};"
                    " use --overwrite to replace it"
                )
            done = self._read_back()
        elif existing:
            raise OutputError(
                f"{self.root} already holds a scan ({' and '.join(existing)}):"
                " use --resume to continue it or --overwrite to replace it"
            )
        self._remove_quietly(self._json_tmp)
        self._open_jsonl()
        return done

    def _create_root(self) -> None:
        root = self.root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(f"cannot use {root} as output folder: it is a file") from None
        except OSError as exc:
            raise OutputError(f"cannot create output folder {root}: {os_reason(exc)}") from None
        if not root.is_dir():
            raise OutputError(f"cannot use {root} as output folder: it is not a folder")
        probe = root / f"{_TMP_PREFIX}probe-{os.getpid()}{_TMP_SUFFIX}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o644)
            try:
                write_fully(fd, b"probe\n")
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"cannot write in output folder {root}: {os_reason(exc)}") from None

    def _remove_previous(self, existing: list[str]) -> None:
        """--overwrite: the previous manifests, and the folders they list (our files only)."""
        source = self.root / (JSONL_NAME if JSONL_NAME in existing else JSON_NAME)
        dirs: set[str] = set()
        with contextlib.suppress(OSError, ValueError):  # unreadable: remove the manifests only
            for entry in read_manifest_entries(source):
                name = entry.get("dir")
                if isinstance(name, str) and is_plain_name(name):
                    dirs.add(name)
        try:
            for name in sorted(dirs):
                folder = self.root / name
                if folder.is_dir() and not folder.is_symlink():
                    _clear_folder(folder)
                    with contextlib.suppress(OSError):  # not empty: something of the user's
                        folder.rmdir()
            for name in existing:
                (self.root / name).unlink()
        except OSError as exc:
            raise OutputError(
                f"cannot remove the previous scan in {self.root}: {os_reason(exc)}"
            ) from None

    def _read_back(self) -> set[EntryKey]:
        """--resume: keys and bad lines already listed, counts; cut a torn last line."""
        done: set[EntryKey] = set()
        good_end = 0  # offset just after the last complete, valid line
        offset = 0
        pending: str | None = None
        try:
            with self._jsonl.open("rb") as stream:
                for number, line in enumerate(stream, start=1):
                    offset += len(line)
                    if not line.strip():
                        if line.endswith(b"\n") and pending is None:
                            good_end = offset
                        continue
                    if pending is not None:
                        raise OutputError(pending)
                    try:
                        entry = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        entry = None
                    if not isinstance(entry, dict) or not line.endswith(b"\n"):
                        pending = (
                            f"cannot resume: {self._jsonl} line {number} is not a valid entry;"
                            " use --overwrite to start again"
                        )
                        continue
                    good_end = offset
                    self._count_entry(entry, done)
            if good_end < offset:
                os.truncate(self._jsonl, good_end)
        except OSError as exc:
            raise OutputError(f"cannot resume from {self._jsonl}: {os_reason(exc)}") from None
        return done

    def _count_entry(self, entry: dict[str, Any], done: set[EntryKey]) -> None:
        status = entry.get("status")
        self._count(status, entry.get("error_kind"))
        if status == Status.INVALID:
            given = entry.get("input")
            if isinstance(given, dict):
                bad = _bad_line_id(given.get("source"), given.get("line"), given.get("text"))
                if bad is not None:
                    self._bad_lines.add(bad)
            return
        key = entry_key(entry)
        if key is not None:
            done.add(key)

    def _open_jsonl(self) -> None:
        try:
            self._fd = os.open(
                self._jsonl, os.O_WRONLY | os.O_CREAT | os.O_APPEND | O_BINARY, 0o644
            )
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise OutputError(f"cannot open {self._jsonl}: {os_reason(exc)}") from None
        self._last_sync = time.monotonic()

    def _count(self, status: object, kind: object) -> None:
        """Count one entry into :attr:`summary` (every entry point: write, append, resume)."""
        if isinstance(status, str):
            self._counts[status] += 1
        if isinstance(kind, str):
            self._kinds[kind] += 1

    # ---- write

    def write(
        self,
        items: Sequence[ScanResult | BadLine],
        written: Callable[[int], None] | None = None,
    ) -> None:
        """Write the files and manifest lines of a batch of results, in order; ``written(1)``
        after each result's line is appended (not after an invalid input line's).

        Raises ``OutputError`` on the first file-system failure; every line already in
        ``manifest.jsonl`` (and the files it lists) stays valid.
        """
        fd = self._open_fd("write")
        new = [
            item
            for item in items
            if not (
                isinstance(item, BadLine) and (item.source, item.line, item.raw) in self._bad_lines
            )
        ]  # a bad line already listed by the run this one resumes is not listed twice
        for item, entry in zip(new, self._entries(new), strict=True):
            self._append(fd, dump_line(entry))
            self._count(entry["status"], entry["error_kind"])
            if written is not None and isinstance(item, ScanResult):
                written(1)
        self._sync_now_and_then(fd)

    def write_files(self, results: Sequence[ScanResult], *, inline: bool = False) -> list[bytes]:
        """Write the certificate files of ``results``; return their manifest lines, unwritten.

        The worker half of ``--workers`` and of the writer process: it writes the targets'
        folders and hands the lines to the main process, which appends them with
        :meth:`append_lines`. Needs no :meth:`prepare` (the main process prepared the folder).
        ``inline``: in the calling thread only (a process that does nothing else).
        """
        return list(self.file_lines(results, inline=inline))

    def file_lines(self, results: Sequence[ScanResult], *, inline: bool = False) -> Iterator[bytes]:
        """:meth:`write_files`, a line at a time: each as soon as its target's files are."""
        for entry in self._entries(results, inline=inline):
            yield dump_line(entry)

    def append_lines(self, lines: Sequence[bytes]) -> list[tuple[str, str | None]]:
        """Append manifest lines made by :meth:`write_files`; return (status, error_kind) each."""
        fd = self._open_fd("append_lines")
        counted = []
        for line in lines:
            entry = orjson.loads(line)
            counted.append((entry["status"], entry["error_kind"]))
        self._append_lines(fd, lines, counted)
        self._sync_now_and_then(fd)
        return counted

    def shutdown(self) -> None:
        """Wait for and stop the file-writing threads (``close`` does it too)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _open_fd(self, method: str) -> int:
        if self._fd is None:
            raise RuntimeError(f"OutputDir.{method}() before prepare() or after close()")
        return self._fd

    def _entries(
        self, items: Sequence[ScanResult | BadLine], *, inline: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The entries of ``items`` in order, each after its files are complete.

        Creating files is metadata I/O that releases the GIL: the targets of a batch write
        their folders in parallel (the caller's thread and the pool's), and each entry is
        yielded once its own files are written.
        """
        pending: list[Future[dict[str, Any]] | None] = [None] * len(items)
        if not inline:
            pool = self._file_pool()
            pending = [
                pool.submit(self._write_chain, item)
                if isinstance(item, ScanResult) and item.chain
                else None
                for item in items
            ]
        for item, future in zip(items, pending, strict=True):
            if future is not None:
                yield future.result()
            elif isinstance(item, ScanResult) and item.chain:
                yield self._write_chain(item)
            else:
                yield self._entry_builder.chainless_entry(item)

    def _file_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_FILE_WRITERS, thread_name_prefix="chainscan-files")
        return self._pool

    def _write_chain(self, result: ScanResult) -> dict[str, Any]:
        """Name and write the files of a result with a chain; its entry."""
        planned = plan_chain(self._entry_builder, result, self.cert_format)
        self._write_folder(planned.dirname, planned.files, planned.fetched)
        return planned.entry

    def _write_folder(
        self,
        dirname: str,
        files: Sequence[tuple[str, bytes]],
        fetched: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Create a target's folder (clearing a leftover) and write its files (see
        :class:`~chainscan.output._ready.PlannedChain`)."""
        folder = os.path.join(self.root, dirname)
        try:
            try:
                os.mkdir(folder)
            except FileExistsError:
                if os.path.islink(folder):  # never write (or clear) through it, out of the root
                    os.unlink(folder)
                    os.mkdir(folder)
                else:
                    _clear_folder(Path(folder))  # a leftover of an interrupted run
            for name, data in files:
                _write_file(folder, name, data)
            if fetched:
                save_fetched(folder, fetched, _write_file)
        except OSError as exc:
            raise OutputError(
                f"cannot write {exc.filename or folder}: {os_reason(exc)};"
                " the manifest up to the previous target is intact"
            ) from None

    def write_ready(self, batch: ReadyBatch) -> list[tuple[str, str | None]]:
        """Write a batch planned elsewhere (``--dask``): its folders, then its lines in one
        append; return (status, error_kind) of each line.

        Raises ``OutputError`` on the first file-system failure, after appending the lines of
        the targets before the one that failed (as :meth:`write` does).
        """
        fd = self._open_fd("write_ready")
        blobs = batch.blobs
        done = len(batch.lines)
        failure: OutputError | None = None
        for position, dirname, files, fetched in batch.folders:
            try:
                self._write_folder(
                    dirname,
                    [(name, blobs[blob]) for name, blob in files],
                    [(name, blobs[blob]) for name, blob in fetched],
                )
            except OutputError as exc:
                done, failure = position, exc
                break
        counted = batch.counted[:done]
        self._append_lines(fd, batch.lines[:done], counted)
        self._sync_now_and_then(fd)
        if failure is not None:
            raise failure
        return counted

    def _append(self, fd: int, line: bytes) -> None:
        try:
            write_fully(fd, line)
        except OSError as exc:
            with contextlib.suppress(OSError):  # keep the file made of whole lines
                os.ftruncate(fd, self._size)
            raise OutputError(
                f"cannot write {self._jsonl}: {os_reason(exc)};"
                " the manifest up to the previous target is intact"
            ) from None
        self._size += len(line)
        if self.echo is not None:
            self.echo(line)

    def _append_lines(
        self, fd: int, lines: Sequence[bytes], counted: Sequence[tuple[str, str | None]]
    ) -> None:
        """Append ``lines`` (whose files are complete) in one write and count them. Should that
        write fail, it is cut back and the lines go one at a time: as many as fit are kept and
        counted, as with :meth:`write`, then the error is raised."""
        if not lines:
            return
        data = b"".join(lines)
        try:
            write_fully(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            for line, (status, kind) in zip(lines, counted, strict=True):
                self._append(fd, line)
                self._count(status, kind)
            return
        self._size += len(data)
        for status, kind in counted:
            self._count(status, kind)
        if self.echo is not None:
            for line in lines:
                self.echo(line)

    def _sync_now_and_then(self, fd: int) -> None:
        if time.monotonic() - self._last_sync >= _FSYNC_INTERVAL:
            self._sync(fd)

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self._jsonl}: {os_reason(exc)}") from None
        self._last_sync = time.monotonic()

    # ---- close

    @property
    def summary(self) -> dict[str, Any]:
        """Counts of every entry in ``manifest.jsonl`` (a resumed run's included)."""
        counts = self._counts
        return {
            "targets": sum(counts.values()),
            "ok": counts[Status.OK],
            "failed": counts[Status.FAILED],
            "invalid": counts[Status.INVALID],
            "by_error_kind": dict(sorted(self._kinds.items())),
        }

    @property
    def _json_tmp(self) -> Path:
        return self.root / f"{_TMP_PREFIX}{JSON_NAME}{_TMP_SUFFIX}"

    def close(self, *, run: dict[str, Any], complete: bool) -> Path:
        """Finish ``manifest.jsonl`` and write ``manifest.json`` atomically; return its path.

        ``run`` (start and end times, options, ...) goes into the header with ``complete``
        added. The entries are copied from ``manifest.jsonl`` a line at a time.
        """
        self.shutdown()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            except OSError as exc:
                raise OutputError(f"cannot write {self._jsonl}: {os_reason(exc)}") from None
            finally:
                os.close(fd)
        from .. import __version__  # here: the package imports this module

        header = {
            "schema": SCHEMA,
            "tool": {"name": "chainscan", "version": __version__},
            "run": {**run, "complete": complete},
            "summary": self.summary,
        }
        target = self.root / JSON_NAME

        def copy_entries(out: BinaryIO) -> None:
            out.write(_dumps(header)[:-1] + b"," + TARGETS_OPEN + b"\n")
            separator = b""
            with self._jsonl.open("rb") as lines:
                while chunk := lines.readlines(_COPY_CHUNK):  # about 1 MB: one write each
                    if not chunk[-1].endswith(b"\n"):
                        chunk.pop()  # a torn last line (a write that failed half-way)
                    kept = [line.rstrip(b"\r\n") for line in chunk if line.strip()]
                    if kept:
                        out.write(separator + b",\n".join(kept))
                        separator = b",\n"
            out.write(b"\n" if separator else b"")
            out.write(TARGETS_CLOSE + b"\n")

        try:
            atomic_write(target, copy_entries, tmp=self._json_tmp, durable=True)
        except OSError as exc:
            raise OutputError(
                f"cannot write {target}: {os_reason(exc)}; {self._jsonl} lists every result written"
            ) from None
        return target

    @staticmethod
    def _remove_quietly(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


# --------------------------------------------------------------------------------------------
# File-system helpers


def _write_file(folder: str, name: str, data: bytes) -> None:
    """Write ``folder/name`` in place.

    No temporary file and rename: a certificate file only counts once its manifest line is
    written, which happens after this returns, and a folder without its line is cleared
    before it is written again. That halves the metadata operations per certificate.
    """
    final = os.path.join(folder, name)
    fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o644)
    try:
        write_fully(fd, data)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(final)  # leave no torn file behind
        if exc.filename is None:
            exc.filename = final
        raise
    os.close(fd)


def _clear_folder(folder: Path) -> None:
    """Remove the files chainscan writes in a target folder (certificates, temporary files)."""
    with os.scandir(folder) as entries:
        for item in entries:
            ours = item.name.endswith(_CERT_SUFFIXES) or (
                item.name.startswith(_TMP_PREFIX) and item.name.endswith(_TMP_SUFFIX)
            )
            if ours and not item.is_dir(follow_symlinks=False):
                os.unlink(item.path)
