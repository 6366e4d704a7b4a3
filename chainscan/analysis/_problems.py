"""Problem codes: what is wrong with one served chain, as stable, documented identifiers. Pure.

Input: the certificate facts of the chain as sent (``_analyze``), the trust verdict and the
hostname match (``_verify``), the scan time and ``--warn-days``. Output: a tuple of
:class:`Problem` values, each with a code from :data:`PROBLEMS`, a severity, the position of the
certificate concerned (None for the chain as a whole) and a message naming it. The codes are
part of the manifest's schema (docs/inventory.md); their meaning never changes.

Severity ``error`` means common clients refuse the chain (or will soon, for ``weak-key``);
``warning`` means it works today but is wrong, wasteful or about to break.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._models import WARN_DAYS, CertFacts
from ..manifest._model import cert_role, parse_time
from ._verify import TrustVerdict

__all__ = [
    "LONG_VALIDITY_DAYS",
    "LONG_VALIDITY_SINCE",
    "PROBLEMS",
    "TRUST_CODES",
    "Problem",
    "enforce",
    "find_problems",
    "role_of",
]

Severity = Literal["error", "warning"]

PROBLEMS: dict[str, tuple[Severity, str]] = {
    "expired": ("error", "a certificate of the served chain is past its notAfter date"),
    "not-yet-valid": ("error", "a certificate of the served chain is before its notBefore date"),
    "expires-soon": ("warning", "a certificate of the served chain expires within --warn-days"),
    "self-signed-leaf": ("error", "the leaf is self-signed: no client trusts it by default"),
    "untrusted-root": (
        "error",
        "the chain leads to a root that is not in the trust store (a private or unknown CA)",
    ),
    "incomplete-chain": (
        "error",
        "the leaf's issuer was not sent and is not in the trust store: a needed intermediate is "
        "missing (browsers may fetch it, most other clients fail)",
    ),
    "chain-out-of-order": (
        "warning",
        "the certificates after the leaf are not sent in issuing order",
    ),
    "root-sent": ("warning", "the server sends a root certificate, which clients never use"),
    "duplicate-certificate": ("warning", "the same certificate is sent more than once"),
    "weak-key": ("error", "an RSA or DSA key under 2048 bits, or an EC key under 256 bits"),
    "weak-signature": (
        "error",
        "a certificate below the root is signed with SHA-1 or MD5",
    ),
    "hostname-mismatch": (
        "error",
        "the requested name is not among the leaf's subjectAltName entries",
    ),
    "no-san": (
        "error",
        "the leaf has no subjectAltName (clients ignore the commonName since 2017)",
    ),
    "long-validity": (
        "warning",
        "the leaf was issued on or after 2020-09-01 for more than 398 days",
    ),
    "revoked": (
        "error",
        "the leaf's CRL or OCSP responder says it is revoked (signature checked against the "
        "issuer)",
    ),
    "revocation-unknown": (
        "warning",
        "--revocation asked and no usable answer came: nothing answered, or answers were stale, "
        "badly signed or did not know the certificate",
    ),
    "no-sct": (
        "warning",
        "a leaf under a public root embeds no Signed Certificate Timestamp (Certificate "
        "Transparency): Chrome and Safari refuse it unless the server sends SCTs another way",
    ),
    "too-few-scts": (
        "warning",
        "a leaf under a public root embeds SCTs from fewer logs than Chrome and Apple require "
        "(2 up to 180 days of validity, else 3)",
    ),
    "basic-constraints-not-critical": (
        "warning",
        "a CA certificate's basicConstraints is not marked critical: RFC 5280 and the CA/Browser "
        "Forum require it, clients accept it",
    ),
    "untrusted": (
        "error",
        "the trust store verifier refused the chain for a reason no other code names "
        "(see trust.reason)",
    ),
}
"""Every problem code: (severity, meaning). The order is the documentation's order."""

TRUST_CODES = frozenset(
    {
        "revoked",
        "expired",
        "not-yet-valid",
        "self-signed-leaf",
        "untrusted-root",
        "incomplete-chain",
        "weak-key",
        "weak-signature",
        "no-san",
    }
)
"""Codes that explain an untrusted chain; without one of them it is reported as ``untrusted``."""

LONG_VALIDITY_DAYS = 398
LONG_VALIDITY_SINCE = dt.datetime(2020, 9, 1, tzinfo=dt.UTC)
"""Browsers refuse leaves issued from this date with a validity over 398 days."""

_ORDER = {code: index for index, code in enumerate(PROBLEMS)}
"""Each code's place in :data:`PROBLEMS`: problems are listed in that order."""

_WEAK_HASH = re.compile(r"(?<![a-z0-9])(sha1|sha-1|md5|md2)(?![0-9])", re.IGNORECASE)
_MIN_BITS = {"RSA": 2048, "DSA": 2048, "EC": 256}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem of one served chain."""

    code: str
    """A key of :data:`PROBLEMS`."""
    message: str
    position: int | None = None
    """The certificate concerned (position in the served chain), or None for the chain."""

    @property
    def severity(self) -> Severity:
        return PROBLEMS[self.code][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "position": self.position,
            "message": self.message,
        }


def role_of(position: int, facts: CertFacts) -> str:
    """The manifest's role of the certificate at ``position`` of a served chain (``cert_role``)."""
    return cert_role(self_signed=facts.self_signed, position=position)


def _label(position: int, facts: CertFacts) -> str:
    name = facts.cn or facts.subject or f"sha256:{facts.sha256[:16]}"
    return f"{role_of(position, facts)} {name!r}"


def _days(delta: dt.timedelta) -> str:
    days = delta.days
    return "1 day" if days == 1 else f"{days} days"


def _validity(
    position: int, facts: CertFacts, now: dt.datetime, warn: dt.timedelta
) -> list[Problem]:
    found: list[Problem] = []
    not_before, not_after = parse_time(facts.not_before), parse_time(facts.not_after)
    valid_long = not_after is None or (not_after >= now and not_after - now > warn)
    if valid_long and (not_before is None or not_before <= now):
        return found  # the common case: no label to build
    label = _label(position, facts)
    if not_after is not None and not_after < now:
        found.append(
            Problem(
                code="expired",
                position=position,
                message=f"{label} expired on {not_after:%Y-%m-%d} ({_days(now - not_after)} ago)",
            )
        )
    elif not_after is not None and not_after - now <= warn:
        found.append(
            Problem(
                code="expires-soon",
                position=position,
                message=f"{label} expires on {not_after:%Y-%m-%d}, in {_days(not_after - now)}",
            )
        )
    if not_before is not None and not_before > now:
        found.append(
            Problem(
                code="not-yet-valid",
                position=position,
                message=f"{label} is not valid before {not_before:%Y-%m-%d %H:%M} UTC",
            )
        )
    return found


def _weak_key(position: int, facts: CertFacts) -> Problem | None:
    minimum = _MIN_BITS.get(facts.key_type or "")
    if minimum is None or facts.key_size is None or facts.key_size >= minimum:
        return None
    return Problem(
        code="weak-key",
        position=position,
        message=f"{_label(position, facts)} has a {facts.key_type} key of {facts.key_size} bits "
        f"(at least {minimum} needed)",
    )


def _weak_signature(position: int, facts: CertFacts) -> Problem | None:
    algorithm = facts.signature_algorithm
    if facts.self_signed or not algorithm or not _WEAK_HASH.search(algorithm):
        return None  # a root's own signature is never checked: any hash will do there
    return Problem(
        code="weak-signature",
        position=position,
        message=f"{_label(position, facts)} is signed with {algorithm}",
    )


def _leaf_problems(
    facts: CertFacts, name: str, matched: str | None, check_name: bool = True
) -> list[Problem]:
    found = []
    if facts.self_signed:
        found.append(
            Problem(
                code="self-signed-leaf", position=0, message=f"{_label(0, facts)} is self-signed"
            )
        )
    if facts.parse_error is None or facts.spki_sha256 is not None:
        if not facts.sans:
            cn = f" (its commonName {facts.cn!r} is ignored by clients)" if facts.cn else ""
            found.append(
                Problem(
                    code="no-san",
                    position=0,
                    message=f"{_label(0, facts)} has no subjectAltName{cn}",
                )
            )
        elif matched is None and check_name:
            names = ", ".join(facts.sans[:8]) + (", ..." if len(facts.sans) > 8 else "")
            found.append(
                Problem(
                    code="hostname-mismatch",
                    position=0,
                    message=f"{name} is not a name of {_label(0, facts)} ({names})",
                )
            )
    not_before, not_after = parse_time(facts.not_before), parse_time(facts.not_after)
    if (
        not_before is not None
        and not_after is not None
        and not_before >= LONG_VALIDITY_SINCE
        and not_after - not_before > dt.timedelta(days=LONG_VALIDITY_DAYS)
    ):
        found.append(
            Problem(
                code="long-validity",
                position=0,
                message=f"{_label(0, facts)} is valid for {(not_after - not_before).days} days "
                f"(at most {LONG_VALIDITY_DAYS} since 2020-09-01)",
            )
        )
    return found


def _chain_problems(chain: Sequence[CertFacts], verdict: TrustVerdict) -> list[Problem]:
    found = []
    path = verdict.path
    if len(path) > 1 and tuple(path) != tuple(range(len(path))):
        order = " -> ".join(str(p) for p in path)
        found.append(
            Problem(
                code="chain-out-of-order",
                message=f"the issuing order is positions {order}, not the order sent",
            )
        )
    seen: dict[str, int] = {}
    for position, facts in enumerate(chain):
        first = seen.setdefault(facts.sha256, position)
        if first != position:
            found.append(
                Problem(
                    code="duplicate-certificate",
                    position=position,
                    message=f"{_label(position, facts)} is sent again (first at position {first})",
                )
            )
        elif position > 0 and facts.self_signed:
            found.append(
                Problem(
                    code="root-sent",
                    position=position,
                    message=f"{_label(position, facts)} is sent; clients use their own copy",
                )
            )
    if not verdict.trusted and path:
        last = path[-1]
        last_facts = chain[last] if last < len(chain) else None
        if verdict.end == "self-signed" and len(path) > 1 and last_facts is not None:
            found.append(
                Problem(
                    code="untrusted-root",
                    position=last,
                    message=f"{_label(last, last_facts)} is not in the trust store "
                    f"({verdict.store})",
                )
            )
        elif verdict.end == "missing-issuer" and last_facts is not None:
            issuer = repr(last_facts.issuer) if last_facts.issuer else "its issuer"
            if last_facts.is_ca:
                found.append(
                    Problem(
                        code="untrusted-root",
                        position=last,
                        message=f"{issuer}, the issuer of {_label(last, last_facts)}, is neither "
                        f"sent nor in the trust store ({verdict.store})",
                    )
                )
            else:
                found.append(
                    Problem(
                        code="incomplete-chain",
                        position=last,
                        message=f"{issuer}, the issuer of {_label(last, last_facts)}, is not "
                        f"sent and not in the trust store ({verdict.store})",
                    )
                )
    return found


def find_problems(
    chain: Sequence[CertFacts],
    verdict: TrustVerdict,
    *,
    name: str,
    matched: str | None,
    now: dt.datetime,
    warn_days: int = WARN_DAYS,
    extra: Sequence[Problem] = (),
    check_name: bool = True,
) -> tuple[Problem, ...]:
    """Every problem of a served chain (facts leaf first), in code order then position.

    ``extra``: problems found elsewhere (Certificate Transparency), sorted in with the rest.
    ``check_name`` False: no name was asked (see ``_inventory.name_checked``), so no
    ``hostname-mismatch``.
    """
    if not chain:
        return ()
    warn = dt.timedelta(days=warn_days)
    found: list[Problem] = list(extra)
    for position, facts in enumerate(chain):
        found.extend(_validity(position, facts, now, warn))
        for check in (_weak_key, _weak_signature):
            problem = check(position, facts)
            if problem is not None:
                found.append(problem)
    found.extend(_leaf_problems(chain[0], name, matched, check_name))
    found.extend(_chain_problems(chain, verdict))
    for note in verdict.notes:
        role = "root" if note.position is None else role_of(note.position, chain[note.position])
        found.append(
            Problem(
                code=note.code,
                position=note.position,
                message=f"{role} {note.label} has a non-critical basicConstraints (RFC 5280 and "
                "the CA/Browser Forum want it critical; clients accept it)",
            )
        )
    if not verdict.trusted and not any(p.code in TRUST_CODES for p in found):
        found.append(Problem(code="untrusted", message=verdict.reason or "not trusted"))
    found.sort(key=lambda p: (_ORDER[p.code], -1 if p.position is None else p.position))
    return tuple(found)


JUDGED_APART = frozenset({"hostname-mismatch"})
"""Error codes that do not make a chain untrusted: the hostname is reported in ``hostname``."""


def enforce(verdict: TrustVerdict, problems: Sequence[Problem]) -> TrustVerdict:
    """The verdict, made untrusted if a problem of severity ``error`` says clients refuse it.

    The invariant of the manifest: ``trusted`` is never true beside an ``error`` (but
    ``hostname-mismatch``, judged apart). The reason is the first such problem's message.
    """
    if not verdict.trusted:
        return verdict
    for problem in problems:
        if problem.severity == "error" and problem.code not in JUDGED_APART:
            return dataclasses.replace(
                verdict, trusted=False, reason=f"{problem.code}: {problem.message}"
            )
    return verdict
