"""The built-in probe keeps the target's deadline itself (issue 16, part 4).

The scheduler opens no cancel scope of its own around ``_probe.probe``: it hands the probe the
target's deadline (``_schedule._Progress``), and each phase of the probe (resolve; connect and
handshake, under one scope) runs to the earlier of its own timeout and that deadline. When the
deadline comes first the target is reported as the scheduler always reported it: ``timeout``,
"attempt N was still running", not the phase's timeout. These tests cover each phase both ways,
on loopback (a listener whose accept queue is full never answers a SYN) and with a resolver
that never answers (trio's MockClock).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio

from chainscan import ErrorKind, ScanOptions, Target
from chainscan.scan._resolve import Resolver
from chainscan.scan._schedule import Scheduler


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port on 127.0.0.1 where a TCP connect hangs: a listener whose accept queue is full
    (backlog 0, filled by connections it never accepts) drops the SYNs that follow."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def target(port: int) -> Target:
    return Target(host="127.0.0.1", port=port, sni="hang.test")


@pytest.mark.integration
async def test_a_hanging_connect_ends_at_the_connect_timeout(unanswered_port: int) -> None:
    options = ScanOptions(connect_timeout=0.3, handshake_timeout=5, deadline=5, retries=0, rate=0)
    start = trio.current_time()
    result = await Scheduler(options).scan_one(target(unanswered_port))
    took = trio.current_time() - start
    assert result.error_kind is ErrorKind.TIMEOUT_CONNECT, result.error
    assert result.error == f"TCP connect to 127.0.0.1 port {unanswered_port} took over 0.3s"
    assert result.attempts == 1 and result.address == "127.0.0.1"
    assert 0.3 <= took < 3


@pytest.mark.integration
async def test_a_hanging_connect_ends_at_the_targets_deadline_when_that_comes_first(
    unanswered_port: int,
) -> None:
    options = ScanOptions(connect_timeout=30, handshake_timeout=5, deadline=0.4, retries=0, rate=0)
    start = trio.current_time()
    result = await Scheduler(options).scan_one(target(unanswered_port))
    took = trio.current_time() - start
    assert result.error_kind is ErrorKind.TIMEOUT, result.error
    assert result.error == "no result within the 0.4s deadline (attempt 1 was still running)"
    assert result.attempts == 1 and result.address is None
    assert 0.4 <= took < 3


@pytest.mark.integration
async def test_a_retry_after_a_connect_timeout_gets_a_scope_of_its_own(
    unanswered_port: int,
) -> None:
    # Attempt 1 ends at its connect timeout (0.5 s); attempt 2 starts at once (a 10 ms
    # backoff) in a fresh scope, and the deadline (1 s) comes before its own connect timeout.
    options = ScanOptions(
        connect_timeout=0.5, deadline=1.0, retries=1, backoff_base=0.01, backoff_cap=0.01, rate=0
    )
    result = await Scheduler(options).scan_one(target(unanswered_port))
    assert result.error_kind is ErrorKind.TIMEOUT and result.attempts == 2, result.error
    assert result.error == (
        "no result within the 1s deadline (attempt 2 was still running); attempt 1 failed: "
        f"TCP connect to 127.0.0.1 port {unanswered_port} took over 0.5s"
    )
    assert result.address == "127.0.0.1"


async def test_a_lookup_that_never_answers_ends_at_the_targets_deadline(
    autojump_clock: object,
) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    options = ScanOptions(deadline=7, retries=2, rate=0)
    scheduler = Scheduler(options, resolver=Resolver(getaddrinfo=getaddrinfo))
    start = trio.current_time()
    result = await scheduler.scan_one(Target(host="slow.test", port=443, sni="slow.test"))
    assert trio.current_time() - start == pytest.approx(7)
    assert result.error_kind is ErrorKind.TIMEOUT and result.attempts == 1
    assert result.error == "no result within the 7s deadline (attempt 1 was still running)"
    assert result.elapsed == pytest.approx(7)
    assert asked == ["slow.test"]
