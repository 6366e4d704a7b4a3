"""Probe and scheduler against real TLS servers on loopback (real sockets, real clock)."""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Callable

import pytest
import trio

from chainscan import ErrorKind, ScanOptions, ScanResult, Status, Target
from chainscan._api import scan_all
from chainscan.scan._resolve import ResolveFailed, Resolver
from chainscan.scan._schedule import Scheduler
from tests.conftest import PKI
from tests.servers import (
    Handler,
    ServerHandle,
    close_after_client_hello,
    http_banner,
    reset_after_client_hello,
    ssh_banner,
    tls_alert,
)

pytestmark = pytest.mark.integration

FAST = ScanOptions(connect_timeout=2, handshake_timeout=2, deadline=8, retries=0, rate=0)


def tgt(server: ServerHandle, sni: str | None) -> Target:
    return Target(host=server.host, port=server.port, sni=sni)


async def scan(target: Target, options: ScanOptions = FAST) -> ScanResult:
    return await Scheduler(options).scan_one(target)


@pytest.mark.parametrize(
    ("sni", "expected"), [("a.test", "a.test"), ("b.test", "b.test"), (None, None)]
)
async def test_sni_selects_the_chain_and_bytes_match(
    tls_server: ServerHandle, sni: str | None, expected: str | None
) -> None:
    result = await scan(tgt(tls_server, sni))
    assert result.status is Status.OK, result.error
    assert result.chain == tls_server.chain_for(expected)
    assert result.address == "127.0.0.1" and result.attempts == 1
    tls_server.wait_finished(1)
    assert tls_server.snis == [sni]


async def test_different_names_on_one_port_get_different_chains(
    tls_server: ServerHandle, pki: PKI
) -> None:
    a = await scan(tgt(tls_server, "a.test"))
    b = await scan(tgt(tls_server, "b.test"))
    assert a.chain[0] == pki.a_ec.der and b.chain[0] == pki.b_rsa.der
    assert len(tls_server.chain_for(None)) == 3


@pytest.mark.parametrize("fixture", ["tls12_server", "tls13_server"])
async def test_tls_versions(fixture: str, request: pytest.FixtureRequest) -> None:
    server: ServerHandle = request.getfixturevalue(fixture)
    result = await scan(tgt(server, "a.test"))
    assert result.status is Status.OK
    assert result.tls_version == ("TLSv1.2" if fixture == "tls12_server" else "TLSv1.3")
    assert result.cipher
    assert result.chain == server.chain_for("a.test")


async def test_ipv6_loopback(ipv6_server: ServerHandle) -> None:
    result = await scan(Target(host="::1", port=ipv6_server.port, sni="b.test"))
    assert result.status is Status.OK
    assert result.address == "::1"
    assert result.chain == ipv6_server.chain_for("b.test")


async def test_name_resolving_to_loopback(tls_server: ServerHandle) -> None:
    result = await scan(Target(host="localhost", port=tls_server.port, sni="a.test"))
    # localhost may resolve to ::1 first: the next address (127.0.0.1) must be tried.
    assert result.status is Status.OK, result.error
    assert result.address == "127.0.0.1"


async def test_legacy_tls10_rsa1024_sha1_server_still_yields_its_chain(
    legacy_server: ServerHandle, pki: PKI
) -> None:
    result = await scan(tgt(legacy_server, "legacy.test"))
    assert result.status is Status.OK, result.error
    assert result.tls_version == "TLSv1"
    assert result.chain == legacy_server.chain_for("legacy.test")


async def test_flaky_server_is_retried_then_succeeds(
    flaky_server: Callable[..., ServerHandle],
) -> None:
    server = flaky_server(2)
    options = ScanOptions(
        connect_timeout=2, handshake_timeout=2, deadline=10, retries=2, rate=0, backoff_base=0.05
    )
    result = await scan(tgt(server, "a.test"), options)
    assert result.status is Status.OK, result.error
    assert result.attempts == 3
    assert result.chain == server.chain_for("a.test")


async def test_flaky_server_beyond_the_retries_fails_with_eof(
    flaky_server: Callable[..., ServerHandle],
) -> None:
    server = flaky_server(5)
    options = ScanOptions(
        connect_timeout=2, handshake_timeout=2, deadline=10, retries=1, rate=0, backoff_base=0.05
    )
    result = await scan(tgt(server, "a.test"), options)
    assert result.status is Status.FAILED
    assert result.error_kind is ErrorKind.EOF and result.attempts == 2


async def test_silent_server_times_out_within_the_handshake_timeout(
    silent_server: ServerHandle,
) -> None:
    options = ScanOptions(connect_timeout=1, handshake_timeout=0.5, deadline=5, retries=0, rate=0)
    start = trio.current_time()
    result = await scan(tgt(silent_server, "a.test"), options)
    took = trio.current_time() - start
    assert result.error_kind is ErrorKind.TIMEOUT_HANDSHAKE
    assert 0.5 <= took < 1.5


async def test_silent_server_with_retries_is_cut_by_the_total_deadline(
    silent_server: ServerHandle,
) -> None:
    options = ScanOptions(connect_timeout=1, handshake_timeout=5, deadline=1.0, retries=3, rate=0)
    start = trio.current_time()
    result = await scan(tgt(silent_server, "a.test"), options)
    assert result.error_kind is ErrorKind.TIMEOUT
    assert trio.current_time() - start < 1.5


async def test_refused_port(refused_port: int) -> None:
    result = await scan(Target(host="127.0.0.1", port=refused_port, sni=None))
    assert result.error_kind is ErrorKind.REFUSED and result.attempts == 1


async def test_unresolvable_name() -> None:
    result = await scan(Target(host="no-such-host.invalid", port=443, sni="no-such-host.invalid"))
    assert result.status is Status.FAILED
    assert result.error_kind in (ErrorKind.DNS, ErrorKind.DNS_TEMPORARY)


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (http_banner, ErrorKind.NOT_TLS),
        (ssh_banner, ErrorKind.NOT_TLS),
        (tls_alert, ErrorKind.TLS_ALERT),
        (reset_after_client_hello, ErrorKind.RESET),
        (close_after_client_hello, ErrorKind.EOF),
    ],
    ids=["http", "ssh", "alert", "reset", "eof"],
)
async def test_misbehaving_servers_get_their_error_kind(
    scripted_server: Callable[[Handler], ServerHandle], handler: Handler, kind: ErrorKind
) -> None:
    server = scripted_server(handler)
    result = await scan(tgt(server, "x.test"))
    assert result.status is Status.FAILED
    assert result.error_kind is kind, result.error


async def test_api_scans_many_targets_concurrently_and_dedups(tls_server: ServerHandle) -> None:
    lines = [f"127.0.0.1:{tls_server.port}"] * 3 + [
        f"{name}:{tls_server.port}{{127.0.0.1}}" for name in ("a.test", "b.test")
    ]
    lines.append("bad:99999")
    results = await scan_all(lines, FAST)
    oks = [r for r in results if isinstance(r, ScanResult)]
    assert sorted(r.target.sni or "" for r in oks) == ["", "a.test", "b.test"]
    assert all(r.status is Status.OK for r in oks)
    bad = [r for r in results if not isinstance(r, ScanResult)]
    assert len(bad) == 1 and "out of range" in bad[0].reason


async def test_chain_fingerprints_match_an_independent_computation(
    tls_server: ServerHandle,
) -> None:
    result = await scan(tgt(tls_server, "b.test"))
    pem = ssl.DER_cert_to_PEM_cert(result.chain[0])
    assert (
        hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        == hashlib.sha256(tls_server.chain_for("b.test")[0]).hexdigest()
    )


async def test_invalid_names_fail_at_once_without_a_query() -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        raise AssertionError("no query should be made for .invalid")

    resolver = Resolver(getaddrinfo=getaddrinfo)  # type: ignore[arg-type]
    with pytest.raises(ResolveFailed) as info:
        await resolver.resolve("no-such-host.invalid", 443)
    assert info.value.kind is ErrorKind.DNS and "RFC 6761" in info.value.message
    assert asked == []


@pytest.mark.parametrize(
    ("errno_", "kind"),
    [(socket.EAI_NONAME, ErrorKind.DNS), (socket.EAI_AGAIN, ErrorKind.DNS_TEMPORARY)],
    ids=["no-such-name", "temporary"],
)
async def test_resolver_errors_map_to_dns_kinds_and_only_permanent_ones_are_cached(
    errno_: int, kind: ErrorKind
) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        raise socket.gaierror(errno_, "resolver says no")

    resolver = Resolver(getaddrinfo=getaddrinfo)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(ResolveFailed) as info:
            await resolver.resolve("gone.example", 443)
        assert info.value.kind is kind
    assert len(asked) == (1 if kind is ErrorKind.DNS else 2)
