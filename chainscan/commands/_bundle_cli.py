"""``chainscan bundle OUT_OR_MANIFEST --kony-app WORKSPACE/APP``: arguments -> ``_bundle`` ->
files in the app and the plan on stdout. No logic: ``_bundle`` says what is written and why."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from .._errors import UsageError
from .._untrusted import terminal_safe
from ._bundle import (
    INFOPLIST,
    PIN_CHOICES,
    PUBLIC_KEYS,
    BundlePlan,
    Write,
    apply,
    bundle_warnings,
    plan_bundle,
)
from ._bundle_track import TRACK_FILE
from ._common import add_warn_days, error, new_parser, run
from ._pin_rules import Violation, apply_rules
from ._pins import PinOptions, plan_pins
from ._pins_cli import add_backup, add_host, load_backups, load_scan, print_warnings

__all__ = ["main"]

PROG = "chainscan bundle"

DESCRIPTION = """\
Bundle a scan's certificates (or public-key pins) into a Kony / Volt MX app, as the
certificate pinning guide does by hand: the four certs folders (iPhone, iPad, Android mobile,
Android tablet) and the "allowbundledonly" entry of resources/common/infoplist_configuration.json.
"""

EPILOG = """\
exit codes:
  0  done (or planned, with --dry-run)    1  nothing to bundle
  2  usage error, unreadable input, or a file that would be clobbered

examples:
  chainscan bundle out/ --kony-app ~/workspace/MyApp --pin intermediate --dry-run
  chainscan bundle out/ --kony-app ~/workspace/MyApp --pin both
  chainscan bundle out/ --kony-app ~/workspace/MyApp --public-keys --backup spare.pem
  chainscan bundle out/ --kony-app ~/workspace/MyApp --pin intermediate --prune
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("sources", metavar="OUT_OR_MANIFEST", nargs="+", type=Path)
    parser.add_argument(
        "--kony-app",
        required=True,
        type=Path,
        metavar="WORKSPACE/APP",
        help="the app folder (the one holding resources/)",
    )
    parser.add_argument(
        "--pin",
        choices=sorted(PIN_CHOICES),
        default="intermediate",
        help="which certificates of each chain (default: intermediate)",
    )
    parser.add_argument(
        "--public-keys",
        action="store_true",
        help="public-key pinning: write public_keys.json instead of certificate files",
    )
    parser.add_argument(
        "--cer", action="store_true", help="name certificate files .cer (Windows needs it)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove what an earlier bundle run wrote and this selection no longer includes "
        f"(certificates, public_keys.json, its hosts, the iOS switch), as tracked in "
        f"{TRACK_FILE}; files chainscan did not write, or that changed since, are never touched",
    )
    add_host(parser)
    keys = parser.add_argument_group("public-key pinning (--public-keys)")
    add_backup(keys, "backup pin: base64 value or spare key/CSR/certificate file (repeatable)")
    keys.add_argument("--include-subdomains", action="store_true", help="also write *.host entries")
    keys.add_argument(
        "--product",
        choices=["kony", "voltmx"],
        default="kony",
        help="iOS switch to set: KonyHTTPPublicKeyPinning (kony, default) or "
        "VoltMXHTTPPublicKeyPinning (voltmx)",
    )
    add_warn_days(parser, "expiry warning window (30)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    return parser


def _print_writes(writes: Sequence[Write], dry_run: bool) -> None:
    verbs = (
        {
            "new": "would create",
            "replace": "would replace",
            "unchanged": "unchanged",
            "remove": "would remove",
        }
        if dry_run
        else {
            "new": "created",
            "replace": "replaced",
            "unchanged": "unchanged",
            "remove": "removed",
        }
    )
    width = max(len(v) for v in verbs.values())
    for write in writes:
        print(terminal_safe(f"  {verbs[write.state].ljust(width)}  {write.path}  [{write.note}]"))


def _warn_stale(bundle: BundlePlan, *, pruned: bool) -> None:
    """Name what an earlier run wrote that this one no longer does."""
    prunable: dict[str, list[str]] = {}
    for item in bundle.stale:
        if item.state == "changed":
            print(
                terminal_safe(
                    f"{PROG}: warning: {item.path}: an earlier bundle run wrote it and it changed "
                    "since; left alone (remove it by hand if it is no longer wanted) [stale]"
                ),
                file=sys.stderr,
            )
        elif item.state == "prunable" and not pruned:
            folder, _, name = item.path.rpartition("/")
            prunable.setdefault(name, []).append(folder)
    for name, folders in prunable.items():
        # one line per file name, not per certs folder
        where = f"{folders[0]}/{name}" if len(folders) == 1 else f"{name} in {len(folders)} folders"
        print(
            terminal_safe(
                f"{PROG}: warning: {where}: written by an earlier bundle run and no longer "
                "selected; --prune removes it [stale]"
            ),
            file=sys.stderr,
        )
    if pruned:
        return
    for name in bundle.old_settings:
        print(
            terminal_safe(
                f'{PROG}: warning: {INFOPLIST}: "{name}" was set by an earlier bundle run and no '
                "longer applies; --prune removes it [stale]"
            ),
            file=sys.stderr,
        )
    if bundle.old_hosts:
        print(
            terminal_safe(
                f"{PROG}: warning: {PUBLIC_KEYS}: {', '.join(bundle.old_hosts)} written by an "
                "earlier bundle run and no longer selected; --prune removes them [stale]"
            ),
            file=sys.stderr,
        )


def main(argv: Sequence[str], *, now: dt.datetime | None = None) -> int:
    args = build_parser().parse_args(list(argv))
    return run(PROG, lambda: _bundle(args, now))


def _bundle(args: argparse.Namespace, now: dt.datetime | None) -> int:
    app: Path = args.kony_app
    if not app.is_dir():
        raise UsageError(f"--kony-app {app}: no such folder")
    if (args.backup or args.include_subdomains) and not args.public_keys:
        raise UsageError("--backup and --include-subdomains need --public-keys")
    options = PinOptions(
        roles=PIN_CHOICES[args.pin],
        backups=load_backups(args.backup),
        include_subdomains=args.include_subdomains,
        warn_days=args.warn_days,
        hosts=tuple(args.host),
    )
    moment = dt.datetime.now(dt.UTC) if now is None else now
    plan = plan_pins(load_scan(args.sources), options, now=moment)
    errors: list[Violation] = []
    if args.public_keys:
        # public_keys.json keys must be host names the app can match (Volt MX rules)
        plan, violations = apply_rules(plan, "voltmx", today=moment.date())
        errors = [v for v in violations if v.severity == "error"]
    if not args.quiet:
        print_warnings(bundle_warnings(plan, args.public_keys), PROG, sys.stderr, errors=errors)
    if not plan.pinned:
        error(PROG, "no host to bundle; nothing written")
        return 1
    try:
        bundle = plan_bundle(
            app,
            plan,
            public_keys=args.public_keys,
            product=args.product,
            cer=args.cer,
            prune=args.prune,
        )
        writes, what = bundle.writes, bundle.what
        if not args.quiet:
            _warn_stale(bundle, pruned=args.prune)
        if not (app / "resources").is_dir() and not (app / "projectProperties.json").exists():
            print(
                terminal_safe(
                    f"{PROG}: warning: {app} has no resources/ folder or projectProperties.json; "
                    "is it the app folder?"
                ),
                file=sys.stderr,
            )
        if not args.dry_run:
            apply(app, writes)
            record = bundle.record.to_bytes()
            apply(app, [Write(path=TRACK_FILE, data=record, state="new", note="")])
    except OSError as exc:
        error(PROG, str(exc))
        return 2
    head = "plan (dry run, nothing written)" if args.dry_run else "bundled"
    print(terminal_safe(f"{head}: {what} into {app}"))
    _print_writes(writes, args.dry_run)
    print(
        "next: in Kony Visualizer / Volt MX Iris, Project Settings > Native > Android (Mobile "
        'and Tablet): set Network Trust Config to Allow Pinned, then build (not "Allow Self '
        'Signed/Untrusted Certificates", the older Kony Visualizer entry of that list, which '
        "turns certificate checks off; see the Volt MX Iris user guide, Certificate Pinning)."
    )
    return 0
