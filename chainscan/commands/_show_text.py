"""The one-host view as terminal text: a manifest entry -> lines a person reads. Pure.

Every string that came from a server (names, subjects, issuers, error texts quoting them) is
passed through the project's terminal guard (``chainscan._untrusted.terminal_safe``), so a
certificate cannot move the cursor, recolour the terminal, set its title or hide text with
bidirectional overrides.
Colour (``color=True``) marks verdicts only; the text says the same without it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .._untrusted import terminal_safe

__all__ = ["days_left", "render_entry", "terminal_safe"]

_RED, _YELLOW, _GREEN, _BOLD, _DIM, _RESET = (
    "\x1b[31m",
    "\x1b[33m",
    "\x1b[32m",
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[0m",
)


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def days_left(not_after: str | None, now: dt.datetime) -> int | None:
    """Whole days from ``now`` to ``not_after`` (negative once expired), or None if unknown."""
    end = _parse_time(not_after)
    if end is None:
        return None
    day = dt.timedelta(days=1)
    return (end - now) // day if end >= now else -((now - end) // day)


class _Painter:
    __slots__ = ("color",)

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self.color else text


def _validity(cert: Mapping[str, Any], now: dt.datetime, warn_days: int, paint: _Painter) -> str:
    start, end = cert.get("not_before"), cert.get("not_after")
    span = f"{terminal_safe(start or '?')} to {terminal_safe(end or '?')}"
    left = days_left(end, now)
    begins = _parse_time(start)
    if left is None:
        return span
    if left < 0:
        ago = -left
        return f"{span}  " + paint(_RED, f"EXPIRED {ago} day{'s' if ago != 1 else ''} ago")
    if begins is not None and begins > now:
        return f"{span}  " + paint(_RED, "NOT YET VALID")
    note = f"{left} day{'s' if left != 1 else ''} left"
    return f"{span}  " + paint(_YELLOW if left <= warn_days else _GREEN, note)


def _key(cert: Mapping[str, Any]) -> str:
    parts = [str(cert.get("key_type") or "unknown key")]
    if cert.get("key_size"):
        parts.append(str(cert["key_size"]))
    if cert.get("curve"):
        parts.append(f"({cert['curve']})")
    text = " ".join(parts)
    if cert.get("signature_algorithm"):
        text += f", signed with {cert['signature_algorithm']}"
    return terminal_safe(text)


def _cert_lines(
    cert: Mapping[str, Any], now: dt.datetime, warn_days: int, paint: _Painter
) -> list[str]:
    position = cert.get("position")
    role = cert.get("role") or "?"
    name = cert.get("cn") or cert.get("subject") or f"sha256:{str(cert.get('sha256'))[:16]}"
    lines = [f"  [{position}] {role}: " + paint(_BOLD, terminal_safe(name))]
    if cert.get("parse_error"):
        lines.append("      " + paint(_RED, "unreadable: " + terminal_safe(cert["parse_error"])))
    rows: list[tuple[str, str]] = [
        ("subject", terminal_safe(cert.get("subject") or "-")),
        ("issuer", terminal_safe(cert.get("issuer") or "-")),
    ]
    sans: Sequence[str] = cert.get("sans") or ()
    if sans and position == 0:
        shown = ", ".join(sans[:6]) + (f", ... ({len(sans)} in all)" if len(sans) > 6 else "")
        rows.append(("names", terminal_safe(shown)))
    rows += [
        ("valid", _validity(cert, now, warn_days, paint)),
        ("key", _key(cert)),
        ("pin", terminal_safe(cert.get("pin") or "-")),
        ("sha256", terminal_safe(cert.get("sha256") or "-")),
    ]
    if cert.get("file"):
        rows.append(("file", terminal_safe(cert["file"])))
    lines += [f"      {label:<8} {value}" for label, value in rows]
    return lines


def _verdicts(entry: Mapping[str, Any], paint: _Painter) -> list[str]:
    lines = []
    trust = entry.get("trust")
    if trust:
        store = terminal_safe(trust.get("store") or "?")
        if trust.get("trusted"):
            lines.append("  trust     " + paint(_GREEN, f"trusted ({store})"))
        else:
            reason = terminal_safe(trust.get("reason") or trust.get("error") or "")
            lines.append("  trust     " + paint(_RED, f"NOT trusted ({store})") + f": {reason}")
    hostname = entry.get("hostname")
    if hostname:
        name = terminal_safe(hostname.get("name") or "?")
        matches = hostname.get("matches")
        if matches:
            by = terminal_safe(hostname.get("matched_by") or "")
            lines.append("  hostname  " + paint(_GREEN, f"{name} matches") + f" ({by})")
        elif matches is None and entry.get("sni") is None:
            lines.append("  hostname  not checked (no SNI sent, and the leaf has no IP names)")
        elif matches is None:
            lines.append(f"  hostname  {name}: not checked (the leaf could not be read)")
        else:
            lines.append("  hostname  " + paint(_RED, f"{name} does NOT match the leaf"))
    return lines


def _problems(entry: Mapping[str, Any], paint: _Painter) -> list[str]:
    problems = entry.get("problems") or []
    if not problems:
        return ["  problems  " + paint(_GREEN, "none")] if entry.get("trust") else []
    lines = ["  problems"]
    for problem in problems:
        severity = str(problem.get("severity"))
        style = _RED if severity == "error" else _YELLOW
        lines.append(
            "    "
            + paint(style, f"{severity:<7} {terminal_safe(problem.get('code'))}")
            + f"  {terminal_safe(problem.get('message'))}"
        )
    return lines


def _heading(entry: Mapping[str, Any]) -> str:
    host, port = entry.get("host"), entry.get("port")
    text = f"{host}:{port}" if host is not None else str(entry["input"]["text"])
    if entry.get("requested_address"):
        text += f" {{{entry['requested_address']}}}"
    extras = []
    sni = entry.get("sni")
    if sni != host:
        extras.append(f"SNI {sni}" if sni else "no SNI")
    if entry.get("address") and entry.get("address") != entry.get("requested_address"):
        extras.append(f"at {entry['address']}")
    if entry.get("tls_version"):
        extras.append(str(entry["tls_version"]))
    if entry.get("cipher"):
        extras.append(str(entry["cipher"]))
    return terminal_safe(text + ("  " + ", ".join(extras) if extras else ""))


def render_entry(
    entry: Mapping[str, Any], *, now: dt.datetime, warn_days: int, color: bool = False
) -> str:
    """The view of one manifest entry, lines ending in ``\\n``."""
    paint = _Painter(color)
    lines = [paint(_BOLD, _heading(entry))]
    status = entry.get("status")
    if status != "ok":
        kind = terminal_safe(entry.get("error_kind") or status)
        word = "INVALID" if status == "invalid" else "FAILED"
        lines.append(
            "  " + paint(_RED, f"{word} ({kind})") + f": {terminal_safe(entry.get('error'))}"
        )
        return "\n".join(lines) + "\n"
    lines += _verdicts(entry, paint)
    chain = entry.get("chain") or []
    sent = entry.get("chain_length") or len(chain)
    lines.append(
        f"  chain     {sent} certificate{'s' if sent != 1 else ''} as sent"
        + (f" (first {len(chain)} kept)" if sent > len(chain) else "")
    )
    for cert in chain:
        lines += _cert_lines(cert, now, warn_days, paint)
    lines += _problems(entry, paint)
    return "\n".join(lines) + "\n"
