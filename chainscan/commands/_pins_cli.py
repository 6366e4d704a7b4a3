"""``chainscan pins OUT_OR_MANIFEST... --format F``: arguments -> PinOptions -> text. No logic.

The pin sets, warnings and formats live in ``_pins`` (pure); this module reads the manifests
(through ``_output.read_manifest_entries``) and the backup key files (through ``_inspect``),
writes the result and turns the outcome into an exit code. ``_bundle`` shares the loaders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .._errors import UsageError
from ..output._output import read_manifest_entries
from ._inspect import read_file
from ._pins import (
    FORMATS,
    ROLES,
    Backup,
    PinOptions,
    PinWarning,
    Scan,
    canonical_pin,
    format_warnings,
    merge_scans,
    observations_from_entries,
    plan_pins,
    render,
)

__all__ = ["load_backups", "load_scan", "main", "manifest_path"]

MANIFEST_NAMES = ("manifest.jsonl", "manifest.json")
"""Looked for, in this order, in an output folder given instead of a manifest."""


class PinsUsageError(UsageError):
    """A problem with the arguments or input files; exit code 2."""


def manifest_path(path: Path) -> Path:
    """The manifest file for an output folder or a manifest path."""
    if path.is_dir():
        for name in MANIFEST_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise PinsUsageError(f"{path}: no {' or '.join(MANIFEST_NAMES)} in this folder")
    if not path.exists():
        raise PinsUsageError(f"{path}: no such file or folder")
    return path


def load_scan(paths: Sequence[Path]) -> Scan:
    """Every entry of every manifest given (folders or manifest files), as a Scan."""
    scans = []
    for path in paths:
        manifest = manifest_path(path)
        try:
            entries = list(read_manifest_entries(manifest))
        except (OSError, ValueError) as exc:
            raise PinsUsageError(f"{manifest}: cannot read the manifest: {exc}") from None
        scans.append(
            observations_from_entries(entries, source=str(manifest), root=str(manifest.parent))
        )
    return merge_scans(scans)


def load_backups(values: Sequence[str]) -> tuple[Backup, ...]:
    """``--backup`` values: a base64 pin (``sha256/`` optional) or a key/CSR/certificate file."""
    backups: list[Backup] = []
    for value in values:
        pin = canonical_pin(value)
        if pin is not None:
            backups.append(Backup(spki_sha256=pin, source="base64 value"))
            continue
        path = Path(value)
        if not path.exists():
            raise PinsUsageError(
                f"--backup {value}: neither a base64 SHA-256 pin (44 characters) nor a file"
            )
        try:
            items = read_file(path)
        except ValueError as exc:
            raise PinsUsageError(f"--backup: {exc}") from None
        for item in items:
            spki = item.pin_value
            if spki is None:
                raise PinsUsageError(
                    f"--backup: {item.label}: no public key to pin ({item.error or 'unparsable'})"
                )
            facts = item.facts
            backups.append(
                Backup(
                    spki_sha256=spki,
                    source=f"{item.label} ({item.kind})",
                    kind=item.backup_kind,
                    cn=facts.cn if facts is not None else item.cn,
                    not_after=facts.not_after if facts is not None else None,
                )
            )
    return tuple(backups)


def parse_roles(values: Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """``--pin`` values (repeatable, comma-separated, ``all``) -> roles in chain order."""
    if not values:
        return default
    wanted: set[str] = set()
    for value in values:
        for part in value.split(","):
            role = part.strip().lower()
            if role == "all":
                wanted.update(ROLES)
            elif role in ROLES:
                wanted.add(role)
            elif role:
                raise PinsUsageError(f"--pin {part}: unknown role (use {', '.join(ROLES)} or all)")
    return tuple(r for r in ROLES if r in wanted)


def _date(text: str) -> str:
    if text == "auto":
        return text
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (yyyy-MM-dd) or 'auto'") from None


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_warnings(warnings: Sequence[PinWarning], prog: str, stream: TextIO) -> None:
    for warning in warnings:
        print(f"{prog}: warning: {warning} [{warning.kind}]", file=stream)


DESCRIPTION = """\
Write ready-to-use public-key pin configurations from a chainscan output folder (or manifest).
A pin is the base64 SHA-256 of a certificate's DER SubjectPublicKeyInfo. Hosts are the names
apps connect to (the SNI name, else the host); every address, port and scan given counts, so
the pin set covers every chain that was seen.

formats:
  android   res/xml/network_security_config.xml (<domain-config>, <pin-set>, <pin digest>)
  okhttp    CertificatePinner.Builder().add(...) snippet, Kotlin (default) or --language java
  ios       Info.plist NSAppTransportSecurity / NSPinnedDomains fragment (iOS 14+)
  trustkit  Info.plist TSKConfiguration / TSKPinnedDomains fragment
  voltmx    certs/public_keys.json for Volt MX / Kony public-key pinning
  json      every host, every certificate (CN, role, expiry, pin), pin sets and warnings
  text      the same, for people
"""

EPILOG = """\
warnings (stderr, and in --format json):
  fewer than 2 pins, a backup pin found in the live chain, a pinned leaf or intermediate
  expiring within --warn-days, chains that disagree across addresses or runs.

exit codes:
  0  written (warnings or not)       1  nothing to pin, or --strict and warnings
  2  usage error or unreadable input

examples:
  chainscan pins out/ --format android -o app/src/main/res/xml/network_security_config.xml
  chainscan pins out/ --format trustkit --pin leaf --pin intermediate --expiration auto
  chainscan pins out/ --format okhttp --backup spare-ca-key.pem --include-subdomains
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainscan pins",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources",
        metavar="OUT_OR_MANIFEST",
        nargs="+",
        type=Path,
        help="chainscan output folder, or its manifest.jsonl / manifest.json (several allowed)",
    )
    parser.add_argument("-f", "--format", required=True, choices=FORMATS)
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write here instead of stdout"
    )
    what = parser.add_argument_group("what to pin")
    what.add_argument(
        "--pin",
        action="append",
        metavar="ROLE",
        help="leaf, intermediate, root or all; repeat or comma-separate (default: intermediate)",
    )
    what.add_argument(
        "--backup",
        action="append",
        default=[],
        metavar="PIN_OR_FILE",
        help="backup pin: base64 SHA-256 value, or a spare public key, CSR, private key or "
        "certificate file (PEM or DER); repeatable; added to every host",
    )
    what.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="only this host (repeatable)"
    )
    how = parser.add_argument_group("how")
    how.add_argument(
        "--include-subdomains",
        action="store_true",
        help="pins cover subdomains too (okhttp: **.host; voltmx: host and *.host)",
    )
    how.add_argument(
        "--expiration",
        type=_date,
        metavar="DATE",
        help="yyyy-MM-dd after which the pins are no longer enforced (android, trustkit), or "
        "'auto' for the earliest expiry of the pinned certificates",
    )
    how.add_argument(
        "--warn-days",
        type=non_negative_int,
        default=30,
        metavar="N",
        help="warn about pinned leaves and intermediates expiring within N days (default: 30)",
    )
    how.add_argument(
        "--language",
        choices=["kotlin", "java"],
        default="kotlin",
        help="okhttp snippet language (default: kotlin)",
    )
    how.add_argument(
        "--no-enforce",
        action="store_true",
        help="trustkit: TSKEnforcePinning false (report only)",
    )
    how.add_argument(
        "--report-uri",
        action="append",
        default=[],
        metavar="URL",
        help="trustkit: TSKReportUris entry (repeatable)",
    )
    how.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    how.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    return parser


def main(argv: Sequence[str], *, now: dt.datetime | None = None) -> int:
    args = build_parser().parse_args(list(argv))
    prog = "chainscan pins"
    try:
        options = PinOptions(
            roles=parse_roles(args.pin, PinOptions().roles),
            backups=load_backups(args.backup),
            include_subdomains=args.include_subdomains,
            expiration=args.expiration,
            warn_days=args.warn_days,
            hosts=tuple(args.host),
            enforce=not args.no_enforce,
            report_uris=tuple(args.report_uri),
            language=args.language,
        )
        scan = load_scan(args.sources)
    except PinsUsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    plan = plan_pins(scan, options, now=now, sources=[str(s) for s in args.sources])
    warnings = format_warnings(plan, args.format)
    if not args.quiet:
        print_warnings(warnings, prog, sys.stderr)
    if not plan.pinned and args.format not in ("json", "text"):
        print(f"{prog}: error: no host could be pinned; nothing written", file=sys.stderr)
        return 1
    text = render(plan, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            write_atomically(args.output, text)
        except OSError as exc:
            print(f"{prog}: error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if not plan.pinned or (args.strict and warnings):
        return 1
    return 0
