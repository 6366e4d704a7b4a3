"""The sans-IO handshake driver against an in-memory server: no sockets at all."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest

from chainscan._models import ErrorKind
from chainscan.scan._tls import Handshake, HandshakeFailed, client_context
from tests.pki import CA, write_server_files

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.fixture(scope="module")
def chain_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    root = CA("tls test root")
    inter = root.child_ca("tls test intermediate")
    leaf = inter.issue("mem.test")
    cert, key = write_server_files(tmp_path_factory.mktemp("tls"), leaf, inter)
    return cert, key, [leaf.der, inter.issued.der]


def server_object(
    cert: Path, key: Path, version: ssl.TLSVersion
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_cert_chain(cert, key)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return ctx.wrap_bio(incoming, outgoing, server_side=True), incoming, outgoing


def pump(
    client: Handshake, server: ssl.SSLObject, s_in: ssl.MemoryBIO, s_out: ssl.MemoryBIO
) -> None:
    to_server = client.start()
    for _ in range(10):
        s_in.write(to_server)
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        to_client = s_out.read()
        if client.done:
            return
        client.feed(to_client)
        to_server = client.step()
    raise AssertionError("handshake did not finish in 10 rounds")


@pytest.mark.parametrize("version", VERSIONS, ids=["TLSv1.2", "TLSv1.3"])
def test_handshake_yields_the_chain_as_sent(
    chain_files: tuple[Path, Path, list[bytes]], version: ssl.TLSVersion
) -> None:
    cert, key, expected = chain_files
    server, s_in, s_out = server_object(cert, key, version)
    client = Handshake(client_context(), "mem.test")
    pump(client, server, s_in, s_out)
    assert client.done
    assert client.chain == expected
    assert client.version == version.name.replace("_", ".")
    assert client.cipher


def test_eof_before_the_server_speaks_is_eof() -> None:
    client = Handshake(client_context(), "x.test")
    client.start()
    client.feed_eof()
    with pytest.raises(HandshakeFailed) as info:
        client.step()
    assert info.value.kind is ErrorKind.EOF


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"],
    ids=["http", "ssh"],
)
def test_plain_text_answer_is_not_tls(reply: bytes) -> None:
    client = Handshake(client_context(), "x.test")
    client.start()
    client.feed(reply)
    with pytest.raises(HandshakeFailed) as info:
        client.step()
    assert info.value.kind is ErrorKind.NOT_TLS


def test_fatal_alert_is_tls_alert() -> None:
    client = Handshake(client_context(), "x.test")
    client.start()
    client.feed(b"\x15\x03\x03\x00\x02\x02\x28")  # fatal handshake_failure
    with pytest.raises(HandshakeFailed) as info:
        client.step()
    assert info.value.kind is ErrorKind.TLS_ALERT
    assert "handshake_failure" in info.value.message


def test_client_hello_carries_sni_only_when_asked() -> None:
    with_sni = Handshake(client_context(), "named.example").start()
    without = Handshake(client_context(), None).start()
    assert b"named.example" in with_sni
    assert b"named.example" not in without


def test_client_context_accepts_legacy_servers() -> None:
    ctx = client_context()
    assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.minimum_version in (
        ssl.TLSVersion.MINIMUM_SUPPORTED,
        ssl.TLSVersion.SSLv3,
        ssl.TLSVersion.TLSv1,
    )
    assert "ECDHE-RSA-AES128-SHA" in {c["name"] for c in ctx.get_ciphers()}
