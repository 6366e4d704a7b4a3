"""``chainscan show HOST...``: fetch a few chains now and describe them, in this process.

Theory of operation
-------------------
The one-host view answers "what chain does this host serve, is it OK, what would I pin?" and
must feel instant, so it is not a small scan: no trio, no scheduler, no writer process, no
output folder. Each target is fetched with :func:`~chainscan.scan._blocking.fetch_chain` (a
blocking socket driving the scan's sans-IO handshake), one thread per target when there are
several, and its entry is built by the scan's own :class:`~chainscan.analysis._entry.EntryBuilder`
with the run's :class:`~chainscan.analysis._inventory.Inventory`, so ``show`` and the manifest
always agree on every fact, verdict and problem code. ``--save DIR`` hands the same results to
the scan's :class:`~chainscan.output._output.OutputDir`, which writes the usual Kony-named files
and manifest; the entries shown are then the ones it wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._models import BadLine, ScanOptions, ScanResult, Target

if TYPE_CHECKING:
    from ..analysis._verify import TrustStore
    from ..output._output import OutputDir

__all__ = ["Describer", "fetch_all", "in_order", "open_folder", "save"]


def fetch_all(targets: Sequence[Target], options: ScanOptions) -> Iterator[tuple[int, ScanResult]]:
    """Fetch every target, at most ``options.concurrency`` at once; yields ``(index, result)``
    in completion order. Threads are daemons: Ctrl-C in the caller ends the process at once."""
    from ..scan._blocking import fetch_chain
    from ..scan._tls import client_context

    context = client_context()
    if len(targets) == 1:
        yield 0, fetch_chain(targets[0], options, context)
        return
    import queue

    done: queue.SimpleQueue[tuple[int, ScanResult]] = queue.SimpleQueue()
    slots = threading.BoundedSemaphore(max(1, min(options.concurrency, 64)))

    def work(index: int, target: Target) -> None:
        with slots:
            done.put((index, fetch_chain(target, options, context)))

    for index, target in enumerate(targets):
        threading.Thread(target=work, args=(index, target), daemon=True).start()
    for _ in targets:
        yield done.get()


class _Roots:
    """A trust store bundle, indexed by subject; full trust stores made for one chain at a time.

    Loading a store analyses every root (120 for certifi: most of a one-host view's time), but
    a chain can only lead to a root whose subject is the issuer of one of its certificates, and
    the problems look only at roots with the subject of one of them. So the bundle's roots are
    only parsed here (a few ms), and :meth:`store_for` builds a
    :class:`~chainscan.analysis._verify.TrustStore` of the roots that can matter for a chain:
    its verdicts are those of the whole store.
    """

    __slots__ = ("_by_subject", "_parsed", "name", "source")

    def __init__(self, spec: str) -> None:
        import warnings

        from cryptography import x509

        from .._errors import UsageError
        from .._trust_paths import trust_store_path
        from ..analysis._analyze import pem_to_der_list
        from ..analysis._verify import CertCache

        path = trust_store_path(spec)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"--trust-store {spec}: cannot read {path}: {exc.strerror or exc}"
            ) from None
        try:
            ders = pem_to_der_list(data) if b"-----BEGIN CERTIFICATE-----" in data else [data]
        except ValueError as exc:
            raise UsageError(f"--trust-store {spec}: {path}: {exc}") from None
        self.name, self.source = spec, str(path)
        self._parsed = CertCache()
        self._by_subject: dict[bytes, list[bytes]] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old roots' negative serials: still roots
            for der in ders:
                try:
                    subject = x509.load_der_x509_certificate(der).subject.public_bytes()
                except Exception:  # the full store leaves it out too
                    continue
                self._by_subject.setdefault(subject, []).append(der)
        if not self._by_subject:
            raise UsageError(
                f"--trust-store {spec}: {path} holds no certificate that can be parsed"
            )

    def store_for(self, chain: Sequence[bytes]) -> TrustStore:
        import warnings

        from cryptography import x509

        from ..analysis._verify import TrustStore

        names: set[bytes] = set()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for der in chain:
                try:
                    cert = x509.load_der_x509_certificate(der)
                    names.update((cert.subject.public_bytes(), cert.issuer.public_bytes()))
                except Exception:
                    continue
        ders = [der for name in names for der in self._by_subject.get(name, ())]
        if not ders:  # a store cannot be empty; a root unrelated to the chain changes nothing
            ders = [next(iter(self._by_subject.values()))[0]]
        roots = [self._parsed.get(der) for der in ders]
        return TrustStore(name=self.name, source=self.source, roots=roots)


class Describer:
    """Manifest entries of results not saved as files (``file`` and ``dir`` are None).

    Reads the trust store's file once (``UsageError`` if it cannot); then :meth:`entry` per
    result, with the verdicts of the whole store (see :class:`_Roots`).
    """

    __slots__ = ("_options", "_roots")

    def __init__(self, options: ScanOptions) -> None:
        self._options = options
        self._roots = _Roots(options.trust_store)

    def entry(self, item: ScanResult | BadLine) -> dict[str, Any]:
        from ..analysis._entry import EntryBuilder
        from ..analysis._inventory import Inventory

        if isinstance(item, BadLine) or not item.chain:
            from ..analysis._inventory import EMPTY_FIELDS

            return EntryBuilder(None).chainless_entry(item) | EMPTY_FIELDS
        inventory = Inventory(
            self._roots.store_for(item.chain),
            warn_days=self._options.warn_days,
            deployments=self._options.deployments,
        )
        builder = EntryBuilder(inventory)
        entry = builder.entry(builder.analyse(item), [""] * len(item.chain), "")
        entry["dir"] = None
        for cert in entry["chain"]:
            cert["file"] = None
        return entry


def open_folder(folder: Path, options: ScanOptions, *, overwrite: bool) -> OutputDir:
    """The ``--save`` folder, checked and prepared before anything is fetched.

    Raises :class:`~chainscan.ChainscanError` (``OutputError``, ``UsageError``) for a folder it
    cannot use (one that holds a scan, without ``overwrite``) or a trust store it cannot load.
    """
    from ..analysis._inventory import Inventory
    from ..output._output import OutputDir

    output = OutputDir(
        folder,
        cert_format=options.cert_format,
        overwrite=overwrite,
        inventory=Inventory.from_options(options),
    )
    output.prepare()
    return output


def save(
    output: OutputDir, results: Sequence[ScanResult | BadLine], *, run: dict[str, Any]
) -> tuple[Path, list[dict[str, Any]]]:
    """Write ``results`` into a folder from :func:`open_folder`; return manifest.json and the
    entries written, in order."""
    import orjson

    from ..manifest._model import JSONL_NAME

    try:
        output.write(results)
    finally:
        manifest = output.close(run=run, complete=True)
    lines = (output.root / JSONL_NAME).read_bytes().splitlines()
    return manifest, [orjson.loads(line) for line in lines if line.strip()]


def in_order(
    results: Iterator[tuple[int, ScanResult]], count: int, emit: Callable[[int, ScanResult], None]
) -> list[ScanResult]:
    """Call ``emit`` for each result in input order as soon as it and those before it are in."""
    got: dict[int, ScanResult] = {}
    ordered: list[ScanResult] = []
    for index, result in results:
        got[index] = result
        while len(ordered) in got:
            ordered.append(got.pop(len(ordered)))
            emit(len(ordered) - 1, ordered[-1])
    assert len(ordered) == count
    return ordered
