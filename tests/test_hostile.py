"""Hostile servers: each gets a result with the right error kind within its deadline.

The matrix of issue 3, against real servers on loopback (``tests/servers.py`` plus the few
handlers below that need a real TLS server flight cut short):

=============================================  ==================================================
server                                         result
=============================================  ==================================================
accepts TCP, never sends a byte (tarpit)       ``timeout-handshake`` after ``--handshake-timeout``
one byte every 0.2 s, forever (slow drip)      ``timeout-handshake`` after ``--handshake-timeout``
                                               (one total, not a timer reset per byte); ``timeout``
                                               at ``--deadline`` when that comes first
RST after the ClientHello                      ``reset`` (retried)
FIN right after the ServerHello                ``eof`` (retried)
RST in the middle of the Certificate message   ``reset`` (retried)
plain HTTP / an SSH banner                     ``not-tls``
a TLS alert (handshake_failure)                ``tls-alert``
120 certificates (53 KB)                       ``ok``: 64 kept, ``chain_length`` 120
120 certificates (1.1 MiB), TLS 1.3 only       ``too-large`` (OpenSSL's 100 KiB Certificate cap;
                                               no plaintext TLS 1.2 flight to read it from:
                                               see ``test_large_chain.py``)
more than ``max_handshake_bytes``              ``too-large`` (chainscan's own cap)
a certificate only OpenSSL can parse           ``ok``; the DER saved and listed with parse_error
answers, then vanishes before the retry        ``refused`` on attempt 2
=============================================  ==================================================

:func:`test_a_fleet_of_hostile_servers_does_not_disturb_the_rest` runs all of them in one CLI
scan next to healthy targets, which must all succeed at the first attempt, quickly. Every test
prints ``TIME <case> <kind> <seconds>`` (shown with ``pytest -s``): the time-to-result.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from chainscan import ErrorKind, ScanOptions, ScanResult, Status, Target
from chainscan._api import scan_all
from chainscan.analysis._analyze import analyze_der
from chainscan.scan._schedule import Scheduler
from tests.conftest import PKI
from tests.pki import CA, der_tlv, make_key, mutate_tbs
from tests.servers import (
    Handler,
    ScriptedServer,
    ServedChain,
    ServerHandle,
    SilentServer,
    TLSServer,
    http_banner,
    read_client_hello,
    reset,
    reset_after_client_hello,
    served_chain,
    slow_drip,
    ssh_banner,
    tls_alert,
)
from tests.test_schedule import FakeNetwork, target
from tests.test_schedule import run as run_fake

pytestmark = pytest.mark.integration

RETRYING = ScanOptions(
    connect_timeout=1, handshake_timeout=1, deadline=3, retries=1, rate=0, backoff_base=0.05
)
"""One retry after a transient failure, 50 ms backoff at most."""
ONE_SHOT = ScanOptions(connect_timeout=1, handshake_timeout=1, deadline=3, retries=0, rate=0)

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
VERSION_IDS = ["TLSv1.2", "TLSv1.3"]


def report(case: str, result: ScanResult, took: float) -> None:
    print(f"TIME {case}: {result.error_kind or result.status} in {took:.3f}s", file=sys.stderr)


async def timed_scan(server: ServerHandle, options: ScanOptions) -> tuple[ScanResult, float]:
    """Scan ``server`` (no SNI); return the result and the seconds it took."""
    started = trio.current_time()
    result = await Scheduler(options).scan_one(Target(host=server.host, port=server.port, sni=None))
    return result, trio.current_time() - started


# --------------------------------------------------------------------------------------------
# Servers that run a real TLS server handshake and send only part of its first flight


def tls_records(flight: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each TLS record in ``flight``."""
    records = []
    pos = 0
    while pos + 5 <= len(flight):
        end = pos + 5 + int.from_bytes(flight[pos + 3 : pos + 5], "big")
        records.append((pos, end))
        pos = end
    return records


def after_server_hello(flight: bytes) -> int:
    """The ServerHello is the first record of the server's flight, in TLS 1.2 and 1.3."""
    return tls_records(flight)[0][1]


def mid_certificate(flight: bytes) -> int:
    """Half-way through the Certificate message: the largest record of the flight (encrypted
    in TLS 1.3, so found by size, which the chain dominates)."""
    start, end = max(tls_records(flight), key=lambda record: record[1] - record[0])
    return start + (end - start) // 2


def server_context(chain: ServedChain, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = version
    context.load_cert_chain(chain.certfile, chain.keyfile)
    return context


def cut_flight(context: ssl.SSLContext, cut: Callable[[bytes], int], *, rst: bool) -> Handler:
    """A handler: read the ClientHello, compute the real server flight over memory BIOs, send
    its first ``cut(flight)`` bytes, then close with an RST (``rst``) or a FIN."""

    def handler(sock: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(read_client_hello(sock))
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        flight = outgoing.read()
        sock.sendall(flight[: cut(flight)])
        if rst:
            reset(sock)
        # else: ScriptedServer sends the FIN and waits for the client's

    handler.__name__ = f"cut_flight({cut.__name__}, rst={rst})"
    return handler


class VanishingServer:
    """Answers its first connection with a ServerHello, resets it, and stops listening: the
    retry finds the port closed (refused). Runs in one thread; stops at ``__exit__``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.host, self.port = "127.0.0.1", self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vanishing", daemon=True)
        self.connections = 0

    def __enter__(self) -> VanishingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        assert not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._listener.close()  # gone: from now on connections are refused
            conn.settimeout(5)
            cut_flight(self._context, after_server_hello, rst=True)(conn)
            conn.close()
            return


# --------------------------------------------------------------------------------------------
# Certificates


PADDING = ObjectIdentifier("1.3.6.1.4.1.55555.1")


def long_chain(tmp: Path, name: str, count: int, pad: int = 0) -> ServedChain:
    """A leaf and ``count - 1`` CA certificates (each with ``pad`` bytes of an extension)."""
    root = CA(f"{name} root")
    key = make_key()
    extra = [x509.UnrecognizedExtension(PADDING, bytes(pad))] if pad else []
    cas = [
        root.child_ca(f"{name} CA {i}", key=key, extra_extensions=extra) for i in range(count - 1)
    ]
    return served_chain(tmp, root.issue(name), *cas)


def minute_precision_times(elements: list[bytes]) -> list[bytes]:
    """Validity as ``YYMMDDHHMMZ`` (no seconds): X.509 of the 1990s allowed it, OpenSSL still
    parses it, ``cryptography`` refuses the whole certificate."""
    elements[4] = der_tlv(0x30, der_tlv(0x17, b"2601010000Z") + der_tlv(0x17, b"3601010000Z"))
    return elements


def openssl_only_chain(tmp: Path, pki: PKI) -> ServedChain:
    """``odd.test`` leaf + an intermediate that OpenSSL sends and parses but cryptography not."""
    odd = mutate_tbs(pki.intermediate.der, pki.root.key, minute_precision_times)
    assert analyze_der(odd).parse_error  # the premise of the test
    leaf = pki.intermediate.issue("odd.test")
    certfile = tmp / "odd.chain.pem"
    keyfile = tmp / "odd.key.pem"
    certfile.write_bytes(leaf.pem + ssl.DER_cert_to_PEM_cert(odd).encode())
    keyfile.write_bytes(leaf.key_pem)
    return ServedChain(str(certfile), str(keyfile), (leaf.der, odd))


@pytest.fixture(scope="module")
def chains(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServedChain]:
    tmp = tmp_path_factory.mktemp("hostile")
    return {
        "many": long_chain(tmp, "many.test", 120),
        "huge": long_chain(tmp, "huge.test", 120, pad=9_000),
        "odd": openssl_only_chain(tmp, pki),
        "normal": pki.chains["a.test"],
    }


@pytest.fixture
def tls(chains: dict[str, ServedChain]) -> Iterator[Callable[[str], ServerHandle]]:
    """Factory: ``tls(name)`` starts a TLSServer sending ``chains[name]`` to every client."""
    with contextlib.ExitStack() as stack:
        yield lambda name: stack.enter_context(
            TLSServer({None: chains[name]}, min_version=TLS13_ONLY.get(name))
        )


TLS13_ONLY = {"huge": ssl.TLSVersion.TLSv1_3}
"""Servers that refuse TLS 1.2: a huge chain over TLS 1.2 is read from the records since
issue 12 (``test_large_chain.py``); over TLS 1.3 only it stays ``too-large``."""


# --------------------------------------------------------------------------------------------
# The matrix, one case at a time


async def test_tarpit_times_out_at_the_handshake_timeout(silent_server: ServerHandle) -> None:
    result, took = await timed_scan(silent_server, ONE_SHOT)
    report("tarpit", result, took)
    assert result.error_kind is ErrorKind.TIMEOUT_HANDSHAKE
    assert 1.0 <= took < 1.5


async def test_slow_drip_hits_the_handshake_timeout_as_a_total(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(slow_drip(0.2))  # a byte every 0.2 s: a per-read timer never fires
    result, took = await timed_scan(server, ONE_SHOT)
    report("slow drip (handshake timeout)", result, took)
    assert result.error_kind is ErrorKind.TIMEOUT_HANDSHAKE, result.error
    assert 1.0 <= took < 1.5


async def test_slow_drip_is_cut_by_the_total_deadline(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(slow_drip(0.2))
    options = ScanOptions(connect_timeout=1, handshake_timeout=30, deadline=1.5, rate=0)
    result, took = await timed_scan(server, options)
    report("slow drip (deadline)", result, took)
    assert result.error_kind is ErrorKind.TIMEOUT and result.attempts == 1
    assert "1.5s deadline" in (result.error or "")
    assert 1.5 <= took < 2.0


async def test_reset_after_the_client_hello_is_retried_then_reported(
    scripted_server: Callable[[Handler], ServerHandle],
) -> None:
    server = scripted_server(reset_after_client_hello)
    result, took = await timed_scan(server, RETRYING)
    report("RST after ClientHello", result, took)
    assert result.error_kind is ErrorKind.RESET and result.attempts == 2
    assert took < 1.0
    assert server.wait_finished(2)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
async def test_close_after_the_server_hello_is_eof(
    scripted_server: Callable[[Handler], ServerHandle], pki: PKI, version: ssl.TLSVersion
) -> None:
    context = server_context(pki.chains[None], version)
    server = scripted_server(cut_flight(context, after_server_hello, rst=False))
    result, took = await timed_scan(server, RETRYING)
    report(f"FIN after ServerHello ({version.name})", result, took)
    assert result.error_kind is ErrorKind.EOF, result.error
    assert result.attempts == 2 and took < 1.0


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
async def test_reset_in_the_middle_of_the_certificate_message(
    scripted_server: Callable[[Handler], ServerHandle], pki: PKI, version: ssl.TLSVersion
) -> None:
    context = server_context(pki.chains[None], version)
    server = scripted_server(cut_flight(context, mid_certificate, rst=True))
    result, took = await timed_scan(server, RETRYING)
    report(f"RST mid-Certificate ({version.name})", result, took)
    assert result.error_kind is ErrorKind.RESET, result.error
    assert result.attempts == 2 and took < 1.0
    assert not result.chain


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (http_banner, ErrorKind.NOT_TLS),
        (ssh_banner, ErrorKind.NOT_TLS),
        (tls_alert, ErrorKind.TLS_ALERT),
    ],
    ids=["http", "ssh", "alert"],
)
async def test_wrong_protocols_and_alerts_are_final_at_once(
    scripted_server: Callable[[Handler], ServerHandle], handler: Handler, kind: ErrorKind
) -> None:
    result, took = await timed_scan(scripted_server(handler), RETRYING)
    report(handler.__name__, result, took)
    assert result.error_kind is kind and result.attempts == 1  # permanent: not retried
    assert took < 0.5


async def test_more_certificates_than_kept_are_counted(tls: Callable[[str], ServerHandle]) -> None:
    server = tls("many")
    result, took = await timed_scan(server, ONE_SHOT)
    report("120 certificates, 53 KB", result, took)
    assert result.status is Status.OK
    assert result.chain_sent == 120 and len(result.chain) == ONE_SHOT.max_chain_length == 64
    assert result.chain == server.chain_for(None)[:64]
    assert took < 1.0


async def test_a_chain_over_a_mebibyte_is_too_large_without_being_read(
    tls: Callable[[str], ServerHandle],
) -> None:
    server = tls("huge")
    assert sum(map(len, server.chain_for(None))) > 1024 * 1024
    tracemalloc.start()
    try:
        result, took = await timed_scan(server, ONE_SHOT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report("120 certificates, 1.1 MiB", result, took)
    assert result.error_kind is ErrorKind.TOO_LARGE and result.attempts == 1
    assert "100 KiB" in (result.error or "")
    assert peak < 512 * 1024  # refused at the message header: the chain is never held
    assert took < 1.0


async def test_the_handshake_byte_cap_is_enforced(tls: Callable[[str], ServerHandle]) -> None:
    options = ScanOptions(retries=0, rate=0, max_handshake_bytes=32 * 1024)
    result, took = await timed_scan(tls("many"), options)
    report("over max_handshake_bytes", result, took)
    assert result.error_kind is ErrorKind.TOO_LARGE
    assert "over 32768 bytes" in (result.error or "")


async def test_a_certificate_only_openssl_parses_is_still_returned(
    tls: Callable[[str], ServerHandle], chains: dict[str, ServedChain]
) -> None:
    result, took = await timed_scan(tls("odd"), ONE_SHOT)
    report("certificate cryptography refuses", result, took)
    assert result.status is Status.OK
    assert result.chain == chains["odd"].der


async def test_a_server_that_vanishes_between_attempts(pki: PKI) -> None:
    context = server_context(pki.chains[None], ssl.TLSVersion.TLSv1_3)
    with VanishingServer(context) as server:
        started = trio.current_time()
        result = await Scheduler(RETRYING).scan_one(
            Target(host=server.host, port=server.port, sni=None)
        )
        took = trio.current_time() - started
    report("answers, then vanishes", result, took)
    assert server.connections == 1
    assert result.error_kind is ErrorKind.REFUSED and result.attempts == 2, result.error
    assert took < 1.0


# --------------------------------------------------------------------------------------------
# All of them in one scan, next to healthy targets


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainscan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_a_fleet_of_hostile_servers_does_not_disturb_the_rest(
    tmp_path: Path, pki: PKI, chains: dict[str, ServedChain], refused_port: int
) -> None:
    context = server_context(pki.chains[None], ssl.TLSVersion.TLSv1_3)
    hostile: dict[str, tuple[str, int]] = {}  # name -> (expected kind or "ok", attempts)
    lines: list[str] = []
    with contextlib.ExitStack() as stack:

        def add(name: str, port: int, kind: str, attempts: int) -> None:
            hostile[name] = (kind, attempts)
            lines.append(f"{name}:{port}{{127.0.0.1}}")

        def scripted(handler: Handler) -> int:
            return stack.enter_context(ScriptedServer(handler)).port

        add("tarpit.test", stack.enter_context(SilentServer()).port, "timeout-handshake", 2)
        add("drip.test", scripted(slow_drip(0.2)), "timeout-handshake", 2)
        add("rst-hello.test", scripted(reset_after_client_hello), "reset", 2)
        add("fin-sh.test", scripted(cut_flight(context, after_server_hello, rst=False)), "eof", 2)
        add("rst-cert.test", scripted(cut_flight(context, mid_certificate, rst=True)), "reset", 2)
        add("http.test", scripted(http_banner), "not-tls", 1)
        add("ssh.test", scripted(ssh_banner), "not-tls", 1)
        add("alert.test", scripted(tls_alert), "tls-alert", 1)
        for name in ("many", "huge", "odd"):
            server = stack.enter_context(
                TLSServer({None: chains[name]}, min_version=TLS13_ONLY.get(name))
            )
            add(f"{name}.test", server.port, "too-large" if name == "huge" else "ok", 1)
        add("vanish.test", stack.enter_context(VanishingServer(context)).port, "refused", 2)
        add("closed.test", refused_port, "refused", 1)
        good = stack.enter_context(TLSServer(pki.chains))
        lines += [f"good{i}.test:{good.port}{{127.0.0.1}}" for i in range(40)]
        hosts = tmp_path / "hosts.txt"
        hosts.write_text("\n".join(lines) + "\n")
        out = tmp_path / "out"
        started = time.monotonic()
        proc = run_cli(
            str(hosts),
            "-o",
            str(out),
            "--connect-timeout",
            "1",
            "--handshake-timeout",
            "1",
            "--deadline",
            "3",
            "--retries",
            "1",
            "--rate",
            "0",
            "-q",
        )
        took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == len(lines)
    by_host = {entry["host"]: entry for entry in entries}
    for name, (kind, attempts) in hostile.items():
        entry = by_host[name]
        got = entry["error_kind"] or entry["status"]
        print(f"TIME fleet {name}: {got} in {entry['elapsed']:.3f}s", file=sys.stderr)
        assert (got, entry["attempts"]) == (kind, attempts), entry
        assert entry["elapsed"] <= 3.0
    many = by_host["many.test"]
    assert many["chain_length"] == 120 and len(many["chain"]) == 64
    odd = by_host["odd.test"]["chain"][1]
    assert odd["parse_error"] and odd["subject"] is None and odd["pin"] is None
    assert odd["file"].endswith(f"/sha256_{odd['sha256'][:16]}.der")
    assert (out / odd["file"]).read_bytes() == chains["odd"].der[1]
    healthy = [e for host, e in by_host.items() if host.startswith("good")]
    assert all(e["status"] == "ok" and e["attempts"] == 1 for e in healthy)
    assert max(e["elapsed"] for e in healthy) < 0.5
    assert took < 3.0 + 2.0  # the slowest target's deadline, plus start-up
    print(f"TIME fleet: whole scan of {len(lines)} targets in {took:.3f}s", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Waiting for a slot is not the server's fault: it never eats a target's deadline


@pytest.mark.parametrize(
    "limits",
    [{"per_ip": 2, "rate": 0}, {"per_ip": 0, "concurrency": 2, "rate": 0}, {"rate": 2}],
    ids=["per-ip", "concurrency", "rate"],
)
async def test_queueing_behind_our_own_limits_does_not_time_targets_out(
    autojump_clock: object, limits: dict[str, float]
) -> None:
    # 20 targets of 1 s each behind a limit of 2 at a time: the last waits 9 s for its turn,
    # three times its deadline, and must still get its result.
    options = ScanOptions(deadline=3, retries=0, **limits)
    results = await run_fake([target(n) for n in range(20)], options, FakeNetwork(hold=1.0))
    assert len(results) == 20
    for result in results:
        assert isinstance(result, ScanResult)
        assert result.status is Status.OK, result.error
        assert result.elapsed == pytest.approx(1.0, abs=0.01)  # the wait is not counted


async def test_the_deadline_still_bounds_the_time_with_the_server(autojump_clock: object) -> None:
    options = ScanOptions(deadline=3, retries=0, per_ip=1, rate=0)
    results = await run_fake([target(n) for n in range(3)], options, FakeNetwork(hold=10.0))
    assert [r.error_kind for r in results if isinstance(r, ScanResult)] == [ErrorKind.TIMEOUT] * 3
    assert all(isinstance(r, ScanResult) and r.elapsed == pytest.approx(3.0) for r in results)


async def test_a_slow_address_shared_by_many_names_on_loopback(
    scripted_server: Callable[[Handler], ServerHandle], pki: PKI
) -> None:
    context = server_context(pki.chains[None], ssl.TLSVersion.TLSv1_3)

    def slow_tls(sock: socket.socket) -> None:
        time.sleep(0.25)
        with context.wrap_socket(sock, server_side=True):
            pass

    server = scripted_server(slow_tls)
    options = ScanOptions(per_ip=2, deadline=0.8, retries=0, rate=0)
    lines = [f"n{i}.test:{server.port}{{127.0.0.1}}" for i in range(12)]
    started = trio.current_time()
    results = await scan_all(lines, options)
    took = trio.current_time() - started
    assert [r.status for r in results if isinstance(r, ScanResult)] == [Status.OK] * 12
    assert took >= 6 * 0.25  # 12 names, 2 at a time: the last waited longer than its deadline
