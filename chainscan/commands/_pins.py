"""Pin sets from a scan: manifest entries -> per-host pin sets -> platform configuration text.

Pure: no files, no network, no clock of its own (``now`` is a parameter). ``_pins_cli`` reads
the manifests and the backup key files and writes the text; ``_bundle`` reuses the host
selection and the warnings for the Kony/Volt MX app folders.

Theory of operation
-------------------

A pin is the base64 SHA-256 of a certificate's DER SubjectPublicKeyInfo, the ``spki_sha256``
the scan already put in the manifest (computed by ``_analyze``), so nothing is hashed again
here except backup keys, which ``_inspect`` reads.

1. ``observations_from_entries`` turns each ``ok`` manifest entry into an
   :class:`Observation`: the name an app connects to (the SNI name, else the host) and the
   chain as sent. One host may have many observations: several addresses, several ports,
   several runs (``chainscan pins out-monday/ out-tuesday/``).
2. ``plan_pins`` picks, per host, the certificates whose role was asked for (``--pin``),
   across *all* its observations, so every chain that was seen satisfies the pin set; adds the
   backup pins; and records warnings where a platform or common practice says the set will
   hurt: fewer than two pins (TrustKit raises at start-up when pinning is enforced; Android
   lint reports a missing backup pin), a "backup" that is in the live chain, a pinned leaf or
   intermediate close to expiry, and chains that disagree between addresses or runs. A host
   without any pin from its live chains is left out: pinning it to backups only would break
   the app at once.
3. ``PinPlan.groups`` puts hosts with the same pin set together (one ``<domain-config>`` with
   several ``<domain>`` elements on Android).
4. ``render`` writes one format. Each follows its platform's documented shape:

   ``android``  ``res/xml/network_security_config.xml``: ``<domain-config>``,
                ``<domain includeSubdomains>``, ``<pin-set expiration="yyyy-MM-dd">``,
                ``<pin digest="SHA-256">`` (the only digest Android accepts).
   ``okhttp``   ``CertificatePinner.Builder().add(pattern, "sha256/...", ...)``, Kotlin or Java;
                ``**.host`` (host and any subdomain depth) for ``--include-subdomains``.
   ``ios``      ``NSAppTransportSecurity`` / ``NSPinnedDomains`` with ``NSIncludesSubdomains``,
                ``NSPinnedLeafIdentities`` and ``NSPinnedCAIdentities`` (dicts holding
                ``SPKI-SHA256-BASE64``). ATS has no expiration key.
   ``trustkit`` ``TSKConfiguration`` / ``TSKPinnedDomains`` with ``TSKPublicKeyHashes``,
                ``TSKEnforcePinning``, ``TSKIncludeSubdomains``, ``TSKExpirationDate``
                (yyyy-MM-dd, UTC) and ``TSKReportUris``.
   ``voltmx``   ``certs/public_keys.json``: ``{"host": ["pin", ...]}``; its only wildcard is
                ``*.`` for exactly one label, which does not match the bare host, so
                ``--include-subdomains`` writes both ``host`` and ``*.host``.
   ``json``     everything: hosts, every certificate seen (CN, role, expiry, pin), the pin
                sets and the warnings.
   ``text``     the same for people.

ATS wants leaf pins and CA pins in separate lists and, when both lists are present, a match in
each. So a backup goes where its kind says: a backup certificate by its CA flag, a CSR as a
leaf; a bare public key or base64 value, whose kind is unknown, goes in every list written.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

from .._models import WARN_DAYS
from ..manifest._model import ROLES, CertEntry, ManifestEntry, Trust, parse_time, short_pin

__all__ = [
    "FORMATS",
    "ROLES",
    "Backup",
    "ChainCert",
    "HostPins",
    "Observation",
    "Pin",
    "PinGroup",
    "PinOptions",
    "PinPlan",
    "PinWarning",
    "Scan",
    "canonical_pin",
    "format_warnings",
    "ios_lists",
    "merge_scans",
    "observations_from_entries",
    "okhttp_pattern",
    "pin_name",
    "plan_json",
    "plan_pins",
    "private_ca",
    "render",
    "voltmx_map",
]

Format = Literal["android", "okhttp", "ios", "trustkit", "voltmx", "json", "text"]
FORMATS: tuple[Format, ...] = ("android", "okhttp", "ios", "trustkit", "voltmx", "json", "text")

_DAY = dt.timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCert:
    """One certificate of a scanned chain, as the manifest describes it."""

    position: int
    """0 = first sent (the leaf)."""
    role: str
    """``leaf``, ``intermediate`` or ``root``."""
    spki_sha256: str | None
    """The pin value (base64); None when the certificate could not be parsed."""
    sha256: str | None = None
    cn: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    """ISO 8601 UTC, e.g. ``2026-01-01T00:00:00Z``."""
    file: str | None = None
    """Path relative to the scan's output folder."""
    is_ca: bool | None = None
    parse_error: str | None = None
    source: Literal["sent", "store"] = "sent"
    """``store``: the root of the verified chain, from the trust store (the manifest's
    ``trust.chain``), which the server did not send."""

    @property
    def pin(self) -> str | None:
        return None if self.spki_sha256 is None else f"sha256/{self.spki_sha256}"

    @property
    def label(self) -> str:
        return f"{self.role} {self.cn!r}" if self.cn else f"{self.role} #{self.position}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One successful scan of one endpoint: a manifest entry with status ``ok``."""

    name: str
    """The name an app connects to and pins: the SNI name, else the host (lower case)."""
    host: str
    port: int | None
    address: str | None
    sni: str | None
    chain: tuple[ChainCert, ...]
    dir: str | None = None
    """The target's folder, relative to ``root``."""
    root: str = ""
    """The scan's output folder (where ``file`` paths start)."""
    source: str = ""
    """The manifest the entry came from."""
    anchor: ChainCert | None = None
    """The root of the verified chain when the trust store supplied it (not sent)."""
    trusted: bool | None = None
    """The manifest's ``trust.trusted``: None when the scan did not record trust."""

    @property
    def endpoint(self) -> str:
        """``address:port``, or ``host:port`` when no address was recorded."""
        where = self.address or self.host
        if ":" in where:
            where = f"[{where}]"
        return where if self.port is None else f"{where}:{self.port}"

    def certs(self, role: str) -> tuple[ChainCert, ...]:
        """The certificates of ``role``; for ``root``, the verified chain's root too."""
        return tuple(c for c in self.all_certs() if c.role == role)

    def all_certs(self) -> tuple[ChainCert, ...]:
        """The chain as sent, then the trust store's root of the verified chain (if any)."""
        return self.chain if self.anchor is None else (*self.chain, self.anchor)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """What the manifests hold, reduced to what pinning needs."""

    observations: tuple[Observation, ...]
    failures: tuple[tuple[str, str], ...] = ()
    """(name, reason) of every entry without a chain (failed or invalid)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backup:
    """A spare key's pin, from ``--backup`` (base64 value or a key, CSR or certificate file)."""

    spki_sha256: str
    source: str
    """Where it came from, for messages: a file name, or ``base64 value``."""
    kind: Literal["leaf", "ca"] | None = None
    """What it backs up: a leaf key, a CA key, or unknown (a bare key or value)."""
    cn: str | None = None
    not_after: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    """One pin of a host's pin set."""

    spki_sha256: str
    role: str
    """``leaf``, ``intermediate``, ``root`` or ``backup``."""
    cn: str | None = None
    not_after: str | None = None
    """Earliest expiry of the certificates seen with this key (backups: their own, if known)."""
    kind: Literal["leaf", "ca"] | None = None
    """Leaf key or CA key (None: unknown, a bare backup key)."""
    source: str | None = None
    """For backups: where the pin came from."""

    @property
    def pin(self) -> str:
        return f"sha256/{self.spki_sha256}"

    @property
    def backup(self) -> bool:
        return self.role == "backup"

    @property
    def label(self) -> str:
        name = f" {self.cn}" if self.cn else ""
        if self.backup:
            return f"backup{name} from {self.source}"
        expires = f", expires {self.not_after[:10]}" if self.not_after else ""
        return f"{self.role}{name}{expires}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PinWarning:
    """A reason to think twice before shipping a pin set."""

    kind: str
    """Stable identifier: ``too-few-pins``, ``backup-in-chain``, ``expiring``, ``expired``,
    ``chains-disagree``, ``missing-role``, ``unpinnable-certificate``, ``no-chain``,
    ``no-live-pin``, ``not-a-domain``."""
    message: str
    host: str | None = None

    def __str__(self) -> str:
        return f"{self.host}: {self.message}" if self.host else self.message

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "kind": self.kind, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class PinOptions:
    """What to pin and how. Every field but ``roles`` has the CLI's default."""

    roles: tuple[str, ...] = ("intermediate",)
    """Certificate roles to pin (``--pin``; the CLI's default is intermediate and root)."""
    backups: tuple[Backup, ...] = ()
    include_subdomains: bool = False
    """Every host's pins cover its subdomains."""
    subdomain_hosts: tuple[str, ...] = ()
    """These hosts' pins cover their subdomains (``--include-subdomains HOST``, ``*.HOST``)."""
    expiration: str | None = None
    """``yyyy-MM-dd``, ``auto`` (the latest expiry of the pinned certificates: after it no pin
    of the set can match a valid chain), or None."""
    warn_days: int = WARN_DAYS
    hosts: tuple[str, ...] = ()
    """Only these names (empty: every host of the scan)."""
    enforce: bool = True
    """TrustKit ``TSKEnforcePinning``."""
    report_uris: tuple[str, ...] = ()
    """TrustKit ``TSKReportUris``."""
    language: Literal["kotlin", "java"] = "kotlin"
    """OkHttp snippet language."""
    certificate_transparency: bool = False
    """Android: ``<certificateTransparency enabled="true"/>`` in each ``<domain-config>``."""
    trust_anchors: tuple[tuple[str, str], ...] = ()
    """Android: (host, raw resource name) of a private CA to trust for that host, written as
    ``<trust-anchors><certificates src="@raw/NAME"/>`` (the CLI saves the certificate)."""

    def anchor_for(self, host: str) -> str | None:
        """The raw resource name of the private CA ``host`` trusts, if any."""
        return next((name for h, name in self.trust_anchors if h == host), None)

    def subdomains_for(self, host: str) -> bool:
        """Whether ``host``'s pins cover its subdomains."""
        return self.include_subdomains or pin_name(host) in {
            pin_name(h) for h in self.subdomain_hosts
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPins:
    """The pin set of one host, and what was seen of it."""

    host: str
    pins: tuple[Pin, ...]
    """Empty when the host is left out (see its warnings)."""
    observations: tuple[Observation, ...]
    expiration: str | None = None
    """``yyyy-MM-dd`` for the formats that have one."""
    warnings: tuple[PinWarning, ...] = ()

    @property
    def pinned(self) -> bool:
        return bool(self.pins)


@dataclass(frozen=True, slots=True, kw_only=True)
class PinGroup:
    """Hosts that share one pin set (and so one domain entry where the format allows)."""

    hosts: tuple[str, ...]
    pins: tuple[Pin, ...]
    expiration: str | None = None
    anchor: str | None = None
    """Android: the raw resource name of the private CA these hosts trust."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PinPlan:
    """Every host of the scan, its pin set and every warning."""

    options: PinOptions
    hosts: tuple[HostPins, ...]
    warnings: tuple[PinWarning, ...] = ()
    """Every warning, the hosts' included, in host order."""
    sources: tuple[str, ...] = ()
    generated_for: str = ""
    """The date the expiry warnings were computed for (``yyyy-MM-dd``)."""

    @property
    def pinned(self) -> tuple[HostPins, ...]:
        return tuple(h for h in self.hosts if h.pinned)

    def groups(self) -> tuple[PinGroup, ...]:
        """Pinned hosts with identical pin sets, together, in order of first host."""
        order: list[tuple[frozenset[str], str | None]] = []
        members: dict[tuple[frozenset[str], str | None], list[HostPins]] = {}
        for host in self.pinned:
            key = (
                frozenset(p.spki_sha256 for p in host.pins),
                self.options.anchor_for(host.host),
            )
            if key not in members:
                order.append(key)
                members[key] = []
            members[key].append(host)
        groups = []
        for key in order:
            hosts = members[key]
            dates = [h.expiration for h in hosts if h.expiration]
            groups.append(
                PinGroup(
                    hosts=tuple(h.host for h in hosts),
                    pins=hosts[0].pins,
                    expiration=min(dates) if dates else None,
                    anchor=key[1],
                )
            )
        return tuple(groups)


# --------------------------------------------------------------------------------------------
# Manifest entries -> observations


def _chain_cert(cert: CertEntry) -> ChainCert:
    facts = cert.facts
    return ChainCert(
        position=cert.position,
        role=cert.role,
        spki_sha256=facts.spki_sha256 or None,
        sha256=facts.sha256 or None,
        cn=facts.cn or None,
        subject=facts.subject or None,
        issuer=facts.issuer or None,
        not_after=facts.not_after or None,
        file=cert.file or None,
        is_ca=facts.is_ca,
        parse_error=facts.parse_error or None,
    )


def _trust(trust: Trust | None, chain: Sequence[ChainCert]) -> tuple[bool | None, ChainCert | None]:
    """(``trust.trusted``, the store root of the verified chain unless the server sent it)."""
    if trust is None:
        return None, None
    if trust.trusted is not True or not trust.chain:
        return trust.trusted, None
    last = trust.chain[-1]
    if last.source != "store" or not last.spki_sha256:
        return trust.trusted, None
    if any(c.sha256 == last.sha256 for c in chain):
        return trust.trusted, None
    cn = last.cn
    if cn is None and last.subject:
        parts = last.subject.split(",")
        cn = next((part[3:] for part in parts if part.upper().startswith("CN=")), None)
    anchor = ChainCert(
        position=len(chain),
        role="root",
        spki_sha256=last.spki_sha256,
        sha256=last.sha256,
        cn=cn,
        subject=last.subject,
        issuer=last.subject,
        not_after=last.not_after,
        is_ca=True,
        source="store",
    )
    return trust.trusted, anchor


def pin_name(host: str) -> str:
    """A host name as the platforms want it: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().rstrip(".").strip("[]").lower()


def observations_from_entries(
    entries: Iterable[ManifestEntry], *, source: str = "", root: str = ""
) -> Scan:
    """Read manifest entries (as ``manifest._reader.read_entries`` yields them).

    Entries without a host (invalid lines) are ignored; entries without a chain are kept as
    failures so a host that never answered can be named in a warning.
    """
    observations = []
    failures = []
    for entry in entries:
        host = entry.host or None
        if host is None:
            continue
        sni = entry.sni or None
        name = pin_name(sni or host)
        certs = tuple(_chain_cert(cert) for cert in entry.chain)
        if entry.status != "ok" or not certs:
            reason = entry.error_kind or entry.status or "no chain"
            failures.append((name, reason))
            continue
        trusted, anchor = _trust(entry.trust, certs)
        observations.append(
            Observation(
                name=name,
                host=host,
                port=entry.port,
                address=entry.address or None,
                sni=sni,
                chain=tuple(sorted(certs, key=lambda c: c.position)),
                dir=entry.dir or None,
                root=root,
                source=source,
                anchor=anchor,
                trusted=trusted,
            )
        )
    return Scan(observations=tuple(observations), failures=tuple(failures))


def merge_scans(scans: Iterable[Scan]) -> Scan:
    observations: list[Observation] = []
    failures: list[tuple[str, str]] = []
    for scan in scans:
        observations.extend(scan.observations)
        failures.extend(scan.failures)
    return Scan(observations=tuple(observations), failures=tuple(failures))


def canonical_pin(text: str) -> str | None:
    """``BASE64`` or ``sha256/BASE64`` of a 32-byte digest -> canonical base64; else None."""
    value = text.strip()
    if value.lower().startswith("sha256/"):
        value = value[len("sha256/") :]
    if len(value) != 44:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(digest) != 32:
        return None
    return base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------------------------
# Observations -> pin sets


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _HostPlanner:
    """Builds one host's pin set and warnings."""

    def __init__(
        self, name: str, observations: Sequence[Observation], options: PinOptions, now: dt.datetime
    ) -> None:
        self.name = name
        self.observations = observations
        self.options = options
        self.now = now
        self.warnings: list[PinWarning] = []

    def warn(self, kind: str, message: str) -> None:
        self.warnings.append(PinWarning(kind=kind, message=message, host=self.name))

    def plan(self) -> HostPins:
        live = self._live_pins()
        self._check_disagreement()
        pins = list(live)
        if not live:
            roles = ", ".join(self.options.roles)
            self.warn(
                "no-live-pin",
                f"no certificate of its chains can be pinned with --pin {roles}; left out "
                "(a pin set of backups only would break the app at once)",
            )
            return HostPins(
                host=self.name,
                pins=(),
                observations=tuple(self.observations),
                warnings=tuple(self.warnings),
            )
        pins.extend(self._backup_pins({p.spki_sha256 for p in live}))
        if len(pins) < 2:
            self.warn(
                "too-few-pins",
                f"only {_plural(len(pins), 'pin')}: add a backup pin (--backup) or pin another "
                "certificate; TrustKit refuses to start when a pinned domain has fewer than 2 "
                "pins and pinning is enforced, and Android lint reports a missing backup pin",
            )
        self._check_expiry(live)
        return HostPins(
            host=self.name,
            pins=tuple(pins),
            observations=tuple(self.observations),
            expiration=self._expiration(live),
            warnings=tuple(self.warnings),
        )

    def _live_pins(self) -> list[Pin]:
        by_key: dict[str, Pin] = {}
        order: list[tuple[int, int, str]] = []
        for obs in self.observations:
            for role in self.options.roles:
                certs = obs.certs(role)
                if not certs and (role != "root" or self.options.roles == ("root",)):
                    # servers seldom send their root: its absence is news only when it alone
                    # was asked for (``--pin all`` takes what is there)
                    hint = " (servers seldom send their root)" if role == "root" else ""
                    self.warn(
                        "missing-role",
                        f"the chain from {obs.endpoint} has no {role} certificate{hint}",
                    )
                for cert in certs:
                    if cert.spki_sha256 is None:
                        problem = f": {cert.parse_error}" if cert.parse_error else ""
                        self.warn(
                            "unpinnable-certificate",
                            f"{cert.label} from {obs.endpoint} has no public key pin{problem}",
                        )
                        continue
                    known = by_key.get(cert.spki_sha256)
                    if known is None:
                        by_key[cert.spki_sha256] = Pin(
                            spki_sha256=cert.spki_sha256,
                            role=role,
                            cn=cert.cn,
                            not_after=cert.not_after,
                            kind="leaf" if role == "leaf" else "ca",
                        )
                        order.append((ROLES.index(role), cert.position, cert.spki_sha256))
                    elif cert.not_after and (
                        known.not_after is None or cert.not_after < known.not_after
                    ):
                        by_key[cert.spki_sha256] = Pin(
                            spki_sha256=known.spki_sha256,
                            role=known.role,
                            cn=known.cn,
                            not_after=cert.not_after,
                            kind=known.kind,
                        )
        # stable order: by role, then position in chain, then first seen
        ranked = sorted(enumerate(order), key=lambda item: (item[1][0], item[1][1], item[0]))
        return [by_key[spki] for _index, (_rank, _pos, spki) in ranked]

    def _backup_pins(self, live: set[str]) -> list[Pin]:
        in_chain: dict[str, ChainCert] = {}
        for obs in self.observations:
            for cert in obs.chain:
                if cert.spki_sha256 is not None:
                    in_chain.setdefault(cert.spki_sha256, cert)
        pins: list[Pin] = []
        seen = set(live)
        for backup in self.options.backups:
            live_cert = in_chain.get(backup.spki_sha256)
            if live_cert is not None:
                self.warn(
                    "backup-in-chain",
                    f"backup pin {short_pin(backup.spki_sha256)} from {backup.source} is the key "
                    f"of {live_cert.label} in its live chain, so it is no backup: use a spare key "
                    "that is not deployed yet",
                )
            if backup.spki_sha256 in seen:
                continue
            seen.add(backup.spki_sha256)
            pins.append(
                Pin(
                    spki_sha256=backup.spki_sha256,
                    role="backup",
                    cn=backup.cn,
                    not_after=backup.not_after,
                    kind=backup.kind,
                    source=backup.source,
                )
            )
        return pins

    def _check_expiry(self, live: Sequence[Pin]) -> None:
        horizon = self.now + self.options.warn_days * _DAY
        for pin in live:
            if pin.role not in ("leaf", "intermediate"):
                continue
            expires = parse_time(pin.not_after)
            if expires is None:
                continue
            name = f" {pin.cn!r}" if pin.cn else ""
            if expires <= self.now:
                self.warn(
                    "expired",
                    f"pinned {pin.role}{name} ({short_pin(pin.spki_sha256)}) expired on "
                    f"{expires:%Y-%m-%d}",
                )
            elif expires <= horizon:
                days = (expires - self.now) // _DAY
                self.warn(
                    "expiring",
                    f"pinned {pin.role}{name} ({short_pin(pin.spki_sha256)}) expires on "
                    f"{expires:%Y-%m-%d}, in {_plural(days, 'day')} (--warn-days "
                    f"{self.options.warn_days}): its successor may well have a new key",
                )

    def _check_disagreement(self) -> None:
        """Warn when the host's chains differ in leaf key or intermediate keys."""
        shapes: dict[tuple[str | None, frozenset[str]], list[str]] = {}
        several_runs = len({obs.source for obs in self.observations}) > 1
        for obs in self.observations:
            leaf = obs.certs("leaf")
            shape = (
                leaf[0].spki_sha256 if leaf else None,
                frozenset(c.spki_sha256 for c in obs.certs("intermediate") if c.spki_sha256),
            )
            where = shapes.setdefault(shape, [])
            label = f"{obs.endpoint} in {obs.source}" if several_runs else obs.endpoint
            if label not in where:
                where.append(label)
        if len(shapes) < 2:
            return
        differs = []
        if len({leaf for leaf, _inter in shapes}) > 1:
            differs.append("leaf keys")
        if len({inter for _leaf, inter in shapes}) > 1:
            differs.append("intermediates")
        seen = "; ".join(
            f"{', '.join(where)}: leaf {short_pin(leaf) if leaf else '-'}, "
            f"{_plural(len(inter), 'intermediate')}"
            for (leaf, inter), where in shapes.items()
        )
        self.warn(
            "chains-disagree",
            f"its scanned chains disagree ({' and '.join(differs)} differ across addresses or "
            f"runs: {seen}); pinning it is unsafe: the pin set covers every chain seen, but "
            "another server or the next deployment may differ again",
        )

    def _expiration(self, live: Sequence[Pin]) -> str | None:
        wanted = self.options.expiration
        if wanted is None:
            return None
        if wanted != "auto":
            return wanted
        # the date after which no pin of the set can match a valid chain: the latest expiry
        dates = [t for t in (parse_time(p.not_after) for p in live) if t is not None]
        return f"{max(dates):%Y-%m-%d}" if dates else None


def plan_pins(
    scan: Scan,
    options: PinOptions,
    *,
    now: dt.datetime | None = None,
    sources: Sequence[str] = (),
) -> PinPlan:
    """Pin sets and warnings for every host of ``scan`` (or ``options.hosts``)."""
    moment = dt.datetime.now(dt.UTC) if now is None else now
    wanted = {pin_name(h) for h in options.hosts}
    by_name: dict[str, list[Observation]] = {}
    for obs in scan.observations:
        if not wanted or obs.name in wanted:
            by_name.setdefault(obs.name, []).append(obs)
    hosts: list[HostPins] = []
    failed: dict[str, list[str]] = {}
    for name, reason in scan.failures:
        if (not wanted or name in wanted) and name not in by_name:
            failed.setdefault(name, []).append(reason)
    for name in sorted(set(by_name) | set(failed)):
        if name in by_name:
            hosts.append(_HostPlanner(name, by_name[name], options, moment).plan())
            continue
        reasons = ", ".join(sorted(set(failed[name])))
        warning = PinWarning(
            kind="no-chain",
            message=f"no chain: every scan of it failed ({reasons}); left out",
            host=name,
        )
        hosts.append(HostPins(host=name, pins=(), observations=(), warnings=(warning,)))
    for name in sorted(wanted - set(by_name) - set(failed)):
        warning = PinWarning(kind="no-chain", message="not in the scan; left out", host=name)
        hosts.append(HostPins(host=name, pins=(), observations=(), warnings=(warning,)))
    warnings = tuple(w for h in hosts for w in h.warnings)
    return PinPlan(
        options=options,
        hosts=tuple(hosts),
        warnings=warnings,
        sources=tuple(sources),
        generated_for=f"{moment:%Y-%m-%d}",
    )


_PRIVATE_CA = {
    "android": "no trust store the scan used trusts its chain (a private CA?): Android checks "
    'trust before pins, so add its CA as <trust-anchors><certificates src="@raw/..."/> in '
    "its <domain-config> (the CA certificate in res/raw; with -o chainscan writes both), or "
    "every connection fails",
    "ios": "no trust store the scan used trusts its chain (a private CA?): ATS checks trust "
    "before pins, so the app must trust that CA in code (URLSessionDelegate server trust "
    "with SecTrustSetAnchorCertificates), or every connection fails",
    "trustkit": "no trust store the scan used trusts its chain (a private CA?): TrustKit checks "
    "trust before pins, so the app must trust that CA in code (SecTrustSetAnchorCertificates "
    "in the session delegate), or every connection fails",
    "okhttp": "no trust store the scan used trusts its chain (a private CA?): OkHttp checks "
    "trust before pins, so the client must trust that CA in code (HandshakeCertificates."
    "Builder().addTrustedCertificate(...) and sslSocketFactory), or every connection fails",
    "voltmx": "no trust store the scan used trusts its chain (a private CA?): the app checks "
    "trust before pins, so bundle the CA certificate too (chainscan bundle), or every "
    "connection fails",
}
"""Per format: what a chain that no public store trusts needs besides pins."""


def private_ca(host: HostPins) -> tuple[Observation, ChainCert] | None:
    """The CA certificate to trust for a host whose chains no store trusts: the topmost CA the
    server sent (its root if sent, else the last intermediate); None when trusted or none."""
    for obs in host.observations:
        if obs.trusted is not False:
            continue
        cas = [c for c in obs.chain if c.role in ("root", "intermediate") and c.file]
        if cas:
            roots = [c for c in cas if c.role == "root"]
            return obs, (roots or cas)[-1]
    return None


def format_warnings(plan: PinPlan, fmt: str) -> tuple[PinWarning, ...]:
    """The plan's warnings plus those only one format has reason to give."""
    extra = []
    if fmt == "ios":
        flagged = {w.host for w in plan.warnings if w.kind == "too-few-pins"}
        for host in plan.pinned:
            leaf, ca = ios_lists(host.pins)
            if host.host in flagged or not (leaf and ca):
                continue
            for key, pins in (("NSPinnedLeafIdentities", leaf), ("NSPinnedCAIdentities", ca)):
                if len(pins) < 2:
                    extra.append(
                        PinWarning(
                            kind="too-few-pins",
                            message=f"{key} has only 1 pin, and with both lists written App "
                            "Transport Security needs a match in each: add a backup of that "
                            "kind (--backup) or pin one kind only",
                            host=host.host,
                        )
                    )
    if fmt in ("android", "trustkit"):
        # one line per date: the same news for every host it concerns
        dates: dict[str, list[str]] = {}
        for host in plan.pinned:
            if host.expiration:
                dates.setdefault(host.expiration, []).append(host.host)
        platform = "Android" if fmt == "android" else "TrustKit"
        for date, names in sorted(dates.items()):
            extra.append(
                PinWarning(
                    kind="expiration",
                    message=f"after {date} {platform} stops enforcing the pins of "
                    f"{_plural(len(names), 'host')} ({', '.join(names)}): the app connects "
                    "unpinned from then on until it is updated",
                )
            )
    if fmt in ("android", "ios", "trustkit", "okhttp", "voltmx"):
        for host in plan.pinned:
            if fmt == "android" and plan.options.anchor_for(host.host):
                continue  # its CA is written as a trust anchor
            if host.observations and all(o.trusted is False for o in host.observations):
                extra.append(
                    PinWarning(kind="private-ca", message=_PRIVATE_CA[fmt], host=host.host)
                )
    if fmt in ("ios", "trustkit"):
        for host in plan.pinned:
            if _is_ip(host.host):
                platform = "App Transport Security" if fmt == "ios" else "TrustKit"
                extra.append(
                    PinWarning(
                        kind="not-a-domain",
                        message=f"{platform} pins domain names, not IP addresses",
                        host=host.host,
                    )
                )
    return plan.warnings + tuple(extra)


# --------------------------------------------------------------------------------------------
# Rendering


def render(plan: PinPlan, fmt: str) -> str:
    """The configuration text of one format (see the module docstring)."""
    renderers = {
        "android": _render_android,
        "okhttp": _render_okhttp,
        "ios": _render_ios,
        "trustkit": _render_trustkit,
        "voltmx": _render_voltmx,
        "json": _render_json,
        "text": _render_text,
    }
    try:
        renderer = renderers[fmt]
    except KeyError:
        raise ValueError(f"unknown pin format {fmt!r} (use one of {', '.join(FORMATS)})") from None
    return renderer(plan)


def _xml_char(ch: str) -> bool:
    code = ord(ch)
    return (
        0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    ) and ch not in "\u2028\u2029"


def _comment(text: str) -> str:
    """Text safe inside ``<!-- -->``: printable XML characters only (no control, bidi or other
    format character: the file may be printed on a terminal), one line, no ``--``."""
    safe = "".join(ch if _xml_char(ch) and ch.isprintable() else "?" for ch in text)
    while "--" in safe:
        safe = safe.replace("--", "- -")
    return safe + " " if safe.endswith("-") else safe


def _code_comment(text: str) -> str:
    """Text safe after ``//`` in Kotlin and Java: printable, one line, no backslash (javac
    decodes ``\\uXXXX`` escapes, newlines included, even inside comments)."""
    return "".join(ch if ch.isprintable() and ch != "\\" else "?" for ch in text)


def _bool_xml(value: bool) -> str:
    return "<true/>" if value else "<false/>"


_PLIST_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
    '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
    '<plist version="1.0">\n'
)


def _render_android(plan: PinPlan) -> str:
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<!-- res/xml/network_security_config.xml, written by chainscan pins.",
        "     Reference it from AndroidManifest.xml:",
        '     <application android:networkSecurityConfig="@xml/network_security_config" ...>',
        "     Pins are base64 SHA-256 digests of SubjectPublicKeyInfo (the only digest",
        "     Android accepts). -->",
        "<network-security-config>",
    ]
    for group in plan.groups():
        lines.append("    <domain-config>")
        for host in group.hosts:
            sub = "true" if plan.options.subdomains_for(host) else "false"
            lines.append(
                f"        <domain includeSubdomains={quoteattr(sub)}>{escape(host)}</domain>"
            )
        if plan.options.certificate_transparency:
            lines.append('        <certificateTransparency enabled="true"/>')
        if group.anchor:
            lines += [
                "        <!-- private CA: no public trust store has it; the certificate is "
                f"res/raw/{_comment(group.anchor)}.der -->",
                "        <trust-anchors>",
                f"            <certificates src={quoteattr('@raw/' + group.anchor)}/>",
                "        </trust-anchors>",
            ]
        expiration = f" expiration={quoteattr(group.expiration)}" if group.expiration else ""
        lines.append(f"        <pin-set{expiration}>")
        for pin in group.pins:
            lines.append(f"            <!-- {_comment(pin.label)} -->")
            lines.append(f'            <pin digest="SHA-256">{escape(pin.spki_sha256)}</pin>')
        lines.append("        </pin-set>")
        lines.append("    </domain-config>")
    lines.append("</network-security-config>")
    return "\n".join(lines) + "\n"


def _code_string(text: str, *, kotlin: bool) -> str:
    """A Kotlin or Java string literal: ``\\`` and ``"`` escaped (and ``$`` for Kotlin
    templates); anything but printable ASCII becomes ``?`` (names here are host names)."""
    out = []
    for ch in text:
        if ch in '\\"' or (kotlin and ch == "$"):
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("?")
    return '"' + "".join(out) + '"'


def _kotlin_string(text: str) -> str:
    return _code_string(text, kotlin=True)


def _java_string(text: str) -> str:
    return _code_string(text, kotlin=False)


def okhttp_pattern(host: str, include_subdomains: bool) -> str:
    """``host``, or ``**.host`` (the host and subdomains at any depth) with subdomains."""
    return f"**.{host}" if include_subdomains else host


def _render_okhttp(plan: PinPlan) -> str:
    java = plan.options.language == "java"
    quote = _java_string if java else _kotlin_string
    adds = []
    for group in plan.groups():
        for host in group.hosts:
            pattern = quote(okhttp_pattern(host, plan.options.subdomains_for(host)))
            adds.append(f"    .add(\n        {pattern},")
            for index, pin in enumerate(group.pins):
                comma = "," if index < len(group.pins) - 1 else ""
                adds.append(f"        {quote(pin.pin)}{comma}  // {_code_comment(pin.label)}")
            adds.append("    )")
    if java:
        head = [
            "// OkHttp CertificatePinner (Java), written by chainscan pins",
            "import okhttp3.CertificatePinner;",
            "import okhttp3.OkHttpClient;",
            "",
            "CertificatePinner certificatePinner = new CertificatePinner.Builder()",
        ]
        tail = [
            "    .build();",
            "OkHttpClient client = new OkHttpClient.Builder()",
            "    .certificatePinner(certificatePinner)",
            "    .build();",
        ]
    else:
        head = [
            "// OkHttp CertificatePinner (Kotlin), written by chainscan pins",
            "import okhttp3.CertificatePinner",
            "import okhttp3.OkHttpClient",
            "",
            "val certificatePinner = CertificatePinner.Builder()",
        ]
        tail = [
            "    .build()",
            "val client = OkHttpClient.Builder()",
            "    .certificatePinner(certificatePinner)",
            "    .build()",
        ]
    return "\n".join(head + adds + tail) + "\n"


def ios_lists(pins: Sequence[Pin]) -> tuple[list[Pin], list[Pin]]:
    """(leaf identities, CA identities); unknown-kind backups go in every list written."""
    leaf = [p for p in pins if p.kind == "leaf"]
    ca = [p for p in pins if p.kind == "ca"]
    unknown = [p for p in pins if p.kind is None]
    if leaf:
        leaf += unknown
    if ca or not leaf:
        ca += unknown
    return leaf, ca


def _render_ios(plan: PinPlan) -> str:
    lines = [
        _PLIST_HEAD.rstrip("\n"),
        "<!-- Info.plist keys for App Transport Security identity pinning (iOS 14+, macOS 11+),",
        "     written by chainscan pins. Merge NSAppTransportSecurity into your Info.plist. -->",
        "<dict>",
        "\t<key>NSAppTransportSecurity</key>",
        "\t<dict>",
        "\t\t<key>NSPinnedDomains</key>",
        "\t\t<dict>",
    ]
    for host in plan.pinned:
        leaf, ca = ios_lists(host.pins)
        lines += [
            f"\t\t\t<key>{escape(host.host)}</key>",
            "\t\t\t<dict>",
            "\t\t\t\t<key>NSIncludesSubdomains</key>",
            f"\t\t\t\t{_bool_xml(plan.options.subdomains_for(host.host))}",
        ]
        for key, pins in (("NSPinnedCAIdentities", ca), ("NSPinnedLeafIdentities", leaf)):
            if not pins:
                continue
            lines += [f"\t\t\t\t<key>{key}</key>", "\t\t\t\t<array>"]
            for pin in pins:
                lines += [
                    f"\t\t\t\t\t<!-- {_comment(pin.label)} -->",
                    "\t\t\t\t\t<dict>",
                    "\t\t\t\t\t\t<key>SPKI-SHA256-BASE64</key>",
                    f"\t\t\t\t\t\t<string>{escape(pin.spki_sha256)}</string>",
                    "\t\t\t\t\t</dict>",
                ]
            lines.append("\t\t\t\t</array>")
        lines.append("\t\t\t</dict>")
    lines += ["\t\t</dict>", "\t</dict>", "</dict>", "</plist>"]
    return "\n".join(lines) + "\n"


def _render_trustkit(plan: PinPlan) -> str:
    options = plan.options
    lines = [
        _PLIST_HEAD.rstrip("\n"),
        "<!-- TrustKit pinning policy for Info.plist, written by chainscan pins. -->",
        "<dict>",
        "\t<key>TSKConfiguration</key>",
        "\t<dict>",
        "\t\t<key>TSKSwizzleNetworkDelegates</key>",
        "\t\t<false/>",
        "\t\t<key>TSKPinnedDomains</key>",
        "\t\t<dict>",
    ]
    for host in plan.pinned:
        lines += [
            f"\t\t\t<key>{escape(host.host)}</key>",
            "\t\t\t<dict>",
            "\t\t\t\t<key>TSKEnforcePinning</key>",
            f"\t\t\t\t{_bool_xml(options.enforce)}",
            "\t\t\t\t<key>TSKIncludeSubdomains</key>",
            f"\t\t\t\t{_bool_xml(options.subdomains_for(host.host))}",
            # never report pin failures to the vendor's server: only to --report-uri
            "\t\t\t\t<key>TSKDisableDefaultReportUri</key>",
            "\t\t\t\t<true/>",
        ]
        if host.expiration:
            lines += [
                "\t\t\t\t<key>TSKExpirationDate</key>",
                f"\t\t\t\t<string>{escape(host.expiration)}</string>",
            ]
        if options.report_uris:
            lines += ["\t\t\t\t<key>TSKReportUris</key>", "\t\t\t\t<array>"]
            lines += [f"\t\t\t\t\t<string>{escape(uri)}</string>" for uri in options.report_uris]
            lines.append("\t\t\t\t</array>")
        lines += ["\t\t\t\t<key>TSKPublicKeyHashes</key>", "\t\t\t\t<array>"]
        for pin in host.pins:
            lines += [
                f"\t\t\t\t\t<!-- {_comment(pin.label)} -->",
                f"\t\t\t\t\t<string>{escape(pin.spki_sha256)}</string>",
            ]
        lines += ["\t\t\t\t</array>", "\t\t\t</dict>"]
    lines += ["\t\t</dict>", "\t</dict>", "</dict>", "</plist>"]
    return "\n".join(lines) + "\n"


def voltmx_map(plan: PinPlan) -> dict[str, list[str]]:
    """The ``public_keys.json`` content: host (and ``*.host``) -> base64 pins."""
    out: dict[str, list[str]] = {}
    for host in plan.pinned:
        pins = [p.spki_sha256 for p in host.pins]
        out[host.host] = pins
        if plan.options.subdomains_for(host.host) and not _is_ip(host.host):
            out[f"*.{host.host}"] = list(pins)
    return out


def _render_voltmx(plan: PinPlan) -> str:
    return json.dumps(voltmx_map(plan), indent=4, ensure_ascii=False) + "\n"


def _cert_json(cert: ChainCert, pinned: set[str]) -> dict[str, Any]:
    return {
        "position": cert.position,
        "role": cert.role,
        "cn": cert.cn,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_after": cert.not_after,
        "pin": cert.pin,
        "spki_sha256": cert.spki_sha256,
        "sha256": cert.sha256,
        "file": cert.file,
        "pinned": cert.spki_sha256 in pinned,
        "parse_error": cert.parse_error,
        "source": cert.source,
    }


def _pin_json(pin: Pin) -> dict[str, Any]:
    return {
        "pin": pin.pin,
        "spki_sha256": pin.spki_sha256,
        "role": pin.role,
        "kind": pin.kind,
        "cn": pin.cn,
        "not_after": pin.not_after,
        "source": pin.source,
    }


def plan_json(plan: PinPlan, fmt: str = "json") -> dict[str, Any]:
    """The ``json`` format as a dict (also what ``_bundle`` reports)."""
    options = plan.options
    hosts = []
    for host in plan.hosts:
        pinned = {p.spki_sha256 for p in host.pins}
        hosts.append(
            {
                "host": host.host,
                "pinned": host.pinned,
                "include_subdomains": options.subdomains_for(host.host),
                "expiration": host.expiration,
                "pins": [_pin_json(p) for p in host.pins],
                "endpoints": [
                    {
                        "host": obs.host,
                        "port": obs.port,
                        "address": obs.address,
                        "sni": obs.sni,
                        "source": obs.source,
                        "certificates": [_cert_json(c, pinned) for c in obs.all_certs()],
                    }
                    for obs in host.observations
                ],
                "warnings": [w.to_json() for w in host.warnings],
            }
        )
    return {
        "sources": list(plan.sources),
        "checked_on": plan.generated_for,
        "options": {
            "pin": list(options.roles),
            "backups": [
                {"pin": f"sha256/{b.spki_sha256}", "source": b.source, "kind": b.kind}
                for b in options.backups
            ],
            "include_subdomains": options.include_subdomains,
            "expiration": options.expiration,
            "warn_days": options.warn_days,
        },
        "hosts": hosts,
        "groups": [
            {"hosts": list(g.hosts), "pins": [p.pin for p in g.pins], "expiration": g.expiration}
            for g in plan.groups()
        ],
        "warnings": [w.to_json() for w in format_warnings(plan, fmt)],
    }


def _render_json(plan: PinPlan) -> str:
    return json.dumps(plan_json(plan), indent=2, ensure_ascii=False) + "\n"


def _render_text(plan: PinPlan) -> str:
    lines: list[str] = []
    for host in plan.hosts:
        pinned = {p.spki_sha256 for p in host.pins}
        state = f"{_plural(len(host.pins), 'pin')}" if host.pinned else "not pinned"
        endpoints = sorted({obs.endpoint for obs in host.observations})
        seen = f", seen at {', '.join(endpoints)}" if endpoints else ""
        lines.append(f"{host.host}  ({state}{seen})")
        rows: list[tuple[str, ...]] = []
        shown: set[tuple[str | None, str | None]] = set()
        for obs in host.observations:
            for cert in obs.all_certs():
                if (cert.sha256, cert.spki_sha256) in shown:
                    continue
                shown.add((cert.sha256, cert.spki_sha256))
                rows.append(
                    (
                        "*" if cert.spki_sha256 in pinned else " ",
                        cert.role,
                        _code_comment(cert.cn or "-"),
                        (cert.not_after or "-")[:10],
                        cert.pin or f"(no pin: {cert.parse_error or 'unparsable'})",
                    )
                )
        for pin in host.pins:
            if pin.backup:
                name = _code_comment(pin.cn or pin.source or "-")
                rows.append(("*", "backup", name, "-", pin.pin))
        if rows:
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            for row in rows:
                cells = [row[i].ljust(widths[i]) for i in range(4)] + [row[4]]
                lines.append("  " + "  ".join(cells).rstrip())
        lines += [f"  warning: {_code_comment(w.message)}" for w in host.warnings]
        lines.append("")
    lines.append("* = in the pin set")
    return "\n".join(lines) + "\n"
