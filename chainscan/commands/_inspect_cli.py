"""``chainscan inspect FILE...``: arguments -> ``_inspect`` -> text or JSON. No logic."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._errors import UsageError
from .._untrusted import json_terminal_safe, terminal_safe
from ._common import new_parser
from ._inspect import Material, read_file, render_json, render_text

__all__ = ["main"]

PROG = "chainscan inspect"

DESCRIPTION = """\
Print the facts the manifest records (fingerprints, SPKI SHA-256 pin, subject, issuer, SANs,
validity, key, CA flags) for certificates on disk: DER, PEM or PEM bundles. Public keys, CSRs
and unencrypted private keys are read too, for backup pins (only the public half is shown).
Offline: nothing is fetched.
"""


EPILOG = """\
Certificates get an 'expires' line: days left (or since expiry) and valid / EXPIRED / NOT YET
VALID, as of now.

exit codes:
  0  every FILE was read
  1  some FILE could not be read (missing, unreadable, not a certificate, key or CSR); the
     others are still printed
  2  usage error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    parser.add_argument("files", metavar="FILE", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    items: list[Material] = []
    failed = False
    for path in args.files:
        try:
            items.extend(read_file(path))
        except UsageError as exc:  # this file only: report it, read the others
            print(terminal_safe(f"{PROG}: {exc}"), file=sys.stderr)
            failed = True
    if args.json:
        sys.stdout.write(json_terminal_safe(render_json(items)))
    else:
        sys.stdout.write(terminal_safe(render_text(items), newlines=True))
    return 1 if failed else 0
