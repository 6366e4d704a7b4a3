"""Which folders ``chainscan merge`` joins, and which shards of a split are not among them.

``merge --shards FOLDER`` takes a *shared folder*: the scan folders one level down in it, as
the pods of a Kubernetes indexed Job or the hosts of a cron split leave them
(``/scans/shards/shard-0``, ``/scans/shards/shard-1``, ...), ordered by the shard their
``manifest.json`` names (``run.shard``, ``K/N``), then by name. Entries that are not scan
folders (a pod's folder still empty, a stray file) are passed over, and the merge's own output
folder is never taken. (A ``DIR`` given without ``--shards`` must itself be a scan folder, so a
mistyped path to a parent folder is refused rather than merged whole.)

When every source is a shard of one split (``run.shard`` is ``K/N`` with the same N), the
shards no source holds are reported: a merge started before every pod had finished, or
pointed at the wrong folder, must not pass for a whole scan. A source with no
``manifest.json`` yet (a shard still running, or killed) names no shard, so its shard counts
as missing too; the merge is then incomplete anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._errors import UsageError
from ..manifest._model import JSON_NAME, JSONL_NAME
from ..manifest._reader import find_manifest, read_header

__all__ = ["missing_shards", "scan_folders", "shard_label"]


def shard_label(folder: Path) -> tuple[int, int] | None:
    """``(K, N)`` from ``run.shard`` in ``folder/manifest.json``; None if it names no shard."""
    header = read_header(folder / JSON_NAME)
    run = header.get("run") if header is not None else None
    shard = run.get("shard") if isinstance(run, dict) else None
    if not isinstance(shard, str):
        return None
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit()):
        return None
    k, n = int(index), int(count)
    return (k, n) if 1 <= k <= n else None


def _order(folder: Path) -> tuple[int, str]:
    label = shard_label(folder)
    return (label[0] if label is not None else 0, folder.name)


def scan_folders(shared: Path, out: Path) -> list[Path]:
    """The scan folders in ``shared`` (one level down), in order (see the module docstring).

    Raises ``UsageError`` if it holds none.
    """
    skip = out.resolve()
    found = []
    if shared.is_dir():
        found = [
            folder
            for folder in shared.iterdir()
            if folder.is_dir() and folder.resolve() != skip and find_manifest(folder)
        ]
    if not found:
        raise UsageError(
            f"{shared} holds no folder with a chainscan scan in it"
            f" (a {JSONL_NAME} or {JSON_NAME} one level down)"
        )
    return sorted(found, key=_order)


def missing_shards(folders: Sequence[Path]) -> list[str]:
    """``K/N`` of each shard of the split ``folders`` come from that none of them holds; empty
    when a finished folder is not a shard or the shards are of different splits (nothing to
    check). A folder without ``manifest.json`` (unfinished) holds no shard that counts."""
    labels = [shard_label(folder) for folder in folders]
    unsharded = any(
        label is None and read_header(folder / JSON_NAME) is not None
        for folder, label in zip(folders, labels, strict=True)
    )
    counts = {label[1] for label in labels if label is not None}
    if unsharded or len(counts) != 1:
        return []
    (count,) = counts
    held = {label[0] for label in labels if label is not None}
    return [f"{k}/{count}" for k in range(1, count + 1) if k not in held]
