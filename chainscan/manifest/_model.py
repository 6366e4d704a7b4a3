"""The manifest model: typed, frozen values for what a manifest line says. Pure.

Theory of operation
-------------------

A manifest line is JSON written by this tool (``analysis._entry`` builds it, ``output`` writes
it; docs/manifest.md and docs/inventory.md document every field), but a reader must not trust
it: a manifest may come from an older version, be edited by hand, or be hostile. So
:meth:`ManifestEntry.from_json` never raises: a field of the wrong type reads as ``None`` (or
empty), an item of a list that is not an object is skipped, and unknown fields are ignored.
Every command that reads a scan gets its entries from here (through ``_reader``), so there is
one set of tolerant getters instead of one per command.

The model is the *read* side. The writer builds plain dicts (``analysis._entry``) because it
writes hundreds of thousands of lines and must stay byte-identical from run to run; a test
checks that reading a written entry back gives the same facts.

One home for the schema's small rules, used by the writer and every reader alike:

* :func:`cert_role`, the ``role`` of a certificate (see there: one rule for a certificate in a
  served chain, one for a certificate on its own);
* :func:`parse_time`, the manifest's time form (``2026-01-01T00:00:00Z``) -> aware datetime;
* :func:`short_pin`, the short form of a pin in messages (``sha256/AbCdEf012345...``);
* :func:`entry_key`, a target's identity (:attr:`chainscan.Target.key`) as read from an entry.

An invalid input line is an entry too (status ``invalid``, error kind ``bad-input``, no host):
its :attr:`ManifestEntry.key` is None and :attr:`ManifestEntry.bad_line` identifies it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._models import CertFacts

__all__ = [
    "JSONL_NAME",
    "JSON_NAME",
    "MANIFEST_NAMES",
    "ROLES",
    "SCHEMA",
    "CertEntry",
    "DeploymentChain",
    "Deployments",
    "EntryKey",
    "Hostname",
    "InputLine",
    "ManifestEntry",
    "ProblemEntry",
    "Role",
    "Trust",
    "TrustLink",
    "cert_role",
    "entry_key",
    "parse_time",
    "short_pin",
]

SCHEMA = "chainscan-manifest/1"
JSONL_NAME = "manifest.jsonl"
JSON_NAME = "manifest.json"
MANIFEST_NAMES = (JSONL_NAME, JSON_NAME)
"""Looked for, in this order, in an output folder given instead of a manifest."""

Role = Literal["leaf", "intermediate", "root"]
ROLES: tuple[Role, ...] = ("leaf", "intermediate", "root")
"""Certificate roles, in chain order."""

EntryKey = tuple[str, int, str | None, str | None] | tuple[str, int, str | None, str | None, str]
""":attr:`Target.key` as read back from a manifest entry: host, port, requested address, SNI,
and the ``protocol`` of a STARTTLS target (direct-TLS entries have none: four items)."""


# --------------------------------------------------------------------------------------------
# The schema's small rules


def cert_role(*, self_signed: bool | None, is_ca: bool | None = None, position: int | None) -> Role:
    """The ``role`` of a certificate.

    In a served chain (``position`` given), the manifest's rule: the certificate sent first is
    the ``leaf`` whatever it is (the server presents it as its own), a later self-signed one a
    ``root``, any other an ``intermediate``. A chain says nothing more reliable: servers send
    extra leaves and cross-signed roots, so the CA flag is not used there.

    On its own (``position`` None: ``inspect`` of a file), nothing says where it would be sent,
    so the certificate decides: self-signed -> ``root``, another CA (``is_ca``) ->
    ``intermediate``, else ``leaf``.
    """
    if position is not None:
        if position == 0:
            return "leaf"
        return "root" if self_signed else "intermediate"
    if self_signed:
        return "root"
    return "intermediate" if is_ca else "leaf"


def parse_time(text: str | None) -> dt.datetime | None:
    """``2026-01-01T00:00:00Z`` (the manifest's form) -> an aware datetime; None if unusable."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def short_pin(spki: object) -> str:
    """A pin shortened for messages: ``sha256/`` and the first 12 base64 characters."""
    return f"sha256/{str(spki)[:12]}..." if spki else "(no key)"


def entry_key(entry: Mapping[str, Any]) -> EntryKey | None:
    """:attr:`Target.key` of a scanned target's entry; None for invalid lines and non-entries."""
    host, port = entry.get("host"), entry.get("port")
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        return None
    address, sni = entry.get("requested_address"), entry.get("sni")
    address = address if isinstance(address, str) else None
    sni = sni if isinstance(sni, str) else None
    protocol = entry.get("protocol")
    if isinstance(protocol, str):
        return (host, port, address, sni, protocol)
    return (host, port, address, sni)


# --------------------------------------------------------------------------------------------
# Tolerant getters (the only ones: every reader goes through the model)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _map(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _maps(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strs(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True, kw_only=True)
class InputLine:
    """Where an entry's target came from: ``input`` of the manifest."""

    source: str | None
    """The input file name (``-`` for standard input, ``<api>`` for the library)."""
    line: int | None
    """1-based line number in ``source``."""
    text: str | None
    """The line as read."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> InputLine:
        data = data or {}
        return cls(
            source=_str(data.get("source")),
            line=_int(data.get("line")),
            text=_str(data.get("text")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CertEntry:
    """One certificate of a chain: an item of ``chain`` (docs/manifest.md), or of a
    ``deployments`` chain's ``certs`` (which carry fewer fields: the others read as None)."""

    position: int
    """0 = sent first (the leaf); the item's index when the field is missing."""
    role: Role
    """As written; by :func:`cert_role` from ``position`` and ``self_signed`` when missing."""
    file: str | None = None
    """Path of its file relative to the output folder (``dir/name.der``)."""
    facts: CertFacts
    """The certificate's facts as the scan wrote them (``analyze_der``'s, field for field).
    A field missing from the manifest reads as None (``sha256`` and ``sha1`` as ``""``,
    ``size`` as 0)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> CertEntry:
        position = _int(data.get("position"))
        position = index if position is None else position
        role = data.get("role")
        self_signed = _bool(data.get("self_signed"))
        facts = CertFacts(
            sha256=_str(data.get("sha256")) or "",
            sha1=_str(data.get("sha1")) or "",
            size=_int(data.get("size")) or 0,
            parse_error=_str(data.get("parse_error")),
            subject=_str(data.get("subject")),
            issuer=_str(data.get("issuer")),
            cn=_str(data.get("cn")),
            sans=_strs(data.get("sans")),
            serial=_str(data.get("serial")),
            not_before=_str(data.get("not_before")),
            not_after=_str(data.get("not_after")),
            signature_algorithm=_str(data.get("signature_algorithm")),
            key_type=_str(data.get("key_type")),
            key_size=_int(data.get("key_size")),
            curve=_str(data.get("curve")),
            is_ca=_bool(data.get("is_ca")),
            self_signed=self_signed,
            spki_sha256=_str(data.get("spki_sha256")),
        )
        return cls(
            position=position,
            role=role
            if role in ROLES
            else cert_role(self_signed=self_signed is True, position=position),
            file=_str(data.get("file")),
            facts=facts,
        )

    @property
    def expires(self) -> dt.datetime | None:
        """``facts.not_after`` as an aware datetime (None if missing or unreadable)."""
        return parse_time(self.facts.not_after)

    def display_name(self, fallback: str = "") -> str:
        """The CN, else the subject, else the first 16 hex digits of the SHA-256."""
        facts = self.facts
        return facts.cn or facts.subject or (facts.sha256 or fallback)[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustLink:
    """One certificate of the path the verifier built: an item of ``trust.chain``."""

    sha256: str | None
    spki_sha256: str | None
    subject: str | None
    source: str | None
    """``sent`` or ``store``."""
    position: int | None
    """Its position in the served chain (None for a store root)."""
    cn: str | None = None
    not_after: str | None = None
    """ISO 8601 UTC (absent from manifests written before these fields)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trust:
    """The ``trust`` object: the verdict against the run's trust store."""

    store: str | None
    trusted: bool | None
    reason: str | None
    """Why not trusted (None when trusted)."""
    error: str | None
    chain: tuple[TrustLink, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trust:
        return cls(
            store=_str(data.get("store")),
            trusted=_bool(data.get("trusted")),
            reason=_str(data.get("reason")),
            error=_str(data.get("error")),
            chain=tuple(
                TrustLink(
                    sha256=_str(link.get("sha256")),
                    spki_sha256=_str(link.get("spki_sha256")),
                    subject=_str(link.get("subject")),
                    source=_str(link.get("source")),
                    position=_int(link.get("position")),
                    cn=_str(link.get("cn")),
                    not_after=_str(link.get("not_after")),
                )
                for link in _maps(data.get("chain"))
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Hostname:
    """The ``hostname`` object: does the leaf name the requested name."""

    name: str | None
    """The name requested: the SNI name, else the host."""
    matches: bool | None
    """None when the leaf could not be parsed."""
    matched_by: str | None
    """The subjectAltName entry that matched."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemEntry:
    """An item of ``problems`` (codes: ``analysis._problems.PROBLEMS``)."""

    code: str | None
    """The code as written (``str()`` of a non-string), None when the item has none."""
    severity: str | None
    position: int | None
    message: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentChain:
    """One distinct chain of ``deployments.chains``."""

    id: int | None
    certs: tuple[CertEntry, ...]
    trusted: bool | None
    trust_chain_spki: tuple[str, ...]
    """The keys of the path the verifier built (its store root included)."""
    problems: tuple[str, ...]
    """Problem codes."""
    seen: tuple[tuple[str | None, str | None], ...]
    """(address, variant) of every probe that got it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployments:
    """The ``deployments`` object of ``--deployments`` (docs/inventory.md), what readers use."""

    verdict: str | None
    """``pin-safe``, ``not-pin-safe`` or ``unknown``."""
    chains: tuple[DeploymentChain, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deployments:
        chains = []
        for chain in _maps(data.get("chains")):
            chains.append(
                DeploymentChain(
                    id=_int(chain.get("id")),
                    certs=tuple(
                        CertEntry.from_json(cert, index)
                        for index, cert in enumerate(_maps(chain.get("certs")))
                    ),
                    trusted=_bool(chain.get("trusted")),
                    trust_chain_spki=tuple(
                        str(k) for k in chain.get("trust_chain_spki") or () if k
                    ),
                    problems=_strs(chain.get("problems")),
                    seen=tuple(
                        (_str(s.get("address")), _str(s.get("variant")))
                        for s in _maps(chain.get("seen"))
                    ),
                )
            )
        return cls(verdict=_str(data.get("verdict")), chains=tuple(chains))


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """The ``completion`` object: the chain completed with AIA-fetched intermediates."""

    trusted: bool | None
    """Trusted once completed (what browsers see)."""
    reason: str | None
    added: tuple[tuple[str | None, str | None], ...] = ()
    """(subject, URL) of each fetched certificate the completed chain uses."""
    errors: tuple[tuple[str | None, str | None], ...] = ()
    """(URL, error) of each fetch that gave nothing usable."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Completion:
        return cls(
            trusted=_bool(data.get("trusted")),
            reason=_str(data.get("reason")),
            added=tuple(
                (_str(link.get("subject")), _str(link.get("url")))
                for link in _maps(data.get("chain"))
                if link.get("source") == "fetched"
            ),
            errors=tuple(
                (_str(fetch.get("url")), _str(fetch.get("error")))
                for fetch in _maps(data.get("fetched"))
                if fetch.get("error")
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """One line of ``manifest.jsonl`` (one item of ``manifest.json``'s ``targets``)."""

    input: InputLine
    host: str | None
    """None for an invalid input line."""
    port: int | None
    sni: str | None
    """The name sent in the TLS SNI extension (None: none sent)."""
    requested_address: str | None
    """The address the input line asked for (``host:port{address}``), if any."""
    address: str | None
    """The address connected to."""
    status: str | None
    """``ok``, ``failed`` or ``invalid``."""
    error_kind: str | None
    error: str | None
    attempts: int | None = None
    elapsed: float | None = None
    tls_version: str | None = None
    cipher: str | None = None
    dir: str | None = None
    """The target's folder, relative to the output folder (None without a chain)."""
    chain_length: int | None = None
    """Certificates the server sent (more than :attr:`chain` when a chain was cut)."""
    chain: tuple[CertEntry, ...] = ()
    """As sent, in the manifest's order (items that are not objects are skipped)."""
    trust: Trust | None = None
    hostname: Hostname | None = None
    problems: tuple[ProblemEntry, ...] = ()
    deployments: Deployments | None = None
    protocol: str | None = None
    """The plaintext dialogue before TLS (``smtp``, ...); None for direct TLS."""
    completion: Completion | None = None
    """Present only when the scan fetched a missing intermediate (AIA)."""
    analysed: bool = False
    """True when the entry has the inventory fields (a ``trust`` key, even null)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifestEntry:
        """The entry of a decoded manifest line; never raises (see the module docstring)."""
        trust, hostname = _map(data.get("trust")), _map(data.get("hostname"))
        deployments = _map(data.get("deployments"))
        completion = _map(data.get("completion"))
        return cls(
            input=InputLine.from_json(_map(data.get("input"))),
            host=_str(data.get("host")),
            port=_int(data.get("port")),
            sni=_str(data.get("sni")),
            requested_address=_str(data.get("requested_address")),
            address=_str(data.get("address")),
            status=_str(data.get("status")),
            error_kind=_str(data.get("error_kind")),
            error=_str(data.get("error")),
            attempts=_int(data.get("attempts")),
            elapsed=_float(data.get("elapsed")),
            tls_version=_str(data.get("tls_version")),
            cipher=_str(data.get("cipher")),
            dir=_str(data.get("dir")),
            chain_length=_int(data.get("chain_length")),
            chain=tuple(
                CertEntry.from_json(cert, index)
                for index, cert in enumerate(_maps(data.get("chain")))
            ),
            trust=None if trust is None else Trust.from_json(trust),
            hostname=None
            if hostname is None
            else Hostname(
                name=_str(hostname.get("name")),
                matches=_bool(hostname.get("matches")),
                matched_by=_str(hostname.get("matched_by")),
            ),
            problems=tuple(
                ProblemEntry(
                    code=None if "code" not in p else str(p["code"]),
                    severity=_str(p.get("severity")),
                    position=_int(p.get("position")),
                    message=_str(p.get("message")),
                )
                for p in _maps(data.get("problems"))
            ),
            deployments=None if deployments is None else Deployments.from_json(deployments),
            protocol=_str(data.get("protocol")),
            completion=None if completion is None else Completion.from_json(completion),
            analysed="trust" in data,
        )

    @property
    def key(self) -> EntryKey | None:
        """The target's identity (:attr:`chainscan.Target.key`); None for an invalid line."""
        if self.host is None or self.port is None:
            return None
        if self.protocol is not None:
            return (self.host, self.port, self.requested_address, self.sni, self.protocol)
        return (self.host, self.port, self.requested_address, self.sni)

    @property
    def bad_line(self) -> tuple[str, int, str] | None:
        """(source, line, text) of an invalid input line's entry; None otherwise."""
        given = self.input
        if self.status != "invalid" or given.source is None or given.line is None:
            return None
        return None if given.text is None else (given.source, given.line, given.text)

    @property
    def ok(self) -> bool:
        """Status ``ok``: a chain was received."""
        return self.status == "ok"

    @property
    def sent_chain(self) -> tuple[CertEntry, ...]:
        """The chain of an ``ok`` entry; empty for any other status."""
        return self.chain if self.ok else ()

    @property
    def problem_codes(self) -> tuple[str, ...]:
        """The codes of :attr:`problems`, in order, once each (items without one left out)."""
        return tuple(dict.fromkeys(p.code for p in self.problems if p.code is not None))
