"""Hostile servers on STARTTLS ports: each ends with its error kind within its deadline.

The STARTTLS rows of the hostile matrix (``tests/test_hostile.py`` has the TLS ones), with
fake SMTP servers on loopback (fakes are for hostile behaviour only; the real servers are in
``tests/test_starttls_servers.py``):

==================================================  =============================================
server                                              result
==================================================  =============================================
accepts TCP, never sends its banner (tarpit)        ``timeout-handshake`` (retried)
drips its banner, a byte every 0.2 s                ``timeout-handshake`` after
                                                    ``--handshake-timeout`` (one total)
an endless multi-line reply (``220-...`` forever)   ``too-large`` at 64 KiB, at once
a 10 MB banner on one line                          ``too-large`` at 64 KiB, memory bounded
STARTTLS answered 220, then plaintext               ``protocol-error`` (same packet or later)
EHLO without STARTTLS                               ``starttls-unsupported``, not retried
STARTTLS answered 454                               ``starttls-refused``, not retried
a banner with terminal escapes                      the error quotes it without control bytes
==================================================  =============================================

Every test prints ``TIME <case> <kind> <seconds>`` (shown with ``pytest -s``).
"""

from __future__ import annotations

import socket
import sys
import time
import tracemalloc
from collections.abc import Callable

import pytest
import trio

from chainscan import ErrorKind, ScanOptions, ScanResult, Target
from chainscan.scan._schedule import Scheduler
from tests.servers import Handler, ServerHandle, slow_drip

pytestmark = pytest.mark.integration

RETRYING = ScanOptions(
    connect_timeout=1, handshake_timeout=1, deadline=3, retries=1, rate=0, backoff_base=0.05
)
ONE_SHOT = ScanOptions(connect_timeout=1, handshake_timeout=1, deadline=3, retries=0, rate=0)
LIMIT = 10.0
"""Seconds a fake server keeps talking at most (every loop here is bounded)."""


def report(case: str, result: ScanResult, took: float) -> None:
    print(f"TIME {case}: {result.error_kind or result.status} in {took:.3f}s", file=sys.stderr)


async def timed_scan(server: ServerHandle, options: ScanOptions) -> tuple[ScanResult, float]:
    started = trio.current_time()
    target = Target(host=server.host, port=server.port, sni=None, protocol="smtp")
    result = await Scheduler(options).scan_one(target)
    return result, trio.current_time() - started


def read_line(sock: socket.socket) -> bytes:
    """One line from the client (bounded), b"" at EOF."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 4096:
        byte = sock.recv(1)
        if not byte:
            return b""
        line += byte
    return line


def smtp(ehlo: bytes, starttls: bytes, after: bytes = b"", later: bytes = b"") -> Handler:
    """A fake SMTP server: banner, then ``ehlo`` to EHLO, ``starttls`` to STARTTLS, with
    ``after`` in the same write and ``later`` in a write of its own 0.1 s later."""

    def handler(sock: socket.socket) -> None:
        sock.sendall(b"220 fake.test ESMTP\r\n")
        if not read_line(sock).upper().startswith(b"EHLO"):
            return
        sock.sendall(ehlo)
        if not read_line(sock).upper().startswith(b"STARTTLS"):
            return
        sock.sendall(starttls + after)
        if later:
            time.sleep(0.1)
            sock.sendall(later)
        while sock.recv(65536):
            pass

    return handler


def endless(line: bytes, total: int = 100 * 1024 * 1024) -> Handler:
    """Send ``line`` over and over until the client goes, ``total`` bytes or LIMIT seconds."""

    def handler(sock: socket.socket) -> None:
        block = line * max(1, 65536 // len(line))
        sent, stop = 0, time.monotonic() + LIMIT
        try:
            while sent < total and time.monotonic() < stop:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            return  # the client closed: what we wanted

    return handler


def ten_megabyte_banner(sock: socket.socket) -> None:
    endless(b"220 " + b"A" * 65532, total=10 * 1024 * 1024)(sock)


EHLO_OK = b"250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


async def test_banner_tarpit(silent_server: ServerHandle) -> None:
    result, took = await timed_scan(silent_server, RETRYING)
    report("STARTTLS banner tarpit", result, took)
    assert result.error_kind is ErrorKind.TIMEOUT_HANDSHAKE, result.error
    assert "smtp dialogue" in (result.error or "")
    assert result.attempts == 2
    assert 2.0 <= took <= RETRYING.deadline + 0.5


async def test_dripping_banner(scripted_server: Callable[[Handler], ServerHandle]) -> None:
    server = scripted_server(slow_drip(0.2, b"220-" + b"x" * 1000))
    result, took = await timed_scan(server, ONE_SHOT)
    report("STARTTLS dripping banner", result, took)
    assert result.error_kind is ErrorKind.TIMEOUT_HANDSHAKE, result.error
    assert ONE_SHOT.handshake_timeout <= took < ONE_SHOT.deadline


async def test_endless_multi_line_reply(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(endless(b"220-still talking\r\n"))
    result, took = await timed_scan(server, RETRYING)
    report("STARTTLS endless multi-line reply", result, took)
    assert result.error_kind is ErrorKind.TOO_LARGE, result.error
    assert result.attempts == 1
    assert "'220-still talking / 220-still talking" in (result.error or "")
    assert took < RETRYING.handshake_timeout


async def test_ten_megabyte_banner(scripted_server: Callable[[Handler], ServerHandle]) -> None:
    server = scripted_server(ten_megabyte_banner)
    tracemalloc.start()
    try:
        result, took = await timed_scan(server, RETRYING)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report("STARTTLS 10 MB banner", result, took)
    assert result.error_kind is ErrorKind.TOO_LARGE, result.error
    assert result.attempts == 1
    assert peak < 2 * 1024 * 1024  # read up to the 64 KiB cap, never the 10 MB
    assert took < RETRYING.handshake_timeout


@pytest.mark.parametrize("same_packet", [True, False], ids=["same-packet", "later"])
async def test_starttls_ok_then_plaintext(
    scripted_server: Callable[[Handler], ServerHandle], same_packet: bool
) -> None:
    plaintext = b"250 and more plaintext\r\n"
    if same_packet:
        handler = smtp(EHLO_OK, b"220 go ahead\r\n", after=plaintext)
    else:
        handler = smtp(EHLO_OK, b"220 go ahead\r\n", later=plaintext)
    result, took = await timed_scan(scripted_server(handler), RETRYING)
    when = "same packet" if same_packet else "later"
    report(f"STARTTLS OK then plaintext ({when})", result, took)
    assert result.error_kind is ErrorKind.PROTOCOL_ERROR, result.error
    assert result.attempts == 1
    if same_packet:
        assert "'250 and more plaintext'" in (result.error or "")
    assert took < RETRYING.handshake_timeout


async def test_no_starttls_offered_is_permanent(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(smtp(b"250-fake.test\r\n250 8BITMIME\r\n", b""))
    result, took = await timed_scan(server, RETRYING)
    report("EHLO without STARTTLS", result, took)
    assert result.error_kind is ErrorKind.STARTTLS_UNSUPPORTED, result.error
    assert result.attempts == 1
    assert "'250-fake.test / 250 8BITMIME'" in (result.error or "")


async def test_starttls_refused_is_permanent(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(smtp(EHLO_OK, b"454 4.7.0 TLS not available\r\n"))
    result, took = await timed_scan(server, RETRYING)
    report("STARTTLS refused", result, took)
    assert result.error_kind is ErrorKind.STARTTLS_REFUSED, result.error
    assert result.attempts == 1
    assert "'454 4.7.0 TLS not available'" in (result.error or "")


async def test_server_words_are_sanitised(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    def banner(sock: socket.socket) -> None:
        sock.sendall(b"554 \x1b[2J\x1b]0;owned\x07 go away \xe2\x80\xae" + b"x" * 500 + b"\r\n")

    result, took = await timed_scan(scripted_server(banner), RETRYING)
    report("banner with terminal escapes", result, took)
    assert result.error_kind is ErrorKind.STARTTLS_REFUSED, result.error
    error = result.error or ""
    assert "go away" in error
    assert all(ch.isprintable() for ch in error)
    assert len(error) < 300


async def test_an_unknown_protocol_from_the_api_is_a_result_not_a_crash(
    silent_server: ServerHandle,
) -> None:
    target = Target(host=silent_server.host, port=silent_server.port, sni=None, protocol="gopher")
    result = await Scheduler(RETRYING).scan_one(target)
    assert result.error_kind is ErrorKind.BAD_INPUT and result.attempts == 1
    assert "unknown protocol 'gopher'" in (result.error or "")


ENDLESS = {
    "imap": (b"* OK hi\r\n", b"* CAPABILITY IMAP4rev1 X-PADDING\r\n"),
    "pop3": (b"+OK hi\r\n", b"+OK\r\n"),
    "ftp": (b"", b"220-still talking\r\n"),
    "ldap": (b"\x30\x84\x7f\xff\xff\xff", b"\x00" * 1024),  # a 2 GiB LDAPMessage announced
    "mysql": (b"\xff\xff\xff\x00\x0a", b"A" * 1024),  # a 16 MiB greeting announced
    "xmpp": (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        b"<message><body>still talking</body></message>",
    ),
}


@pytest.mark.parametrize("protocol", sorted(ENDLESS))
async def test_every_dialogue_stops_at_the_byte_cap(
    scripted_server: Callable[[Handler], ServerHandle], protocol: str
) -> None:
    first, repeated = ENDLESS[protocol]

    def handler(sock: socket.socket) -> None:
        if first:
            sock.sendall(first)
        endless(repeated)(sock)

    server = scripted_server(handler)
    target = Target(host=server.host, port=server.port, sni=None, protocol=protocol)
    started = trio.current_time()
    result = await Scheduler(RETRYING).scan_one(target)
    took = trio.current_time() - started
    report(f"{protocol}: endless reply", result, took)
    assert result.error_kind is ErrorKind.TOO_LARGE, result.error
    assert result.attempts == 1 and took < RETRYING.handshake_timeout
