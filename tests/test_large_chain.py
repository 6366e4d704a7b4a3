"""Chains over OpenSSL's 100 KiB Certificate cap, read from TLS 1.2 records (issue 12).

The sans-IO reader (``_records``) alone, on hand-made records, then a real Python/OpenSSL server
on loopback sending a leaf with 10,000 subjectAltNames (about 200 KB): fetched whole over TLS
1.2, ``too-large`` when the server speaks TLS 1.3 only, or when the chain is over
``max_handshake_bytes``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainscan import ErrorKind, ScanOptions, Status, Target
from chainscan.output._output import read_manifest_entries
from chainscan.scan._records import FlightError, FlightReader
from chainscan.scan._schedule import Scheduler
from tests.inventory_fleet import run
from tests.pki import CA
from tests.servers import ServedChain, TLSServer, served_chain

OPTIONS = ScanOptions(connect_timeout=2, handshake_timeout=5, deadline=15, retries=0, rate=0)
SANS = 10_000


def record(kind: int, body: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(body).to_bytes(2, "big") + body


def message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def server_hello(version: bytes = b"\x03\x03", extensions: bytes = b"") -> bytes:
    body = version + bytes(32) + b"\x00" + b"\xc0\x2f" + b"\x00"
    if extensions:
        body += len(extensions).to_bytes(2, "big") + extensions
    return message(2, body)


def certificate(*ders: bytes) -> bytes:
    items = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return message(11, len(items).to_bytes(3, "big") + items)


def test_the_reader_joins_messages_across_records_fed_a_byte_at_a_time() -> None:
    handshake = server_hello() + certificate(b"leaf" * 10_000, b"ca")
    stream = b"".join(record(22, handshake[i : i + 16384]) for i in range(0, len(handshake), 16384))
    reader = FlightReader()
    found = None
    for i in range(len(stream)):
        found = reader.feed(stream[i : i + 1])
        if found is not None:
            assert i == len(stream) - 1
    assert found is not None
    assert found.chain == (b"leaf" * 10_000, b"ca")
    assert (found.version, found.cipher_suite) == (0x0303, 0xC02F)


@pytest.mark.parametrize(
    ("stream", "words"),
    [
        (record(21, b"\x02\x28"), "alert 40"),
        (record(22, server_hello(extensions=b"\x00\x2b\x00\x02\x03\x04")), "TLS 1.3"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not TLS"),
        (record(22, certificate(b"x")), "before the ServerHello"),
        (record(22, server_hello() + message(11, b"\x00\x00\x09\x00\x00\x05ab")), "list length"),
        (record(22, server_hello()) + record(20, b"\x01"), "type 20"),
        (b"\x16\x03\x03\xff\xff", "at most"),
    ],
)
def test_the_reader_refuses_what_is_not_a_tls_1_2_certificate_flight(
    stream: bytes, words: str
) -> None:
    with pytest.raises(FlightError, match=words):
        FlightReader().feed(stream)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_the_reader_raises_nothing_but_flight_error(data: bytes, chunk: int) -> None:
    reader = FlightReader()
    try:
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])
    except FlightError:
        pass


# --------------------------------------------------------------------------------------------
# A real server


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, ServedChain]:
    root = CA("huge root")
    inter = root.child_ca("huge intermediate")
    names = ["huge.test"] + [f"host-{i:05d}.many-names.example" for i in range(SANS - 1)]
    leaf = inter.issue(*names)
    served = served_chain(tmp_path_factory.mktemp("huge"), leaf, inter)
    assert sum(map(len, served.der)) > 200_000
    return root, served


async def scan(server_port: int, options: ScanOptions = OPTIONS):  # type: ignore[no-untyped-def]
    return await Scheduler(options).scan_one(
        Target(host="127.0.0.1", port=server_port, sni="huge.test")
    )


async def test_a_10000_name_leaf_is_read_over_tls_1_2(huge: tuple[CA, ServedChain]) -> None:
    _root, served = huge
    with TLSServer({None: served}) as server:
        result = await scan(server.port)
    assert result.status is Status.OK, result.error
    assert result.chain == served.der  # byte-exact, as sent
    assert result.tls_version == "TLSv1.2" and result.cipher


async def test_a_tls_1_3_only_server_stays_too_large(huge: tuple[CA, ServedChain]) -> None:
    _root, served = huge
    with TLSServer({None: served}, min_version=ssl.TLSVersion.TLSv1_3) as server:
        result = await scan(server.port)
    assert result.error_kind is ErrorKind.TOO_LARGE
    assert "100 KiB" in (result.error or "") and "TLS 1.2 retry" in (result.error or "")


async def test_the_retry_is_bounded_by_max_handshake_bytes(huge: tuple[CA, ServedChain]) -> None:
    _root, served = huge
    options = ScanOptions(
        connect_timeout=2,
        handshake_timeout=5,
        deadline=15,
        retries=0,
        rate=0,
        max_handshake_bytes=150_000,
    )
    with TLSServer({None: served}) as server:
        result = await scan(server.port, options)
    assert result.error_kind is ErrorKind.TOO_LARGE
    assert "over 150000 bytes" in (result.error or "")


def test_the_cli_saves_and_judges_the_huge_chain(
    huge: tuple[CA, ServedChain], tmp_path: Path
) -> None:
    root, served = huge
    store = tmp_path / "root.pem"
    store.write_bytes(root.pem)
    with TLSServer({None: served}) as server:
        hosts = tmp_path / "hosts.txt"
        hosts.write_text(f"huge.test:{server.port}{{127.0.0.1}}\n")
        code, _out, err = run(
            str(hosts), "-o", str(tmp_path / "out"), "--trust-store", str(store), "-q"
        )
    assert code == 0, err
    (entry,) = read_manifest_entries(tmp_path / "out" / "manifest.json")
    assert entry["status"] == "ok" and entry["tls_version"] == "TLSv1.2"
    assert entry["trust"]["trusted"] is True and entry["problems"] == []
    saved = sorted((tmp_path / "out").rglob("*.der"))
    assert {p.read_bytes() for p in saved} == set(served.der)
