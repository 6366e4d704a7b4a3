"""Nothing a server sends reaches a terminal or a spreadsheet unchecked (``chainscan/_untrusted``).

Unit and property tests of the two guards, then the real commands end to end: certificates
whose subject, issuer and SANs hold terminal control sequences are served on loopback,
scanned by ``chainscan``, and shown by ``report``, ``inspect``, ``pins``, ``diff``, ``merge`` and
``bundle``; every byte those commands write to stdout and stderr is checked against an oracle
written independently of the module (the characters the issue names), and the manifest must
still hold the exact original value.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import json
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainscan._cli import main as chainscan_main
from chainscan._untrusted import (
    SPREADSHEET_TRIGGERS,
    json_terminal_safe,
    spreadsheet_safe,
    terminal_safe,
)
from chainscan.manifest._reader import read_manifest_entries
from chainscan.run._display import Display
from tests.pki import CA
from tests.servers import ScriptedServer, ServedChain, TLSServer, served_chain

HOSTILE_CN = "evil\x1b[2J\x1b]0;pwned\x07\x1b[31mRED"
"""The certificate of the issue: clear screen, set the window title, turn the output red."""

BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Arabic letter mark, LRM, RLM, the embeddings and overrides, the isolates."""


def forbidden(text: str, *, allowed: str = "\n") -> list[str]:
    """The oracle: characters no terminal output may hold (a byte below 0x20 other than a
    newline, DEL, C1, a bidi control, a line/paragraph separator, a lone surrogate)."""
    return [
        ch
        for ch in text
        if ch not in allowed
        and (
            ord(ch) < 0x20
            or 0x7F <= ord(ch) <= 0x9F
            or ch in BIDI
            or ch in "\u2028\u2029"
            or 0xD800 <= ord(ch) <= 0xDFFF
        )
    ]


def assert_clean(text: str, where: str, *, allowed: str = "\n") -> None:
    bad = forbidden(text, allowed=allowed)
    assert not bad, f"{where} wrote {bad!r}: {text!r}"


CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
NASTY = [*CONTROLS, *sorted(BIDI), "\u2028", "\u2029", "\u200b", "\ufeff", "\U000e0041", "\\"]
nasty_char = st.sampled_from(NASTY)
any_text = st.text(st.one_of(nasty_char, st.characters()), max_size=60)


# --------------------------------------------------------------------------------------------
# terminal_safe


def test_the_issue_cn_is_shown_not_emitted() -> None:
    assert terminal_safe(HOSTILE_CN) == "evil\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31mRED"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\tb\rc", "a\\tb\\rc"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("paypal\u202emoc.", "paypal\\u202emoc."),
        ("\u2066x\u2069\u200e\u200f\u061c", "\\u2066x\\u2069\\u200e\\u200f\\u061c"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bad\udcff.pem", "bad\\udcff.pem"),
        ("bücher.example 中文 ✓ C:\\x", "bücher.example 中文 ✓ C:\\x"),
    ],
)
def test_each_unsafe_character_is_shown_as_its_escape(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_newlines_are_kept_only_when_asked_and_cr_never() -> None:
    assert terminal_safe("a\nb\r\n\x1b", newlines=True) == "a\nb\\r\n\\x1b"
    assert terminal_safe(42) == "42"


@given(any_text, st.booleans())
def test_terminal_safe_output_is_safe_idempotent_and_keeps_safe_text(
    text: str, newlines: bool
) -> None:
    shown = terminal_safe(text, newlines=newlines)
    assert not forbidden(shown)
    assert ("\n" in shown) == (newlines and "\n" in text)
    assert terminal_safe(shown, newlines=newlines) == shown
    if not forbidden(text) and "\n" not in text and text.isprintable():
        assert shown == text
    shown.encode("utf-8")  # never a lone surrogate: writing it cannot crash


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=10,
)


@given(json_values)
def test_json_terminal_safe_keeps_the_exact_value(value: Any) -> None:
    for indent in (None, 2):
        text = json.dumps(value, ensure_ascii=False, indent=indent)
        safe = json_terminal_safe(text)
        assert not forbidden(safe)
        assert json.loads(safe) == value


# --------------------------------------------------------------------------------------------
# spreadsheet_safe


@pytest.mark.parametrize(
    ("cell", "out"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("=cmd|'/c calc'!A1", "'=cmd|'/c calc'!A1"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\x00=1", "'\x00=1"),
        ("www.example.com", "www.example.com"),
        ("a=b", "a=b"),
        ("", ""),
        ("'=already", "'=already"),
    ],
)
def test_formula_cells_get_a_quote_in_front(cell: str, out: str) -> None:
    assert spreadsheet_safe(cell) == out


@given(st.text(st.one_of(st.sampled_from("=+-@\t\r\x00'\",;\n"), st.characters()), max_size=30))
def test_no_cell_starts_a_formula_and_csv_keeps_it_one_cell(text: str) -> None:
    cell = spreadsheet_safe(text)
    assert not cell.startswith(SPREADSHEET_TRIGGERS)
    if text.startswith(("=", "+", "-", "@", "\t", "\r", "\x00")):
        assert cell == "'" + text
    else:
        assert cell == text
    assert spreadsheet_safe(cell) == cell
    buffer = io.StringIO()
    csv.writer(buffer).writerow([cell, "next"])
    assert list(csv.reader(io.StringIO(buffer.getvalue(), newline=""))) == [[cell, "next"]]


# --------------------------------------------------------------------------------------------
# End to end: the real commands


def run(*args: str) -> tuple[int, str, str]:
    """``chainscan ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = chainscan_main(list(args))
    return code, out.getvalue(), err.getvalue()


FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6"]
SCAN = [*FAST, "--writer", "thread", "--retries", "0"]


@pytest.fixture(autouse=True)
def loopback_only_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile input lines must never become a DNS query: only IP literals resolve."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "no DNS in this test") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass(frozen=True, slots=True)
class Names:
    leaf_cn: str
    issuer_cn: str
    root_cn: str
    sans: tuple[str, ...]


def served(tmp: Path, names: Names) -> ServedChain:
    """Leaf + intermediate + root with these names, as a TLS server loads them."""
    root = CA(names.root_cn)
    inter = root.child_ca(names.issuer_cn)
    sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in names.sans])
    leaf = inter.issue("a.test", cn=names.leaf_cn, extra_extensions=[sans])
    return served_chain(tmp, leaf, inter, root)


@contextlib.contextmanager
def serving(tmp: Path, names: Names) -> Iterator[int]:
    """A TLS server on 127.0.0.1 sending the chain of ``names``."""
    with TLSServer({None: served(tmp, names)}) as handle:
        yield handle.port


HOSTILE_BANNER = b"SSH-2.0-\x1b]0;pwned\x07\x1b[2J\xc2\x9b31m\xe2\x80\xae\r\n"


def banner_server(banner: bytes) -> ScriptedServer:
    """Not TLS: a server whose first words are ``banner`` (terminal control sequences)."""

    def handler(sock: socket.socket) -> None:
        sock.sendall(banner)
        with contextlib.suppress(OSError):
            sock.recv(4096)

    return ScriptedServer(handler)


def scan(tmp: Path, out: Path, port: int, banner_port: int, host_line: str) -> str:
    hosts = tmp / "hosts.txt"
    hosts.write_text(
        f"a.test:{port}{{127.0.0.1}}\n"
        f"banner.test:{banner_port}{{127.0.0.1}}\n"
        f"{host_line}:{port}{{127.0.0.1}}\n",
        encoding="utf-8",
    )
    code, stdout, stderr = run(str(hosts), "-o", str(out), *SCAN)
    assert code in (0, 1), stderr
    return stdout + stderr


def commands(tmp: Path, old: Path, new: Path) -> Iterator[tuple[str, list[str]]]:
    """Every command that reads a scan, as ``(label, argv)``."""
    yield "report", ["report", str(new)]
    ders = sorted(p for p in new.rglob("*.der"))
    assert len(ders) >= 3
    yield "inspect", ["inspect", *map(str, ders)]
    yield "inspect --json", ["inspect", "--json", *map(str, ders)]
    for fmt in ("text", "json", "android", "okhttp", "ios", "trustkit", "voltmx"):
        yield f"pins -f {fmt}", ["pins", str(new), "--pin", "all", "--format", fmt]
    yield "diff", ["diff", str(old), str(new)]
    yield "diff --json", ["diff", "--json", str(old), str(new)]
    app = tmp / "app"
    (app / "resources").mkdir(parents=True, exist_ok=True)
    yield "bundle", ["bundle", str(new), "--kony-app", str(app), "--pin", "both", "--dry-run"]
    yield "merge", ["merge", str(tmp / f"merged{HOSTILE_DIR}"), str(old), str(new)]


def check_every_command(
    tmp: Path, old_names: Names, new_names: Names, host_line: str, banner: bytes
) -> dict[str, tuple[str, str]]:
    """Scan twice (OLD, NEW), run every command, assert that all they wrote is clean, and
    return it: label -> (stdout, stderr)."""
    outputs: dict[str, tuple[str, str]] = {}
    # One server, so that OLD and NEW list the same targets: it sends the OLD chain for
    # a.test, then (after the first scan) the NEW one, by swapping its SNI -> context entry.
    server = TLSServer({"a.test": served(tmp, old_names), "new.test": served(tmp, new_names)})
    with server as handle, banner_server(banner) as banner_handle:
        for label in ("old", "new"):
            if label == "new":
                server._contexts["a.test"] = server._contexts["new.test"]
            out = tmp / f"out-{label}{HOSTILE_DIR}"
            text = scan(tmp, out, handle.port, banner_handle.port, host_line)
            assert_clean(text, f"scan ({label})")
    old, new = tmp / f"out-old{HOSTILE_DIR}", tmp / f"out-new{HOSTILE_DIR}"
    entries = {e["host"]: e for e in read_manifest_entries(new / "manifest.json")}
    chain = entries["a.test"]["chain"]
    assert [c.get("cn") for c in chain] == [
        new_names.leaf_cn,
        new_names.issuer_cn,
        new_names.root_cn,
    ]
    assert [s for s in chain[0]["sans"] if s.startswith("DNS:")] == [
        f"DNS:{n}" for n in new_names.sans
    ]
    assert entries["banner.test"]["status"] == "failed"
    for label, argv in commands(tmp, old, new):
        code, stdout, stderr = run(*argv)
        assert code in (0, 1), (label, stderr)
        # the plist formats indent with tabs of their own (a certificate's tab becomes '?')
        tabs = "\t" if label in ("pins -f ios", "pins -f trustkit") else ""
        assert_clean(stdout, f"{label} (stdout)", allowed="\n" + tabs)
        assert_clean(stderr, f"{label} (stderr)")
        for line in (stdout + stderr).splitlines():  # no name starts a line of its own
            assert not line.startswith(FAKE_LINE.strip("\n")), (label, stdout + stderr)
        outputs[label] = (stdout, stderr)
    return outputs


FAKE_LINE = "\n  * trusted"
"""What a name may hold to fake a line of output."""
HOSTILE_DIR = f"\x1b[2J\u202e{FAKE_LINE}"
"""Output folders are named by the user, but their names are echoed too: no exception."""

HOSTILE = Names(
    leaf_cn=HOSTILE_CN,
    issuer_cn="CA\u202eevil\x9b31m\x85",
    root_cn=f"root\x1b]8;;http://x\x07link{FAKE_LINE}",
    sans=("x\x1b[2J.test", "y\r\n.test", "a.test"),
)


def test_the_issue_certificate_leaves_every_command_clean(tmp_path: Path) -> None:
    benign = Names("old.test", "Old CA", "Old root", ("a.test",))
    outputs = check_every_command(tmp_path, benign, HOSTILE, "evil\u202e\x1b.test", HOSTILE_BANNER)
    shown = "evil\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31mRED"
    for label in ("report", "inspect", "diff"):
        assert shown in outputs[label][0], outputs[label]
    inspected = outputs["inspect"][0]
    assert "CA\\u202eevil\\x9b31m\\x85" in inspected
    assert "root\\x1b]8;;http://x\\x07link\\n  * trusted" in inspected
    assert "x\\x1b[2J.test" in inspected and "y\\r\\n.test" in inspected
    # a name never starts a line of its own
    assert not any(line.startswith("  * trusted") for line in inspected.splitlines())
    # JSON on a terminal still holds the exact values
    items = json.loads(outputs["inspect --json"][0])
    assert {HOSTILE_CN, HOSTILE.issuer_cn, HOSTILE.root_cn} <= {item["cn"] for item in items}
    plan = json.dumps(json.loads(outputs["pins -f json"][0]), ensure_ascii=False)
    assert json.dumps(HOSTILE_CN, ensure_ascii=False) in plan


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{missing}"],
        ["inspect", "{missing}"],
        ["pins", "{missing}", "--format", "text"],
        ["diff", "{missing}", "{missing}"],
        ["merge", "{tmp}/merged", "{missing}"],
        ["bundle", "{missing}", "--kony-app", "{missing}"],
        ["{missing}", "-o", "{tmp}/out"],
    ],
    ids=lambda argv: argv[0] if argv[0] != "{missing}" else "scan",
)
def test_error_messages_escape_the_names_they_quote(tmp_path: Path, argv: list[str]) -> None:
    missing = str(tmp_path / f"no{HOSTILE_DIR}\x1b]0;pwned\x07")
    args = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    code, stdout, stderr = run(*args)
    assert code == (1 if argv[0] == "inspect" else 2), stderr  # inspect: 1, the file only
    assert_clean(stdout + stderr, " ".join(argv))
    assert "no\\x1b[2J\\u202e\\n  * trusted\\x1b]0;pwned\\x07" in stderr
    assert len(stderr.splitlines()) == 1, stderr


nice_ascii = st.text(st.one_of(nasty_char.filter(str.isascii), st.characters(max_codepoint=127)))
# a CN holds at most 64 bytes of UTF-8 (cryptography checks it): 16 characters always fit
cn_text = st.text(st.one_of(nasty_char, st.characters(codec="utf-8")), min_size=1, max_size=16)
names_strategy = st.builds(
    Names,
    leaf_cn=cn_text,
    issuer_cn=cn_text,
    root_cn=cn_text,
    sans=st.lists(nice_ascii.filter(bool).map(lambda s: s[:40]), min_size=1, max_size=3).map(tuple),
)
host_text = st.text(
    st.one_of(nasty_char, st.characters(codec="utf-8")).filter(
        lambda ch: ch not in "\x00{}#\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    old=names_strategy,
    new=names_strategy,
    host_line=host_text,
    banner=st.binary(max_size=60).map(lambda b: b + HOSTILE_BANNER),
)
def test_no_command_writes_a_control_character_whatever_the_names(
    old: Names, new: Names, host_line: str, banner: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_every_command(Path(tmp), old, new, host_line, banner)


# --------------------------------------------------------------------------------------------
# The scan on a terminal: progress, bad lines, summary; NO_COLOR


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_on_terminal(*args: str) -> tuple[int, str]:
    err = FakeTerminal()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = chainscan_main(list(args))
    return code, err.getvalue()


def hostile_input(tmp: Path, port: int) -> tuple[Path, Path]:
    """An input file and an output folder whose own names are hostile, with hostile lines."""
    hosts = tmp / "hosts\x1b]0;pwned\x07.txt"
    hosts.write_text(
        f"a.test:{port}{{127.0.0.1}}\n"
        "evil\u202etxt.test:1{::1::}\n"
        "x\x1b[2J.test\n"
        "bad\u2066:99999\n",
        encoding="utf-8",
    )
    return hosts, tmp / "out\x1b[31m\u202e"


@pytest.mark.parametrize("no_color", [True, False])
def test_the_scan_on_a_terminal_draws_progress_but_no_hostile_control(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_color: bool
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    with serving(tmp_path, HOSTILE) as port:
        hosts, out = hostile_input(tmp_path, port)
        code, err = run_on_terminal(str(hosts), "-o", str(out), *SCAN)
    assert code == 1, err
    # rich drew its own bar (cursor and erase sequences); the guard is for what others wrote
    assert "\x1b[" in err
    for raw in ("\x1b]", "\x07", "\x1b[2J", "\u202e", "\u2066", "\x9b"):
        assert raw not in err, (raw, err)
    has_colour = "\x1b[31m" in err or "\x1b[32m" in err or "\x1b[38" in err
    assert has_colour is not no_color, err
    assert "hosts\\x1b]0;pwned\\x07.txt:3:" in err  # bad lines name the file, escaped
    assert "out\\x1b[31m\\u202e" in err  # the summary names the manifest, escaped
    assert "evil\\u202etxt.test" in err


def test_the_scan_off_a_terminal_writes_plain_clean_lines(tmp_path: Path) -> None:
    with serving(tmp_path, HOSTILE) as port:
        hosts, out = hostile_input(tmp_path, port)
        code, stdout, stderr = run(str(hosts), "-o", str(out), *SCAN)
    assert code == 1, stderr
    assert_clean(stdout + stderr, "scan")
    assert "\x1b" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 4, stderr  # three bad lines and the summary, one line each
    assert lines[-1].startswith("4 targets")


def test_html_report_escapes_markup_and_keeps_the_name(tmp_path: Path) -> None:
    names = Names("<img src=x onerror=alert(1)>" + HOSTILE_CN[:20], "CA", "root", ("a.test",))
    with serving(tmp_path, names) as port:
        hosts = tmp_path / "hosts.txt"
        hosts.write_text(f"a.test:{port}{{127.0.0.1}}\n")
        code, _out, err = run(str(hosts), "-o", str(tmp_path / "out"), *SCAN)
        assert code == 0, err
    page_file = tmp_path / f"page{HOSTILE_DIR}.html"  # echoed as "HTML report: FILE"
    code, out, err = run("report", str(tmp_path / "out"), "--html", str(page_file))
    assert code == 0, err
    assert_clean(out + err, "report --html")
    page = page_file.read_text()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_display_shows_messages_escaped_and_without_emoji_codes() -> None:
    stream = FakeTerminal()
    display = Display(stream=stream)
    display.warn("host :warning: \x1b[2J\u202e\nfake line")
    display.error("\x9b31m")
    text = stream.getvalue()
    assert ":warning:" in text and "\u26a0" not in text  # rich would draw an emoji
    assert "\\x1b[2J\\u202e\\nfake line" in text and "\\x9b31m" in text
    assert len(text.splitlines()) == 2
    assert_clean(text, "Display")


def test_pins_check_escapes_the_host_names_of_a_configuration(tmp_path: Path) -> None:
    """``pins --check FILE`` quotes a configuration someone else wrote: its names too."""
    config = tmp_path / "network_security_config.xml"
    config.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<network-security-config><domain-config>'
        '<domain includeSubdomains="false">evil&#x202e;&#x9b;31m&#x2028;.example</domain>'
        '<pin-set><pin digest="SHA-256">AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</pin>'
        "</pin-set></domain-config></network-security-config>\n"
    )
    code, stdout, stderr = run("pins", "--check", str(config))
    assert code == 1, stdout + stderr
    assert_clean(stdout + stderr, "pins --check")
    assert "evil\\u202e\\x9b31m\\u2028.example" in stdout
