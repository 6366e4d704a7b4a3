"""Input lines -> Target values (chainscan.scan._targets): every line form, every error, files."""

from __future__ import annotations

import gc
import io
import itertools
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainscan._errors import InputError, UsageError
from chainscan._models import BadLine, Target
from chainscan.scan._targets import (
    MAX_LINE,
    Deduplicator,
    NumberedLine,
    check_options,
    count_lines,
    iter_targets,
    load_targets,
    open_lines,
    parse_line,
)


def parse(text: str, *, default_port: int = 443, sni: str | None = None) -> Target | BadLine | None:
    return parse_line(text, line=7, source="hosts.txt", default_port=default_port, sni=sni)


def target(text: str, *, default_port: int = 443, sni: str | None = None) -> Target:
    result = parse(text, default_port=default_port, sni=sni)
    assert isinstance(result, Target), result
    return result


def bad(text: str) -> BadLine:
    result = parse(text)
    assert isinstance(result, BadLine), result
    return result


# --------------------------------------------------------------------------- line forms

# line, host, port, sni, address
FORMS = [
    ("example.com", "example.com", 443, "example.com", None),
    ("example.com:8443", "example.com", 8443, "example.com", None),
    ("example.com:0443", "example.com", 443, "example.com", None),
    ("Example.COM.", "example.com", 443, "example.com", None),
    ("www.example.net:1", "www.example.net", 1, "www.example.net", None),
    ("example.net:65535", "example.net", 65535, "example.net", None),
    ("localhost", "localhost", 443, "localhost", None),
    ("127.0.0.1", "127.0.0.1", 443, None, None),
    ("127.0.0.1:8443", "127.0.0.1", 8443, None, None),
    ("::1", "::1", 443, None, None),
    ("2001:db8::1", "2001:db8::1", 443, None, None),
    ("2001:DB8:0:0::1", "2001:db8::1", 443, None, None),
    ("2001:db8::1:443", "2001:db8::1:443", 443, None, None),  # a bare IPv6 has no port
    ("[::1]", "::1", 443, None, None),
    ("[::1]:8443", "::1", 8443, None, None),
    ("[2001:DB8::1]:8443", "2001:db8::1", 8443, None, None),
    ("https://example.com", "example.com", 443, "example.com", None),
    ("https://example.com/", "example.com", 443, "example.com", None),
    ("https://example.com:8443", "example.com", 8443, "example.com", None),
    ("https://example.com:8443/a/b?q=1&r=2#frag", "example.com", 8443, "example.com", None),
    ("https://example.com?q", "example.com", 443, "example.com", None),
    ("https://example.com#top", "example.com", 443, "example.com", None),
    ("HTTPS://Example.com/", "example.com", 443, "example.com", None),
    ("https://127.0.0.1:8443/", "127.0.0.1", 8443, None, None),
    ("https://[::1]:8443/", "::1", 8443, None, None),
    ("https://[::1]/", "::1", 443, None, None),
    ("example.com{127.0.0.5}", "example.com", 443, "example.com", "127.0.0.5"),
    ("example.com:8443{127.0.0.5}", "example.com", 8443, "example.com", "127.0.0.5"),
    ("example.com{127.0.0.5}:8443", "example.com", 8443, "example.com", "127.0.0.5"),
    ("example.com{[::1]}:8443", "example.com", 8443, "example.com", "::1"),
    ("example.com{::1}", "example.com", 443, "example.com", "::1"),
    ("example.com{[::1]}", "example.com", 443, "example.com", "::1"),
    ("example.com:8443{2001:DB8::1}", "example.com", 8443, "example.com", "2001:db8::1"),
    ("https://example.com:8443/{127.0.0.5}", "example.com", 8443, "example.com", "127.0.0.5"),
    ("Bücher.example", "xn--bcher-kva.example", 443, "xn--bcher-kva.example", None),
    ("bücher.example:8443", "xn--bcher-kva.example", 8443, "xn--bcher-kva.example", None),
    ("https://Bücher.example/", "xn--bcher-kva.example", 443, "xn--bcher-kva.example", None),
    (
        "bücher.example{127.0.0.1}",
        "xn--bcher-kva.example",
        443,
        "xn--bcher-kva.example",
        "127.0.0.1",
    ),
    ("xn--bcher-kva.example", "xn--bcher-kva.example", 443, "xn--bcher-kva.example", None),
    ("例え。テスト。", "xn--r8jz45g.xn--zckzah", 443, "xn--r8jz45g.xn--zckzah", None),
    ("_srv._tcp.example.com", "_srv._tcp.example.com", 443, "_srv._tcp.example.com", None),
    ("_Acme.Example.com:8443", "_acme.example.com", 8443, "_acme.example.com", None),
    ("r3---sn-abc.example.net", "r3---sn-abc.example.net", 443, "r3---sn-abc.example.net", None),
    ("１２７.０.０.１", "127.0.0.1", 443, None, None),  # fullwidth digits map to an IPv4
]


@pytest.mark.parametrize(("text", "host", "port", "sni", "address"), FORMS)
def test_line_forms(text: str, host: str, port: int, sni: str | None, address: str | None) -> None:
    assert parse(text) == Target(
        host=host, port=port, sni=sni, address=address, raw=text, line=7, source="hosts.txt"
    )


@pytest.mark.parametrize(
    "text",
    ["  example.com  ", "\texample.com\t", "example.com\n", "example.com\r\n", "example.com # x"],
)
def test_surrounding_whitespace_and_line_ends_are_ignored(text: str) -> None:
    assert target(text) == Target(
        host="example.com",
        port=443,
        sni="example.com",
        raw="example.com",
        line=7,
        source="hosts.txt",
    )


def test_default_port_applies_to_every_form_without_a_port() -> None:
    for text in ("example.com", "127.0.0.1", "::1", "[::1]", "https://example.com/", "a.b{::1}"):
        assert target(text, default_port=8443).port == 8443
    assert target("example.com:9443", default_port=8443).port == 9443


def test_forced_sni_replaces_every_targets_sni() -> None:
    assert target("example.com", sni="other.example").sni == "other.example"
    assert target("127.0.0.1:8443", sni="other.example").sni == "other.example"
    assert target("[::1]", sni="other.example").sni == "other.example"
    forced = target("example.com{127.0.0.5}", sni="Bücher.example")
    assert (forced.host, forced.address, forced.sni) == (
        "example.com",
        "127.0.0.5",
        "xn--bcher-kva.example",
    )


def test_forced_sni_is_part_of_the_key() -> None:
    assert target("example.com").key != target("example.com", sni="other.example").key


# --------------------------------------------------------------------------- comments, blanks


@pytest.mark.parametrize(
    "text", ["", "   ", "\t", "\n", "\r\n", "#", "# comment", "   # indented comment", "\ufeff"]
)
def test_blank_and_comment_lines_give_none(text: str) -> None:
    assert parse_line(text, line=1, source="f") is None


def test_hash_starts_a_comment_only_at_line_start_or_after_whitespace() -> None:
    assert target("example.com\t#comment").raw == "example.com"
    assert target("https://example.com/#frag # comment").raw == "https://example.com/#frag"
    assert bad("example.com#frag").reason.startswith("invalid host name 'example.com#frag': ")


def test_raw_is_the_stripped_line_without_comment_truncated_to_200() -> None:
    long_url = "https://example.com/" + "a" * 300
    assert target(f"  {long_url}  # comment").raw == long_url[:200]
    assert bad("x" * 5000).raw == "x" * 200


def test_bom_is_dropped_on_the_first_line_only() -> None:
    assert parse_line("\ufeffexample.com", line=1, source="f") == Target(
        host="example.com", port=443, sni="example.com", raw="example.com", line=1, source="f"
    )
    assert parse_line("\ufeff# comment", line=1, source="f") is None
    assert isinstance(parse_line("\ufeff# comment", line=2, source="f"), BadLine)


# --------------------------------------------------------------------------- errors

INVALID_IPV4 = "write four numbers 0-255 separated by dots, without leading zeros, e.g. 192.0.2.1"
BRACES_HELP = (
    "misplaced '{' or '}': to connect to an IP address and send a name as SNI, write name{ip}"
    " or name:port{ip} at the end of the line, e.g. example.com{192.0.2.1}"
)
SPACE_HELP = "write one target per line, as host, host:port, [ipv6]:port or https://host:port/"
V6_PORT_HINT = "(to give an IPv6 address a port, write [addr]:port)"
MISSING_PORT = "missing port number after ':' (write host:port, or host alone for the default)"

ERRORS = [
    ("example.com:99999", "port 99999 is out of range (1-65535)"),
    ("example.com:0", "port 0 is out of range (1-65535)"),
    ("example.com:000", "port 0 is out of range (1-65535)"),
    ("example.com:65536", "port 65536 is out of range (1-65535)"),
    ("example.com:" + "9" * 70, f"port {'9' * 57}... is out of range (1-65535)"),
    ("[::1]:70000", "port 70000 is out of range (1-65535)"),
    ("https://example.com:99999/", "port 99999 is out of range (1-65535)"),
    ("example.com:abc", "port 'abc' is not a number"),
    ("example.com:-1", "port '-1' is not a number"),
    ("example.com:٤٤٣", "port '٤٤٣' is not a number"),  # Arabic-Indic digits
    ("example.com:", MISSING_PORT),
    ("[::1]:", MISSING_PORT),
    ("https://example.com:/", MISSING_PORT),
    (":443", "empty host"),
    ("https://", "empty host"),
    ("https:///path", "empty host"),
    ("{127.0.0.1}", "empty host"),
    (
        "*.example.com",
        "invalid host name '*.example.com': Codepoint U+002A at position 1 of '*' not allowed",
    ),
    ("example..com", "invalid host name 'example..com': Empty Label"),
    ("example.com..", "invalid host name 'example.com..': Empty Label"),
    (".", "invalid host name '.': Empty Label"),
    ("xn--zz.example", "invalid host name 'xn--zz.example': Invalid A-label"),
    ("a" * 64 + ".example", f"invalid host name '{'a' * 57}...': Label too long"),
    ("_" * 64 + ".example", f"invalid host name '{'_' * 57}...': Label too long"),
    (
        "ex@mple.com",
        "invalid host name 'ex@mple.com': Codepoint U+0040 at position 3 of 'ex@mple' not allowed",
    ),
    (
        "example.com{999.1.1.1}",
        "invalid IP address in {999.1.1.1}: write name{ip} with an IPv4 or IPv6 address inside"
        " the braces, e.g. example.com{192.0.2.1}",
    ),
    (
        "example.com{example.net}",
        "invalid IP address in {example.net}: write name{ip} with an IPv4 or IPv6 address inside"
        " the braces, e.g. example.com{192.0.2.1}",
    ),
    (
        "example.com{}",
        "invalid IP address in {}: write name{ip} with an IPv4 or IPv6 address inside the"
        " braces, e.g. example.com{192.0.2.1}",
    ),
    (
        "127.0.0.1{127.0.0.2}",
        "'127.0.0.1' before '{' is an IP address: write the host name to send as SNI before '{'"
        " and the IP address to connect to inside, e.g. example.com{192.0.2.1}",
    ),
    ("example.com{127.0.0.1", BRACES_HELP),
    ("example.com}", BRACES_HELP),
    (
        "example.com:443{127.0.0.1}:443",
        "two ports in 'example.com:443{127.0.0.1}:443': write name{ip}:port or name:port{ip}",
    ),
    ("example.com{127.0.0.1}:443{127.0.0.2}", BRACES_HELP),
    ("a{1.1.1.1}{2.2.2.2}", BRACES_HELP),
    ("[::1", "unclosed '[' in IPv6 address '[::1': write [addr] or [addr]:port"),
    ("https://[::1/", "unclosed '[' in IPv6 address '[::1': write [addr] or [addr]:port"),
    ("[::1]8443", "unexpected '8443' after ']': write [addr] or [addr]:port"),
    (
        "[127.0.0.1]",
        "invalid IPv6 address '127.0.0.1' in brackets: brackets are for IPv6 addresses only",
    ),
    (
        "[example.com]:443",
        "invalid IPv6 address 'example.com' in brackets: brackets are for IPv6 addresses only",
    ),
    ("2001:db8::1:99999", f"invalid IPv6 address '2001:db8::1:99999' {V6_PORT_HINT}"),
    ("1:2:3", f"invalid IPv6 address '1:2:3' {V6_PORT_HINT}"),
    (
        "example.com:443:1",
        "too many ':' in 'example.com:443:1': write host:port, or [ipv6]:port",
    ),
    (
        "https://::1/",
        "an IPv6 address in a URL needs brackets, e.g. https://[2001:db8::1]:8443/",
    ),
    ("127.1", f"invalid IPv4 address '127.1': {INVALID_IPV4}"),
    ("1.2.3.256", f"invalid IPv4 address '1.2.3.256': {INVALID_IPV4}"),
    ("010.0.0.1:443", f"invalid IPv4 address '010.0.0.1': {INVALID_IPV4}"),
    ("2130706433", f"invalid IPv4 address '2130706433': {INVALID_IPV4}"),
    ("example.0x7f", f"invalid IPv4 address 'example.0x7f': {INVALID_IPV4}"),
    (
        "http://example.com/",
        "unknown scheme http://: write https://, a STARTTLS scheme such as smtp://, imap:// or"
        " postgres:// (see --help), or host:port",
    ),
    (
        "tls://example.com:993",
        "unknown scheme tls://: write https://, a STARTTLS scheme such as smtp://, imap:// or"
        " postgres:// (see --help), or host:port",
    ),
    (
        "https://user:secret@example.com/",
        "URLs with user info ('user@') are not accepted: write https://host:port/",
    ),
    (
        "example.com/path",
        "unexpected '/' in 'example.com/path': write a URL as https://host/path, otherwise host"
        " or host:port",
    ),
    ("example.com 443", f"unexpected space in 'example.com 443': {SPACE_HELP}"),
    ("example.com\u3000443", f"unexpected space in 'example.com\\u3000443': {SPACE_HELP}"),
    ("x" * 4097, "line is too long (4097 characters, at most 4096)"),
    ("# " + "x" * 5000, "line is too long (5002 characters, at most 4096)"),
    ("é" * 4097 + "\r\n", "line is too long (4097 characters, at most 4096)"),
    (
        "exa\x00mple.com",
        "line contains a NUL or control character (U+0000 at column 4); remove it",
    ),
    (
        "example.com # \x1b[31m",
        "line contains a NUL or control character (U+001B at column 15); remove it",
    ),
    (
        "example.com\rexample.net",
        "line contains a NUL or control character (U+000D at column 12); remove it",
    ),
    (
        "\x7f",
        "line contains a NUL or control character (U+007F at column 1); remove it",
    ),
    (
        "b\ufffdcher.example",
        "line is not valid UTF-8 (it contains U+FFFD, the replacement character); save the"
        " file as UTF-8",
    ),
]


@pytest.mark.parametrize(("text", "reason"), ERRORS)
def test_errors(text: str, reason: str) -> None:
    result = parse_line(text, line=17, source="hosts.txt")
    assert isinstance(result, BadLine)
    assert result.reason == reason
    assert (result.source, result.line) == ("hosts.txt", 17)
    assert str(result) == f"hosts.txt:17: {reason}"


def test_a_line_of_exactly_max_line_characters_is_accepted() -> None:
    assert parse("#" + "é" * (MAX_LINE - 1)) is None


def test_invalid_options_raise_usage_error() -> None:
    with pytest.raises(UsageError, match=r"default port 0 is out of range \(1-65535\)"):
        parse("example.com", default_port=0)
    with pytest.raises(UsageError, match=r"invalid --sni name '\*\.example': "):
        parse("example.com", sni="*.example")
    with pytest.raises(UsageError, match=r"--sni '127.0.0.1' is an IP address"):
        check_options(sni="127.0.0.1")
    with pytest.raises(UsageError, match="default port 70000"):
        iter_targets(["example.com"], source="f", default_port=70000)  # checked before iterating
    assert check_options(sni="Bücher.example.") == "xn--bcher-kva.example"


# --------------------------------------------------------------------------- IDNA


@pytest.mark.parametrize(
    ("written", "a_label"),
    [
        ("Bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.EXAMPLE", "xn--bcher-kva.example"),
        ("bücher.example.", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008, non-transitional: ß is kept
        ("ドメイン.テスト", "xn--eckwd4c7c.xn--zckzah"),
        ("пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f"),
        ("example。com", "example.com"),  # ideographic full stop
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ],
)
def test_names_become_lower_case_a_labels(written: str, a_label: str) -> None:
    assert target(written).host == a_label
    assert target(written).sni == a_label


LDH = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)


@given(st.lists(LDH, min_size=1, max_size=5).map(".".join))
def test_fast_path_for_plain_names_agrees_with_idna(name: str) -> None:
    result = parse(name)
    try:
        expected: str | None = idna.encode(name, uts46=True).decode()
    except idna.IDNAError:
        expected = None
    if isinstance(result, Target) and result.sni is not None:  # a name, not an IPv4 address
        assert expected is None or result.host == expected
        if expected is None:  # idna refuses, e.g. "ab--c": kept as a plain DNS name
            assert result.host == name.lower()
    elif isinstance(result, BadLine):
        assert "IPv4" in result.reason


# --------------------------------------------------------------------------- fuzz

TOKENS = [
    *"abcxyz019AZ.-_:[]{}/@?#% \t",
    *["https://", "http://", "::", "ü", "。", "１", "\ufffd", "\x00", "\ufeff", "xn--", "0x"],
    *["example.com", "127.0.0.1", "2001:db8::1", "65535", "99999", "{::1}", "[::1]"],
]
TARGETISH = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)


@settings(max_examples=500)
@given(st.one_of(st.text(), TARGETISH))
def test_parse_line_never_raises(text: str) -> None:
    result = parse_line(text, line=3, source="fuzz.txt")
    assert result is None or isinstance(result, Target | BadLine)
    if isinstance(result, Target):
        assert 1 <= result.port <= 65535
        assert result.host
        assert result.host.isascii()
        assert result.host == result.host.lower()
        assert len(result.raw) <= 200
        assert result.line == 3
    elif isinstance(result, BadLine):
        assert result.reason
        assert "\n" not in result.reason
        assert len(result.raw) <= 200


@settings(max_examples=300)
@given(st.one_of(st.text(), TARGETISH))
def test_a_target_written_back_parses_to_the_same_target(text: str) -> None:
    result = parse_line(text, line=1, source="f")
    if not isinstance(result, Target):
        return
    host = f"[{result.host}]" if ":" in result.host else result.host
    written = f"{host}:{result.port}"
    if result.address is not None:
        written += f"{{{result.address}}}"
    again = parse_line(written, line=1, source="f")
    assert isinstance(again, Target)
    assert again.key == result.key


# --------------------------------------------------------------------------- many lines


def test_iter_targets_numbers_lines_and_skips_blanks_and_comments() -> None:
    lines = ["# header", "example.com", "", "example.com:99999", "  # note", "[::1]:8443"]
    results = list(iter_targets(lines, source="in.txt"))
    assert [type(r) for r in results] == [Target, BadLine, Target]
    assert [r.line for r in results] == [2, 4, 6]
    assert str(results[1]) == "in.txt:4: port 99999 is out of range (1-65535)"


def test_iter_targets_streams() -> None:
    def endless() -> Iterator[str]:
        for number in itertools.count():
            yield f"host{number}.example"

    first = list(itertools.islice(iter_targets(endless(), source="-"), 3))
    assert [t.host for t in first if isinstance(t, Target)] == [
        "host0.example",
        "host1.example",
        "host2.example",
    ]


def test_iter_targets_takes_numbered_lines_and_passes_bad_lines_through() -> None:
    too_long = BadLine(source="in.txt", line=2, raw="x", reason="line is too long")
    lines: list[NumberedLine | BadLine] = [
        NumberedLine(1, "example.com"),
        too_long,
        NumberedLine(3, "example.net:8443"),
    ]
    results = list(iter_targets(lines, source="in.txt", sni="sni.example"))
    assert results == [
        Target(
            host="example.com",
            port=443,
            sni="sni.example",
            raw="example.com",
            line=1,
            source="in.txt",
        ),
        too_long,
        Target(
            host="example.net",
            port=8443,
            sni="sni.example",
            raw="example.net:8443",
            line=3,
            source="in.txt",
        ),
    ]


def test_deduplicator_drops_repeats_by_key() -> None:
    dedup = Deduplicator()
    lines = [
        "example.com",
        "EXAMPLE.com.",  # same key
        "https://example.com/",  # same key
        "example.com:8443",
        "example.com{127.0.0.1}",
        "example.com{127.0.0.2}",
        "example.com{127.0.0.1}",  # same key
        "127.0.0.1",
        "127.0.0.1:443",  # same key
    ]
    kept = [
        t.raw
        for t in iter_targets(lines, source="f")
        if isinstance(t, Target) and not dedup.seen(t)
    ]
    assert kept == [
        "example.com",
        "example.com:8443",
        "example.com{127.0.0.1}",
        "example.com{127.0.0.2}",
        "127.0.0.1",
    ]
    assert len(dedup) == 5


def test_deduplicator_add_key_for_resume() -> None:
    dedup = Deduplicator()
    dedup.add_key(("example.com", 443, None, "example.com"))
    assert dedup.seen(target("example.com"))
    assert not dedup.seen(target("example.com", sni="other.example"))
    assert dedup.seen(target("example.com", sni="other.example"))
    dedup.add_key(["example.net", 8443, "127.0.0.1", "example.net"])  # as read from JSON
    assert dedup.seen(target("example.net:8443{127.0.0.1}"))


# --------------------------------------------------------------------------- files


def write(tmp_path: Path, data: bytes, name: str = "targets.txt") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_file_with_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfexample.com\r\n# comment\r\n[::1]:8443\r\nexample.net")
    assert list(open_lines(path)) == [
        (1, "example.com"),
        (2, "# comment"),
        (3, "[::1]:8443"),
        (4, "example.net"),
    ]
    assert [(t.line, t.host, t.port) for t in load_targets(path) if isinstance(t, Target)] == [
        (1, "example.com", 443),
        (3, "::1", 8443),
        (4, "example.net", 443),
    ]
    assert count_lines(path) == 4


def test_bom_only_file_and_bom_before_a_comment(tmp_path: Path) -> None:
    assert list(load_targets(write(tmp_path, b"\xef\xbb\xbf"))) == []
    assert list(load_targets(write(tmp_path, b"\xef\xbb\xbf# c\nexample.com\n"))) == [
        Target(
            host="example.com",
            port=443,
            sni="example.com",
            raw="example.com",
            line=2,
            source=str(tmp_path / "targets.txt"),
        )
    ]


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, b"")
    assert list(open_lines(path)) == []
    assert list(load_targets(path)) == []
    assert count_lines(path) == 0


def test_invalid_utf8_gives_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, b"example.com\nb\xfccher.example\n# caf\xe9\nexample.net\n")
    results = list(load_targets(path))
    assert [type(r) for r in results] == [Target, BadLine, Target]
    assert str(results[1]) == (
        f"{path}:2: line is not valid UTF-8 (it contains U+FFFD, the replacement character);"
        " save the file as UTF-8"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"example.com\n\x00\x01\x02binary",
        b"\x7fELF\x02\x01\x01\x00\x00\x00",
        "example.com\n".encode("utf-16"),
        b"example.com\n" * 600 + b"\x00",  # NUL within the first 8 KiB
    ],
)
def test_binary_file_raises_input_error(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError, match="does not look like a text file of targets") as info:
        open_lines(path)  # at once, before any line is asked for
    assert repr(path) in str(info.value)


def test_nul_after_the_first_8_kib_is_a_bad_line(tmp_path: Path) -> None:
    data = b"example.com\n" * 1000 + b"exa\x00mple.com\nexample.net\n"
    results = list(load_targets(write(tmp_path, data)))
    assert len(results) == 1002
    assert isinstance(results[1000], BadLine)
    assert results[1000].line == 1001
    assert "NUL or control character" in results[1000].reason
    assert isinstance(results[1001], Target)


def test_lines_across_the_read_ahead_boundary(tmp_path: Path) -> None:
    lines = [f"host-{n}.example:{1 + n}" for n in range(3000)]  # ~70 KB, crosses 8 KiB
    path = write(tmp_path, "\n".join(lines).encode())
    results = list(load_targets(path))
    assert [(t.host, t.port, t.line) for t in results if isinstance(t, Target)] == [
        (f"host-{n}.example", 1 + n, 1 + n) for n in range(3000)
    ]
    assert count_lines(path) == 3000


def test_ten_megabyte_line_is_skipped_and_the_next_line_still_parsed(tmp_path: Path) -> None:
    size = 10 * 1024 * 1024
    path = tmp_path / "huge.txt"
    with path.open("wb") as out:
        out.write(b"example.com\n")
        out.write(b"x" * size + b"\r\n")
        out.write(b"example.net:8443\n")
    results = list(load_targets(str(path)))
    assert len(results) == 3
    huge = results[1]
    assert isinstance(huge, BadLine)
    assert huge.line == 2
    assert huge.reason == f"line is too long ({size} characters, at most 4096)"
    assert huge.raw == "x" * 200
    assert results[2] == Target(
        host="example.net",
        port=8443,
        sni="example.net",
        raw="example.net:8443",
        line=3,
        source=str(path),
    )


@pytest.mark.parametrize(
    ("line", "characters"),
    [
        (b"x" * (MAX_LINE + 1), MAX_LINE + 1),  # decoded, then refused by parse_line
        ("é".encode() * (3 * MAX_LINE), 3 * MAX_LINE),  # 6 bytes per 3 chars: skipped unread
        ("😀".encode() * 5000 + b"\r", 5001),  # the CR of a CR-only line end is a character
    ],
)
def test_long_line_lengths_are_counted_in_characters(
    tmp_path: Path, line: bytes, characters: int
) -> None:
    results = list(load_targets(write(tmp_path, line + b"\r\nexample.com")))
    assert [type(r) for r in results] == [BadLine, Target]
    assert isinstance(results[0], BadLine)
    assert results[0].reason == f"line is too long ({characters} characters, at most 4096)"


def test_long_line_at_end_of_file_without_newline(tmp_path: Path) -> None:
    results = list(load_targets(write(tmp_path, b"example.com\n" + b"y" * 100_000)))
    assert isinstance(results[1], BadLine)
    assert results[1].reason == "line is too long (100000 characters, at most 4096)"


def test_missing_file_raises_input_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.txt")
    with pytest.raises(InputError, match=r"cannot read input file '.*nope\.txt': No such file"):
        load_targets(path)  # at once, before any line is asked for
    with pytest.raises(InputError, match="No such file"):
        count_lines(path)


def test_directory_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read input file '.*': Is a directory"):
        open_lines(str(tmp_path))


def test_dash_reads_standard_input_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"\xef\xbb\xbfexample.com\r\nb\xfccher.example\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="ascii"))
    results = list(load_targets("-"))
    assert isinstance(results[0], Target)
    assert results[0].host == "example.com"
    assert isinstance(results[1], BadLine)
    assert str(results[1]).startswith("-:2: line is not valid UTF-8")
    assert count_lines("-") is None


def test_binary_standard_input_raises_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00\x01"), encoding="ascii"))
    with pytest.raises(InputError, match="standard input does not look like a text file"):
        open_lines("-")


def test_example_inputs_parse_without_errors() -> None:
    inputs = Path(__file__).parent.parent / "inputs"
    for name in ("examples.txt", "public-endpoints.txt"):
        results = list(load_targets(str(inputs / name)))
        assert results, name
        assert [r for r in results if isinstance(r, BadLine)] == [], name


@pytest.mark.parametrize(
    ("text", "host", "address"),
    [
        ("fe80::1%eth0", "fe80::1%eth0", None),
        ("[fe80::1%eth0]:8443", "fe80::1%eth0", None),
        ("example.com{fe80::1%eth0}", "example.com", "fe80::1%eth0"),
    ],
)
def test_ipv6_zone_ids(text: str, host: str, address: str | None) -> None:
    result = target(text)
    assert (result.host, result.address) == (host, address)


@pytest.mark.parametrize("text", ["::%]", "[::1%a]b]", "fe80::1%", "fe80::1%eth 0"])
def test_bad_ipv6_zone_ids(text: str) -> None:
    assert isinstance(parse(text), BadLine)


@settings(max_examples=200)
@given(st.one_of(st.text(), TARGETISH), st.sampled_from(["example.org", "Bücher.example"]))
def test_parse_line_with_forced_sni_never_raises(text: str, sni: str) -> None:
    result = parse_line(text, line=1, source="f", default_port=8443, sni=sni)
    if isinstance(result, Target):
        assert result.sni in {"example.org", "xn--bcher-kva.example"}


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\0" not in b), max_size=20))
def test_any_nul_free_bytes_read_as_numbered_lines(chunks: list[bytes]) -> None:
    data = b"\n".join(chunks)
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), data)
        lines = list(open_lines(path))
        results = list(iter_targets(lines, source=path))
        assert count_lines(path) == len(lines)
    assert [line.number for line in lines if isinstance(line, NumberedLine)] == list(
        range(1, len(lines) + 1)
    )
    assert all(isinstance(r, Target | BadLine) for r in results)


def test_line_reader_closes_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"example.com\nexample.net\n")
    reader = open_lines(path)
    assert next(reader) == (1, "example.com")
    reader.close()
    reader.close()  # idempotent
    with open_lines(path) as lines:
        assert len(list(lines)) == 2
    exhausted = open_lines(path)
    assert len(list(exhausted)) == 2
    assert exhausted._stream is None  # closed at the end of the lines


def test_an_unread_line_reader_is_closed_quietly_when_collected(tmp_path: Path) -> None:
    reader = open_lines(write(tmp_path, b"example.com\n"))
    del reader
    gc.collect()  # a ResourceWarning here would fail the test (filterwarnings = error)


def test_standard_input_is_not_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"example.com\n"), encoding="ascii")
    monkeypatch.setattr(sys, "stdin", stdin)
    with open_lines("-") as lines:
        assert list(lines) == [(1, "example.com")]
    assert not stdin.buffer.closed


def test_deduplicator_table_grows_and_stays_exact() -> None:
    dedup = Deduplicator()
    targets = [Target(host=f"h{n}.example", port=443, sni=f"h{n}.example") for n in range(5000)]
    assert not any(dedup.seen(t) for t in targets)  # grows from 1,024 slots several times
    assert all(dedup.seen(t) for t in targets)
    assert len(dedup) == 5000
    dedup.add_key(["other.example", 8443, None, "other.example"])
    assert dedup.seen(Target(host="other.example", port=8443, sni="other.example"))
