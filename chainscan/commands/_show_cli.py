"""``chainscan show HOST...``: arguments -> ``_show`` -> the one-host view. No logic of its own."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._models import WARN_DAYS, BadLine, CertFormat, ScanOptions, ScanResult, Status, Target
from .._untrusted import terminal_safe
from ._common import (
    add_attempt_options,
    add_trust_store,
    add_warn_days,
    error,
    new_parser,
    port,
)

__all__ = ["main"]

PROG = "chainscan show"
_DEFAULTS = ScanOptions()

DESCRIPTION = """\
Fetch the certificate chain that each TARGET serves, now, and print it: each certificate as
sent (subject, issuer, validity and days left, key, SPKI SHA-256 pin, SHA-256 fingerprint), the
trust and hostname verdicts and the problems (the codes of docs/inventory.md). Nothing is
written unless --save DIR is given, which writes the usual scan folder (Kony-named certificate
files and manifest) there.

A TARGET is written like a line of a scan's input file: example.com, example.com:8443,
192.0.2.7:443, [2001:db8::1]:443, https://example.com/path, example.com{192.0.2.7}:8443.
To scan a list of targets from a file, use 'chainscan FILE' instead.
"""

EPILOG = """\
colour: on when standard output is a terminal, off with --no-color or when the NO_COLOR
environment variable is set (to anything); the words say the same without it.

exit codes:
  0  every target served a chain that is trusted, matches its name and has no error problem
  1  some target failed, or its chain has an error-severity problem (expired, untrusted, ...)
  2  usage error: a bad TARGET or option, an unusable --save folder or trust store
  130  interrupted by Ctrl-C

examples:
  chainscan show example.com
  chainscan show example.com:8443 'example.com{192.0.2.7}' --warn-days 60
  chainscan show example.com --save pins/example   # also write the Kony-named files
  chainscan show example.com --json | jq .chain[0].pin
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("targets", metavar="TARGET", nargs="+", help="host, host:port, ...")
    parser.add_argument(
        "-p",
        "--port",
        type=port,
        default=_DEFAULTS.default_port,
        help="port for targets that give none (default: %(default)s)",
    )
    parser.add_argument("--sni", metavar="NAME", help="send this SNI name instead of the host")
    add_attempt_options(parser, _DEFAULTS)
    add_trust_store(parser, _DEFAULTS)
    add_warn_days(
        parser, f"call certificates expiring within N days expires-soon (default: {WARN_DAYS})"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print one manifest entry per line (JSON Lines)"
    )
    out.add_argument("--no-color", action="store_true", help="no colour (also: NO_COLOR=1)")
    out.add_argument(
        "--save",
        metavar="DIR",
        type=Path,
        help="also write the scan folder (certificate files, manifest) into DIR",
    )
    out.add_argument("--overwrite", action="store_true", help="with --save: replace a scan in DIR")
    out.add_argument(
        "--cert-format",
        choices=[f.value for f in CertFormat],
        default=_DEFAULTS.cert_format.value,
        help="with --save: certificate file format (default: %(default)s)",
    )
    return parser


def _parse_targets(texts: Sequence[str], options: ScanOptions) -> list[Target]:
    from ..scan._targets import parse_line

    targets = []
    for number, text in enumerate(texts, start=1):
        parsed = parse_line(
            text,
            line=number,
            source="<argv>",
            default_port=options.default_port,
            sni=options.sni,
            starttls="none",  # show speaks TLS from the first byte, whatever the port
        )
        if parsed is None:
            raise UsageError(f"TARGET {number} ({text!r}) is empty or a comment")
        if isinstance(parsed, BadLine):
            raise UsageError(f"TARGET {text!r}: {parsed.reason}")
        if parsed.protocol is not None:
            raise UsageError(
                f"TARGET {text!r}: show speaks TLS from the first byte; for STARTTLS "
                f"({parsed.protocol}), scan it: echo {text!r} | chainscan - -o DIR"
            )
        targets.append(parsed)
    return targets


def _verdict_ok(entry: dict[str, Any]) -> bool:
    if entry.get("status") != Status.OK:
        return False
    return not any(p.get("severity") == "error" for p in entry.get("problems") or [])


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    options = ScanOptions(
        default_port=args.port,
        sni=args.sni,
        connect_timeout=args.connect_timeout,
        handshake_timeout=args.handshake_timeout,
        deadline=args.deadline,
        retries=args.retries,
        trust_store=args.trust_store,
        warn_days=args.warn_days,
        cert_format=CertFormat(args.cert_format),
    )
    if args.overwrite and args.save is None:
        raise UsageError("--overwrite goes with --save DIR")
    targets = _parse_targets(args.targets, options)  # every argument checked before any I/O
    from ._show import Describer, fetch_all, in_order, open_folder, save

    # The trust store and the --save folder are checked before anything is fetched.
    folder = (
        None if args.save is None else open_folder(args.save, options, overwrite=args.overwrite)
    )
    describer = None if folder is not None else Describer(options)
    color = not (args.no_color or args.json or "NO_COLOR" in os.environ) and sys.stdout.isatty()
    now = dt.datetime.now(dt.UTC)
    ok = True

    def emit(entry: dict[str, Any]) -> None:
        nonlocal ok
        ok = _verdict_ok(entry) and ok
        if args.json:
            import json

            sys.stdout.write(json.dumps(entry, ensure_ascii=True) + "\n")
        else:
            from ._show_text import render_entry

            sys.stdout.write(render_entry(entry, now=now, warn_days=options.warn_days, color=color))
        sys.stdout.flush()

    def shown(index: int, result: ScanResult) -> None:
        if describer is not None:
            if index and not args.json:
                sys.stdout.write("\n")
            emit(describer.entry(result))

    results = in_order(fetch_all(targets, options), len(targets), shown)
    if folder is not None:
        run = {
            "started": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "input": "<argv>",
            "output": str(args.save),
            "argv": ["show", *argv],
        }
        manifest, entries = save(folder, results, run=run)
        for index, entry in enumerate(entries):
            if index and not args.json:
                sys.stdout.write("\n")
            emit(entry)
        print(terminal_safe(f"saved: {manifest}"), file=sys.stderr)
    return 0 if ok else 1


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        error(PROG, str(exc))
        return 2
    except Exception as exc:
        from .._errors import ChainscanError

        if not isinstance(exc, ChainscanError):
            raise
        error(PROG, str(exc))
        return 2
