"""Command line: arguments -> a frozen RunConfig -> run_scan -> exit code. No logic of its own."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from ._errors import ChainscanError
from ._models import CertFormat, ScanOptions, Target
from .commands._common import (
    add_attempt_options,
    add_trust_store,
    add_warn_days,
    new_parser,
    non_negative_int,
    number,
    port,
    seconds,
)
from .scan._inputs import MAX_RANGE
from .scan._starttls._table import AUTO, NONE, PROTOCOLS

if TYPE_CHECKING:
    from .run._run import RunConfig
    from .run._shard import Shard

# The scan's machinery (trio, rich, the writer) is imported when a scan starts: ``chainscan
# show`` and the other commands are dispatched from here and must not pay for it.

__all__ = ["main"]

_DEFAULTS = ScanOptions()

DESCRIPTION = """\
Fetch the TLS certificate chain every endpoint in FILE presents, leaf to root, concurrently.

For each target, chainscan writes OUT/<host>_<port>/ with one file per certificate, named after
its subject CN with every non-alphanumeric character replaced by '_' (the KonySSLPinningTool
convention), plus OUT/manifest.jsonl (one line per target, written as results arrive) and
OUT/manifest.json (fingerprints, SPKI SHA-256 pins, subject, issuer, validity, ...).
"""

EPILOG = """\
input lines (one per line; '#' comments and blank lines are skipped):
  example.com                 default port (--port, 443)
  example.com:8443            name and port
  192.0.2.7:443  [2001:db8::1]:443  2001:db8::1
  https://example.com:8443/some/path
  example.com:443{192.0.2.7}  connect to 192.0.2.7, send SNI example.com
  example.com{192.0.2.7}:443  the same
  192.0.2.0/24  192.0.2.0/28:8443  [2001:db8::]/120:8443   every address of a range
  (a CSV file with a header line naming a 'host' column is read as a spreadsheet: see --csv)
  smtp://mail.example.com     STARTTLS first; the scheme's port (25) unless one is given

STARTTLS (plaintext first, then TLS): schemes smtp:// (25), submission:// (587),
  lmtp:// (24), imap:// (143), pop3:// (110), ftp:// (21), ldap:// (389), xmpp:// (5222),
  xmpp-server:// (5269), postgres:// (5432), mysql:// (3306), rdp:// (3389). Lines without a
  scheme follow --starttls: auto (default) uses the protocol of those well-known ports (25 and
  587 SMTP, 110, 143, 21, 389, 5222, 5269, 5432, 3306, 3389) and direct TLS on every other
  port (443, 465, 636, 990, 993, 995, 5223, ...); none is always direct TLS. Implicit-TLS
  schemes smtps:// imaps:// pop3s:// ldaps:// ftps:// xmpps:// are direct TLS on their ports.

one host at a glance (no output folder; its own --help):
  chainscan show HOST[:PORT] ...                  the chain each serves, verdicts, pins, now

commands that read a scan (each has its own --help):
  chainscan pins OUT --format android|okhttp|ios|trustkit|voltmx|json|text
  chainscan bundle OUT --kony-app WORKSPACE/APP   certificates into a Kony / Volt MX app
  chainscan inspect FILE...                       certificate facts for files on disk
  chainscan diff OLD NEW [--pins FILE]            what changed; the pin gate for CI
  chainscan report OUT [--html FILE]              problems, expiries, a self-contained page
  chainscan merge OUT DIR...                      join --shard outputs into one scan
  chainscan export OUT --csv FILE | --sqlite FILE  spreadsheet rows, SQL tables

exit codes:
  0    every target returned a chain
  1    some targets failed or some lines were invalid (see the manifest)
  2    usage error, unreadable input, unusable output folder, or a write error (full disk)
  3    the input holds no target (empty, or only blank lines and comments)
  130  interrupted by Ctrl-C (143: SIGTERM); the manifest is written and marked incomplete,
       and the command that finishes the scan (the same with --resume) is printed

examples:
  chainscan hosts.txt -o out/
  chainscan hosts.txt -o out/ --resume          # finish an interrupted scan
  cat hosts.txt | chainscan - -o out/ --rate 50 --per-ip 4
"""


def _positive_int(text: str) -> int:
    value = int(number(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate(text: str) -> float:
    value = number(text, float, "a number of connections per second")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (unlimited) or more, got {text}")
    return value


def _starttls(text: str) -> str:
    value = text.strip().lower()
    if value not in PROTOCOLS and value not in (AUTO, NONE):
        raise argparse.ArgumentTypeError(
            f"unknown protocol {text!r}: give auto, none or one of {', '.join(PROTOCOLS)}"
        )
    return value


def _default_port(port: int | None, starttls: str) -> int:
    """--port if given; else the --starttls protocol's port; else 443."""
    if port is not None:
        return port
    return PROTOCOLS.get(starttls, _DEFAULTS.default_port)


def _cidr(text: str) -> str:
    from .scan._fetch_guard import parse_cidr

    try:
        return str(parse_cidr(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shard(text: str) -> Shard:
    from .run._shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dask(text: str) -> str:
    if importlib.util.find_spec("distributed") is None:
        raise argparse.ArgumentTypeError(
            "needs Dask's distributed scheduler: pip install 'chainscan[dask]'"
        )
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"local:N needs N >= 1 worker processes, got {text}")
    elif not text:
        raise argparse.ArgumentTypeError("expected a scheduler address or local:N")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("chainscan", DESCRIPTION, EPILOG)
    parser.add_argument("input", metavar="FILE", help="target list, one per line; - for stdin")
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=Path,
        help="output folder (default: outputs/<FILE name without extension>); '-' prints the "
        "manifest entries on standard output as JSON Lines and keeps no folder",
    )
    parser.add_argument("--version", action="version", version=f"chainscan {__version__}")
    target = parser.add_argument_group("targets")
    target.add_argument(
        "-p",
        "--port",
        type=port,
        default=None,
        help=f"port for lines that give none (default: {_DEFAULTS.default_port}, or the"
        " --starttls protocol's port)",
    )
    target.add_argument(
        "--sni", metavar="NAME", help="send this SNI name to every target instead of its own"
    )
    target.add_argument(
        "--csv",
        action="store_const",
        const=True,
        default=None,
        help="read FILE as CSV with a header (columns host, port, ip, sni, protocol; others "
        "ignored); without it, a FILE whose first line is such a header is read as CSV anyway",
    )
    target.add_argument(
        "--max-range",
        type=_positive_int,
        default=MAX_RANGE,
        metavar="N",
        help="largest CIDR range (192.0.2.0/24, [2001:db8::]/120:8443) one line may give, in "
        "addresses; a larger one is an invalid line (default: %(default)s, a /16)",
    )
    target.add_argument(
        "--starttls",
        metavar="PROTO",
        type=_starttls,
        default=_DEFAULTS.starttls,
        help="plaintext dialogue before TLS for lines without a scheme: auto (by port), none"
        f" (direct TLS) or one of {', '.join(PROTOCOLS)} (default: %(default)s)",
    )
    limits = parser.add_argument_group("limits (politeness and speed)")
    limits.add_argument(
        "-c",
        "--concurrency",
        type=_positive_int,
        default=_DEFAULTS.concurrency,
        help="connections open at once, at most (default: %(default)s)",
    )
    limits.add_argument(
        "-r",
        "--rate",
        type=_rate,
        default=_DEFAULTS.rate,
        help="new connections per second, whole scan; 0 = unlimited (default: %(default)g)",
    )
    limits.add_argument(
        "--per-ip",
        type=non_negative_int,
        default=_DEFAULTS.per_ip,
        help="connections open at once to one IP address; 0 = unlimited (default: %(default)s)",
    )
    limits.add_argument(
        "--per-net",
        type=non_negative_int,
        default=_DEFAULTS.per_net,
        help="connections open at once to one IPv4 /24 or IPv6 /64 (many names behind one load "
        "balancer or hosting block); 0 = unlimited (default: %(default)s)",
    )
    add_attempt_options(limits, _DEFAULTS)
    limits.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        default=1,
        help="scanning processes, to use several cores; --concurrency and --rate are shared "
        "among them, --per-ip and --per-net hold for the whole run (default: %(default)s)",
    )
    limits.add_argument(
        "--writer",
        choices=["auto", "process", "thread"],
        default="auto",
        help="where a single scanning process analyses certificates and writes files: in a "
        "'process' of its own (on a second core), or in 'thread's that share the scanning "
        "process's core; 'auto' picks process when there are two cores or more; not used "
        "with --workers or --dask, whose workers analyse (default: %(default)s)",
    )
    scale = parser.add_argument_group("beyond one machine (see docs/scale-out.md)")
    scale.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="scan only shard K of N (by a hash of each target), into its own DIR; join the "
        "folders with 'chainscan merge OUT DIR...'. 'auto' (in a Kubernetes indexed Job): K is "
        "JOB_COMPLETION_INDEX + 1, N is CHAINSCAN_SHARD_COUNT (or give auto/N)",
    )
    scale.add_argument(
        "--dask",
        type=_dask,
        metavar="ADDRESS",
        help="scan on a Dask cluster (scheduler address, or local:N for N local worker "
        "processes); needs 'pip install chainscan[dask]'; --concurrency and --rate are shared "
        "among its workers, --per-ip and --per-net hold for the whole run",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--cert-format",
        choices=[f.value for f in CertFormat],
        default=_DEFAULTS.cert_format.value,
        help="certificate file format, like KonySSLPinningTool's --cert_format "
        "(default: %(default)s)",
    )
    mode = out.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue a scan in DIR: skip targets its manifest.jsonl already has",
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of a previous scan in DIR",
    )
    out.add_argument(
        "--jsonl",
        action="store_true",
        help="also print each manifest entry on standard output as one JSON line, as results "
        "arrive (for jq); messages and progress stay on stderr. '-o -' does the same without "
        "keeping an output folder",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    out.add_argument(
        "--no-color",
        action="store_true",
        help="no colour in the progress bar and messages (also: the NO_COLOR environment "
        "variable, set to anything)",
    )
    inventory = parser.add_argument_group("inventory (see docs/inventory.md)")
    add_trust_store(inventory, _DEFAULTS)
    add_warn_days(
        inventory, "flag certificates expiring within N days as expires-soon (default: %(default)s)"
    )
    inventory.add_argument(
        "--deployments",
        action="store_true",
        help="also probe every address with TLS 1.2 RSA-only and ECDSA-only clients and without "
        "SNI; record each distinct chain and whether one pin set fits them all",
    )
    fetch = parser.add_argument_group(
        "fetching missing intermediates (AIA caIssuers; see docs/inventory.md)"
    )
    fetch.add_argument(
        "--no-fetch",
        dest="fetch",
        action="store_false",
        help="stay offline: never fetch the caIssuers URL of a chain that stops short",
    )
    fetch.add_argument(
        "--fetch-allow",
        type=_cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="fetch from this network although it is denied by default (loopback, link-local, "
        "multicast, unspecified, cloud metadata); repeatable",
    )
    fetch.add_argument(
        "--fetch-deny",
        type=_cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="never fetch from this network (wins over --fetch-allow; private ranges are "
        "allowed unless denied here); repeatable",
    )
    fetch.add_argument(
        "--revocation",
        choices=("crl", "ocsp", "both", "off"),
        default=_DEFAULTS.revocation,
        help="check the leaf's revocation: its CRL (cached per URL for the run), its OCSP "
        "responder (one request per leaf), both (CRL first), or off (default: %(default)s)",
    )
    fetch.add_argument(
        "--fetch-timeout",
        type=seconds,
        default=_DEFAULTS.fetch_timeout,
        metavar="SECONDS",
        help="for one URL, redirects and body included (default: %(default)s), within the "
        "target's --deadline",
    )
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> RunConfig:
    from .run._run import RunConfig

    output = args.output
    if output is None:
        stem = "stdin" if args.input == "-" else Path(args.input).stem or "scan"
        output = Path("outputs") / stem
    options = ScanOptions(
        concurrency=args.concurrency,
        rate=args.rate,
        per_ip=args.per_ip,
        per_net=args.per_net,
        connect_timeout=args.connect_timeout,
        handshake_timeout=args.handshake_timeout,
        deadline=args.deadline,
        retries=args.retries,
        default_port=_default_port(args.port, args.starttls),
        sni=args.sni,
        starttls=args.starttls,
        cert_format=CertFormat(args.cert_format),
        trust_store=args.trust_store,
        warn_days=args.warn_days,
        deployments=args.deployments,
        fetch=args.fetch,
        fetch_allow=tuple(args.fetch_allow),
        fetch_deny=tuple(args.fetch_deny),
        fetch_timeout=args.fetch_timeout,
        revocation=args.revocation,
    )
    return RunConfig(
        input=args.input,
        output=output,
        options=options,
        resume=args.resume,
        overwrite=args.overwrite,
        workers=args.workers,
        writer=args.writer,
        shard=args.shard,
        dask=args.dask,
        argv=tuple(argv),
        csv_input=args.csv,
        max_range=args.max_range,
        jsonl=sys.stdout.buffer if args.jsonl else None,
    )


def _show_hint(input_name: str) -> str:
    """A hint for ``chainscan example.com``: FILE is not a file but reads as a target."""
    from .scan._targets import parse_line

    if input_name == "-" or Path(input_name).exists():
        return ""
    if not isinstance(parse_line(input_name, line=1, source="<argv>"), Target):
        return ""
    return f" (to look at that host, not a list: chainscan show {input_name})"


SUBCOMMANDS: dict[str, str] = {
    "show": "chainscan.commands._show_cli",
    "pins": "chainscan.commands._pins_cli",
    "bundle": "chainscan.commands._bundle_cli",
    "inspect": "chainscan.commands._inspect_cli",
    "diff": "chainscan.commands._diff_cli",
    "report": "chainscan.commands._report_cli",
    "merge": "chainscan.commands._merge_cli",
    "export": "chainscan.commands._export_cli",
}
"""``chainscan NAME ...`` -> module whose ``main(argv) -> int`` runs it (imported on use)."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        return int(module.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dask is not None and args.workers > 1:
        parser.error("--dask and --workers exclude each other: Dask runs the worker processes")
    from .run._display import Display
    from .run._run import run_scan

    display = Display(quiet=args.quiet, color=not args.no_color)
    to_stdout = args.output == Path("-")
    if to_stdout and (args.resume or args.overwrite):
        parser.error("-o - keeps no folder: --resume and --overwrite need -o DIR")
    scratch = None
    if to_stdout:  # the scan still writes its files: into a folder removed at the end
        import tempfile

        scratch = tempfile.mkdtemp(prefix="chainscan-")
        args.output = Path(scratch) / "scan"
        args.jsonl = True
    try:
        config = config_from_args(args, argv)
        report = run_scan(config, display)
    except ChainscanError as exc:
        display.error(str(exc) + _show_hint(args.input))
        return 2
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    if report.error:
        display.error(report.error)
    if report.manifest is not None:
        whole = (report.counts, report.error_kinds) if config.resume else None
        where = "standard output" if to_stdout else str(report.manifest)
        display.summary(report.seconds, where, whole)
    if report.signal is not None and report.manifest is not None:
        display.warn(f"the scan is incomplete; to finish it: {_resume_command(argv, config)}")
    return report.exit_code


def _resume_command(argv: Sequence[str], config: RunConfig) -> str:
    """The command line that finishes an interrupted scan: the same, with --resume."""
    import shlex

    kept = [a for a in argv if a not in ("--overwrite", "--resume")]
    if (
        "-o" not in kept
        and "--output" not in kept
        and not any(a.startswith("--output=") for a in kept)
    ):
        kept += ["-o", str(config.output)]
    command = shlex.join(["chainscan", *kept, "--resume"])
    if config.input == "-":
        command += " (with the same input on standard input)"
    return command


if __name__ == "__main__":
    sys.exit(main())
