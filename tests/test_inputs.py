"""CSV inventories and CIDR ranges as scan input (``scan/_inputs.py``): forms, errors with line
numbers, separators, laziness and the range cap; and one CSV scan end to end."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from pathlib import Path

import pytest

from chainscan._cli import main
from chainscan._errors import UsageError
from chainscan._models import BadLine, Target
from chainscan.scan._inputs import MAX_RANGE, iter_inputs
from tests.servers import ServerHandle


def parse(text: str, **kwargs: object) -> list[Target | BadLine]:
    return list(iter_inputs(text.splitlines(), source="f", **kwargs))  # type: ignore[arg-type]


def keys(items: list[Target | BadLine]) -> list[object]:
    return [
        item.key if isinstance(item, Target) else f"{item.line}: {item.reason}" for item in items
    ]


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_csv_with_a_header_any_separator(sep: str) -> None:
    rows = [
        ["Name", "HOST", "Port", "ip", "sni", "Protocol", "owner"],
        ["web", "a.example", "8443", "", "", "https", "bob"],
        ["lb", "b.example", "", "192.0.2.7", "", "", ""],
        ["by-ip", "192.0.2.8", "443", "", "c.example", "tls", ""],
        ["v6", "2001:db8::1", "8443", "", "", "", ""],
    ]
    text = "\n".join(sep.join(row) for row in rows)
    assert keys(parse(text)) == [
        ("a.example", 8443, None, "a.example"),
        ("b.example", 443, "192.0.2.7", "b.example"),
        ("192.0.2.8", 443, None, "c.example"),
        ("2001:db8::1", 8443, None, None),
    ]
    first = parse(text)[0]
    assert isinstance(first, Target) and first.line == 2 and first.raw == sep.join(rows[1])


def test_csv_errors_name_their_line() -> None:
    text = (
        "# exported from the CMDB\n"
        "host,port,sni\n"
        'ok.example,443,"quoted.example"\n'
        ",443,\n"
        "bad.example,99999,\n"
        "\n"
        "x.example,443,bad name\n"
    )
    assert keys(parse(text)) == [
        ("ok.example", 443, None, "quoted.example"),
        "4: empty host column",
        "5: port 99999 is out of range (1-65535)",
        "7: invalid sni column name 'bad name': invalid host name 'bad name': Codepoint U+0020 "
        "at position 4 of 'bad name' not allowed",
    ]


def test_forced_csv_without_a_host_column_scans_nothing() -> None:
    (bad,) = parse("name,port\nweb,443\n", csv_input=True)
    assert isinstance(bad, BadLine) and bad.line == 1
    assert "the CSV header has no 'host' column (it has name, port)" in bad.reason


def test_a_target_list_is_not_taken_for_csv() -> None:
    assert keys(parse("host\nexample.com:8443\n")) == [
        ("host", 443, None, "host"),
        ("example.com", 8443, None, "example.com"),
    ]
    (bad,) = parse("a.example,443\n")  # a separator but no header: a bad target line
    assert isinstance(bad, BadLine) and bad.line == 1


def test_sni_option_wins_over_the_sni_column() -> None:
    assert keys(parse("host,sni\na.example,b.example\n", sni="forced.example")) == [
        ("a.example", 443, None, "forced.example")
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("192.0.2.0/30", [("192.0.2.1", 443, None, None), ("192.0.2.2", 443, None, None)]),
        ("192.0.2.0/30:8443", [("192.0.2.1", 8443, None, None), ("192.0.2.2", 8443, None, None)]),
        ("192.0.2.9/32", [("192.0.2.9", 443, None, None)]),
        ("192.0.2.8/31:1", [("192.0.2.8", 1, None, None), ("192.0.2.9", 1, None, None)]),
        ("2001:db8::/127", [("2001:db8::", 443, None, None), ("2001:db8::1", 443, None, None)]),
        (
            "[2001:db8::]/127:8443",
            [("2001:db8::", 8443, None, None), ("2001:db8::1", 8443, None, None)],
        ),
        (
            "[2001:db8::/127]:8443",
            [("2001:db8::", 8443, None, None), ("2001:db8::1", 8443, None, None)],
        ),
        ("192.0.2.0/30  # two", [("192.0.2.1", 443, None, None), ("192.0.2.2", 443, None, None)]),
    ],
)
def test_cidr_ranges(line: str, expected: list[object]) -> None:
    items = parse(line)
    assert keys(items) == expected
    assert all(
        isinstance(i, Target) and i.raw == line.split("  #")[0] and i.line == 1 for i in items
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("192.0.2.0/33", "invalid address range '192.0.2.0/33'"),
        ("300.0.2.0/24", "invalid address range '300.0.2.0/24'"),
        ("192.0.2.0/30:99999", "port 99999 is out of range (1-65535)"),
        ("10.0.0.0/8", "the range 10.0.0.0/8 has 16,777,216 addresses, more than --max-range"),
    ],
)
def test_bad_ranges_are_one_bad_line(line: str, reason: str) -> None:
    (bad,) = parse(line)
    assert isinstance(bad, BadLine) and bad.line == 1 and reason in bad.reason


def test_the_cap_can_be_raised_and_urls_are_not_ranges() -> None:
    assert len(parse("192.0.2.0/28", max_range=16)) == 14
    assert isinstance(parse("192.0.2.0/27", max_range=16)[0], BadLine)
    assert keys(parse("https://example.com/24")) == [("example.com", 443, None, "example.com")]
    with pytest.raises(UsageError):
        iter_inputs([], source="f", max_range=0)
    assert MAX_RANGE == 65536


def test_a_16_range_is_expanded_lazily() -> None:
    tracemalloc.start()
    try:
        items = iter_inputs(["10.1.0.0/16"], source="f")
        first = list(itertools.islice(items, 3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert keys(first) == [(f"10.1.0.{n}", 443, None, None) for n in (1, 2, 3)]
    assert peak < 1_000_000  # 65,534 targets held at once would take tens of MB
    assert sum(1 for _ in iter_inputs(["10.1.0.0/16"], source="f")) == 65534


@pytest.mark.integration
def test_a_csv_inventory_is_scanned(
    capsys: pytest.CaptureFixture[str], tls_server: ServerHandle, tmp_path: Path
) -> None:
    hosts = tmp_path / "inventory.csv"
    hosts.write_text(
        f"host;port;ip;sni;owner\na.test;{tls_server.port};127.0.0.1;;team a\n"
        f"127.0.0.1;{tls_server.port};;b.test;team b\n;1;;;\n"
    )
    out = tmp_path / "out"
    code = main([str(hosts), "-o", str(out), "--rate", "0", "--connect-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{hosts}:4: empty host column" in err
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_line = {e["input"]["line"]: e for e in entries}
    assert by_line[2]["status"] == "ok" and by_line[2]["sni"] == "a.test"
    assert by_line[3]["status"] == "ok" and by_line[3]["sni"] == "b.test"
    assert by_line[4]["status"] == "invalid"
    assert sorted(tls_server.snis, key=str) == ["a.test", "b.test"]
