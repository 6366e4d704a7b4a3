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
from .._untrusted import json_terminal_safe, terminal_safe
from ._common import add_warn_days, error, new_parser, read_scan, run, write_text_atomically
from ._inspect import read_file
from ._pin_anchors import save_private_cas
from ._pin_check import check_file
from ._pin_rules import RULES, Violation, apply_rules, refused_hosts
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


DEFAULT_ROLES = ("intermediate", "root")
"""Two pins per host out of the box: the issuing CA sent, and the root of the verified chain
(from the trust store when the server does not send it)."""


def print_warnings(
    warnings: Sequence[PinWarning],
    prog: str,
    stream: TextIO,
    *,
    errors: Sequence[Violation] = (),
    quiet_kinds: Sequence[str] = (),
) -> None:
    """Errors, then warnings: grouped by kind, one line per host and kind, and a count.

    A host refused by an ``error`` rule gets its error lines only (the JSON keeps the rest).
    """
    refused = set(refused_hosts(errors))
    hidden = set(quiet_kinds)
    for refusal in sorted(
        (e for e in errors if e.severity == "error"), key=lambda e: list(RULES).index(e.rule)
    ):
        print(
            terminal_safe(
                f"{prog}: error: {refusal.host}: {refusal.message}; left out [{refusal.rule}]"
            ),
            file=stream,
        )
    lines: dict[tuple[str, str | None, str], list[str]] = {}
    for warning in warnings:
        if warning.kind in hidden or (warning.host is not None and warning.host in refused):
            continue
        # one line per host and kind; host-less warnings each have a line of their own
        key = (warning.kind, warning.host, "" if warning.host else warning.message)
        lines.setdefault(key, []).append(warning.message)
    order = list(dict.fromkeys(kind for kind, _host, _message in lines))
    kinds: dict[str, int] = {}
    for kind, host, message in sorted(lines, key=lambda key: order.index(key[0])):
        messages = lines[(kind, host, message)]
        more = f" (and {len(messages) - 1} more like it)" if len(messages) > 1 else ""
        where = f"{host}: " if host else ""
        print(terminal_safe(f"{prog}: warning: {where}{messages[0]}{more} [{kind}]"), file=stream)
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = [f"{n} {k}" for k, n in kinds.items()]
    rules: dict[str, int] = {}
    for refusal in errors:
        if refusal.severity == "error":
            rules[refusal.rule] = rules.get(refusal.rule, 0) + 1
    if refused:
        why = ", ".join(f"{n} {r}" for r, n in rules.items())
        counts.insert(0, f"{len(refused)} hosts left out ({why})")
    if len(refused) + sum(kinds.values()) > 1:
        print(terminal_safe(f"{prog}: summary: {'; '.join(counts)}"), file=stream)


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
refused hosts (stderr "error: HOST: ... [rule]"; the other hosts are written):
  each format is checked against its platform's start-up rules; a host that would crash the
  app or fail every connection is left out: trustkit: no Public Suffix List suffix (IP,
  .internal, .corp, .local, .lan, .test...), includeSubdomains on a public suffix, fewer than
  2 pins while enforcing; ios: IP address, an identity list with no live key (backups only);
  okhttp: a pattern CertificatePinner.add() throws on; android, voltmx: not an ASCII host
  name. Internationalized names are written as IDNA A-labels. See docs/pins.md.

warnings (stderr, grouped with a count summary; all of them in --format json):
  fewer than 2 pins, a backup pin found in the live chain, a pinned leaf or intermediate
  expiring within --warn-days, chains that disagree across addresses or runs, a private CA the
  app must trust (android -o: saved to res/raw and written as <trust-anchors>), the date an
  --expiration switches pinning off.

exit codes:
  0  written (warnings or not)       1  nothing to pin, a host left out (unless
  2  usage error or unreadable input    --allow-partial), or --strict and warnings
  --check FILE: 0 no rule broken, 1 a rule broken (or --strict and a warning), 2 unreadable

examples:
  chainscan pins out/ --format android -o app/src/main/res/xml/network_security_config.xml
  chainscan pins out/ --format trustkit --pin leaf --pin intermediate --expiration auto
  chainscan pins out/ --format okhttp --backup spare-ca-key.pem --include-subdomains
  chainscan pins --check app/src/main/res/xml/network_security_config.xml
"""


def add_backup(group: Any, help: str) -> None:
    """``--backup PIN_OR_FILE`` (repeatable), read by :func:`load_backups`."""
    group.add_argument("--backup", action="append", default=[], metavar="PIN_OR_FILE", help=help)


def add_host(group: Any, help: str = "only this host (repeatable)") -> None:
    """``--host NAME`` (repeatable): only these hosts of the scan."""
    group.add_argument("--host", action="append", default=[], metavar="NAME", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument(
        "sources",
        metavar="OUT_OR_MANIFEST",
        nargs="*",
        type=Path,
        help="chainscan output folder, or its manifest.jsonl / manifest.json (several allowed)",
    )
    parser.add_argument("-f", "--format", choices=FORMATS, help="required unless --check")
    parser.add_argument(
        "--check",
        metavar="FILE",
        type=Path,
        help="lint a pin configuration (any format chainscan writes, hand-edited or not) "
        "against its platform's rules instead of writing one; exit 1 if it breaks one",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write here instead of stdout"
    )
    what = parser.add_argument_group("what to pin")
    what.add_argument(
        "--pin",
        action="append",
        metavar="ROLE",
        help="leaf, intermediate, root or all; repeat or comma-separate (default: "
        "intermediate,root; root is the root of the verified chain, from the trust store when "
        "the server does not send it)",
    )
    add_backup(
        what,
        "backup pin: base64 SHA-256 value, or a spare public key, CSR, private key or "
        "certificate file (PEM or DER); repeatable; added to every host",
    )
    add_host(what, "only this host (repeatable); *.NAME: NAME, its pins covering its subdomains")
    how = parser.add_argument_group("how")
    how.add_argument(
        "--include-subdomains",
        action="append",
        nargs="?",
        const="*",
        metavar="HOST",
        help="pins cover subdomains too, of every host or of HOST (repeatable) "
        "(okhttp: **.host; voltmx: host and *.host)",
    )
    how.add_argument(
        "--expiration",
        type=_date,
        metavar="DATE",
        help="yyyy-MM-dd after which the pins are no longer enforced (android, trustkit), or "
        "'auto': the latest expiry of the pinned certificates, after which no pin of the set "
        "can match a valid chain. Pinning is OFF after that date",
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
        help="trustkit: TSKReportUris entry (repeatable); TSKDisableDefaultReportUri is "
        "always true, so reports go only there",
    )
    how.add_argument(
        "--certificate-transparency",
        action="store_true",
        help='android: <certificateTransparency enabled="true"/> in each <domain-config> '
        "(Android 16+; ignored by older versions)",
    )
    how.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 when some hosts were left out because their platform would refuse them",
    )
    how.add_argument(
        "--quiet-warnings",
        action="append",
        default=[],
        metavar="KIND",
        help="no stderr line for warnings of this kind (repeatable; the json keeps them)",
    )
    how.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    how.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    return parser


def _subdomain_options(
    args: argparse.Namespace,
) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(every host, these hosts, the --host filter) from --include-subdomains and *.HOST."""
    values = args.include_subdomains or []
    every = "*" in values
    named = [v for v in values if v != "*"]
    hosts = []
    for host in args.host:
        if host.startswith("*."):
            named.append(host[2:])
            hosts.append(host[2:])
        else:
            hosts.append(host)
    return every, tuple(named), tuple(hosts)


def main(argv: Sequence[str], *, now: dt.datetime | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    moment = dt.datetime.now(dt.UTC) if now is None else now
    if args.check is not None:
        if args.sources:
            parser.error("--check FILE takes no scan folders")
        return run(PROG, lambda: _check(args, moment.date()))
    if not args.sources or args.format is None:
        parser.error("the following arguments are required: OUT_OR_MANIFEST, -f/--format")
    for value in args.include_subdomains or []:
        if "/" in value or Path(value).exists():  # "--include-subdomains out/" took the folder
            parser.error(
                f"--include-subdomains {value!r} looks like a scan folder, not a host name: "
                "put --include-subdomains after the scan folders, or write "
                "--include-subdomains=HOST"
            )
    return run(PROG, lambda: _pins(args, moment))


def _pins(args: argparse.Namespace, moment: dt.datetime) -> int:
    every, named, hosts = _subdomain_options(args)
    options = PinOptions(
        roles=parse_roles(args.pin, DEFAULT_ROLES),
        backups=load_backups(args.backup),
        include_subdomains=every,
        subdomain_hosts=named,
        expiration=args.expiration,
        warn_days=args.warn_days,
        hosts=hosts,
        enforce=not args.no_enforce,
        report_uris=tuple(args.report_uri),
        language=args.language,
        certificate_transparency=args.certificate_transparency,
    )
    scan = load_scan(args.sources)
    planned = plan_pins(scan, options, now=moment, sources=[str(s) for s in args.sources])
    warnings = format_warnings(planned, args.format)
    plan, violations = apply_rules(planned, args.format, today=moment.date())
    errors = [v for v in violations if v.severity == "error"]
    saved: tuple[Path, ...] = ()
    if args.format == "android" and args.output is not None:
        try:
            plan, saved = save_private_cas(plan, args.output)
        except (OSError, ValueError) as exc:
            error(PROG, f"a private CA certificate: {exc}")
            return 2
        warnings = format_warnings(plan, args.format)
    warnings += tuple(v.warning() for v in violations if v.severity == "warning")
    if not args.quiet:
        print_warnings(warnings, PROG, sys.stderr, errors=errors, quiet_kinds=args.quiet_warnings)
    if not plan.pinned and args.format not in ("json", "text"):
        error(PROG, "no host could be pinned; nothing written")
        return 1
    text = render(plan, args.format)
    if args.format == "text":  # for people, on screen or in a file: escaped (see _untrusted)
        text = terminal_safe(text, newlines=True)
    if args.output is None:
        sys.stdout.write(json_terminal_safe(text) if args.format in ("json", "voltmx") else text)
    else:
        try:
            write_text_atomically(args.output, text)
        except OSError as exc:
            error(PROG, f"{args.output}: {exc.strerror or exc}")
            return 2
    for path in saved:
        print(
            terminal_safe(f"{PROG}: saved the private CA {path} (trusted as a <trust-anchors>)"),
            file=sys.stderr,
        )
    if not plan.pinned or (args.strict and warnings):
        return 1
    if errors and not args.allow_partial:
        return 1
    return 0


def _check(args: argparse.Namespace, today: dt.date) -> int:
    """``--check FILE``: 0 no rule broken (warnings aside, unless --strict); 1 a rule broken;
    2 unreadable."""
    path: Path = args.check
    try:
        data = path.read_bytes()
    except OSError as exc:
        error(PROG, f"{path}: {exc.strerror or exc}")
        return 2
    try:
        result = check_file(data, today=today)
    except ValueError as exc:
        error(PROG, f"{path}: {exc}")
        return 2
    if args.format is not None and args.format != result.format:
        error(PROG, f"{path}: a {result.format} configuration, not {args.format}")
        return 2
    hidden = set(args.quiet_warnings)
    errors = [v for v in result.violations if v.severity == "error"]
    warnings = [v for v in result.violations if v.severity == "warning" and v.rule not in hidden]
    for violation in errors + warnings:
        print(
            terminal_safe(
                f"{path}: {violation.severity}: {violation.host}: {violation.message} "
                f"[{violation.rule}]"
            )
        )
    print(
        terminal_safe(
            f"{path}: {result.format}, {len(result.hosts)} hosts: {len(errors)} errors, "
            f"{len(warnings)} warnings"
        )
    )
    if errors or (args.strict and warnings):
        return 1
    return 0
