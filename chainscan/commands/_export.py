"""``chainscan export``: a scan as spreadsheet rows (CSV) or as tables of a SQLite database.

Theory of operation
-------------------
The rows are built from the typed manifest (``manifest._model``), so an old, edited or hostile
manifest exports what it can and never crashes the command. Every text cell of a CSV goes
through :func:`spreadsheet_safe`: a subject, SAN or error text from a server that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read by a spreadsheet as a
formula (CSV injection), so such a cell gets a leading ``'`` (OWASP's advice); numbers that
chainscan computes are written as numbers.

The SQLite database (standard library ``sqlite3``) is appendable: each export adds one row to
``scans`` (the scan's start time from its manifest, its folder) and its targets, chains and
problems under that ``scan_id``; certificates are stored once, keyed by their SHA-256
fingerprint, however many scans and hosts send them. Exporting the same scan again adds nothing.
Times are stored as ``YYYY-MM-DD HH:MM:SS`` UTC, the form SQLite's ``datetime()`` returns, so
``not_after < datetime('now', '+30 days')`` compares correctly. The schema is docs/export.md's.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._untrusted import spreadsheet_safe as _spreadsheet_safe
from ..manifest._model import CertEntry, ManifestEntry, parse_time

__all__ = [
    "CERT_COLUMNS",
    "SCHEMA",
    "TARGET_COLUMNS",
    "cert_rows",
    "export_sqlite",
    "spreadsheet_safe",
    "target_rows",
]


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that no spreadsheet runs as a formula: text goes through the project's
    spreadsheet guard (``chainscan._untrusted.spreadsheet_safe``: a leading ``'`` before
    ``= + - @``, tab, carriage return, NUL); numbers, booleans and None pass unchanged."""
    if isinstance(value, str):
        return _spreadsheet_safe(value)
    return value


def _target(entry: ManifestEntry) -> str:
    if entry.host is None:
        return entry.input.text or ""
    host = f"[{entry.host}]" if ":" in entry.host else entry.host
    text = f"{host}:{entry.port}"
    if entry.requested_address:
        text += f"{{{entry.requested_address}}}"
    return text


def _sql_time(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _days_left(cert: CertEntry, now: dt.datetime) -> int | None:
    end = cert.expires
    if end is None:
        return None
    day = dt.timedelta(days=1)
    return (end - now) // day if end >= now else -((now - end) // day)


def _bool(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


TARGET_COLUMNS = (
    "scan_time", "target", "host", "port", "sni", "address", "status", "error_kind", "error",
    "tls_version", "trusted", "trust_reason", "hostname_matches", "chain_length", "leaf_cn",
    "leaf_not_after", "leaf_days_left", "leaf_pin", "leaf_sha256", "problems",
)  # fmt: skip
"""``--per target``: one row per target (docs/export.md)."""

CERT_COLUMNS = (
    "scan_time", "target", "host", "port", "sni", "status", "position", "role", "cn",
    "subject", "issuer", "sans", "serial", "not_before", "not_after", "days_left", "key_type",
    "key_size", "signature_algorithm", "sha256", "spki_sha256", "pin", "trusted",
    "hostname_matches", "problems",
)  # fmt: skip
"""``--per certificate`` (the default): one row per certificate served, one row with empty
certificate columns for a target without a chain (docs/export.md)."""


def _codes(entry: ManifestEntry, position: int | None = None) -> str:
    return " ".join(
        p.code or "" for p in entry.problems if position is None or p.position in (None, position)
    )


def target_rows(
    entries: Sequence[ManifestEntry], scan_time: str, now: dt.datetime
) -> Iterator[tuple[object, ...]]:
    for entry in entries:
        leaf = entry.chain[0] if entry.chain else None
        facts = None if leaf is None else leaf.facts
        yield (
            scan_time, _target(entry), entry.host, entry.port, entry.sni, entry.address,
            entry.status, entry.error_kind, entry.error, entry.tls_version,
            _bool(entry.trust.trusted if entry.trust else None),
            entry.trust.reason if entry.trust else None,
            _bool(entry.hostname.matches if entry.hostname else None),
            entry.chain_length,
            None if facts is None else facts.cn,
            None if facts is None else facts.not_after,
            None if leaf is None else _days_left(leaf, now),
            None if facts is None else facts.pin,
            None if facts is None else facts.sha256,
            _codes(entry),
        )  # fmt: skip


def cert_rows(
    entries: Sequence[ManifestEntry], scan_time: str, now: dt.datetime
) -> Iterator[tuple[object, ...]]:
    for entry in entries:
        head = (scan_time, _target(entry), entry.host, entry.port, entry.sni, entry.status)
        trusted = _bool(entry.trust.trusted if entry.trust else None)
        matches = _bool(entry.hostname.matches if entry.hostname else None)
        if not entry.chain:
            yield (*head, *([None] * 16), trusted, matches, _codes(entry))
            continue
        for cert in entry.chain:
            f = cert.facts
            yield (
                *head, cert.position, cert.role, f.cn, f.subject, f.issuer, " ".join(f.sans),
                f.serial, f.not_before, f.not_after, _days_left(cert, now), f.key_type,
                f.key_size, f.signature_algorithm, f.sha256, f.spki_sha256, f.pin, trusted,
                matches, _codes(entry, cert.position),
            )  # fmt: skip


SCHEMA = """\
CREATE TABLE IF NOT EXISTS scans (
    scan_id INTEGER PRIMARY KEY,
    scanned_at TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (scanned_at, source)
);
CREATE TABLE IF NOT EXISTS certificates (
    sha256 TEXT PRIMARY KEY,
    sha1 TEXT, subject TEXT, issuer TEXT, cn TEXT, sans TEXT, serial TEXT,
    not_before TEXT, not_after TEXT, key_type TEXT, key_size INTEGER, curve TEXT,
    signature_algorithm TEXT, spki_sha256 TEXT, pin TEXT, is_ca INTEGER, self_signed INTEGER,
    parse_error TEXT
);
CREATE TABLE IF NOT EXISTS targets (
    target_id INTEGER PRIMARY KEY,
    scan_id INTEGER NOT NULL REFERENCES scans (scan_id),
    scanned_at TEXT NOT NULL,
    target TEXT, host TEXT, port INTEGER, sni TEXT, requested_address TEXT, address TEXT,
    status TEXT, error_kind TEXT, error TEXT, tls_version TEXT, trusted INTEGER,
    trust_reason TEXT, hostname_matches INTEGER, chain_length INTEGER,
    leaf_sha256 TEXT REFERENCES certificates (sha256)
);
CREATE TABLE IF NOT EXISTS chain (
    target_id INTEGER NOT NULL REFERENCES targets (target_id),
    position INTEGER NOT NULL,
    role TEXT,
    sha256 TEXT NOT NULL REFERENCES certificates (sha256),
    PRIMARY KEY (target_id, position)
);
CREATE TABLE IF NOT EXISTS problems (
    target_id INTEGER NOT NULL REFERENCES targets (target_id),
    code TEXT, severity TEXT, position INTEGER,
    sha256 TEXT REFERENCES certificates (sha256),
    message TEXT
);
CREATE INDEX IF NOT EXISTS targets_scan ON targets (scan_id);
CREATE INDEX IF NOT EXISTS targets_host ON targets (host, port);
CREATE INDEX IF NOT EXISTS chain_sha256 ON chain (sha256);
CREATE INDEX IF NOT EXISTS problems_code ON problems (code);
CREATE INDEX IF NOT EXISTS certificates_not_after ON certificates (not_after);
"""


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def export_sqlite(
    path: Path, entries: Sequence[ManifestEntry], *, scanned_at: dt.datetime, source: str
) -> int | None:
    """Append one scan to the database at ``path`` (created if missing); return its
    ``scan_id``, or None when the database already holds this scan (nothing is added)."""
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error as exc:
        raise UsageError(f"--sqlite {path}: cannot open the database: {exc}") from None
    try:
        with db:
            db.executescript(SCHEMA)
            when = _sql_time(scanned_at)
            known = db.execute(
                "SELECT scan_id FROM scans WHERE scanned_at = ? AND source = ?", (when, source)
            ).fetchone()
            if known is not None:
                return None
            scan_id = db.execute(
                "INSERT INTO scans (scanned_at, source) VALUES (?, ?)", (when, source)
            ).lastrowid
            for entry in entries:
                _insert_entry(db, entry, scan_id, when)
        return scan_id
    except sqlite3.Error as exc:
        raise UsageError(f"--sqlite {path}: {exc}") from None
    finally:
        db.close()


def _insert_entry(db: sqlite3.Connection, entry: ManifestEntry, scan_id: Any, when: Any) -> None:
    for cert in entry.chain:
        f = cert.facts
        db.execute(
            "INSERT OR IGNORE INTO certificates VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f.sha256, f.sha1, f.subject, f.issuer, f.cn, " ".join(f.sans), f.serial,
                _sql_time(parse_time(f.not_before)), _sql_time(parse_time(f.not_after)),
                f.key_type, f.key_size, f.curve, f.signature_algorithm, f.spki_sha256, f.pin,
                _flag(f.is_ca), _flag(f.self_signed), f.parse_error,
            ),
        )  # fmt: skip
    trust, hostname = entry.trust, entry.hostname
    target_id = db.execute(
        "INSERT INTO targets (scan_id, scanned_at, target, host, port, sni, requested_address,"
        " address, status, error_kind, error, tls_version, trusted, trust_reason,"
        " hostname_matches, chain_length, leaf_sha256)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            scan_id, when, _target(entry), entry.host, entry.port, entry.sni,
            entry.requested_address, entry.address, entry.status, entry.error_kind, entry.error,
            entry.tls_version, _flag(trust.trusted if trust else None),
            trust.reason if trust else None, _flag(hostname.matches if hostname else None),
            entry.chain_length, entry.chain[0].facts.sha256 if entry.chain else None,
        ),
    ).lastrowid  # fmt: skip
    db.executemany(
        "INSERT OR IGNORE INTO chain VALUES (?, ?, ?, ?)",
        [(target_id, c.position, c.role, c.facts.sha256) for c in entry.chain],
    )
    by_position = {c.position: c.facts.sha256 for c in entry.chain}
    db.executemany(
        "INSERT INTO problems VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                target_id,
                p.code,
                p.severity,
                p.position,
                None if p.position is None else by_position.get(p.position),
                p.message,
            )
            for p in entry.problems
        ],
    )
