"""The chain completed with fetched intermediates (AIA), judged as browsers judge it. Pure.

Theory of operation
-------------------
The scan layer (``scan._aia``) fetches the caIssuers URLs of a chain that stops short and puts
what came back in ``ScanResult.fetched``; no network is touched here. This module verifies the
chain as sent *plus* every fetched certificate (the verifier picks what it needs, in any order)
and gives two verdicts side by side:

* ``trust`` (unchanged): the chain as sent, which is what Android apps, OkHttp, curl, Python,
  Go and Java see: they never fetch a missing intermediate.
* ``completion.trusted``: the chain completed from AIA, which is what browsers see (Chrome,
  Safari and Edge fetch caIssuers; Firefox has the intermediate preloaded and usually agrees).

It also rewrites the problem that named the gap so it says what to fix: ``incomplete-chain``
names the certificate the server should add and the URL it came from; and an
``untrusted-root`` that was in fact a missing intermediate (a sent CA whose issuer was not
sent, which nothing offline can tell from an unknown root) becomes ``incomplete-chain`` once
the completed chain is trusted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from .._models import Fetch
from ._problems import Problem, enforce
from ._verify import Cert, CertCache, ChainLink, TrustVerdict, Verifier

__all__ = ["Completion", "complete", "explain"]

_SHAPE_CODES = frozenset({"incomplete-chain", "untrusted-root", "untrusted"})
"""Problems of the chain as sent that completion can cure."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """The completed chain's verdict and what was fetched."""

    verdict: TrustVerdict
    links: tuple[tuple[ChainLink, str | None], ...]
    """The built chain, each link with its source (``sent``, ``fetched``, ``store``) and, for a
    fetched certificate, the URL it came from."""
    fetched: tuple[Fetch, ...]
    certs: dict[str, Cert]
    """Fetched certificates by SHA-256."""
    added: tuple[tuple[Cert, str], ...]
    """Fetched certificates the completed, trusted chain uses: what the server should send."""

    def to_json(self) -> dict[str, Any]:
        used = {cert.sha256 for cert, _url in self.added}
        return {
            "trusted": self.verdict.trusted,
            "reason": self.verdict.reason,
            "chain": [
                {
                    "sha256": link.sha256,
                    "spki_sha256": link.spki_sha256,
                    "subject": link.subject,
                    "source": link.source,
                    "position": link.position,
                    "url": url,
                }
                for link, url in self.links
            ],
            "fetched": [
                {
                    "url": fetch.url,
                    "purpose": fetch.purpose,
                    "for_sha256": fetch.for_sha256,
                    "error": fetch.error,
                    "certs": [
                        {
                            "sha256": self.certs[sha].sha256,
                            "subject": self.certs[sha].facts.subject,
                            "spki_sha256": self.certs[sha].facts.spki_sha256,
                            "used": sha in used,
                            "file": None,
                        }
                        for sha in _digests(fetch)
                    ],
                }
                for fetch in self.fetched
            ],
        }


def _digests(fetch: Fetch) -> list[str]:
    return [hashlib.sha256(der).hexdigest() for der in fetch.certs]


def complete(
    sent: Sequence[Cert],
    fetched: Sequence[Fetch],
    *,
    verifier: Verifier,
    cache: CertCache,
    name: str,
    now: dt.datetime,
    problems: Sequence[Problem],
) -> Completion:
    """The verdict of ``sent`` completed with every certificate ``fetched`` gave."""
    extra: dict[str, Cert] = {}
    origin: dict[str, str] = {}
    for fetch in fetched:
        for der in fetch.certs:
            cert = cache.get(der)
            if cert.sha256 not in extra:
                extra[cert.sha256] = cert
                origin[cert.sha256] = fetch.url
    sent_digests = {cert.sha256 for cert in sent}
    pool = list(sent) + [c for sha, c in extra.items() if sha not in sent_digests]
    verdict = verifier.verify(pool, name, now)
    links = []
    for link in verdict.chain:
        from_fetch = link.position is not None and link.position >= len(sent)
        if from_fetch:
            link = dataclasses.replace(link, source="fetched", position=None)
        links.append((link, origin.get(link.sha256) if from_fetch else None))
    verdict = dataclasses.replace(verdict, chain=tuple(link for link, _url in links))
    curable = [p for p in problems if p.code not in _SHAPE_CODES]
    verdict = enforce(verdict, curable)
    added = tuple(
        (extra[link.sha256], url) for link, url in links if url is not None and verdict.trusted
    )
    return Completion(
        verdict=verdict, links=tuple(links), fetched=tuple(fetched), certs=extra, added=added
    )


def explain(
    problems: Sequence[Problem], completion: Completion, as_sent: TrustVerdict
) -> tuple[Problem, ...]:
    """``problems`` with the gap named: which certificate the server should add, from where."""
    if not completion.added:
        return tuple(problems)
    adds = "; ".join(
        f"{cert.label} (sha256 {cert.sha256[:16]}..., from {url})" for cert, url in completion.added
    )
    hint = f"; the server should also send {adds}"
    out = []
    for problem in problems:
        if problem.code == "incomplete-chain":
            problem = dataclasses.replace(problem, message=problem.message + hint)
        elif (
            problem.code == "untrusted-root"
            and as_sent.end == "missing-issuer"
            and problem.position == (as_sent.path[-1] if as_sent.path else None)
        ):
            problem = dataclasses.replace(
                problem,
                code="incomplete-chain",
                message=problem.message.replace(", is neither sent nor in the trust store", "")
                + f": an intermediate is missing{hint}",
            )
        out.append(problem)
    return tuple(out)
