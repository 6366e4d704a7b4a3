"""Change between two scans, and the pin gate. Pure: manifest entries in, changes out.

Theory of operation
-------------------

Targets are matched by the manifest's identity of a target (``ManifestEntry.key``: host,
port, requested address, SNI), so the same line scanned twice is the same target whatever its
position, and a target is compared with itself only. Invalid input lines have no identity and
are left out. When a manifest lists a target twice (resumed runs), the last entry counts.

For a target in both scans, the changes are, in this order (:data:`CHANGE_KINDS`): status
(``newly-failing``, ``recovered``), then the leaf (same certificate; renewed with the same key;
with a new key), the intermediates (by certificate, and whether their keys changed), trust
(``newly-untrusted``, ``newly-trusted``), problem codes that appeared, and certificates that
entered the ``--warn-days`` window. Expiry is judged at each scan's own time (``ScanSide.time``,
the run's start), so a certificate that was fine at the old scan and is close to expiry at the
new one is news even though it did not change.

The pin gate (``check_pins``) takes the rules of a pin configuration (``_pinconfig``) and every
chain the NEW scan saw for each pinned name: the chain as sent plus the chain the verifier built
(its store root, which servers seldom send but a root pin needs), and with ``--deployments`` the
other chains seen for that name with SNI. A chain passes a rule when it holds a key of each of
the rule's groups, as the platforms check. A pinned name none of whose chains fails is ``ok``;
one with a failing chain is ``broken``, which fails the gate unless the rule is not enforced any
more (its expiration passed, or TrustKit ``TSKEnforcePinning`` is false).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._models import WARN_DAYS
from ..manifest._model import CertEntry, EntryKey, ManifestEntry, short_pin
from ._pinconfig import PinConfig, PinRule
from ._pins import pin_name

__all__ = [
    "CHANGE_KINDS",
    "Change",
    "DiffResult",
    "PinCheck",
    "PinHostResult",
    "ScanSide",
    "check_pins",
    "diff_scans",
    "target_label",
]

CHANGE_KINDS: dict[str, str] = {
    "added": "the target is in NEW only",
    "removed": "the target is in OLD only",
    "newly-failing": "OLD got a chain, NEW did not (see its error kind)",
    "recovered": "OLD got no chain, NEW did",
    "leaf-renewed-same-key": "a new leaf certificate with the same public key: key pins still hold",
    "leaf-renewed-new-key": "a new leaf certificate with a new public key: leaf pins break",
    "intermediate-changed": "the intermediates sent are different certificates (the detail says "
    "whether their keys changed: intermediate pins break if so)",
    "newly-untrusted": "OLD's chain was trusted, NEW's is not (see trust.reason)",
    "newly-trusted": "OLD's chain was not trusted, NEW's is",
    "newly-revoked": "NEW's leaf is revoked (its CRL or OCSP responder says so), OLD's was not",
    "needs-completion": "NEW's chain as sent stops short and is trusted only once the missing "
    "intermediate is fetched (browsers), which OLD's was not",
    "new-problems": "problem codes in NEW that OLD did not have",
    "newly-expiring": "a certificate of NEW's chain is expired or expires within --warn-days of "
    "NEW's scan, and was not so at OLD's",
}
"""Every change kind, in report order."""

_EXPIRY_CODES = frozenset({"expired", "expires-soon"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSide:
    """One of the two scans."""

    label: str
    """The folder or manifest as given."""
    entries: Sequence[ManifestEntry]
    time: dt.datetime
    """When it was scanned (``run.started``, else the manifest's modification time)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    kind: str
    target: str
    """``host:port``, with ``{address}`` and ``sni=NAME`` when given."""
    message: str
    key: EntryKey

    def to_json(self) -> dict[str, Any]:
        host, port, address, sni = self.key[:4]
        out = {
            "kind": self.kind,
            "target": self.target,
            "host": host,
            "port": port,
            "requested_address": address,
            "sni": sni,
            "message": self.message,
        }
        if len(self.key) == 5:
            out["protocol"] = self.key[4]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffResult:
    old: ScanSide
    new: ScanSide
    changes: tuple[Change, ...]
    counts: dict[str, int] = field(default_factory=dict)
    """``old``, ``new``, ``added``, ``removed``, ``changed``, ``unchanged`` targets."""


def target_label(key: EntryKey) -> str:
    host, port, address, sni = key[:4]
    where = f"[{host}]" if ":" in host else host
    text = f"{where}:{port}"
    if len(key) == 5:
        text = f"{key[4]}://{text}"
    if address:
        text += f"{{{address}}}"
    if sni and sni != host:
        text += f" sni={sni}"
    return text


def _index(entries: Iterable[ManifestEntry]) -> dict[EntryKey, ManifestEntry]:
    out: dict[EntryKey, ManifestEntry] = {}
    for entry in entries:
        key = entry.key
        if key is not None and entry.status in ("ok", "failed"):
            out[key] = entry
    return out


def _cert_name(cert: CertEntry) -> str:
    return repr(cert.display_name())


def _day(text: object) -> str:
    return str(text)[:10] if text else "?"


def _trusted(entry: ManifestEntry) -> bool | None:
    return None if entry.trust is None else entry.trust.trusted


def _completed_by(entry: ManifestEntry) -> str | None:
    """The fetched certificates that make the entry's chain trusted (``completion``), if any."""
    completion = entry.completion
    if completion is None or completion.trusted is not True or _trusted(entry) is not False:
        return None
    names = [f"{subject!r} (from {url})" for subject, url in completion.added]
    return ", ".join(names) or None


def _expiring(
    chain: Sequence[CertEntry], moment: dt.datetime, warn: dt.timedelta
) -> dict[str, CertEntry]:
    out = {}
    for cert in chain:
        not_after = cert.expires
        if not_after is not None and not_after - moment <= warn:
            out[str(cert.facts.sha256)] = cert
    return out


def _compare(
    key: EntryKey,
    old: ManifestEntry,
    new: ManifestEntry,
    sides: tuple[ScanSide, ScanSide],
    warn: dt.timedelta,
) -> list[Change]:
    label = target_label(key)
    changes: list[Change] = []

    def add(kind: str, message: str) -> None:
        changes.append(Change(kind=kind, target=label, message=message, key=key))

    old_chain, new_chain = old.sent_chain, new.sent_chain
    if old_chain and not new_chain:
        add("newly-failing", f"no chain now: {new.error_kind}: {new.error}")
        return changes
    if new_chain and not old_chain:
        add("recovered", f"a chain again (was {old.error_kind})")
    if not new_chain:
        return changes
    if old_chain:
        old_leaf, new_leaf = old_chain[0], new_chain[0]
        if old_leaf.facts.sha256 != new_leaf.facts.sha256:
            old_key, new_key = old_leaf.facts.spki_sha256, new_leaf.facts.spki_sha256
            dates = f"expires {_day(old_leaf.facts.not_after)} -> {_day(new_leaf.facts.not_after)}"
            if old_key and old_key == new_key:
                add(
                    "leaf-renewed-same-key",
                    f"leaf {_cert_name(new_leaf)}: {dates}; key {short_pin(new_key)} kept",
                )
            else:
                add(
                    "leaf-renewed-new-key",
                    f"leaf {_cert_name(new_leaf)}: {dates}; key {short_pin(old_key)} -> "
                    f"{short_pin(new_key)}",
                )
        old_inter = [c for c in old_chain[1:] if c.role == "intermediate"]
        new_inter = [c for c in new_chain[1:] if c.role == "intermediate"]
        if {c.facts.sha256 for c in old_inter} != {c.facts.sha256 for c in new_inter}:
            old_keys = {c.facts.spki_sha256 for c in old_inter}
            new_keys = {c.facts.spki_sha256 for c in new_inter}
            keys = "same keys" if old_keys == new_keys else "new keys"
            before = ", ".join(_cert_name(c) for c in old_inter) or "none"
            after = ", ".join(_cert_name(c) for c in new_inter) or "none"
            add("intermediate-changed", f"{before} -> {after} ({keys})")
        was, now = _trusted(old), _trusted(new)
        if was is True and now is False:
            reason = new.trust.reason if new.trust is not None else None
            add("newly-untrusted", str(reason or "not trusted"))
        elif was is False and now is True:
            add("newly-trusted", "the chain is trusted now")
        if "revoked" in new.problem_codes and "revoked" not in old.problem_codes:
            message = next(p.message for p in new.problems if p.code == "revoked")
            add("newly-revoked", message or "the leaf is revoked")
        missing, missed = _completed_by(new), _completed_by(old)
        if missing and not missed:
            add(
                "needs-completion",
                f"trusted by browsers only: the server should also send {missing}",
            )
        appeared = sorted(set(new.problem_codes) - set(old.problem_codes) - _EXPIRY_CODES)
        if appeared:
            add("new-problems", ", ".join(appeared))
    was_expiring = _expiring(old_chain, sides[0].time, warn)
    for digest, cert in _expiring(new_chain, sides[1].time, warn).items():
        if digest in was_expiring:
            continue
        not_after = cert.expires
        assert not_after is not None
        days = (not_after - sides[1].time).days
        if days < 0:
            text = f"expired on {_day(not_after)}, {-days} days before the scan"
        else:
            text = f"expires on {_day(not_after)}, {days} days after the scan"
        add("newly-expiring", f"{cert.role} {_cert_name(cert)} {text}")
    return changes


def diff_scans(old: ScanSide, new: ScanSide, *, warn_days: int = WARN_DAYS) -> DiffResult:
    """Every change from ``old`` to ``new``, targets sorted by name, then removed ones.

    Sorted, not in manifest order: a manifest lists targets as they finished, which differs
    from run to run, and two diffs of the same scans must read the same.
    """
    warn = dt.timedelta(days=warn_days)
    before, after = _index(old.entries), _index(new.entries)
    changes: list[Change] = []
    changed = unchanged = 0
    order = {kind: index for index, kind in enumerate(CHANGE_KINDS)}
    for key, entry in sorted(after.items(), key=lambda item: target_label(item[0])):
        if key not in before:
            status = "a chain" if entry.sent_chain else f"no chain ({entry.error_kind})"
            changes.append(Change(kind="added", target=target_label(key), message=status, key=key))
            continue
        found = _compare(key, before[key], entry, (old, new), warn)
        found.sort(key=lambda c: order[c.kind])
        changes.extend(found)
        changed += bool(found)
        unchanged += not found
    for key in sorted(before, key=target_label):
        if key not in after:
            changes.append(
                Change(kind="removed", target=target_label(key), message="not in NEW", key=key)
            )
    counts = {
        "old": len(before),
        "new": len(after),
        "added": sum(1 for k in after if k not in before),
        "removed": sum(1 for k in before if k not in after),
        "changed": changed,
        "unchanged": unchanged,
    }
    return DiffResult(old=old, new=new, changes=tuple(changes), counts=counts)


# --------------------------------------------------------------------------------------------
# The pin gate


@dataclass(frozen=True, slots=True, kw_only=True)
class SeenChain:
    """One chain seen for a pinned name: where, and the keys a pin could match."""

    where: str
    leaf: str
    keys: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class PinHostResult:
    """The gate's verdict for one pinned name (or pattern)."""

    host: str
    status: str
    """``ok``, ``broken``, ``no-chain`` (every scan of it failed) or ``not-scanned``."""
    enforced: bool
    pins: tuple[str, ...]
    broken: tuple[SeenChain, ...] = ()
    """The chains that match none of the pins (for ``broken``)."""
    chains: int = 0
    """Chains checked."""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "enforced": self.enforced,
            "pins": [f"sha256/{p}" for p in self.pins],
            "chains_checked": self.chains,
            "broken_chains": [
                {"where": c.where, "leaf": c.leaf, "keys": sorted(f"sha256/{k}" for k in c.keys)}
                for c in self.broken
            ],
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PinCheck:
    format: str
    hosts: tuple[PinHostResult, ...]

    @property
    def failed(self) -> bool:
        """True when an enforced pin set matches none of a chain's keys: the gate fails."""
        return any(h.status == "broken" and h.enforced for h in self.hosts)


def _chains_of(entry: ManifestEntry) -> list[SeenChain]:
    """The chain sent (with the store root the verifier added) and, with ``--deployments``,
    every other chain seen with SNI."""
    chain = entry.sent_chain
    if not chain:
        return []
    where = str(entry.address or entry.host)
    keys = {c.facts.spki_sha256 for c in chain if c.facts.spki_sha256}
    if entry.trust is not None:
        keys |= {link.spki_sha256 for link in entry.trust.chain if link.spki_sha256}
    seen = [SeenChain(where=where, leaf=_cert_name(chain[0]), keys=frozenset(keys))]
    if entry.deployments is not None:
        for other in entry.deployments.chains:
            variants = [s for s in other.seen if s[1] != "no-sni"]
            if not variants:
                continue
            other_keys = {c.facts.spki_sha256 for c in other.certs if c.facts.spki_sha256}
            other_keys |= set(other.trust_chain_spki)
            places = ", ".join(f"{address} {variant}" for address, variant in variants)
            leaf = _cert_name(other.certs[0]) if other.certs else "?"
            seen.append(SeenChain(where=places, leaf=leaf, keys=frozenset(other_keys)))
    return seen


def _passes(keys: frozenset[str], rules: Sequence[PinRule]) -> bool:
    groups = [g for rule in rules for g in rule.groups]
    if len(rules) > 1:  # okhttp: the union of every matching pattern's pins
        return bool(keys & frozenset().union(*groups))
    return bool(groups) and all(keys & group for group in groups)


def check_pins(config: PinConfig, new: ScanSide) -> PinCheck:
    """Check every name of NEW that a rule covers, and report rules that cover no name."""
    names: dict[str, list[ManifestEntry]] = {}
    for entry in new.entries:
        host = entry.host
        if host is not None and entry.status in ("ok", "failed"):
            names.setdefault(pin_name(entry.sni or host), []).append(entry)
    day = new.time.date()
    results: list[PinHostResult] = []
    covered: set[str] = set()
    for name, entries in sorted(names.items()):
        rules = config.rules_for(name)
        if not rules:
            continue
        covered.update(r.pattern for r in rules)
        pins = tuple(sorted(frozenset().union(*(r.pins for r in rules))))
        enforced = all(r.enforced_on(day) for r in rules)
        seen = [c for entry in entries for c in _chains_of(entry)]
        if not seen:
            results.append(
                PinHostResult(
                    host=name,
                    status="no-chain",
                    enforced=enforced,
                    pins=pins,
                    message="every scan of it failed: its pins could not be checked",
                )
            )
            continue
        broken = tuple(c for c in seen if not _passes(c.keys, rules))
        message = ""
        if broken:
            message = "; ".join(
                f"the chain from {c.where} (leaf {c.leaf}) has none of its pins" for c in broken
            )
            if not enforced:
                message += " (the pins are no longer enforced)"
        results.append(
            PinHostResult(
                host=name,
                status="broken" if broken else "ok",
                enforced=enforced,
                pins=pins,
                broken=broken,
                chains=len(seen),
                message=message,
            )
        )
    for rule in config.rules:
        if rule.pattern not in covered and rule.pattern != "*":
            results.append(
                PinHostResult(
                    host=rule.pattern,
                    status="not-scanned",
                    enforced=rule.enforced_on(day),
                    pins=tuple(sorted(rule.pins)),
                    message="no target of NEW has this name",
                )
            )
    return PinCheck(format=config.format, hosts=tuple(results))
