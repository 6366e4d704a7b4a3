"""``chainscan pins --check FILE``: a pin configuration read back and held to its platform's
rules. Pure (bytes in, violations out).

The format is recognized as ``diff --pins`` recognizes it (``_pinconfig.parse_pin_config``).
Android, ATS and TrustKit files are then read again here, closer to the platform's own parser,
because their rules concern details the pin reader does not keep: an empty identity list, a
second ``<pin-set>``, a duplicate ``<domain>``, a missing ``TSKDisableDefaultReportUri``, an
unreadable pin (the platform raises; the pin reader would stop at the first). Each host entry
becomes an ``_pin_rules.Entry`` and :func:`_pin_rules.check_entry` applies the rules, without
the scan's live keys (so the rules that need them, ``no-live-pin`` and
``ats-list-without-live-key``, are not checked here: ``chainscan diff --pins`` does that
against a new scan).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import plistlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._pin_rules import Entry, Violation, check_entry
from ._pinconfig import parse_pin_config
from ._pins import pin_name

__all__ = ["CheckResult", "check_file"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    format: str
    hosts: tuple[str, ...]
    violations: tuple[Violation, ...]


def _pin(value: object) -> str | None:
    """A base64 SHA-256 pin as the platforms decode it (no ``sha256/`` here); else None."""
    if not isinstance(value, str):
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return value.strip() if len(digest) == 32 else None


def _pins(values: Iterable[object], host: str, where: str, out: list[Violation]) -> tuple[str, ...]:
    pins = []
    for value in values:
        pin = _pin(value)
        if pin is None:
            out.append(
                Violation(
                    host=host,
                    rule="invalid-pin",
                    message=f"{where}: {str(value)[:60]!r} is not a base64 SHA-256 pin",
                )
            )
        else:
            pins.append(pin)
    return tuple(pins)


def _android(data: bytes, out: list[Violation]) -> list[Entry]:
    root = ET.fromstring(data)
    entries = []
    seen: dict[str, int] = {}
    for config in root.iter("domain-config"):
        domains = [d for d in config.findall("domain")]
        pin_sets = config.findall("pin-set")
        names = [(d.text or "").strip() for d in domains]
        label = names[0] if names else "<domain-config>"
        if not domains:
            out.append(
                Violation(host=label, rule="android-invalid-config", message="no <domain> elements")
            )
        for name in names:
            key = name.lower()
            if key in seen:
                out.append(
                    Violation(
                        host=name,
                        rule="android-duplicate-domain",
                        message="duplicate domain names are not allowed",
                    )
                )
            seen[key] = 1
        if len(pin_sets) > 1:
            out.append(
                Violation(
                    host=label,
                    rule="android-invalid-config",
                    message="multiple <pin-set> elements are not allowed",
                )
            )
        if not pin_sets:
            continue
        pin_set = pin_sets[0]
        expiration = None
        text = pin_set.get("expiration")
        if text is not None:
            try:
                expiration = dt.datetime.strptime(text.strip(), "%Y-%m-%d").date()
            except ValueError:
                out.append(
                    Violation(
                        host=label,
                        rule="android-invalid-config",
                        message=f"expiration {text!r} is not yyyy-MM-dd",
                    )
                )
        for pin in pin_set.findall("pin"):
            if pin.get("digest") != "SHA-256":
                out.append(
                    Violation(
                        host=label,
                        rule="android-invalid-config",
                        message=f"digest {pin.get('digest')!r}: only SHA-256 is supported",
                    )
                )
        values = [(pin.text or "").strip() for pin in pin_set.findall("pin")]
        pins = _pins(values, label, "<pin>", out)
        for domain, name in zip(domains, names, strict=True):
            entries.append(
                Entry(
                    host=name,
                    lists=(("pin-set", pins),),
                    include_subdomains=(domain.get("includeSubdomains") or "") == "true",
                    expiration=expiration,
                )
            )
    return entries


def _ats(document: dict[str, Any], out: list[Violation]) -> list[Entry]:
    domains = document["NSAppTransportSecurity"]["NSPinnedDomains"]
    entries = []
    for host, config in domains.items():
        host = str(host)
        if not isinstance(config, dict):
            out.append(Violation(host=host, rule="ats-no-identities", message="not a dictionary"))
            continue
        lists = []
        for key in ("NSPinnedCAIdentities", "NSPinnedLeafIdentities"):
            if key not in config:
                continue
            items = config[key] if isinstance(config[key], list) else []
            values = [i.get("SPKI-SHA256-BASE64") if isinstance(i, dict) else i for i in items]
            lists.append((key, _pins(values, host, key, out)))
        entries.append(
            Entry(
                host=host,
                lists=tuple(lists),
                include_subdomains=config.get("NSIncludesSubdomains") is True,
            )
        )
    return entries


def _trustkit(document: dict[str, Any], out: list[Violation]) -> list[Entry]:
    domains = document["TSKConfiguration"]["TSKPinnedDomains"]
    if not domains:
        out.append(
            Violation(host="-", rule="trustkit-no-domains", message="TSKPinnedDomains is empty")
        )
    entries = []
    for host, config in domains.items():
        host = str(host)
        if not isinstance(config, dict):
            config = {}
        hashes = config.get("TSKPublicKeyHashes")
        pins = _pins(hashes if isinstance(hashes, list) else [], host, "TSKPublicKeyHashes", out)
        expiration = None
        text = config.get("TSKExpirationDate")
        if isinstance(text, str):
            try:
                expiration = dt.datetime.strptime(text.strip(), "%Y-%m-%d").date()
            except ValueError:
                expiration = None
        extra = (
            ("TSKDisableDefaultReportUri",)
            if config.get("TSKDisableDefaultReportUri") is True
            else ()
        )
        entries.append(
            Entry(
                host=host,
                lists=(("TSKPublicKeyHashes", tuple(dict.fromkeys(pins))),),
                include_subdomains=config.get("TSKIncludeSubdomains") is True,
                enforce=config.get("TSKEnforcePinning", True) is not False,
                expiration=expiration,
                extra=extra,
            )
        )
    return entries


def check_file(data: bytes, *, today: dt.date) -> CheckResult:
    """Every rule the configuration in ``data`` breaks. Raises ``ValueError`` when it cannot
    be read as a pin configuration at all."""
    out: list[Violation] = []
    try:
        config = parse_pin_config(data)
        fmt = config.format
        rules = config.rules
    except ValueError:
        # an unreadable pin stops the pin reader; the platform files are read again below
        sniffed = _sniff(data)
        if sniffed is None:
            raise
        fmt, rules = sniffed, ()
    entries: list[Entry]
    if fmt in ("android", "ios", "trustkit"):
        try:
            if fmt == "android":
                entries = _android(data, out)
            else:
                document = plistlib.loads(data)
                entries = _ats(document, out) if fmt == "ios" else _trustkit(document, out)
        except (ET.ParseError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a readable {fmt} configuration ({exc})") from None
    else:
        entries = [
            Entry(host=rule.pattern, lists=(("pins", tuple(sorted(rule.pins))),)) for rule in rules
        ]
    platform = fmt if fmt in ("android", "ios", "trustkit", "okhttp", "voltmx") else None
    for entry in entries:
        if platform is not None:
            out += check_entry(platform, entry, today=today)
    hosts = tuple(dict.fromkeys(pin_name(e.host) for e in entries))
    return CheckResult(format=fmt, hosts=hosts, violations=tuple(out))


def _sniff(data: bytes) -> str | None:
    """The platform format of a file the pin reader refused (an unreadable pin, say)."""
    text = data[:4000].decode("utf-8", "replace")
    if "<network-security-config" in text:
        return "android"
    if "<plist" in text:
        if "NSPinnedDomains" in data.decode("utf-8", "replace"):
            return "ios"
        if "TSKPinnedDomains" in data.decode("utf-8", "replace"):
            return "trustkit"
    return None
