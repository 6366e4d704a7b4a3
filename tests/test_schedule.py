"""The scheduler on trio's MockClock: exact timing, no sockets (its limits: ``test_limits``)."""

from __future__ import annotations

import gc
import random
import ssl
from collections.abc import Callable

import pytest
import trio
import trio.testing

from chainscan._models import (
    BadLine,
    ErrorKind,
    ProbeOutcome,
    ScanOptions,
    ScanResult,
    Status,
    Target,
)
from chainscan.scan._probe import Gate
from chainscan.scan._resolve import Resolver
from chainscan.scan._schedule import Scheduler


def target(n: int, host: str | None = None) -> Target:
    return Target(host=host or f"h{n}.test", port=443, sni=host or f"h{n}.test", line=n)


OK = ProbeOutcome(chain=(b"leaf",), address="192.0.2.1")


class FakeNetwork:
    """A probe that holds the gate for ``hold`` seconds and answers from a script."""

    def __init__(
        self,
        *,
        hold: float = 1.0,
        script: Callable[[Target, int], ProbeOutcome] | None = None,
        address: Callable[[Target], str] = lambda t: "192.0.2.1",
        hold_for: Callable[[Target], float] | None = None,
    ) -> None:
        self.hold = hold
        self.hold_for = hold_for
        """Per target, instead of ``hold``."""
        self.script = script or (lambda t, n: OK)
        self.address = address
        self.calls: dict[Target, int] = {}
        self.connect_times: list[float] = []
        self.open = 0
        self.max_open = 0
        self.open_per_address: dict[str, int] = {}
        self.max_per_address = 0

    async def __call__(
        self,
        target: Target,
        *,
        options: ScanOptions,
        context: ssl.SSLContext,
        resolver: Resolver,
        gate: Gate,
    ) -> ProbeOutcome:
        n = self.calls[target] = self.calls.get(target, 0) + 1
        ip = self.address(target)
        async with gate(ip):
            self.connect_times.append(trio.current_time())
            self.open += 1
            self.open_per_address[ip] = self.open_per_address.get(ip, 0) + 1
            self.max_open = max(self.max_open, self.open)
            self.max_per_address = max(self.max_per_address, self.open_per_address[ip])
            try:
                await trio.sleep(self.hold if self.hold_for is None else self.hold_for(target))
            finally:
                self.open -= 1
                self.open_per_address[ip] -= 1
        return self.script(target, n)


async def run(
    items: list[Target | BadLine], options: ScanOptions, network: FakeNetwork
) -> list[ScanResult | BadLine]:
    scheduler = Scheduler(options, probe_fn=network, rng=random.Random(7))
    send, receive = trio.open_memory_channel[ScanResult | BadLine](0)
    results: list[ScanResult | BadLine] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run, items, send)
        async with receive:
            async for item in receive:
                results.append(item)
    return results


async def test_global_rate_holds_over_a_scan(autojump_clock: object) -> None:
    network = FakeNetwork(hold=0.01)
    options = ScanOptions(concurrency=50, rate=20, burst=1, per_ip=0)
    results = await run([target(n) for n in range(100)], options, network)
    assert len(results) == 100
    span = network.connect_times[-1] - network.connect_times[0]
    assert span == pytest.approx(99 / 20)


async def test_concurrency_bounds_open_connections(autojump_clock: object) -> None:
    network = FakeNetwork(hold=1.0)
    options = ScanOptions(concurrency=7, rate=0, per_ip=0)
    start = trio.current_time()
    results = await run([target(n) for n in range(70)], options, network)
    assert len(results) == 70
    assert network.max_open == 7
    assert trio.current_time() - start == pytest.approx(10.0)


async def test_per_address_cap_holds_across_names(autojump_clock: object) -> None:
    # 60 names on one load balancer and 60 names on their own addresses.
    network = FakeNetwork(
        hold=1.0, address=lambda t: "198.51.100.1" if t.line < 60 else f"192.0.2.{t.line}"
    )
    options = ScanOptions(concurrency=40, rate=0, per_ip=3)
    results = await run([target(n) for n in range(120)], options, network)
    assert len(results) == 120
    assert network.max_per_address == 3
    # The busy address must not starve the others: they all ran in parallel with it.
    assert network.max_open > 30


async def test_retries_transient_failures_with_backoff_without_holding_a_slot(
    autojump_clock: object,
) -> None:
    def script(t: Target, n: int) -> ProbeOutcome:
        if t.line == 0 and n <= 2:
            return ProbeOutcome(error_kind=ErrorKind.RESET, error="reset")
        return OK

    network = FakeNetwork(hold=1.0, script=script)
    options = ScanOptions(
        concurrency=1, rate=0, per_ip=0, retries=2, backoff_base=10.0, backoff_cap=10.0
    )
    results = await run([target(0), target(1), target(2)], options, network)
    by_line = {r.target.line: r for r in results if isinstance(r, ScanResult)}
    assert by_line[0].status is Status.OK and by_line[0].attempts == 3
    assert network.calls[target(0)] == 3
    # With one slot, the others completed while target 0 slept in its backoff.
    assert by_line[1].elapsed < by_line[0].elapsed and by_line[2].elapsed < by_line[0].elapsed


async def test_permanent_failures_are_not_retried(autojump_clock: object) -> None:
    kinds = [ErrorKind.DNS, ErrorKind.REFUSED, ErrorKind.TLS_ALERT, ErrorKind.NOT_TLS]
    scripts = {n: kind for n, kind in enumerate(kinds)}

    def script(t: Target, n: int) -> ProbeOutcome:
        return ProbeOutcome(error_kind=scripts[t.line], error="no")

    network = FakeNetwork(hold=0.1, script=script)
    results = await run([target(n) for n in range(4)], ScanOptions(retries=5), network)
    assert all(isinstance(r, ScanResult) and r.attempts == 1 for r in results)
    assert {r.error_kind for r in results if isinstance(r, ScanResult)} == set(kinds)


async def test_retries_give_up_after_the_configured_count(autojump_clock: object) -> None:
    network = FakeNetwork(
        hold=0.1, script=lambda t, n: ProbeOutcome(error_kind=ErrorKind.EOF, error="eof")
    )
    results = await run([target(0)], ScanOptions(retries=3, deadline=1000), network)
    (result,) = results
    assert isinstance(result, ScanResult)
    assert result.attempts == 4 and result.error_kind is ErrorKind.EOF


async def test_total_deadline_bounds_a_target_whatever_it_does(autojump_clock: object) -> None:
    network = FakeNetwork(hold=1000.0)
    start = trio.current_time()
    (result,) = await run([target(0)], ScanOptions(deadline=30, retries=2), network)
    assert trio.current_time() - start == pytest.approx(30)
    assert isinstance(result, ScanResult)
    assert result.error_kind is ErrorKind.TIMEOUT and "30s deadline" in (result.error or "")


async def test_no_retry_is_started_that_cannot_finish_before_the_deadline(
    autojump_clock: object,
) -> None:
    network = FakeNetwork(
        hold=9.0, script=lambda t, n: ProbeOutcome(error_kind=ErrorKind.TIMEOUT_HANDSHAKE)
    )
    options = ScanOptions(deadline=10, retries=5, backoff_base=2.0, backoff_cap=2.0)
    (result,) = await run([target(0)], options, network)
    assert isinstance(result, ScanResult)
    assert result.error_kind in (ErrorKind.TIMEOUT_HANDSHAKE, ErrorKind.TIMEOUT)
    assert result.elapsed <= 10


async def test_bad_lines_pass_through_and_input_is_pulled_lazily(autojump_clock: object) -> None:
    pulled = 0

    def lines() -> object:
        nonlocal pulled
        for n in range(10_000):
            pulled += 1
            yield target(n)

    network = FakeNetwork(hold=1.0)
    options = ScanOptions(concurrency=10, rate=0, per_ip=0)
    scheduler = Scheduler(options, probe_fn=network)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run, lines(), send)
        async with receive:
            for _ in range(20):
                await receive.receive()
            # Only about admission + one batch was read, not the whole input.
            assert pulled <= scheduler.max_admitted + 2 * 256
            nursery.cancel_scope.cancel()
    bad = BadLine(source="f", line=3, raw="x:0", reason="port 0 is out of range (1-65535)")
    items: list[Target | BadLine] = [bad, target(1)]
    results = await run(items, ScanOptions(), FakeNetwork(hold=0.1))
    assert bad in results


async def test_skip_drops_targets_before_admission(autojump_clock: object) -> None:
    network = FakeNetwork(hold=0.1)
    scheduler = Scheduler(ScanOptions(), probe_fn=network)
    send, receive = trio.open_memory_channel[ScanResult | BadLine](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: scheduler.run(
                [target(n) for n in range(10)], send, skip=lambda t: t.line % 2 == 0
            )
        )
        got = [r async for r in receive]
    assert sorted(r.target.line for r in got if isinstance(r, ScanResult)) == [1, 3, 5, 7, 9]
    assert len(network.calls) == 5


async def test_real_mock_clock_is_in_use(autojump_clock: trio.testing.MockClock) -> None:
    # Guards the other tests: with the autojump clock, 1000 s pass instantly.
    before = trio.current_time()
    await trio.sleep(1000)
    assert trio.current_time() - before == 1000


@pytest.mark.parametrize(
    "limits",
    [{"concurrency": 2, "per_ip": 0, "rate": 0}, {"per_ip": 2, "rate": 0}],
    ids=["concurrency", "per-ip"],
)
async def test_targets_go_through_a_busy_gate_in_arrival_order(
    autojump_clock: object, limits: dict[str, float]
) -> None:
    # A gate that is free takes no time and no checkpoint; one that is not keeps its queue:
    # a place freed by a leaving target goes to the longest waiter, not to a newcomer.
    asked: list[int] = []
    entered: dict[int, float] = {}

    class Recording(FakeNetwork):
        async def __call__(
            self,
            target: Target,
            *,
            options: ScanOptions,
            context: ssl.SSLContext,
            resolver: Resolver,
            gate: Gate,
        ) -> ProbeOutcome:
            asked.append(target.line)
            async with gate("192.0.2.1"):
                entered[target.line] = trio.current_time()
                await trio.sleep(self.hold if self.hold_for is None else self.hold_for(target))
            return OK

    options = ScanOptions(deadline=5, retries=0, **limits)
    results = await run([target(n) for n in range(30)], options, Recording(hold=1.0))
    assert all(isinstance(r, ScanResult) and r.status is Status.OK for r in results)
    times = [entered[line] for line in asked]
    assert times == sorted(times) and times[-1] == pytest.approx(14.0)


async def test_the_collector_threshold_is_raised_for_a_scan_only(autojump_clock: object) -> None:
    before = gc.get_threshold()
    seen: list[int] = []

    def script(t: Target, n: int) -> ProbeOutcome:
        seen.append(gc.get_threshold()[0])
        return OK

    await run([target(n) for n in range(3)], ScanOptions(), FakeNetwork(hold=0.1, script=script))
    assert seen and all(threshold >= 10_000 for threshold in seen)
    assert gc.get_threshold() == before


async def test_per_network_cap_holds_across_the_addresses_of_a_24(autojump_clock: object) -> None:
    # 60 names on 60 addresses of one /24, 60 names each on its own /24; --per-ip stays 3.
    def address(t: Target) -> str:
        return f"203.0.113.{t.line}" if t.line < 60 else f"10.{t.line}.0.1"

    class PerNetwork(FakeNetwork):
        async def __call__(
            self,
            target: Target,
            *,
            options: ScanOptions,
            context: ssl.SSLContext,
            resolver: Resolver,
            gate: Gate,
        ) -> ProbeOutcome:
            ip = self.address(target)
            net = ip.rpartition(".")[0]
            async with gate(ip):
                open_per_net[net] = open_per_net.get(net, 0) + 1
                most_per_net[net] = max(most_per_net.get(net, 0), open_per_net[net])
                try:
                    await trio.sleep(self.hold if self.hold_for is None else self.hold_for(target))
                finally:
                    open_per_net[net] -= 1
            return OK

    open_per_net: dict[str, int] = {}
    most_per_net: dict[str, int] = {}
    options = ScanOptions(concurrency=40, rate=0, per_ip=3, per_net=5, deadline=1000)
    results = await run([target(n) for n in range(120)], options, PerNetwork(address=address))
    assert len(results) == 120 and all(r.status is Status.OK for r in results)  # type: ignore[union-attr]
    assert most_per_net["203.0.113"] == 5
    assert max(most_per_net.values()) == 5
    # The busy /24 does not starve the others: 5 + 35 of 40 slots were in use at once.
    assert sum(1 for net, most in most_per_net.items() if most == 1) == 60


async def test_a_refused_network_place_gives_the_address_place_back(
    autojump_clock: object,
) -> None:
    # per_net 1: the second address of the /24 waits for the network, not holding its address.
    options = ScanOptions(concurrency=10, rate=0, per_ip=1, per_net=1, deadline=1000)
    network = FakeNetwork(hold=1.0, address=lambda t: f"192.0.2.{t.line % 2}")
    start = trio.current_time()
    results = await run([target(n) for n in range(6)], options, network)
    assert len(results) == 6 and all(r.status is Status.OK for r in results)  # type: ignore[union-attr]
    assert network.max_open == 1  # one connection at a time to the whole /24
    assert trio.current_time() - start == pytest.approx(6.0)
