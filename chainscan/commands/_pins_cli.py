"""``chainscan pins OUT_OR_MANIFEST... --format F``: arguments -> PinOptions -> text. No logic.

The pin sets, warnings and formats live in ``_pins`` (pure); this module reads the manifests
(through ``manifest._reader.read_entries``) and the backup key files (through ``_inspect``),
writes the result and turns the outcome into an exit code. ``_bundle`` shares the loaders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .._errors import UsageError
from ._common import add_warn_days, error, new_parser, read_scan, run, write_text_atomically
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

__all__ = ["add_backup", "add_host", "load_backups", "load_scan", "main", "print_warnings"]

PROG = "chainscan pins"


def load_scan(paths: Sequence[Path]) -> Scan:
    """Every entry of every manifest given (folders or manifest files), as a Scan."""
    scans = []
    for path in paths:
        manifest, entries = read_scan(path)
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
            raise UsageError(
                f"--backup {value}: neither a base64 SHA-256 pin (44 characters) nor a file"
            )
        try:
            items = read_file(path)
        except UsageError as exc:
            raise UsageError(f"--backup: {exc}") from None
        for item in items:
            spki = item.pin_value
            if spki is None:
                raise UsageError(
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
                raise UsageError(f"--pin {part}: unknown role (use {', '.join(ROLES)} or all)")
    return tuple(r for r in ROLES if r in wanted)


def _date(text: str) -> str:
    if text == "auto":
        return text
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (yyyy-MM-dd) or 'auto'") from None


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


def add_backup(group: Any, help: str) -> None:
    """``--backup PIN_OR_FILE`` (repeatable), read by :func:`load_backups`."""
    group.add_argument("--backup", action="append", default=[], metavar="PIN_OR_FILE", help=help)


def add_host(group: Any) -> None:
    """``--host NAME`` (repeatable): only these hosts of the scan."""
    group.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="only this host (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
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
    add_backup(
        what,
        "backup pin: base64 SHA-256 value, or a spare public key, CSR, private key or "
        "certificate file (PEM or DER); repeatable; added to every host",
    )
    add_host(what)
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
    add_warn_days(
        how, "warn about pinned leaves and intermediates expiring within N days (default: 30)"
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
    return run(PROG, lambda: _pins(args, now))


def _pins(args: argparse.Namespace, now: dt.datetime | None) -> int:
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
    plan = plan_pins(scan, options, now=now, sources=[str(s) for s in args.sources])
    warnings = format_warnings(plan, args.format)
    if not args.quiet:
        print_warnings(warnings, PROG, sys.stderr)
    if not plan.pinned and args.format not in ("json", "text"):
        error(PROG, "no host could be pinned; nothing written")
        return 1
    text = render(plan, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            write_text_atomically(args.output, text)
        except OSError as exc:
            error(PROG, f"{args.output}: {exc.strerror or exc}")
            return 2
    if not plan.pinned or (args.strict and warnings):
        return 1
    return 0
