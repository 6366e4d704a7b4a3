"""The one manifest reader: ``manifest.jsonl`` or ``manifest.json`` -> entries, streamed.

Theory of operation
-------------------

Both files hold the same entries (docs/manifest.md). ``manifest.jsonl`` is one JSON object per
line and may end with a torn line (a run killed mid-write): an unparsable *last* line is
skipped, an unparsable line elsewhere is an error naming it. ``manifest.json`` is written in a
fixed layout (the header and ``"targets":[`` on the first line, one entry per line, then
``]}``) so it is streamed a line at a time too; any other JSON document (one a person or
another tool wrote) is loaded whole and its ``targets`` list used. Memory stays flat for
manifests of millions of entries, whichever file is given.

:func:`read_entries` gives typed :class:`~chainscan.manifest._model.ManifestEntry` values, what
every command reads. :func:`read_manifest_entries` gives the decoded dicts: for the callers that
copy entries verbatim (``merge``) or need one raw field (``--overwrite`` reads ``dir``).
:func:`read_header` reads the header of a ``manifest.json`` (its first line) without the
entries. Nothing here imports the writer. The one reader of a manifest that does not come
through here is the writer's own ``--resume`` read-back (``OutputDir._read_back``): it works on
byte offsets, to cut a torn last line before appending, and so reads the raw lines itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ._model import MANIFEST_NAMES, ManifestEntry

__all__ = [
    "TARGETS_CLOSE",
    "TARGETS_OPEN",
    "find_manifest",
    "read_entries",
    "read_header",
    "read_manifest_entries",
]

TARGETS_OPEN = b'"targets":['
"""How the first line of ``manifest.json`` ends: the header, then the entries' list."""
TARGETS_CLOSE = b"]}"
"""The last line of ``manifest.json``."""


def find_manifest(folder: Path) -> Path | None:
    """The manifest of an output folder (``manifest.jsonl``, else ``manifest.json``), or None."""
    for name in MANIFEST_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def read_entries(path: Path) -> Iterator[ManifestEntry]:
    """:func:`read_manifest_entries`, typed. Same errors."""
    for entry in read_manifest_entries(path):
        yield ManifestEntry.from_json(entry)


def read_header(path: Path) -> dict[str, Any] | None:
    """The header (``schema``, ``tool``, ``run``, ``summary``) of a ``manifest.json``, from its
    first line; None if the file cannot be read or does not start with a JSON header."""
    try:
        with path.open("rb") as stream:
            first = stream.readline().rstrip()
    except OSError:
        return None
    try:
        header = orjson.loads(first.removesuffix(TARGETS_OPEN).removesuffix(b",") + b"}")
    except orjson.JSONDecodeError:
        return None
    return header if isinstance(header, dict) else None


def read_manifest_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the entries of a ``manifest.jsonl`` or ``manifest.json``, in order, lazily.

    A ``.jsonl`` file may end with a torn line (a run killed mid-write): an unparsable *last*
    line is skipped; an unparsable line elsewhere raises ``ValueError`` naming it. A
    ``manifest.json`` in the layout the writer writes is streamed a line at a time; any other
    JSON document is loaded whole and its ``targets`` list returned. Raises ``OSError`` if the
    file cannot be read, ``ValueError`` if it is not a manifest.
    """
    with path.open("rb") as stream:
        first = stream.readline()
        if path.suffix == ".jsonl" or (
            path.suffix != ".json" and not first.rstrip().endswith(TARGETS_OPEN)
        ):
            yield from _read_jsonl(path, first, stream)
        elif first.rstrip().endswith(TARGETS_OPEN):
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
        if line == TARGETS_CLOSE:
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
