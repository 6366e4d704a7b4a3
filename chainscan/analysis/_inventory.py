"""The inventory fields of a manifest entry: ``trust``, ``hostname``, ``problems``, ``deployments``.

:class:`Inventory` is what the entry builder (``_entry.EntryBuilder``, called by the writer in
its worker thread) calls for each result, after the certificate files are written. It holds the
run's trust store and caches (``_verify``), so each distinct intermediate and root is parsed, and
each signature between two CA certificates checked, once per run however many hosts send them.
The fields are documented in docs/inventory.md. No network: everything here works on the bytes
the scan got.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .._models import WARN_DAYS, BadLine, ScanOptions, ScanResult
from ._completion import Completion, complete, explain
from ._ct import ct_check
from ._deployments import summarize
from ._problems import Problem, enforce, find_problems, role_of
from ._revocation import verdict as revocation_verdict
from ._verify import (
    Cert,
    CertCache,
    TrustStore,
    TrustVerdict,
    Verifier,
    load_trust_store,
    match_hostname,
)

__all__ = [
    "EMPTY_FIELDS",
    "ChainAnalysis",
    "Inventory",
    "Judged",
    "name_checked",
    "requested_name",
]

EMPTY_FIELDS: dict[str, Any] = {
    "trust": None,
    "hostname": None,
    "problems": [],
    "deployments": None,
}
"""The inventory fields of an entry without a chain (failed targets, invalid lines)."""


def requested_name(host: str, sni: str | None) -> str:
    """The name a client asked for: the SNI name, else the host (an IP literal)."""
    return sni or host


def name_checked(sni: str | None, sans: Sequence[str]) -> bool:
    """Whether the hostname is checked: a name was sent as SNI, or (for an IP target without
    SNI) the leaf carries IP subjectAltNames, so it claims to be for addresses. Without either,
    nobody asked for a name, and a mismatch would be noise (docs/inventory.md, Hostname)."""
    return sni is not None or any(san.startswith("IP:") for san in sans)


class ChainAnalysis:
    """Trust, hostname and problems of one served chain."""

    __slots__ = ("certs", "checked", "ct", "matched", "name", "problems", "verdict")

    def __init__(
        self,
        certs: Sequence[Cert],
        verdict: TrustVerdict,
        name: str,
        matched: str | None,
        problems: tuple[Problem, ...],
        ct: dict[str, Any] | None = None,
        checked: bool = True,
    ) -> None:
        self.ct = ct
        """The entry's ``ct`` object (embedded SCTs), or None when there is nothing to say."""
        self.certs = tuple(certs)
        self.checked = checked
        self.verdict = verdict
        self.name = name
        self.matched = matched
        self.problems = problems

    def trust_json(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "store": verdict.store,
            "trusted": verdict.trusted,
            "reason": verdict.reason,
            "error": verdict.error,
            "chain": [
                {
                    "sha256": link.sha256,
                    "spki_sha256": link.spki_sha256,
                    "subject": link.subject,
                    "source": link.source,
                    "position": link.position,
                    "cn": link.cn,
                    "not_after": link.not_after,
                }
                for link in verdict.chain
            ],
        }

    def hostname_json(self) -> dict[str, Any]:
        leaf = self.certs[0].facts if self.certs else None
        parsed = leaf is not None and leaf.spki_sha256 is not None
        return {
            "name": self.name,
            "matches": (self.matched is not None) if parsed and self.checked else None,
            "matched_by": self.matched,
        }

    def cert_json(self) -> list[dict[str, Any]]:
        """Short per-certificate facts, for chains that are not saved as files."""
        out = []
        for position, cert in enumerate(self.certs):
            facts = cert.facts
            out.append(
                {
                    "position": position,
                    "role": role_of(position, facts),
                    "sha256": facts.sha256,
                    "spki_sha256": facts.spki_sha256,
                    "pin": facts.pin,
                    "cn": facts.cn,
                    "subject": facts.subject,
                    "issuer": facts.issuer,
                    "not_after": facts.not_after,
                    "key_type": facts.key_type,
                    "key_size": facts.key_size,
                    "signature_algorithm": facts.signature_algorithm,
                }
            )
        return out


class Judged(NamedTuple):
    """One chain judged: the analysis as sent, and the problems with what came after."""

    analysis: ChainAnalysis
    problems: tuple[Problem, ...]
    """``analysis.problems``, with a fetched intermediate's gap named (see ``_completion``)."""
    revocation: dict[str, Any] | None
    """The manifest's ``revocation`` object, when a CRL or OCSP URL was asked."""
    completion: Completion | None
    """The chain completed with fetched certificates, when something was fetched."""


class Inventory:
    """Builds the inventory fields of manifest entries for one run. Thread-safe.

    ``clock`` gives the validation time (default: now, UTC), read once per entry.
    """

    def __init__(
        self,
        store: TrustStore,
        *,
        warn_days: int = WARN_DAYS,
        deployments: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.warn_days = warn_days
        self.deployments = deployments
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._certs = CertCache()
        self._verifier = Verifier(store)

    @classmethod
    def from_options(cls, options: ScanOptions) -> Inventory:
        """Load ``options.trust_store``; raises :class:`~chainscan.UsageError` if it cannot."""
        return cls(
            load_trust_store(options.trust_store),
            warn_days=options.warn_days,
            deployments=options.deployments,
        )

    def load_chain(self, chain: Sequence[bytes]) -> list[Cert]:
        """A served chain (DER, leaf first) parsed, CA certificates from the run's cache.

        The writer takes the certificates' facts from here and hands the list back to
        :meth:`entry_fields`, so each certificate is parsed once for both. Never raises.
        """
        return [self._certs.get(der, keep=position > 0) for position, der in enumerate(chain)]

    def analyze(
        self,
        chain: Sequence[bytes],
        name: str,
        now: dt.datetime | None = None,
        extra: Sequence[Problem] = (),
        sni_sent: bool = True,
    ) -> ChainAnalysis:
        """Trust, hostname and problems of a served chain (DER, leaf first) for ``name``.

        ``extra``: problems found apart (revocation), judged with the rest. ``sni_sent``
        False: ``name`` is an IP target's address and no SNI was sent, so the hostname is
        checked only if the leaf carries IP SANs (:func:`name_checked`).
        """
        return self._analyze_certs(self.load_chain(chain), name, now, extra, sni_sent)

    def _analyze_certs(
        self,
        certs: Sequence[Cert],
        name: str,
        now: dt.datetime | None = None,
        extra: Sequence[Problem] = (),
        sni_sent: bool = True,
    ) -> ChainAnalysis:
        moment = self._clock() if now is None else now
        verdict = self._verifier.verify(certs, name, moment)
        leaf = certs[0].facts if certs else None
        checked = sni_sent or leaf is None or name_checked(None, leaf.sans)
        matched = match_hostname(name, leaf.sans) if leaf is not None else None
        ct_problems, ct = (
            ct_check(
                certs[0].cert,
                not_before=leaf.not_before,
                not_after=leaf.not_after,
                label=certs[0].label,
                public=self.store.public,
                trusted=verdict.trusted,
            )
            if leaf is not None
            else ([], None)
        )
        problems = find_problems(
            [c.facts for c in certs],
            verdict,
            name=name,
            matched=matched,
            now=moment,
            warn_days=self.warn_days,
            extra=[*ct_problems, *extra],
            check_name=checked,
        )
        return ChainAnalysis(
            certs, enforce(verdict, problems), name, matched, problems, ct, checked=checked
        )

    def entry_fields(
        self, item: ScanResult | BadLine, certs: Sequence[Cert] | None = None
    ) -> dict[str, Any]:
        """``trust``, ``hostname``, ``problems`` and ``deployments`` of one manifest entry.

        ``certs``: ``item.chain`` as :meth:`load_chain` parsed it, if the caller has it.
        """
        if isinstance(item, BadLine) or not item.chain:
            return dict(EMPTY_FIELDS)
        now = self._clock()
        name = requested_name(item.target.host, item.target.sni)
        try:
            judged = self.judge(item, name, now, certs)
            analysis = judged.analysis
            fields = {
                "trust": analysis.trust_json(),
                "hostname": analysis.hostname_json(),
                "problems": [p.to_json() for p in judged.problems],
                "deployments": self._deployments(item, name, now) if self.deployments else None,
            }
            if analysis.ct is not None:  # only leaves with SCTs, or under a public root
                fields["ct"] = analysis.ct
            if judged.revocation is not None:  # only when a CRL or OCSP URL was asked
                fields["revocation"] = judged.revocation
            if judged.completion is not None:  # only with fetches: other entries stay as they were
                fields["completion"] = judged.completion.to_json()
            return fields
        except Exception as exc:  # a bug of ours or a dependency's: never lose the entry
            reason = f"internal error while analysing: {type(exc).__name__}: {exc}"
            trust = {"store": self.store.name, "trusted": False, "reason": reason[:300]}
            return {**EMPTY_FIELDS, "trust": {**trust, "error": None, "chain": []}}

    def judge(
        self,
        item: ScanResult,
        name: str,
        now: dt.datetime | None = None,
        certs: Sequence[Cert] | None = None,
    ) -> Judged:
        """The analysis of ``item.chain`` (it must have one) with what the scan learnt after
        the handshake: the revocation answers and the fetched intermediates. What
        :meth:`entry_fields` writes, and the library API's ``inventory=True`` returns.
        ``now``: the validation time (default: the clock's)."""
        now = self._clock() if now is None else now
        revocation, revocation_problems = (
            revocation_verdict(
                item.revocation,
                now,
                (certs[0] if certs else self._certs.get(item.chain[0], keep=False)).label,
            )
            if item.revocation
            else (None, [])
        )
        sent = item.target.sni is not None
        if certs is None:
            analysis = self.analyze(item.chain, name, now, revocation_problems, sent)
        else:
            analysis = self._analyze_certs(certs, name, now, revocation_problems, sent)
        if not item.fetched:
            return Judged(analysis, tuple(analysis.problems), revocation, None)
        completion = complete(
            analysis.certs,
            item.fetched,
            verifier=self._verifier,
            cache=self._certs,
            name=name,
            now=now,
            problems=analysis.problems,
        )
        problems = explain(analysis.problems, completion, analysis.verdict)
        return Judged(analysis, tuple(problems), revocation, completion)

    def _deployments(self, result: ScanResult, name: str, now: dt.datetime) -> dict[str, Any]:
        def describe(chain: tuple[bytes, ...]) -> Mapping[str, Any]:
            analysis = self.analyze(chain, name, now)
            return {
                "certs": analysis.cert_json(),
                "trusted": analysis.verdict.trusted,
                "trust_chain_spki": [
                    link.spki_sha256 for link in analysis.verdict.chain if link.spki_sha256
                ],
                "problems": sorted({p.code for p in analysis.problems}),
            }

        return summarize(result.deployments, describe)
