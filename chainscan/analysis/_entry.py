"""Manifest entries from results: the analysis of a chain and the entry's content. Pure.

Theory of operation
-------------------

The writer (``output._output.OutputDir``) only names and writes: for each result it asks
:meth:`EntryBuilder.analyse` for the chain's facts, names the certificate files after them
(``output._naming``), writes the files, and hands the relative paths back to
:meth:`EntryBuilder.entry`, which returns the entry as a dict ready for ``orjson`` (the
writer's hot path stays free of model objects; ``manifest._model`` is the typed read side, and
``tests/test_manifest.py`` checks that one reads what the other writes).

With an :class:`~chainscan.analysis._inventory.Inventory`, each certificate is parsed once for
its facts, its file name and its trust checks (``Inventory.load_chain``), and the entry gets the
inventory fields (``trust``, ``hostname``, ``problems``, ``deployments``); without one, the
facts come from ``analyze_der`` (cached) and the entry has the scan fields only. The field
layout is docs/manifest.md's; key order is part of the byte-identical output.

``inspect`` builds its per-certificate fields with :func:`cert_entry` too, so a file on disk
reads exactly as the manifest would describe it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._models import BadLine, CertFacts, ErrorKind, ScanResult, Status
from ..manifest._model import cert_role
from ._analyze import analyze_der

if TYPE_CHECKING:
    from ._inventory import Inventory
    from ._verify import Cert

__all__ = ["AnalysedChain", "EntryBuilder", "bad_line_entry", "cert_entry", "entry_for"]


@dataclass(frozen=True, slots=True)
class AnalysedChain:
    """A result's chain, analysed: what the writer needs to name its files."""

    result: ScanResult
    facts: tuple[CertFacts, ...]
    """One per certificate of ``result.chain``, in order."""
    certs: Sequence[Cert] | None
    """The inventory's parse of the chain (None without an inventory)."""


class EntryBuilder:
    """Analyses results and builds their manifest entries. Thread-safe, no I/O."""

    __slots__ = ("inventory",)

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory = inventory
        """Adds ``trust``, ``hostname``, ``problems``, ``deployments`` to entries (None: not)."""

    def analyse(self, result: ScanResult) -> AnalysedChain:
        """The facts of every certificate of ``result.chain`` (parsed once; see module doc)."""
        certs = self._parsed(result.chain)
        if certs is None:
            facts = tuple(analyze_der(der) for der in result.chain)
        else:
            facts = tuple(cert.facts for cert in certs)
        return AnalysedChain(result=result, facts=facts, certs=certs)

    def entry(self, analysed: AnalysedChain, files: Sequence[str], dirname: str) -> dict[str, Any]:
        """The entry of an analysed result whose files are ``files`` in folder ``dirname``."""
        entry = entry_for(analysed.result, analysed.facts, files, dirname)
        if self.inventory is not None:
            entry.update(self.inventory.entry_fields(analysed.result, analysed.certs))
        return entry

    def chainless_entry(self, item: ScanResult | BadLine) -> dict[str, Any]:
        """The entry of a result without a chain (a failed target) or of an invalid line."""
        entry = bad_line_entry(item) if isinstance(item, BadLine) else entry_for(item, (), (), "")
        if self.inventory is not None:
            entry.update(self.inventory.entry_fields(item))
        return entry

    def _parsed(self, chain: Sequence[bytes]) -> list[Cert] | None:
        if self.inventory is None:
            return None
        try:
            return self.inventory.load_chain(chain)
        except Exception:  # it never raises; should it, entry_fields reports it as before
            return None


def entry_for(
    result: ScanResult, facts: Sequence[CertFacts], files: Sequence[str], dirname: str
) -> dict[str, Any]:
    """The manifest entry of one result (see docs/manifest.md for every field).

    ``facts`` and ``files`` go with ``result.chain``, position by position; ``files`` are
    paths relative to the output folder. ``dirname`` is ignored when the chain is empty.
    """
    target = result.target
    chain = [
        cert_entry(fact, position=position, file=file)
        for position, (fact, file) in enumerate(zip(facts, files, strict=True))
    ]
    timings = result.timings
    entry = {
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
    if target.protocol is not None:
        return _with_protocol(entry, target.protocol)
    return entry


def _with_protocol(entry: dict[str, Any], protocol: str) -> dict[str, Any]:
    """``entry`` with ``protocol`` after ``port``: only STARTTLS targets have the field, so
    the entries of direct-TLS targets stay exactly as they were."""
    out: dict[str, Any] = {}
    for name, value in entry.items():
        out[name] = value
        if name == "port":
            out["protocol"] = protocol
    return out


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


def cert_entry(facts: CertFacts, *, position: int, file: str | None) -> dict[str, Any]:
    """One item of an entry's ``chain``: the certificate at ``position`` of a served chain."""
    return {
        "position": position,
        "file": file,
        "role": cert_role(self_signed=facts.self_signed, position=position),
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
