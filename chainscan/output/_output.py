"""The output folder: certificate files, ``manifest.jsonl`` as results arrive, ``manifest.json``.

Theory of operation
-------------------

::

    OUT/
      manifest.jsonl        one JSON object per line, one line per finished target (appended)
      manifest.json         the whole run: header, summary, every entry (written at the end)
      example.com_443/      one folder per target with a chain (see _naming.target_dirname)
        www_example_com.der one file per certificate (see _naming.cert_filename)

``manifest.jsonl`` is the source of truth. A line is appended only after every certificate
file of its target is in place (written in place; the folders of a batch's targets in
parallel by a small thread pool), with a single ``write`` of the whole line; if that write
fails half-way the file is truncated back to the previous line. So whenever the process dies
(crash, kill, full disk), the manifest lists exactly the targets whose files are complete,
plus at most one torn last line, which every reader here ignores and ``--resume`` cuts off
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
import errno
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .._errors import OutputError, UsageError
from .._models import BadLine, CertFacts, CertFormat, ErrorKind, ScanResult, Status
from ..analysis._analyze import analyze_der, der_to_pem
from ._naming import cert_filename, target_dirname

if TYPE_CHECKING:
    from ..analysis._inventory import Inventory
    from ..analysis._verify import Cert

__all__ = [
    "JSONL_NAME",
    "JSON_NAME",
    "SCHEMA",
    "OutputDir",
    "bad_line_entry",
    "entry_for",
    "entry_key",
    "read_manifest_entries",
]

SCHEMA = "chainscan-manifest/1"
JSONL_NAME = "manifest.jsonl"
JSON_NAME = "manifest.json"

_FSYNC_INTERVAL = 5.0
"""Seconds between two ``fsync`` of ``manifest.jsonl`` while results arrive."""
_FILE_WRITERS = 1
"""Threads analysing and creating certificate files beside the caller's. One: more fight over
the GIL (measured on 2 cores, tmpfs: 4 threads cost 60% more CPU per target than 1)."""

_TMP_PREFIX = ".chainscan-"
_TMP_SUFFIX = ".tmp"
_CERT_SUFFIXES = tuple(f".{fmt.value}" for fmt in CertFormat)
_TARGETS_OPEN = b'"targets":['
_TARGETS_CLOSE = b"]}"
_O_BINARY: int = getattr(os, "O_BINARY", 0)

EntryKey = tuple[str, int, str | None, str | None]
""":attr:`Target.key` as read back from a manifest entry."""


# --------------------------------------------------------------------------------------------
# Entries (pure)


def entry_for(
    result: ScanResult, facts: list[CertFacts], files: list[str], dirname: str
) -> dict[str, Any]:
    """The manifest entry of one result (see docs/manifest.md for every field).

    ``facts`` and ``files`` go with ``result.chain``, position by position; ``files`` are
    paths relative to the output folder. ``dirname`` is ignored when the chain is empty.
    """
    target = result.target
    chain = [
        _cert_entry(position, fact, file)
        for position, (fact, file) in enumerate(zip(facts, files, strict=True))
    ]
    timings = result.timings
    return {
        "input": {"source": target.source, "line": target.line, "text": target.raw},
        "host": target.host,
        "port": target.port,
        "sni": target.sni,
        "requested_address": target.address,
        "address": result.address,
        "status": str(result.status),
        "error_kind": None if result.error_kind is None else str(result.error_kind),
        "error": result.error,
        "attempts": result.attempts,
        "elapsed": round(result.elapsed, 3),
        "timings": {
            "resolve": round(timings.resolve, 3),
            "connect": round(timings.connect, 3),
            "handshake": round(timings.handshake, 3),
        },
        "tls_version": result.tls_version,
        "cipher": result.cipher,
        "dir": dirname if result.chain else None,
        "chain_length": max(result.chain_sent, len(result.chain)),
        "chain": chain,
    }


def bad_line_entry(bad: BadLine) -> dict[str, Any]:
    """The manifest entry of an input line that is not a valid target: same fields, no data."""
    return {
        "input": {"source": bad.source, "line": bad.line, "text": bad.raw},
        "host": None,
        "port": None,
        "sni": None,
        "requested_address": None,
        "address": None,
        "status": str(Status.INVALID),
        "error_kind": str(ErrorKind.BAD_INPUT),
        "error": bad.reason,
        "attempts": 0,
        "elapsed": 0.0,
        "timings": {"resolve": 0.0, "connect": 0.0, "handshake": 0.0},
        "tls_version": None,
        "cipher": None,
        "dir": None,
        "chain_length": 0,
        "chain": [],
    }


def _cert_entry(position: int, facts: CertFacts, file: str) -> dict[str, Any]:
    if position == 0:
        role = "leaf"
    elif facts.self_signed:
        role = "root"
    else:
        role = "intermediate"
    return {
        "position": position,
        "file": file,
        "role": role,
        "sha256": facts.sha256,
        "sha1": facts.sha1,
        "size": facts.size,
        "spki_sha256": facts.spki_sha256,
        "pin": facts.pin,
        "subject": facts.subject,
        "issuer": facts.issuer,
        "cn": facts.cn,
        "sans": list(facts.sans),
        "serial": facts.serial,
        "not_before": facts.not_before,
        "not_after": facts.not_after,
        "signature_algorithm": facts.signature_algorithm,
        "key_type": facts.key_type,
        "key_size": facts.key_size,
        "curve": facts.curve,
        "is_ca": facts.is_ca,
        "self_signed": facts.self_signed,
        "parse_error": facts.parse_error,
    }


def entry_key(entry: dict[str, Any]) -> EntryKey | None:
    """:attr:`Target.key` of a scanned target's entry; None for invalid lines and non-entries."""
    host, port = entry.get("host"), entry.get("port")
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        return None
    address, sni = entry.get("requested_address"), entry.get("sni")
    return (
        host,
        port,
        address if isinstance(address, str) else None,
        sni if isinstance(sni, str) else None,
    )


def _bad_line_id(source: object, line: object, text: object) -> tuple[str, int, str] | None:
    if isinstance(source, str) and isinstance(line, int) and isinstance(text, str):
        return (source, line, text)
    return None


def _dumps(entry: dict[str, Any]) -> bytes:
    """One JSON line; strings that are not valid Unicode (lone surrogates) are escaped."""
    try:
        return orjson.dumps(entry)
    except orjson.JSONEncodeError:
        return orjson.dumps(_scrub(entry))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Reading manifests back


def read_manifest_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the entries of a ``manifest.jsonl`` or ``manifest.json``, in order, lazily.

    A ``.jsonl`` file may end with a torn line (a run killed mid-write): an unparsable *last*
    line is skipped; an unparsable line elsewhere raises ``ValueError`` naming it. A
    ``manifest.json`` in the layout :class:`OutputDir` writes is streamed a line at a time;
    any other JSON document is loaded whole and its ``targets`` list returned. Raises
    ``OSError`` if the file cannot be read, ``ValueError`` if it is not a manifest.
    """
    with path.open("rb") as stream:
        first = stream.readline()
        if path.suffix == ".jsonl" or (
            path.suffix != ".json" and not first.rstrip().endswith(_TARGETS_OPEN)
        ):
            yield from _read_jsonl(path, first, stream)
        elif first.rstrip().endswith(_TARGETS_OPEN):
            yield from _read_json_stream(path, stream)
        else:
            yield from _read_json_whole(path, first + stream.read())


def _read_jsonl(path: Path, first: bytes, stream: BinaryIO) -> Iterator[dict[str, Any]]:
    pending: str | None = None  # an error that is fatal only if another line follows
    number = 0
    for line in _chain_lines(first, stream):
        number += 1
        if not line.strip():
            continue
        if pending is not None:
            raise ValueError(pending)
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            pending = f"{path}:{number}: not valid JSON ({exc})"
            continue
        if not isinstance(entry, dict):
            pending = f"{path}:{number}: not a JSON object"
            continue
        yield entry


def _chain_lines(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    if first:
        yield first
    yield from stream


def _read_json_stream(path: Path, stream: BinaryIO) -> Iterator[dict[str, Any]]:
    for number, raw in enumerate(stream, start=2):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if line == _TARGETS_CLOSE:
            return
        try:
            entry = orjson.loads(line.removesuffix(b","))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{path}:{number}: not a JSON object")
        yield entry
    raise ValueError(f"{path}: truncated (no closing ]}}): not written by a finished run")


def _read_json_whole(path: Path, data: bytes) -> Iterator[dict[str, Any]]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    targets = document.get("targets") if isinstance(document, dict) else None
    if not isinstance(targets, list):
        raise ValueError(f"{path}: not a chainscan manifest (no 'targets' list)")
    for entry in targets:
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: an item of 'targets' is not a JSON object")
        yield entry


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
            raise OutputError(f"cannot create output folder {root}: {_reason(exc)}") from None
        if not root.is_dir():
            raise OutputError(f"cannot use {root} as output folder: it is not a folder")
        probe = root / f"{_TMP_PREFIX}probe-{os.getpid()}{_TMP_SUFFIX}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o644)
            try:
                _write_fully(fd, b"probe\n")
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"cannot write in output folder {root}: {_reason(exc)}") from None

    def _remove_previous(self, existing: list[str]) -> None:
        """--overwrite: the previous manifests, and the folders they list (our files only)."""
        source = self.root / (JSONL_NAME if JSONL_NAME in existing else JSON_NAME)
        dirs: set[str] = set()
        with contextlib.suppress(OSError, ValueError):  # unreadable: remove the manifests only
            for entry in read_manifest_entries(source):
                name = entry.get("dir")
                if isinstance(name, str) and _is_plain_name(name):
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
                f"cannot remove the previous scan in {self.root}: {_reason(exc)}"
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
            raise OutputError(f"cannot resume from {self._jsonl}: {_reason(exc)}") from None
        return done

    def _count_entry(self, entry: dict[str, Any], done: set[EntryKey]) -> None:
        status = entry.get("status")
        if isinstance(status, str):
            self._counts[status] += 1
        kind = entry.get("error_kind")
        if isinstance(kind, str):
            self._kinds[kind] += 1
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
                self._jsonl, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_BINARY, 0o644
            )
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise OutputError(f"cannot open {self._jsonl}: {_reason(exc)}") from None
        self._last_sync = time.monotonic()

    # ---- write

    def write(self, items: Sequence[ScanResult | BadLine]) -> None:
        """Write the files and manifest lines of a batch of results, in order.

        Raises ``OutputError`` on the first file-system failure; every line already in
        ``manifest.jsonl`` (and the files it lists) stays valid.
        """
        fd = self._fd
        if fd is None:
            raise RuntimeError("OutputDir.write() before prepare() or after close()")
        # Creating files is metadata I/O that releases the GIL: the targets of a batch write
        # their folders in parallel, then their lines are appended in order, each after its
        # own files are complete.
        pool = self._file_pool()
        pending = [
            pool.submit(self._write_chain, item)
            if isinstance(item, ScanResult) and item.chain
            else None
            for item in items
        ]
        for item, future in zip(items, pending, strict=True):
            if isinstance(item, BadLine):
                bad = (item.source, item.line, item.raw)
                if bad in self._bad_lines:
                    continue  # already listed by the run this one resumes
                entry = self._with_inventory(bad_line_entry(item), item)
            elif future is not None:
                entry = future.result()
            else:
                entry = self._write_chain(item)
            self._append(fd, _dumps(entry) + b"\n")
            self._counts[entry["status"]] += 1
            if entry["error_kind"] is not None:
                self._kinds[entry["error_kind"]] += 1
        if time.monotonic() - self._last_sync >= _FSYNC_INTERVAL:
            self._sync(fd)

    def write_files(self, results: Sequence[ScanResult], *, inline: bool = False) -> list[bytes]:
        """Write the certificate files of ``results``; return their manifest lines, unwritten.

        The worker half of ``--workers`` and of the writer process: it writes the targets'
        folders and hands the lines to the main process, which appends them with
        :meth:`append_lines`. Needs no :meth:`prepare` (the main process prepared the folder).
        ``inline``: in the calling thread only (a process that does nothing else).
        """
        if inline:
            return [_dumps(self._write_chain(result)) + b"\n" for result in results]
        pool = self._file_pool()
        futures = [
            pool.submit(self._write_chain, result) if result.chain else None for result in results
        ]
        return [
            _dumps(future.result() if future is not None else self._write_chain(result)) + b"\n"
            for result, future in zip(results, futures, strict=True)
        ]

    def append_lines(self, lines: Sequence[bytes]) -> list[tuple[str, str | None]]:
        """Append manifest lines made by :meth:`write_files`; return (status, error_kind) each."""
        fd = self._fd
        if fd is None:
            raise RuntimeError("OutputDir.append_lines() before prepare() or after close()")
        counted = []
        for line in lines:
            entry = orjson.loads(line)
            self._append(fd, line)
            status, kind = entry["status"], entry["error_kind"]
            self._counts[status] += 1
            if kind is not None:
                self._kinds[kind] += 1
            counted.append((status, kind))
        if time.monotonic() - self._last_sync >= _FSYNC_INTERVAL:
            self._sync(fd)
        return counted

    def shutdown(self) -> None:
        """Wait for and stop the file-writing threads (``close`` does it too)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _file_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_FILE_WRITERS, thread_name_prefix="chainscan-files")
        return self._pool

    def _with_inventory(self, entry: dict[str, Any], item: ScanResult | BadLine) -> dict[str, Any]:
        if self.inventory is not None:
            entry.update(self.inventory.entry_fields(item))
        return entry

    def _write_chain(self, result: ScanResult) -> dict[str, Any]:
        if not result.chain:
            return self._with_inventory(entry_for(result, [], [], ""), result)
        dirname = target_dirname(result.target)
        folder = os.path.join(self.root, dirname)
        ext = self.cert_format.value
        certs = self._parsed(result.chain)
        if certs is None:
            facts = [analyze_der(der) for der in result.chain]
        else:
            facts = [cert.facts for cert in certs]
        files = []
        try:
            try:
                os.mkdir(folder)
            except FileExistsError:
                if os.path.islink(folder):  # never write (or clear) through it, out of the root
                    os.unlink(folder)
                    os.mkdir(folder)
                else:
                    _clear_folder(Path(folder))  # a leftover of an interrupted run
            taken: set[str] = set()
            for der, fact in zip(result.chain, facts, strict=True):
                name = cert_filename(fact.cn, fact.sha256, taken, ext)
                data = der if self.cert_format is CertFormat.DER else der_to_pem(der)
                _write_file(folder, name, data)
                files.append(f"{dirname}/{name}")
        except OSError as exc:
            raise OutputError(
                f"cannot write {exc.filename or folder}: {_reason(exc)};"
                " the manifest up to the previous target is intact"
            ) from None
        entry = entry_for(result, facts, files, dirname)
        if self.inventory is not None:
            entry.update(self.inventory.entry_fields(result, certs))
        return entry

    def _parsed(self, chain: Sequence[bytes]) -> list[Cert] | None:
        """The inventory's parse of ``chain``, so that each certificate is parsed once for its
        file name, its manifest facts and its trust checks; None without an inventory (then
        ``analyze_der`` gives the facts)."""
        if self.inventory is None:
            return None
        try:
            return self.inventory.load_chain(chain)
        except Exception:  # it never raises; should it, entry_fields reports it as before
            return None

    def _append(self, fd: int, line: bytes) -> None:
        try:
            _write_fully(fd, line)
        except OSError as exc:
            with contextlib.suppress(OSError):  # keep the file made of whole lines
                os.ftruncate(fd, self._size)
            raise OutputError(
                f"cannot write {self._jsonl}: {_reason(exc)};"
                " the manifest up to the previous target is intact"
            ) from None
        self._size += len(line)

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self._jsonl}: {_reason(exc)}") from None
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
                raise OutputError(f"cannot write {self._jsonl}: {_reason(exc)}") from None
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
        tmp = self._json_tmp
        try:
            with tmp.open("wb") as out:
                out.write(_dumps(header)[:-1] + b"," + _TARGETS_OPEN + b"\n")
                separator = b""
                with self._jsonl.open("rb") as lines:
                    for line in lines:
                        if not line.endswith(b"\n"):
                            break  # a torn last line (a write that failed half-way)
                        if line.strip():
                            out.write(separator + line.rstrip(b"\r\n"))
                            separator = b",\n"
                out.write(b"\n" if separator else b"")
                out.write(_TARGETS_CLOSE + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            self._remove_quietly(tmp)
            raise OutputError(
                f"cannot write {target}: {_reason(exc)}; {self._jsonl} lists every result written"
            ) from None
        _fsync_dir(self.root)
        return target

    @staticmethod
    def _remove_quietly(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


# --------------------------------------------------------------------------------------------
# File-system helpers


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def _write_fully(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write is retried, not lost)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_file(folder: str, name: str, data: bytes) -> None:
    """Write ``folder/name`` in place.

    No temporary file and rename: a certificate file only counts once its manifest line is
    written, which happens after this returns, and a folder without its line is cleared
    before it is written again. That halves the metadata operations per certificate.
    """
    final = os.path.join(folder, name)
    fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o644)
    try:
        _write_fully(fd, data)
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


def _is_plain_name(name: str) -> bool:
    """A single path component that cannot lead outside the folder it is joined to."""
    return (
        bool(name)
        and name not in (".", "..")
        and not any(sep in name for sep in ("/", "\\", "\0", ":"))
    )


def _fsync_dir(folder: Path) -> None:
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
