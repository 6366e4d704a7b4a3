"""Each platform's start-up rules for a pin configuration: what it refuses, what bricks an app.

Pure: no files, no network, no clock of its own (``today`` is a parameter). ``_pins`` plans the
pin sets; this module decides, per output format, which host entries may be written at all.
``_pins_cli`` uses :func:`apply_rules` before rendering (a host that breaks an ``error`` rule
is left out and named) and :mod:`_pin_check` uses :func:`check_entry` to lint a file that was
written by hand.

Theory of operation
-------------------

A pin configuration is shipped inside an app. A wrong one does not fail at build time: it
crashes the app at start-up (TrustKit raises ``NSException`` from ``parse_configuration.m``),
or every connection to the host fails until a store update (ATS finds no match in one of its
lists; a set of backup pins only). So every format has rules of two severities:

``error``    the platform refuses the entry, or the entry can never match a live chain. The
             host is not written (``pins``), or the file fails (``pins --check``).
``warning``  the entry loads and works today but is fragile (a single pin, lint's
             ``MissingBackupPin``; an expiration in the past switches pinning off).

The rules, by format (the ids are stable; ``docs/pins.md`` has the table):

``trustkit`` (``parse_configuration.m``, read from TrustKit's source):
  * ``trustkit-invalid-domain``: ``GetRegistryLength(domain) == 0`` raises "invalid domain".
    Its registry library (Google's domain-registry-provider) returns 0 for a name that is not
    ASCII, longer than 255 bytes, or whose registry suffix is not on the Public Suffix List
    (unknown registries are not allowed): IP addresses, ``localhost``, ``*.internal``,
    ``*.corp``, ``*.local``, ``*.lan``, ``*.test``... The list (ICANN and private sections,
    as TrustKit's copy) comes from the ``publicsuffixlist`` package, kept current by upgrading
    it; nothing is downloaded at run time.
  * ``trustkit-subdomains-on-suffix``: ``TSKIncludeSubdomains`` on a domain that is itself a
    registry suffix (``GetRegistryLength == length``) raises.
  * ``trustkit-too-few-pins``: fewer than 2 distinct pins with ``TSKEnforcePinning`` (1 when
    not enforcing) raises "less than 2 pins (ie. no backup pins)".
  * ``trustkit-default-report-uri`` (warning, ``--check``): without
    ``TSKDisableDefaultReportUri`` true, pin failures are also reported to the vendor's server.

``ios`` (Apple's ``NSPinnedDomains``, ``NSPinnedCAIdentities``, ``NSPinnedLeafIdentities``):
  * ``ats-not-a-domain``: the keys are domain names; ATS does not apply to IP addresses.
  * ``ats-no-identities``: a domain needs one of the two lists, and a list written needs at
    least one identity.
  * ``ats-list-without-live-key``: when a list is written, ATS blocks the connection unless
    a key of *that* list is in the chain: a list holding only backups (a ``--backup`` CA and
    no intermediate sent) fails every connection. Checked per list.
  * ``ats-single-pin`` (warning): a list with one pin has no backup of its kind.

``android`` (the network security config parser and lint's ``NetworkSecurityConfig``,
``MissingBackupPin`` and ``PinSetExpiry`` checks):
  * ``android-invalid-domain``: a ``<domain>`` must be an ASCII host name (punycode for
    internationalized names): an empty or non-ASCII name, or one with characters no host name
    has, never matches.
  * ``android-duplicate-domain`` (``--check``): lint's "Duplicate domain names are not
    allowed".
  * ``android-missing-backup-pin`` (warning): lint's ``MissingBackupPin``.
  * ``android-pin-set-expired`` (warning): lint's ``PinSetExpiry``; after ``expiration`` the
    pins are not enforced at all.

``okhttp`` (``CertificatePinner.Pin``, read from OkHttp's source):
  * ``okhttp-invalid-pattern``: ``*`` only as ``*.`` or ``**.`` at the start, and the rest must
    canonicalize as a host (``toCanonicalHost``): no ``/``, ``\\``, ``:`` (but in an IPv6
    literal), ``?``, ``#``, ``@``, ``[``, ``]``, ``%``, space or control character. An
    internationalized name is written as its IDNA A-label (OkHttp compares canonical ASCII
    hosts), never with ``?`` in place of what it cannot print.
  * ``okhttp-single-pin`` (warning).

``voltmx`` (``public_keys.json``): ``voltmx-invalid-host`` for a key that is not an ASCII host
name (or ``*.`` and one); ``voltmx-single-pin`` (warning).

Every format: ``no-live-pin`` (error) when none of an entry's pins is a key of the chains that
were scanned (only backups): the app would fail at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import idna
from publicsuffixlist import PublicSuffixList

from ._pins import HostPins, PinPlan, PinWarning, ios_lists

__all__ = [
    "RULES",
    "Entry",
    "Violation",
    "apply_rules",
    "ascii_host",
    "check_entry",
    "entries_for",
    "refused_hosts",
    "registry_suffix",
]

Severity = Literal["error", "warning"]

RULES: dict[str, tuple[Severity, str]] = {
    "invalid-name": ("error", "not a host name any platform can match"),
    "no-live-pin": ("error", "no pin is a key of the scanned chains: the app would fail at once"),
    "invalid-pin": ("error", "a pin that is not the base64 of a 32-byte SHA-256 digest"),
    "trustkit-invalid-domain": (
        "error",
        "TrustKit raises at start-up: no Public Suffix List registry suffix (IP address, "
        ".internal, .corp, .local, .lan, .test, ...), non-ASCII or too long",
    ),
    "trustkit-subdomains-on-suffix": (
        "error",
        "TrustKit raises at start-up: TSKIncludeSubdomains on a public suffix",
    ),
    "trustkit-too-few-pins": (
        "error",
        "TrustKit raises at start-up: fewer than 2 pins while enforcing (1 otherwise)",
    ),
    "trustkit-no-domains": ("error", "TrustKit raises at start-up: no pinned domains"),
    "trustkit-default-report-uri": (
        "warning",
        "without TSKDisableDefaultReportUri, failures are also reported to TrustKit's server",
    ),
    "ats-not-a-domain": ("error", "NSPinnedDomains keys are domain names, not IP addresses"),
    "ats-no-identities": ("error", "a pinned domain needs a non-empty identity list"),
    "ats-list-without-live-key": (
        "error",
        "a list holds no key of the live chain: ATS needs a match in each list written",
    ),
    "ats-single-pin": ("warning", "an identity list with a single pin has no backup"),
    "android-invalid-domain": ("error", "<domain> is not an ASCII host name"),
    "android-invalid-config": (
        "error",
        "the parser or lint rejects it: several <pin-set>s, a digest other than SHA-256, an "
        "expiration that is not yyyy-MM-dd",
    ),
    "android-duplicate-domain": ("error", "lint: duplicate domain names are not allowed"),
    "android-missing-backup-pin": ("warning", "lint MissingBackupPin: a <pin-set> with one pin"),
    "android-pin-set-expired": (
        "warning",
        "lint PinSetExpiry: after expiration the pins are not enforced",
    ),
    "okhttp-invalid-pattern": ("error", "CertificatePinner.Builder.add() throws on the pattern"),
    "okhttp-single-pin": ("warning", "a pattern with a single pin has no backup"),
    "voltmx-invalid-host": ("error", "public_keys.json key is not an ASCII host name"),
    "voltmx-single-pin": ("warning", "a host with a single pin has no backup"),
}
"""Rule id -> (severity, what it means). Stable ids; ``docs/pins.md`` lists them."""

_HOST_CHARS = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
"""An ASCII host name, lower case (``_`` tolerated: it occurs in real names)."""

_OKHTTP_FORBIDDEN = set("\x00\t\n\r #%/:?@[\\]") | {chr(c) for c in range(0x20)} | {"\x7f"}
"""Characters OkHttp's ``toCanonicalHost`` rejects in a host (``:`` only in IPv6 literals)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One rule an entry breaks."""

    host: str
    rule: str
    message: str

    @property
    def severity(self) -> Severity:
        return RULES[self.rule][0]

    def warning(self) -> PinWarning:
        return PinWarning(kind=self.rule, message=self.message, host=self.host)

    def to_json(self) -> dict[str, str]:
        return {
            "host": self.host,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One host entry as a format writes it (or as a file read back holds it)."""

    host: str
    lists: tuple[tuple[str, tuple[str, ...]], ...]
    """(list name, base64 pins): one list, except ATS (leaf and CA identities)."""
    include_subdomains: bool = False
    enforce: bool = True
    expiration: dt.date | None = None
    live: frozenset[str] | None = None
    """Keys of the scanned chains; None when unknown (a file checked on its own)."""
    extra: tuple[str, ...] = field(default=())
    """Format keys present (TrustKit: ``TSKDisableDefaultReportUri`` when true)."""

    @property
    def pins(self) -> frozenset[str]:
        return frozenset(p for _name, pins in self.lists for p in pins)


@functools.cache
def _psl() -> PublicSuffixList:
    # TrustKit's table holds both sections of the list and allows no unknown registry
    return PublicSuffixList(accept_unknown=False)


def registry_suffix(name: str) -> str | None:
    """The Public Suffix List registry suffix of ``name``; None when it has none."""
    if not name or len(name) > 255 or not name.isascii() or _is_ip(name):
        return None
    suffix: str | None = _psl().publicsuffix(name.rstrip(".").lower())
    return suffix


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def ascii_host(name: str) -> str:
    """``name`` as platforms compare it: lower-case ASCII, IDNA A-labels (UTS 46).

    Raises ``ValueError`` saying why when the name has no such form.
    """
    if name.isascii() or _is_ip(name):
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"has no IDNA form ({exc})") from None


def _name_ok(name: str) -> bool:
    return bool(_HOST_CHARS.match(name)) or _is_ip(name)


def _single(fmt: str, entry: Entry) -> list[Violation]:
    rule = {"android": "android-missing-backup-pin", "okhttp": "okhttp-single-pin"}.get(
        fmt, "voltmx-single-pin"
    )
    if len(entry.pins) >= 2 or entry.live is not None:
        # when writing, the planner's ``too-few-pins`` warning says it already
        return []
    return [
        Violation(
            host=entry.host,
            rule=rule,
            message="only 1 pin: one rotated key and the app cannot connect until it is "
            "updated; add a backup (--backup) or pin another certificate",
        )
    ]


def check_entry(fmt: str, entry: Entry, *, today: dt.date) -> tuple[Violation, ...]:
    """Every rule of ``fmt`` that ``entry`` breaks (see the module docstring)."""
    host = entry.host
    out: list[Violation] = []

    def add(rule: str, message: str) -> None:
        out.append(Violation(host=host, rule=rule, message=message))

    if entry.live is not None and entry.pins and not entry.pins & entry.live:
        add("no-live-pin", "none of its pins is a key of the scanned chains (backups only)")
    if fmt == "trustkit":
        suffix = registry_suffix(host)
        if suffix is None:
            why = (
                "an IP address"
                if _is_ip(host)
                else "not ASCII"
                if not host.isascii()
                else "its suffix is not on the Public Suffix List (a private or reserved name)"
            )
            add(
                "trustkit-invalid-domain",
                f"TrustKit raises 'invalid domain' at start-up: {why}",
            )
        elif entry.include_subdomains and suffix == host.rstrip(".").lower():
            add(
                "trustkit-subdomains-on-suffix",
                f"TrustKit raises at start-up: TSKIncludeSubdomains on {host}, a public suffix",
            )
        needed = 2 if entry.enforce else 1
        if len(entry.pins) < needed:
            add(
                "trustkit-too-few-pins",
                f"TrustKit raises at start-up with fewer than {needed} pins "
                f"({'enforcing' if entry.enforce else 'report only'}); it has "
                f"{len(entry.pins)}: add a backup (--backup) or pin another certificate",
            )
        if entry.live is None and "TSKDisableDefaultReportUri" not in entry.extra:
            add(
                "trustkit-default-report-uri",
                "TSKDisableDefaultReportUri is not true: pin failures are also reported to "
                "TrustKit's own server",
            )
    elif fmt == "ios":
        if _is_ip(host):
            add("ats-not-a-domain", "App Transport Security pins domain names, not IP addresses")
        elif not _name_ok(host):
            add("invalid-name", "not an ASCII host name (ATS compares IDNA A-labels)")
        if not entry.lists:
            add("ats-no-identities", "neither NSPinnedCAIdentities nor NSPinnedLeafIdentities")
        for name, pins in entry.lists:
            if not pins:
                add("ats-no-identities", f"{name} is empty")
            elif entry.live is not None and not set(pins) & entry.live:
                add(
                    "ats-list-without-live-key",
                    f"{name} holds no key of its live chains (backups only), and ATS needs a "
                    "match in each list written: every connection would fail",
                )
            elif len(pins) == 1 and len(entry.lists) > 1 and entry.live is None:
                add(
                    "ats-single-pin",
                    f"{name} has only 1 pin, and with both lists written App Transport "
                    "Security needs a match in each: add a backup of that kind (--backup) or "
                    "pin one kind only",
                )
    elif fmt == "android":
        if not _name_ok(host):
            add("android-invalid-domain", "not an ASCII host name (use its IDNA A-label)")
        out += _single(fmt, entry)
        if entry.expiration is not None and entry.expiration < today:
            add(
                "android-pin-set-expired",
                f"expiration {entry.expiration} has passed: Android does not enforce these pins",
            )
    elif fmt == "okhttp":
        problem = okhttp_pattern_problem(host)
        if problem:
            add("okhttp-invalid-pattern", f"CertificatePinner.Builder.add() throws: {problem}")
        out += _single(fmt, entry)
    elif fmt == "voltmx":
        base = host[2:] if host.startswith("*.") else host
        if not _name_ok(base):
            add("voltmx-invalid-host", "not an ASCII host name (use its IDNA A-label)")
        out += _single(fmt, entry)
    return tuple(out)


def okhttp_pattern_problem(pattern: str) -> str | None:
    """Why OkHttp's ``CertificatePinner.Pin`` would throw on ``pattern``; None if it would not."""
    if pattern.startswith("**."):
        base = pattern[3:]
    elif pattern.startswith("*."):
        base = pattern[2:]
    else:
        base = pattern
    if "*" in base:
        return f"unexpected pattern {pattern!r} ('*' only as a leading '*.' or '**.')"
    if not base:
        return "empty host"
    if _is_ip(base):
        return None
    bad = sorted({ch for ch in base if ch in _OKHTTP_FORBIDDEN})
    if bad:
        return f"invalid pattern {pattern!r}: {', '.join(repr(ch) for ch in bad)}"
    try:
        ascii_host(base)
    except ValueError as exc:
        return f"invalid pattern {pattern!r}: {exc}"
    return None


# --------------------------------------------------------------------------------------------
# A plan -> the entries each format writes


def entries_for(fmt: str, plan: PinPlan, host: HostPins) -> tuple[Entry, ...]:
    """The entries ``fmt`` writes for one pinned host (voltmx: ``host`` and ``*.host``)."""
    options = plan.options
    subdomains = options.subdomains_for(host.host)
    live = frozenset(
        c.spki_sha256 for obs in host.observations for c in obs.all_certs() if c.spki_sha256
    )
    pins = tuple(p.spki_sha256 for p in host.pins)
    expiration = dt.date.fromisoformat(host.expiration) if host.expiration else None
    if fmt == "ios":
        leaf, ca = ios_lists(host.pins)
        lists: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
            (name, tuple(p.spki_sha256 for p in group))
            for name, group in (("NSPinnedCAIdentities", ca), ("NSPinnedLeafIdentities", leaf))
            if group
        )
        return (Entry(host=host.host, lists=lists, include_subdomains=subdomains, live=live),)
    entry = Entry(
        host=host.host,
        lists=(("pins", pins),),
        include_subdomains=subdomains,
        enforce=options.enforce,
        expiration=expiration,
        live=live,
    )
    if fmt == "voltmx" and subdomains:
        return (entry, replace(entry, host=f"*.{host.host}"))
    return (entry,)


def _renamed(host: HostPins, fmt: str) -> tuple[HostPins, Violation | None]:
    """The host under its ASCII name, or a violation when it has none."""
    try:
        name = ascii_host(host.host)
    except ValueError as exc:
        rule = {
            "okhttp": "okhttp-invalid-pattern",
            "android": "android-invalid-domain",
            "voltmx": "voltmx-invalid-host",
            "trustkit": "trustkit-invalid-domain",
        }.get(fmt, "invalid-name")
        return host, Violation(host=host.host, rule=rule, message=f"the name {exc}")
    return (host if name == host.host else replace(host, host=name)), None


def apply_rules(
    plan: PinPlan, fmt: str, *, today: dt.date
) -> tuple[PinPlan, tuple[Violation, ...]]:
    """``plan`` with every host that breaks an ``error`` rule of ``fmt`` left out.

    Returns the new plan and every violation (errors and warnings), in host order. Hosts are
    renamed to their IDNA A-label. ``json`` and ``text`` have no platform rules.
    """
    if fmt not in ("android", "okhttp", "ios", "trustkit", "voltmx"):
        return plan, ()
    hosts: list[HostPins] = []
    found: list[Violation] = []
    for host in plan.hosts:
        if not host.pinned:
            hosts.append(host)
            continue
        renamed, problem = _renamed(host, fmt)
        violations: list[Violation] = [problem] if problem else []
        if problem is None:
            for entry in entries_for(fmt, plan, renamed):
                violations += check_entry(fmt, entry, today=today)
        found += violations
        if any(v.severity == "error" for v in violations):
            renamed = replace(renamed, pins=())
        hosts.append(renamed)
    return replace(plan, hosts=tuple(hosts)), tuple(found)


def refused_hosts(violations: Sequence[Violation]) -> tuple[str, ...]:
    """The hosts left out, in order."""
    return tuple(dict.fromkeys(v.host for v in violations if v.severity == "error"))
