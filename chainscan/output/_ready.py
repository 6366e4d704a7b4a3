"""Ready results: a target's manifest line and certificate files, made where it was scanned.

Theory of operation
-------------------
Turning a scan result into output has two halves of very different cost. *Planning* (analysing
every certificate, verifying the chain, finding its problems, naming the files, building the
manifest line: about 0.5 ms of CPU per target) is pure. *Writing* (a folder, one file per
certificate, one appended line) is a few system calls on the output folder. :func:`plan_chain`
is the first half, ``OutputDir`` the second, either at once (a local run:
``OutputDir._write_chain``) or later and elsewhere: with ``--dask`` the worker that scanned a
batch plans it (:class:`ReadyMaker`) and sends back a :class:`ReadyBatch`, which the client
writes (``OutputDir.write_ready``). One planner for both modes keeps the folders byte for byte
identical.

A :class:`ReadyBatch` is made for transport and for a cheap client:

* plain lists of ``bytes``, ``str`` and ``int`` (fast to pickle and unpickle, no model objects);
* each distinct file content once per batch (``blobs``): the intermediates and roots that many
  targets of a batch share cross the network once, and the client writes the same ``bytes``
  object into each folder;
* the manifest lines ready to append, and each target's ``(status, error_kind)`` beside them,
  so the client neither parses JSON nor looks at a certificate.

What the planner needs from the run (certificate format, trust store, ``--warn-days``,
``--deployments``) travels as a :class:`ReadySpec`. The trust store goes as the bytes the client
read, with its name and path as the client knows them: a worker on another machine judges
against the client's roots (its own ``certifi`` or ``system`` store may differ, a path may not
exist there) and names the store as a local run does. Each worker process builds the
:class:`~chainscan.analysis._entry.EntryBuilder` of a spec once (:meth:`ReadySpec.builder`),
so the CA certificates' cache lasts across its batches.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._models import CertFormat, ScanOptions, ScanResult
from .._trust_paths import read_trust_store
from ..analysis._analyze import der_to_pem
from ..analysis._entry import EntryBuilder
from ..analysis._inventory import Inventory
from ..analysis._verify import TrustStore
from ._fetched import plan_fetched
from ._naming import cert_filename, target_dirname

__all__ = [
    "PlannedChain",
    "ReadyBatch",
    "ReadyMaker",
    "ReadySpec",
    "dump_line",
    "dumps",
    "plan_chain",
]

Files = tuple[tuple[str, bytes], ...]
"""(file name, content) pairs, in the order they are written."""


def dump_line(entry: dict[str, Any]) -> bytes:
    """One manifest line (newline included); strings that are not valid Unicode (lone
    surrogates) are escaped."""
    return dumps(entry) + b"\n"


def dumps(entry: dict[str, Any]) -> bytes:
    """``entry`` as compact JSON (see :func:`dump_line`)."""
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


@dataclass(frozen=True, slots=True)
class PlannedChain:
    """What a result with a chain puts in the output folder, decided before any I/O."""

    entry: dict[str, Any]
    """Its manifest entry (files named, ``completion`` files filled in)."""
    dirname: str
    """Its folder, relative to the output folder (``_naming.target_dirname``)."""
    files: Files
    """The chain as sent, one file per certificate, in the folder."""
    fetched: Files
    """Fetched certificates (AIA), in the folder's ``fetched/`` (``_fetched``); often none."""


def plan_chain(builder: EntryBuilder, result: ScanResult, cert_format: CertFormat) -> PlannedChain:
    """Analyse ``result`` (it has a chain) and plan its folder and entry. Pure."""
    analysed = builder.analyse(result)
    dirname = target_dirname(result.target)
    ext = cert_format.value
    taken: set[str] = set()
    files = []
    paths = []
    for der, fact in zip(result.chain, analysed.facts, strict=True):
        name = cert_filename(fact.cn, fact.sha256, taken, ext)
        files.append((name, der if cert_format is CertFormat.DER else der_to_pem(der)))
        paths.append(f"{dirname}/{name}")
    entry = builder.entry(analysed, paths, dirname)
    fetched: Files = ()
    if "completion" in entry:  # fetched intermediates: saved apart, in fetched/
        fetched = plan_fetched(entry["completion"], result.fetched, dirname, cert_format)
    return PlannedChain(entry, dirname, tuple(files), fetched)


@dataclass(frozen=True, slots=True)
class ReadySpec:
    """What planning needs from the run, in a form a worker on another machine can use."""

    cert_format: CertFormat
    trust_name: str
    """``--trust-store`` as given (``certifi``, ``system`` or a path): the store's name."""
    trust_source: str
    """The file the client read the roots from."""
    trust_data: bytes
    """Its content (PEM bundle or one DER certificate)."""
    warn_days: int
    deployments: bool

    @classmethod
    def from_options(cls, options: ScanOptions) -> ReadySpec:
        """Read the trust store here (raises ``UsageError`` as a local run does)."""
        path, data = read_trust_store(options.trust_store)
        return cls(
            cert_format=CertFormat(options.cert_format),
            trust_name=options.trust_store,
            trust_source=str(path),
            trust_data=data,
            warn_days=options.warn_days,
            deployments=options.deployments,
        )

    def builder(self) -> EntryBuilder:
        """This process's entry builder for the spec (built once, then shared)."""
        return _builder(self)


@functools.lru_cache(maxsize=4)
def _builder(spec: ReadySpec) -> EntryBuilder:
    store = TrustStore.from_pem(spec.trust_data, name=spec.trust_name, source=spec.trust_source)
    return EntryBuilder(Inventory(store, warn_days=spec.warn_days, deployments=spec.deployments))


@dataclass(frozen=True, slots=True)
class ReadyBatch:
    """Finished targets, planned by the worker that scanned them, for the client to write.

    Position ``i`` of ``lines`` and ``counted`` is the ``i``-th target; ``folders`` lists the
    targets that have files, in the same order.
    """

    lines: list[bytes] = field(default_factory=list)
    """Manifest lines, newline included."""
    counted: list[tuple[str, str | None]] = field(default_factory=list)
    """``(status, error_kind)`` of each line."""
    folders: list[tuple[int, str, list[tuple[str, int]], list[tuple[str, int]]]] = field(
        default_factory=list
    )
    """``(target position, folder, files, fetched files)``; a file is ``(name, blob index)``."""
    blobs: list[bytes] = field(default_factory=list)
    """Distinct file contents."""

    def __len__(self) -> int:
        return len(self.lines)


class ReadyMaker:
    """Plans results into one :class:`ReadyBatch` (the worker side of ``--dask``)."""

    __slots__ = ("_blob_index", "_builder", "_cert_format", "batch")

    def __init__(self, spec: ReadySpec) -> None:
        self._builder = spec.builder()
        self._cert_format = spec.cert_format
        self._blob_index: dict[bytes, int] = {}
        self.batch = ReadyBatch()

    def add(self, results: Sequence[ScanResult]) -> None:
        """Plan ``results`` into the batch, in order."""
        batch = self.batch
        for result in results:
            if result.chain:
                planned = plan_chain(self._builder, result, self._cert_format)
                entry = planned.entry
                batch.folders.append(
                    (
                        len(batch.lines),
                        planned.dirname,
                        self._blobs(planned.files),
                        self._blobs(planned.fetched),
                    )
                )
            else:
                entry = self._builder.chainless_entry(result)
            batch.lines.append(dump_line(entry))
            batch.counted.append((entry["status"], entry["error_kind"]))

    def _blobs(self, files: Files) -> list[tuple[str, int]]:
        index = self._blob_index
        blobs = self.batch.blobs
        out = []
        for name, data in files:
            position = index.get(data)
            if position is None:
                position = index[data] = len(blobs)
                blobs.append(data)
            out.append((name, position))
        return out
