"""Reading pin configurations back: text in, per-host pin rules out. Pure (no files).

``chainscan diff --pins FILE`` checks a new scan against the pins an app ships. The file is one
that ``chainscan pins`` wrote, in any of its formats, or a plain list; the format is recognized
from the content:

=============  ==============================================================================
``android``    ``<network-security-config>``: each ``<domain-config>``'s ``<domain>`` names
               (``includeSubdomains``) and ``<pin-set>`` (``expiration``), ``<pin>`` values
``ios``        plist with ``NSPinnedDomains``: ``NSIncludesSubdomains``,
               ``NSPinnedLeafIdentities`` and ``NSPinnedCAIdentities`` (ATS needs a match in
               *each* list given, so each list is its own group)
``trustkit``   plist with ``TSKPinnedDomains``: ``TSKPublicKeyHashes``,
               ``TSKIncludeSubdomains``, ``TSKEnforcePinning``, ``TSKExpirationDate``
``okhttp``     ``CertificatePinner`` snippet: every ``.add("pattern", "sha256/...", ...)``
``voltmx``     ``public_keys.json``: ``{"host": ["base64", ...]}``
``json``       ``chainscan pins --format json``: ``hosts[].pins[].spki_sha256``
``text``       ``chainscan pins --format text``: the ``*`` rows under each host line
``list``       anything else: lines of ``HOST PIN [PIN...]`` (a host may repeat), or of pins
               alone, which apply to every host of the scan; ``#`` starts a comment
=============  ==============================================================================

Host patterns: ``host`` is that name only; ``*.host`` one more label; ``**.host`` the host and
every subdomain (OkHttp's forms, also accepted in lists); ``include_subdomains`` covers the host
and every subdomain. A name under several rules uses the most specific one (an exact name, else
the longest pattern), as Android and ATS do; for OkHttp every matching pattern's pins count, as
OkHttp does.
"""

from __future__ import annotations

import datetime as dt
import json
import plistlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._pins import canonical_pin, pin_name

__all__ = ["PIN_FORMATS", "PinConfig", "PinConfigError", "PinRule", "parse_pin_config"]

PIN_FORMATS = ("android", "ios", "trustkit", "okhttp", "voltmx", "json", "text", "list")


class PinConfigError(ValueError):
    """The file looks like a pin configuration format but cannot be read as one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PinRule:
    """The pins of one host pattern."""

    pattern: str
    """``host``, ``*.host`` (one more label), ``**.host`` (host and subdomains) or ``*``."""
    groups: tuple[frozenset[str], ...]
    """Base64 SPKI SHA-256 pins; a chain must contain a key of *each* group (one group, except
    for ATS with both leaf and CA identities)."""
    include_subdomains: bool = False
    expiration: dt.date | None = None
    """After this day the platform stops enforcing the pins (Android, TrustKit)."""
    enforced: bool = True
    """False for TrustKit ``TSKEnforcePinning`` false (report only)."""

    @property
    def pins(self) -> frozenset[str]:
        return frozenset().union(*self.groups) if self.groups else frozenset()

    def matches(self, name: str) -> bool:
        name = pin_name(name)
        pattern = self.pattern
        if pattern == "*":
            return True
        if pattern.startswith("**."):
            base = pattern[3:]
            return name == base or name.endswith("." + base)
        if pattern.startswith("*."):
            base = pattern[2:]
            head, _, rest = name.partition(".")
            return bool(head) and rest == base
        if self.include_subdomains and name.endswith("." + pattern):
            return True
        return name == pattern

    @property
    def specificity(self) -> tuple[int, int]:
        """Higher is more specific: exact names first, then longer patterns."""
        exact = not self.pattern.startswith("*") and not self.include_subdomains
        return (1 if exact else 0, len(self.pattern.lstrip("*.")))

    def enforced_on(self, day: dt.date) -> bool:
        return self.enforced and (self.expiration is None or day <= self.expiration)


@dataclass(frozen=True, slots=True, kw_only=True)
class PinConfig:
    """Every rule of one pin configuration file."""

    format: str
    rules: tuple[PinRule, ...]

    def rules_for(self, name: str) -> tuple[PinRule, ...]:
        """The rules that apply to ``name`` (see the module docstring)."""
        matching = [r for r in self.rules if r.matches(name)]
        if not matching or self.format == "okhttp":
            return tuple(matching)
        best = max(r.specificity for r in matching)
        return tuple(r for r in matching if r.specificity == best)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.pattern for r in self.rules))


def _pins(values: Iterable[object], where: str) -> frozenset[str]:
    pins = set()
    for value in values:
        pin = canonical_pin(str(value)) if isinstance(value, str) else None
        if pin is None:
            raise PinConfigError(f"{where}: {value!r} is not a base64 SHA-256 pin")
        pins.add(pin)
    return frozenset(pins)


def _date(text: str | None, where: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise PinConfigError(f"{where}: expiration {text!r} is not a yyyy-MM-dd date") from None


# --------------------------------------------------------------------------------------------
# Formats


def _android(root: ET.Element) -> list[PinRule]:
    rules = []
    for config in root.iter("domain-config"):
        pin_set = config.find("pin-set")
        if pin_set is None:
            continue
        pins = _pins(
            ((pin.text or "").strip() for pin in pin_set.findall("pin")), "android <pin-set>"
        )
        expiration = _date(pin_set.get("expiration"), "android <pin-set>")
        for domain in config.findall("domain"):
            name = pin_name(domain.text or "")
            if not name:
                continue
            rules.append(
                PinRule(
                    pattern=name,
                    groups=(pins,),
                    include_subdomains=(domain.get("includeSubdomains") or "").lower() == "true",
                    expiration=expiration,
                )
            )
    return rules


def _plist(data: bytes) -> tuple[str, list[PinRule]]:
    try:
        document = plistlib.loads(data)
    except Exception as exc:
        raise PinConfigError(f"not a readable plist ({exc})") from None
    if not isinstance(document, dict):
        raise PinConfigError("the plist is not a dictionary")
    ats = document.get("NSAppTransportSecurity")
    if isinstance(ats, dict) and isinstance(ats.get("NSPinnedDomains"), dict):
        rules = []
        for host, entry in ats["NSPinnedDomains"].items():
            if not isinstance(entry, dict):
                continue
            groups = []
            for key in ("NSPinnedLeafIdentities", "NSPinnedCAIdentities"):
                items = entry.get(key)
                if isinstance(items, list) and items:
                    values = [i.get("SPKI-SHA256-BASE64") for i in items if isinstance(i, dict)]
                    groups.append(_pins(values, f"ios {host} {key}"))
            rules.append(
                PinRule(
                    pattern=pin_name(str(host)),
                    groups=tuple(groups),
                    include_subdomains=bool(entry.get("NSIncludesSubdomains")),
                )
            )
        return "ios", rules
    tsk = document.get("TSKConfiguration")
    if isinstance(tsk, dict) and isinstance(tsk.get("TSKPinnedDomains"), dict):
        rules = []
        for host, entry in tsk["TSKPinnedDomains"].items():
            if not isinstance(entry, dict):
                continue
            hashes = entry.get("TSKPublicKeyHashes")
            pins = _pins(hashes if isinstance(hashes, list) else [], f"trustkit {host}")
            expiration = entry.get("TSKExpirationDate")
            rules.append(
                PinRule(
                    pattern=pin_name(str(host)),
                    groups=(pins,),
                    include_subdomains=bool(entry.get("TSKIncludeSubdomains")),
                    expiration=_date(str(expiration), f"trustkit {host}") if expiration else None,
                    enforced=bool(entry.get("TSKEnforcePinning", True)),
                )
            )
        return "trustkit", rules
    raise PinConfigError("a plist with neither NSPinnedDomains nor TSKPinnedDomains")


def _call_strings(text: str, pos: int) -> tuple[list[str], int]:
    """The string literals of a call's arguments from ``pos`` (just after its ``(``) to the
    matching ``)``, skipping ``//`` and ``/* */`` comments; and the position after it.

    A real lexer, because base64 pins contain ``//`` and comments may contain ``)``.
    """
    strings: list[str] = []
    depth = 0
    while pos < len(text):
        char = text[pos]
        if char == '"':
            chars = []
            pos += 1
            while pos < len(text) and text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos : pos + 1])
                pos += 1
            strings.append("".join(chars))
        elif text.startswith("//", pos):
            end = text.find("\n", pos)
            pos = len(text) if end == -1 else end
            continue
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            pos = len(text) if end == -1 else end + 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return strings, pos + 1
            depth -= 1
        pos += 1
    return strings, pos


def _okhttp(text: str) -> list[PinRule]:
    rules = []
    pos = 0
    while (found := text.find(".add(", pos)) != -1:
        strings, pos = _call_strings(text, found + len(".add("))
        if not strings:
            continue
        pattern, *values = strings
        pins = _pins([v for v in values if v.lower().startswith("sha256/")], f"okhttp {pattern}")
        rules.append(PinRule(pattern=pattern.lower(), groups=(pins,)))
    return rules


def _json(document: Any) -> tuple[str, list[PinRule]]:
    if isinstance(document, dict) and isinstance(document.get("hosts"), list):
        rules = []
        for host in document["hosts"]:
            if not isinstance(host, dict) or not host.get("pinned"):
                continue
            values = [p.get("spki_sha256") for p in host.get("pins", []) if isinstance(p, dict)]
            name = str(host.get("host", ""))
            expiration = host.get("expiration")
            rules.append(
                PinRule(
                    pattern=pin_name(name),
                    groups=(_pins(values, f"json {name}"),),
                    include_subdomains=bool(host.get("include_subdomains")),
                    expiration=_date(expiration, f"json {name}")
                    if isinstance(expiration, str)
                    else None,
                )
            )
        return "json", rules
    if isinstance(document, dict):
        rules = []
        for host, values in document.items():
            if not isinstance(values, list):
                raise PinConfigError(f"voltmx {host}: not a list of pins")
            rules.append(PinRule(pattern=pin_name(str(host)), groups=(_pins(values, host),)))
        return "voltmx", rules
    if isinstance(document, list):
        return "list", [PinRule(pattern="*", groups=(_pins(document, "list"),))]
    raise PinConfigError("JSON that is neither a pin report, a public_keys.json nor a list")


_TEXT_HOST = re.compile(r"^(\S+)\s+\((?:\d+ pins?|not pinned)")
_TEXT_ROW = re.compile(r"^\s+\*\s.*\s(sha256/\S+)\s*$")


def _text(lines: Sequence[str]) -> list[PinRule]:
    rules = []
    host: str | None = None
    pins: list[str] = []
    for line in [*lines, ""]:
        match = _TEXT_HOST.match(line)
        if match or not line.strip():
            if host is not None and pins:
                rules.append(PinRule(pattern=host, groups=(_pins(pins, f"text {host}"),)))
            host, pins = (pin_name(match.group(1)), []) if match else (None, [])
            continue
        row = _TEXT_ROW.match(line)
        if row and host is not None:
            pins.append(row.group(1))
    return rules


def _plain_list(lines: Sequence[str]) -> list[PinRule]:
    by_host: dict[str, set[str]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.replace(",", " ").split()
        host = "*" if canonical_pin(words[0]) is not None else pin_name(words.pop(0))
        if not words:
            raise PinConfigError(f"line {number}: {host} has no pin")
        by_host.setdefault(host, set()).update(_pins(words, f"line {number}"))
    return [PinRule(pattern=h, groups=(frozenset(p),)) for h, p in by_host.items()]


def parse_pin_config(data: bytes) -> PinConfig:
    """Recognize the format and read every rule. Raises ``ValueError`` naming the problem."""
    text = data.decode("utf-8-sig", "replace")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        if "<plist" in text[:2000]:
            fmt, rules = _plist(data)
        else:
            try:
                root = ET.fromstring(data)
            except ET.ParseError as exc:
                raise PinConfigError(f"not well-formed XML ({exc})") from None
            if root.tag != "network-security-config":
                raise PinConfigError(f"XML with root <{root.tag}>: not a pin configuration")
            fmt, rules = "android", _android(root)
    elif stripped.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PinConfigError(f"not valid JSON ({exc})") from None
        fmt, rules = _json(document)
    elif "CertificatePinner" in text:
        fmt, rules = "okhttp", _okhttp(text)
    elif "* = in the pin set" in text:
        fmt, rules = "text", _text(text.splitlines())
    else:
        fmt, rules = "list", _plain_list(text.splitlines())
    if not rules:
        raise PinConfigError(f"a {fmt} pin configuration without any pinned host")
    return PinConfig(format=fmt, rules=tuple(rules))
