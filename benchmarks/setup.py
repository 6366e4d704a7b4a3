"""``python3 -m benchmarks.setup``: install everything the benchmarks need, then say what is there.

Run it once, as root, from the repository root, after the project's own install
(``python3 -m pip install -e '.[test]'``). It installs, for every entry point of
:data:`benchmarks._requirements.ENTRY_POINTS` (required and optional needs alike): the Debian
packages in one ``apt-get install -y`` (nginx, GNU time, nmap, iptables, gcc,
libnetfilter-queue-dev, ...), sslyze's virtualenv (``benchmarks/.venv-sslyze``) and the Python
packages of this interpreter the benchmarks use beyond the project's install (matplotlib for
the charts). Then it prints, per entry point, what it needs and whether it is there, and exits
0 only when every required need of every entry point (or of the ``--only`` ones) is met.

``--check`` installs nothing: it only reports (exit 1 if something required is missing).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._requirements import ENTRY_POINTS, SETUP_COMMAND, Need, install, missing


def needs_for(entries: Sequence[str]) -> list[Need]:
    """Every need, required or optional, of ``entries``, each once."""
    return list(
        dict.fromkeys(
            n for e in entries for n in (*ENTRY_POINTS[e].needs, *ENTRY_POINTS[e].optional)
        )
    )


def render(entries: Sequence[str]) -> tuple[str, bool]:
    """Per entry point, each need and whether it is met; and whether all required ones are."""
    lines: list[str] = []
    ok = True
    for name in entries:
        entry = ENTRY_POINTS[name]
        lines.append(entry.command)
        for need, optional in [(n, False) for n in entry.needs] + [
            (n, True) for n in entry.optional
        ]:
            gone = need.missing()
            ok = ok and (optional or gone is None)
            state = "ok" if gone is None else f"MISSING ({gone}): {need.install_command()}"
            lines.append(f"  {need.what + (' (optional)' if optional else ''):<48} {state}")
    return "\n".join(lines), ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SETUP_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="install nothing; report what is missing"
    )
    parser.add_argument(
        "--only",
        default=",".join(ENTRY_POINTS),
        help="comma-separated entry points (default: all): " + ", ".join(ENTRY_POINTS),
    )
    args = parser.parse_args(argv)
    entries = [e.strip() for e in args.only.split(",") if e.strip()]
    unknown = [e for e in entries if e not in ENTRY_POINTS]
    if unknown:
        parser.error(f"unknown entry point(s) {unknown}; choose from {list(ENTRY_POINTS)}")
    needs = needs_for(entries)
    if not args.check:
        install(needs, pip=True)
    text, ok = render(entries)
    print(text)
    if not ok:
        print(
            f"\nsome required needs are missing ({len(missing(needs))}): run the commands above",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
