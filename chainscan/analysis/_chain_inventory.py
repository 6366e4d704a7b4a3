"""The inventory of one served chain as typed values, for the library API (``inventory=True``).

The writer puts ``trust``, ``hostname`` and ``problems`` into each manifest entry as JSON
(``_inventory.Inventory.entry_fields``). A library caller wants the same judgement as values it
can test in code, without a manifest: :class:`ChainInventory`, attached to a
:class:`~chainscan.ScanResult` as ``result.inventory`` when the scan was opened with
``inventory=True``. Both come from the same ``analysis._inventory.Inventory`` (one trust store
and certificate cache per scan), so the API and the manifest never disagree. Pure: no I/O apart
from loading the trust store once, when the scan is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._models import BadLine, CertFacts, ScanOptions, ScanResult
from ._inventory import Inventory, requested_name
from ._problems import Problem
from ._verify import TrustVerdict

__all__ = ["ChainInventory", "HostnameCheck", "Inventorizer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostnameCheck:
    """Does the leaf match the name a client asked for (the manifest's ``hostname``)."""

    name: str
    """The name asked for: the SNI name, else the host (an IP literal)."""
    matches: bool | None
    """Whether a subjectAltName of the leaf covers ``name``; None if the leaf is unparsable or
    the name is not checked (see ``hostname`` in docs/inventory.md)."""
    matched_by: str | None
    """The subjectAltName entry that matched, e.g. ``DNS:*.example.com``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainInventory:
    """Trust, hostname and problems of one served chain (see docs/inventory.md)."""

    certs: tuple[CertFacts, ...]
    """Facts of each certificate as served, leaf first (what ``analyze_der`` gives)."""
    trust: TrustVerdict
    """The chain as sent, verified against ``ScanOptions.trust_store``: trusted or not, why,
    the chain built (the manifest's ``trust``; a fetched completion is not part of it)."""
    hostname: HostnameCheck
    problems: tuple[Problem, ...]
    """Each with a stable ``code`` (``expired``, ``incomplete-chain``, ...) and a message; as in
    the manifest, revocation answers and fetched intermediates (``ScanOptions.fetch``,
    ``revocation``) are taken into account."""


class Inventorizer:
    """Adds :class:`ChainInventory` to results for one scan. Thread-safe (``Inventory`` is).

    Construction loads ``options.trust_store``: :class:`~chainscan.UsageError` if it cannot.
    """

    __slots__ = ("_inventory",)

    def __init__(self, options: ScanOptions) -> None:
        self._inventory = Inventory.from_options(options)

    def __call__(self, item: ScanResult | BadLine) -> ScanResult | BadLine:
        """``item`` with ``inventory`` set; unchanged if it has no chain (failed, bad line)."""
        if isinstance(item, BadLine) or not item.chain:
            return item
        name = requested_name(item.target.host, item.target.sni)
        try:
            judged = self._inventory.judge(item, name)
        except Exception as exc:  # a bug of ours or a dependency's: never lose the result
            reason = f"internal error while analysing: {type(exc).__name__}: {exc}"[:300]
            verdict = TrustVerdict(
                store=self._inventory.store.name,
                trusted=False,
                reason=reason,
                error=None,
                chain=(),
                path=(),
                end="unparsable",
            )
            check = HostnameCheck(name=name, matches=None, matched_by=None)
            return replace(
                item,
                inventory=ChainInventory(certs=(), trust=verdict, hostname=check, problems=()),
            )
        analysis = judged.analysis
        hostname = analysis.hostname_json()  # the manifest's own rule, word for word
        check = HostnameCheck(
            name=hostname["name"], matches=hostname["matches"], matched_by=hostname["matched_by"]
        )
        return replace(
            item,
            inventory=ChainInventory(
                certs=tuple(cert.facts for cert in analysis.certs),
                trust=analysis.verdict,
                hostname=check,
                problems=judged.problems,
            ),
        )
