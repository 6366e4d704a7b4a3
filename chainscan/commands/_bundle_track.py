"""What earlier ``chainscan bundle`` runs wrote into an app, so ``--prune`` removes only that.

``bundle`` keeps ``.chainscan-bundle.json`` at the top of the app folder (outside
``resources/``, so it is never packaged): every file it wrote with the SHA-256 of what it
wrote, the ``infoplist_configuration.json`` keys it set, and the hosts it put in
``public_keys.json``. A later run compares with what it writes now:

* a tracked file the current selection no longer writes is *stale*: with ``--prune`` it is
  removed, provided it still holds exactly what chainscan wrote; without, a warning names it;
* a tracked file that changed since (a person edited it) is never touched, only named;
* files chainscan never wrote are not in the record, so they are never touched at all.

Pure apart from :func:`load`, which reads the record (a missing or unreadable record is an
empty one: nothing is stale, nothing is removed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["TRACK_FILE", "Stale", "Track", "load", "stale_files"]

TRACK_FILE = ".chainscan-bundle.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    files: Mapping[str, str] = field(default_factory=dict)
    """Path relative to the app -> SHA-256 (hex) of what chainscan wrote there."""
    settings: tuple[str, ...] = ()
    """``infoplist_configuration.json`` keys chainscan set to true."""
    public_key_hosts: tuple[str, ...] = ()
    """Hosts chainscan wrote into ``public_keys.json``."""

    def to_bytes(self) -> bytes:
        value = {
            "written_by": "chainscan bundle",
            "files": dict(sorted(self.files.items())),
            "settings": list(self.settings),
            "public_key_hosts": list(self.public_key_hosts),
        }
        return (json.dumps(value, indent=4) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stale:
    path: str
    state: Literal["prunable", "changed", "gone"]
    sha256: str


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def load(app: Path) -> Track:
    try:
        value = json.loads((app / TRACK_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return Track()
    if not isinstance(value, dict):
        return Track()
    files = value.get("files")
    return Track(
        files={
            k: v
            for k, v in (files.items() if isinstance(files, dict) else ())
            if isinstance(k, str) and isinstance(v, str) and ".." not in Path(k).parts
        },
        settings=_strings(value.get("settings")),
        public_key_hosts=_strings(value.get("public_key_hosts")),
    )


def stale_files(app: Path, track: Track, current: Iterable[str]) -> list[Stale]:
    """Tracked files the current run does not write, and whether each may be removed."""
    wanted = set(current)
    out = []
    for rel, digest in sorted(track.files.items()):
        if rel in wanted:
            continue
        path = app / rel
        if not path.is_file():
            out.append(Stale(path=rel, state="gone", sha256=digest))
            continue
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        state: Literal["prunable", "changed"] = "prunable" if actual == digest else "changed"
        out.append(Stale(path=rel, state=state, sha256=digest))
    return out
