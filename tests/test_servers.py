"""Self-tests of the loopback test servers, with blocking stdlib clients (no chainscan code).

If these fail, integration tests of chainscan that use the servers cannot be trusted.
"""

from __future__ import annotations

import _ssl
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .conftest import PKI
from .servers import (
    TLS_ALERT_HANDSHAKE_FAILURE,
    ScriptedServer,
    ServerHandle,
    SilentServer,
    TLSServer,
    close_after_client_hello,
    http_banner,
    legacy_client_context,
    reset,
    reset_after_client_hello,
    slow_drip,
    ssh_banner,
    tls_alert,
)

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
FAKE_CLIENT_HELLO = b"\x16\x03\x01\x00\x04\x01\x00\x00\x00"
"""A syntactically framed (if empty) handshake record, for raw-socket clients."""


def client_context(
    minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def fetch(
    handle: ServerHandle, sni: str | None = None, ctx: ssl.SSLContext | None = None
) -> tuple[str | None, tuple[bytes, ...]]:
    """Handshake with the server; return (protocol version, DER chain as sent)."""
    ctx = client_context() if ctx is None else ctx
    raw = socket.create_connection(handle.address, timeout=TIMEOUT)
    with raw, ctx.wrap_socket(raw, server_hostname=sni) as tls:
        # Public as SSLSocket.get_unverified_chain() only from 3.13.
        chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
        return tls.version(), tuple(c.public_bytes(_ssl.ENCODING_DER) for c in chain)


def connect(handle: ServerHandle) -> socket.socket:
    return socket.create_connection(handle.address, timeout=TIMEOUT)


def read_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


# --------------------------------------------------------------------------------------------
# TLS servers


def test_sni_server_sends_one_chain_per_name(tls_server: ServerHandle, pki: PKI) -> None:
    a_version, a_chain = fetch(tls_server, "a.test")
    _, b_chain = fetch(tls_server, "b.test")
    _, none_chain = fetch(tls_server, None)
    _, unknown_chain = fetch(tls_server, "unknown.test")

    assert a_chain == tls_server.chain_for("a.test") == (pki.a_ec.der, pki.intermediate.der)
    assert b_chain == tls_server.chain_for("b.test") == (pki.b_rsa.der, pki.intermediate.der)
    assert none_chain == unknown_chain == tls_server.chain_for(None)
    assert none_chain == (pki.default.der, pki.intermediate2.der, pki.root.der)
    assert a_version == "TLSv1.3"

    a_leaf = x509.load_der_x509_certificate(a_chain[0])
    b_leaf = x509.load_der_x509_certificate(b_chain[0])
    assert isinstance(a_leaf.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(b_leaf.public_key(), rsa.RSAPublicKey)

    assert tls_server.wait_finished(4)
    assert tls_server.snis == ["a.test", "b.test", None, "unknown.test"]
    assert tls_server.accepted == tls_server.handshakes == 4
    assert tls_server.errors == []
    assert [r.index for r in sorted(tls_server.records, key=lambda r: r.index)] == [0, 1, 2, 3]


def test_tls12_server_speaks_only_tls12(tls12_server: ServerHandle) -> None:
    version, chain = fetch(tls12_server, "b.test")
    assert version == "TLSv1.2"
    assert chain == tls12_server.chain_for("b.test")
    with pytest.raises(ssl.SSLError):
        fetch(tls12_server, "b.test", client_context(minimum=ssl.TLSVersion.TLSv1_3))
    assert tls12_server.wait_finished(2)
    assert tls12_server.handshakes == 1
    assert [r.version for r in tls12_server.records if r.error is None] == ["TLSv1.2"]


def test_tls13_server_speaks_only_tls13(tls13_server: ServerHandle) -> None:
    version, chain = fetch(tls13_server, "a.test")
    assert version == "TLSv1.3"
    assert chain == tls13_server.chain_for("a.test")
    with pytest.raises(ssl.SSLError):
        fetch(tls13_server, "a.test", client_context(maximum=ssl.TLSVersion.TLSv1_2))
    assert tls13_server.wait_finished(2)
    assert tls13_server.handshakes == 1


def test_ipv6_server(ipv6_server: ServerHandle) -> None:
    assert ipv6_server.host == "::1"
    assert ipv6_server.hostport == f"[::1]:{ipv6_server.port}"
    _, chain = fetch(ipv6_server, "b.test")
    assert chain == ipv6_server.chain_for("b.test")
    assert ipv6_server.wait_finished(1)
    assert ipv6_server.records[0].peer[0] == "::1"


def test_legacy_server_speaks_tls10_with_a_sha1_rsa1024_chain(
    legacy_server: ServerHandle, pki: PKI
) -> None:
    version, chain = fetch(legacy_server, "legacy.test", legacy_client_context())
    assert version == "TLSv1"
    assert chain == legacy_server.chain_for(None) == pki.legacy.der
    for der in chain:
        cert = x509.load_der_x509_certificate(der)
        assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA1
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        assert key.key_size == 1024
    # A default (TLS 1.2+) client cannot talk to it.
    with pytest.raises(ssl.SSLError):
        fetch(legacy_server, "legacy.test")


def test_handshake_in_progress_does_not_block_accept(tls_server: ServerHandle) -> None:
    with connect(tls_server) as stuck:
        stuck.sendall(FAKE_CLIENT_HELLO[:3])  # half a record header: the server waits
        started = time.monotonic()
        _, chain = fetch(tls_server, "a.test")
        assert time.monotonic() - started < 1.0
        assert chain == tls_server.chain_for("a.test")


# --------------------------------------------------------------------------------------------
# Flaky, silent, refused


@pytest.mark.parametrize(
    ("use_reset", "expected"),
    [(False, (ssl.SSLEOFError, ssl.SSLZeroReturnError)), (True, ConnectionResetError)],
)
def test_flaky_server_drops_exactly_n(
    flaky_server: Callable[..., ServerHandle],
    use_reset: bool,
    expected: type[Exception] | tuple[type[Exception], ...],
) -> None:
    handle = flaky_server(2, reset=use_reset)
    for _ in range(2):
        with pytest.raises(expected):
            fetch(handle, "a.test")
    for _ in range(2):
        _, chain = fetch(handle, "a.test")
        assert chain == handle.chain_for("a.test")
    assert handle.wait_finished(4)
    assert (handle.accepted, handle.dropped, handle.handshakes) == (4, 2, 2)
    records = sorted(handle.records, key=lambda r: r.index)
    assert [r.dropped for r in records] == [True, True, False, False]


def test_silent_server_sends_nothing(silent_server: ServerHandle) -> None:
    with connect(silent_server) as sock:
        sock.sendall(FAKE_CLIENT_HELLO)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)
    assert silent_server.wait_finished(1)
    assert silent_server.errors == []


def test_silent_server_holds_a_tls_handshake(silent_server: ServerHandle) -> None:
    raw = socket.create_connection(silent_server.address, timeout=0.3)
    with raw, pytest.raises(TimeoutError):
        client_context().wrap_socket(raw, server_hostname="a.test")


def test_refused_port(refused_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused_port), timeout=TIMEOUT)


# --------------------------------------------------------------------------------------------
# Scripted servers and the ready-made handlers


def test_http_banner(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(http_banner)
    with connect(handle) as sock:
        sock.sendall(FAKE_CLIENT_HELLO)
        assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ssl.SSLError, match=r"WRONG_VERSION_NUMBER|wrong version number"):
        fetch(handle, "a.test")
    assert handle.wait_finished(2)
    assert handle.errors == []


def test_ssh_banner(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(ssh_banner)
    with connect(handle) as sock:
        assert sock.recv(8) == b"SSH-2.0-"  # sent before the client says anything
        sock.sendall(FAKE_CLIENT_HELLO)
        assert b"Invalid SSH identification string" in read_all(sock)
    with pytest.raises(ssl.SSLError):
        fetch(handle, "a.test")


def test_reset_after_client_hello(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(reset_after_client_hello)
    with pytest.raises(ConnectionResetError):
        fetch(handle, "a.test")
    assert handle.wait_finished(1)
    assert handle.errors == []


def test_close_after_client_hello(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(close_after_client_hello)
    with pytest.raises((ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        fetch(handle, "a.test")


def test_tls_alert(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(tls_alert)
    with connect(handle) as sock:
        sock.sendall(FAKE_CLIENT_HELLO)
        assert read_all(sock) == TLS_ALERT_HANDSHAKE_FAILURE
    with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
        fetch(handle, "a.test")
    assert handle.wait_finished(2)
    assert handle.errors == []


def test_slow_drip(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(slow_drip(0.05))
    with connect(handle) as sock:
        started = time.monotonic()
        got = b"".join(sock.recv(1) for _ in range(5))
        elapsed = time.monotonic() - started
    assert got == b"\x16\x03\x03\x40\x00"  # a TLS handshake record header, 16 KiB to come
    assert elapsed >= 0.15  # 4 intervals between 5 bytes, with some slack
    assert handle.wait_finished(1)  # the client closing ends the handler at once


def test_slow_drip_keeps_a_tls_client_waiting(
    scripted_server: Callable[..., ServerHandle],
) -> None:
    handle = scripted_server(slow_drip(0.01))
    raw = socket.create_connection(handle.address, timeout=0.3)
    with raw, pytest.raises(TimeoutError):
        client_context().wrap_socket(raw, server_hostname="a.test")


def test_handler_exceptions_are_recorded(scripted_server: Callable[..., ServerHandle]) -> None:
    def broken(sock: socket.socket) -> None:
        raise ValueError("handler bug")

    handle = scripted_server(broken)
    with connect(handle) as sock:
        assert read_all(sock) == b""
    assert handle.wait_finished(1)
    assert handle.errors == ["ValueError: handler bug"]


def test_reset_helper_sends_rst(scripted_server: Callable[..., ServerHandle]) -> None:
    handle = scripted_server(reset)
    with connect(handle) as sock, pytest.raises(ConnectionResetError):
        sock.sendall(FAKE_CLIENT_HELLO)
        sock.recv(1)


# --------------------------------------------------------------------------------------------
# Teardown


def test_stop_wakes_every_thread_and_closes_every_socket(pki: PKI) -> None:
    before = set(threading.enumerate())
    servers = [
        TLSServer(pki.chains),
        SilentServer(),
        ScriptedServer(slow_drip(60)),
        ScriptedServer(ssh_banner),
    ]
    handles = [server.start() for server in servers]
    clients = [connect(handle) for handle in handles for _ in range(3)]
    try:
        for handle in handles:
            assert handle.wait_for(lambda h: h.accepted == 3)
        started = time.monotonic()
        for server in servers:
            server.stop()
        assert time.monotonic() - started < 1.0
        assert set(threading.enumerate()) == before
        for server in servers:
            server.stop()  # idempotent
        # Every client sees its connection end (EOF or reset), none hangs.
        for client in clients:
            client.settimeout(TIMEOUT)
            try:
                while client.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for client in clients:
            client.close()
    for handle in handles:
        assert len(handle.records) == 3


def test_stopped_server_refuses(pki: PKI) -> None:
    with TLSServer(pki.chains) as handle:
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(handle.address, timeout=TIMEOUT)
