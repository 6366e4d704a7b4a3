"""Android trust anchors for private CAs: ``chainscan pins --format android -o FILE``.

Android checks trust before pins: a host whose chain no public store trusts fails every
connection, pinned or not, unless its ``<domain-config>`` trusts the CA:
``<trust-anchors><certificates src="@raw/NAME"/></trust-anchors>``, with the certificate in
``res/raw/NAME.der``. When the configuration goes to ``res/xml/...`` the certificate goes to
the sibling ``res/raw/`` folder; elsewhere, next to the file. The CA is the topmost one the
server sent (``_pins.private_ca``); the file the scan saved is checked against the manifest's
SHA-256 before it is copied. Resource names are what Android allows: lower case ``a-z``,
digits and ``_``, starting with a letter.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

from .._files import atomic_write
from ..analysis._analyze import pem_to_der_list
from ._pins import PinPlan, private_ca

__all__ = ["raw_folder", "save_private_cas"]

_MAX_FILE = 1024 * 1024


def raw_folder(xml_path: Path) -> Path:
    """``res/raw`` beside ``res/xml``; else the configuration's own folder."""
    folder = xml_path.parent
    return folder.parent / "raw" if folder.name == "xml" else folder


def _resource_name(cn: str | None, sha256: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", (cn or "").lower()).strip("_")[:40]
    return f"ca_{base}_{sha256[:8]}" if base else f"ca_{sha256[:12]}"


def _der(root: Path, file: str, sha256: str | None) -> bytes:
    path = (root / file).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{file}: outside the scan folder {root}; refused")
    with path.open("rb") as handle:
        data = handle.read(_MAX_FILE + 1)
    if b"-----BEGIN CERTIFICATE-----" in data:
        ders = pem_to_der_list(data)
        data = ders[0] if ders else data
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: does not match the manifest's sha256 (changed since the scan?)")
    return data


def save_private_cas(plan: PinPlan, xml_path: Path) -> tuple[PinPlan, tuple[Path, ...]]:
    """Save each private CA of the pinned hosts into the raw folder; the plan now names them.

    Raises ``ValueError`` or ``OSError`` when a certificate cannot be read or written.
    """
    anchors: list[tuple[str, str]] = []
    files: dict[str, bytes] = {}
    for host in plan.pinned:
        found = private_ca(host)
        if found is None:
            continue
        obs, cert = found
        if cert.file is None:
            continue
        der = _der(Path(obs.root), cert.file, cert.sha256)
        name = _resource_name(cert.cn, hashlib.sha256(der).hexdigest())
        files[name] = der
        anchors.append((host.host, name))
    if not anchors:
        return plan, ()
    folder = raw_folder(xml_path)
    written = []
    for name, der in files.items():
        path = folder / f"{name}.der"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, der)
        written.append(path)
    options = replace(plan.options, trust_anchors=tuple(anchors))
    return replace(plan, options=options), tuple(written)
