"""Join the output folders of several shards (``--shard K/N``) into one scan folder.

Theory of operation
-------------------
Each source folder's manifest is read back entry by entry (``manifest.jsonl``, the source of
truth, else ``manifest.json``), sources in the order given. An entry whose target was already
taken from an earlier source (same :attr:`Target.key`; invalid lines by source, line number
and text) is dropped, so the result has no duplicates whatever overlap the shards had. For each
kept entry, its certificate files are copied to the same relative paths in the new folder
first, then its line is appended with :meth:`OutputDir.append_lines`, and :meth:`OutputDir.close`
writes ``manifest.json``: the same writer, the same crash-safety and the same layout as a scan.
Entries are copied verbatim (timings, trust and problems included).

``shared`` folders (``--shards``) hold scan folders one level down (the shards of a Kubernetes
indexed Job or of a cron split): each stands for them, after the sources given one by one
(``_merge_sources.scan_folders``).

The new folder must not exist or be empty, as for a scan without ``--overwrite``. The merged
manifest is ``complete`` only if every source's ``manifest.json`` says its run was complete
and, when the sources are the shards of one split, none of its shards is missing
(``_merge_sources.missing_shards``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._errors import OutputError, UsageError
from .._files import is_plain_name
from ..manifest._model import JSON_NAME, JSONL_NAME, entry_key
from ..manifest._reader import find_manifest, read_header, read_manifest_entries
from ..output._output import OutputDir
from ..scan._targets import Deduplicator
from ._merge_sources import missing_shards, scan_folders

__all__ = ["MergeReport", "merge_outputs"]

_APPEND_BATCH = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReport:
    """What :func:`merge_outputs` did."""

    manifest: Path
    entries: int
    """Entries written to the merged manifest."""
    duplicates: int
    """Entries dropped because an earlier source already listed their target."""
    complete: bool
    """Every source's run was complete, and no shard of their split is missing."""
    summary: dict[str, Any]
    sources: tuple[Path, ...] = ()
    """The scan folders merged, in order (each ``shared`` folder replaced by those it holds)."""
    missing_shards: tuple[str, ...] = ()
    """``K/N`` of the shards of the sources' split that no source holds."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _source_manifest(folder: Path) -> Path:
    manifest = find_manifest(folder)
    if manifest is not None:
        return manifest
    raise UsageError(f"{folder} holds no chainscan scan (no {JSONL_NAME} or {JSON_NAME})")


def _source_complete(folder: Path) -> bool:
    header = read_header(folder / JSON_NAME)
    run = header.get("run") if header is not None else None
    return isinstance(run, dict) and run.get("complete") is True


def _identity(entry: dict[str, Any]) -> tuple[str | int | None, ...] | None:
    key = entry_key(entry)
    if key is not None:
        return key
    given = entry.get("input")
    if isinstance(given, dict):
        return ("invalid", given.get("source"), given.get("line"), given.get("text"))
    return None


def _plain_relative(path: object) -> str | None:
    """``dir/name`` as the manifest writes it, or None if it could lead out of the folder."""
    if not isinstance(path, str):
        return None
    parts = path.split("/")
    return path if len(parts) == 2 and all(is_plain_name(part) for part in parts) else None


def _copy_files(entry: dict[str, Any], source: Path, out: Path) -> None:
    chain = entry.get("chain")
    for cert in chain if isinstance(chain, list) else []:
        relative = _plain_relative(cert.get("file") if isinstance(cert, dict) else None)
        if relative is None:
            raise OutputError(f"{source}: an entry lists an unsafe file path: {cert!r}")
        target = out / relative
        try:
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source / relative, target)
        except OSError as exc:
            raise OutputError(
                f"cannot copy {exc.filename or source / relative}: {exc.strerror or exc}"
            ) from None


def merge_outputs(
    out: Path,
    sources: Sequence[Path],
    *,
    shared: Sequence[Path] = (),
    argv: Sequence[str] = (),
) -> MergeReport:
    """Join the scan folders ``sources``, then those in each of the ``shared`` folders, into
    ``out`` (new or empty); see the module docstring.

    Raises ``UsageError`` for a source that holds no scan (a shared folder: none) or a
    non-empty ``out``, and
    ``OutputError`` for file-system failures.
    """
    out = Path(out)
    folders = [Path(source) for source in sources]
    for folder in shared:
        folders.extend(scan_folders(Path(folder), out))
    if not folders:
        raise UsageError("give at least one folder to merge")
    resolved = {Path(source).resolve() for source in folders}
    if out.resolve() in resolved:
        raise UsageError(f"{out} is one of the folders to merge: write the result elsewhere")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"{out} is not empty: merge into a new or empty folder")
    missing = missing_shards(folders)
    manifests = [_source_manifest(source) for source in folders]
    started, started_wall = _utc_now(), time.monotonic()
    output = OutputDir(out)
    output.prepare()
    seen = Deduplicator()
    entries = duplicates = 0
    try:
        for manifest in manifests:
            folder = manifest.parent
            pending: list[bytes] = []
            try:
                for entry in read_manifest_entries(manifest):
                    identity = _identity(entry)
                    if identity is not None:
                        before = len(seen)
                        seen.add_key(identity)
                        if len(seen) == before:
                            duplicates += 1
                            continue
                    _copy_files(entry, folder, out)
                    pending.append(orjson.dumps(entry) + b"\n")
                    if len(pending) >= _APPEND_BATCH:
                        output.append_lines(pending)
                        entries += len(pending)
                        pending = []
            except (OSError, ValueError) as exc:
                raise UsageError(f"{manifest}: cannot read the manifest: {exc}") from None
            output.append_lines(pending)
            entries += len(pending)
        complete = not missing and all(_source_complete(m.parent) for m in manifests)
        error = None
    except BaseException as exc:
        complete, error = False, str(exc)
        raise
    finally:
        run = {
            "started": started,
            "finished": _utc_now(),
            "seconds": round(time.monotonic() - started_wall, 3),
            "input": None,
            "output": str(out),
            "argv": list(argv),
            "merged": [os.fspath(source) for source in folders],
            "error": error,
        }
        path = output.close(run=run, complete=complete)
    return MergeReport(
        manifest=path,
        entries=entries,
        duplicates=duplicates,
        complete=complete,
        summary=output.summary,
        sources=tuple(folders),
        missing_shards=tuple(missing),
    )
