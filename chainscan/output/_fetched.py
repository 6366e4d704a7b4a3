"""Fetched certificates (AIA) saved apart from the chain as sent: ``DIR/<target>/fetched/``.

The chain as sent stays byte-exact in the target's folder; certificates chainscan fetched to
complete it go one level down, in ``fetched/``, named like the others (subject CN, else the
fingerprint), and each is listed with its ``file`` in the entry's ``completion.fetched``. Only
what the completed chain uses, or what a fetch returned, is written: no response body that is
not a certificate ever reaches the disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from .._models import CertFormat, Fetch
from ..analysis._analyze import analyze_der, der_to_pem
from ._naming import cert_filename

__all__ = ["FETCHED_DIR", "plan_fetched", "save_fetched"]

FETCHED_DIR = "fetched"


def plan_fetched(
    completion: dict[str, Any],
    fetched: Sequence[Fetch],
    dirname: str,
    cert_format: CertFormat,
) -> tuple[tuple[str, bytes], ...]:
    """The files of ``fetched/`` (name, content), each fetched certificate once; fills in
    ``file`` in ``completion``. Pure: the writer creates the folder and writes them."""
    ders = {hashlib.sha256(der).hexdigest(): der for fetch in fetched for der in fetch.certs}
    if not ders:
        return ()
    ext = cert_format.value
    taken: set[str] = set()
    files: dict[str, str] = {}
    planned = []
    for sha256, der in ders.items():
        name = cert_filename(analyze_der(der).cn, sha256, taken, ext)
        planned.append((name, der if cert_format is CertFormat.DER else der_to_pem(der)))
        files[sha256] = f"{dirname}/{FETCHED_DIR}/{name}"
    for item in completion.get("fetched", []):
        for cert in item.get("certs", []):
            cert["file"] = files.get(cert["sha256"])
    return tuple(planned)


def save_fetched(
    folder: str,
    files: Sequence[tuple[str, bytes]],
    write_file: Callable[[str, str, bytes], None],
) -> None:
    """Write the files :func:`plan_fetched` named into ``folder/fetched/``."""
    if not files:
        return
    sub = os.path.join(folder, FETCHED_DIR)
    if os.path.islink(sub):
        os.unlink(sub)  # never write through a link, out of the output folder
    os.makedirs(sub, exist_ok=True)
    for name, data in files:
        write_file(sub, name, data)
