"""``scan._limits``: the rate limiter, the per-address caps and the backoff delays, on trio's
MockClock (``autojump_clock``): exact times, no sockets, no timed assertions."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from chainscan.scan._limits import AddressLimiter, RateLimiter, backoff_delays, network_of

# ---------------------------------------------------------------- RateLimiter


async def test_rate_limiter_spaces_connections_after_the_burst(autojump_clock: object) -> None:
    limiter = RateLimiter(rate=10, burst=3)
    times = []
    start = trio.current_time()
    for _ in range(8):
        await limiter.acquire()
        times.append(round(trio.current_time() - start, 6))
    assert times == [0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5]


async def test_rate_limiter_refills_while_idle(autojump_clock: object) -> None:
    limiter = RateLimiter(rate=10, burst=2)
    for _ in range(2):
        await limiter.acquire()
    await trio.sleep(5)
    start = trio.current_time()
    for _ in range(3):
        await limiter.acquire()
    assert trio.current_time() - start == pytest.approx(0.1)


def test_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="at least 1"):
        AddressLimiter(0)


async def test_rate_limiter_try_acquire_never_reserves_a_future_token(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    assert not limiter.try_acquire()  # a refusal reserves nothing: the next token is still due
    await trio.sleep(0.1)
    assert limiter.try_acquire()
    start = trio.current_time()
    await limiter.acquire()  # and the waiting path queues after it
    assert trio.current_time() - start == pytest.approx(0.1)


async def test_rate_limiter_serves_concurrent_callers_in_the_order_they_ask(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter(rate=4, burst=1)
    start = trio.current_time()
    granted: list[tuple[int, float]] = []

    async def caller(number: int) -> None:
        await limiter.acquire()
        granted.append((number, round(trio.current_time() - start, 6)))

    async with trio.open_nursery() as nursery:
        for number in range(5):
            nursery.start_soon(caller, number)
            await trio.testing.wait_all_tasks_blocked()  # caller `number` has asked
    assert granted == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]


async def test_a_cancelled_caller_costs_at_most_one_token(autojump_clock: object) -> None:
    limiter = RateLimiter(rate=10, burst=1)
    await limiter.acquire()  # t=0
    with trio.move_on_after(0.05):
        await limiter.acquire()  # reserved t=0.1, gave up at t=0.05
    start = trio.current_time()
    await limiter.acquire()  # the reservation is not returned: t=0.2
    assert trio.current_time() - start == pytest.approx(0.15)
    await trio.sleep(10)
    start = trio.current_time()
    await limiter.acquire()  # idle: on time again
    assert trio.current_time() == start


async def test_the_rate_holds_over_any_window(autojump_clock: object) -> None:
    rate, burst = 50.0, 5
    limiter = RateLimiter(rate=rate, burst=burst)
    times = []
    for _ in range(300):
        await limiter.acquire()
        times.append(trio.current_time())
    # Any window of w seconds sees at most burst + rate * w grants (token bucket).
    for i, began in enumerate(times):
        for j in range(i, len(times)):
            width = times[j] - began
            assert j - i + 1 <= burst + rate * width + 1e-6


# ---------------------------------------------------------------- AddressLimiter


def test_address_limiter_try_acquire_takes_a_free_place_only() -> None:
    limiter = AddressLimiter(2)
    assert limiter.try_acquire("a") and limiter.try_acquire("a")
    assert not limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    assert limiter.in_use("a") == 2 and limiter.in_use("b") == 1
    limiter.release("a")
    assert limiter.in_use("a") == 1 and limiter.try_acquire("a")
    for address in ("a", "a", "b"):
        limiter.release(address)
    assert limiter.in_use("a") == limiter.in_use("b") == 0
    assert not limiter._slots  # unused addresses leave nothing behind


async def test_address_limiter_caps_each_address_and_queues_in_order(
    autojump_clock: object,
) -> None:
    limiter = AddressLimiter(2)
    busy = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    granted: dict[int, float] = {}

    async def connection(number: int, address: str) -> None:
        await limiter.acquire(address)
        try:
            busy[address] += 1
            most[address] = max(most[address], busy[address])
            granted[number] = trio.current_time()
            await trio.sleep(1)
            busy[address] -= 1
        finally:
            limiter.release(address)

    async with trio.open_nursery() as nursery:
        for number in range(7):
            nursery.start_soon(connection, number, "a")
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(connection, 99, "b")
    assert most == {"a": 2, "b": 1}
    # First come, first served: two at a time, in the order they asked.
    assert granted == {**{number: number // 2 for number in range(7)}, 99: 0}
    assert trio.current_time() == pytest.approx(4)  # 7 holders of 1 s, two at a time
    assert not limiter._slots


async def test_a_cancelled_waiter_leaves_no_place_taken(autojump_clock: object) -> None:
    limiter = AddressLimiter(1)
    await limiter.acquire("a")
    with trio.move_on_after(1):
        await limiter.acquire("a")  # never gets it
    assert limiter.in_use("a") == 1
    limiter.release("a")
    assert limiter.in_use("a") == 0 and not limiter._slots
    assert limiter.try_acquire("a")


# ---------------------------------------------------------------- backoff_delays


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    rng = random.Random(1)
    delays = backoff_delays(0.5, 4.0, rng)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for ceiling in ceilings:
        assert 0 <= next(delays) <= ceiling
    # Full jitter: over many draws the delays spread over the whole range below the ceiling.
    draws = [next(backoff_delays(0.5, 4.0, random.Random(seed))) for seed in range(400)]
    assert min(draws) < 0.05 and max(draws) > 0.45


class _Highest(random.Random):
    """Draws the top of every range: the delays are then the ceilings themselves."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceilings_double_up_to_the_cap() -> None:
    delays = backoff_delays(0.25, 3.0, _Highest())
    assert [next(delays) for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = backoff_delays(0.5, 8.0, random.Random(42))
    second = backoff_delays(0.5, 8.0, random.Random(42))
    assert [next(first) for _ in range(10)] == [next(second) for _ in range(10)]


# ---------------------------------------------------------------- network_of (--per-net)


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("192.0.2.1", "192.0.2.0/24"),
        ("192.0.2.255", "192.0.2.0/24"),
        ("198.51.100.7", "198.51.100.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.9", "192.0.2.0/24"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_network_of_is_the_24_or_the_64(ip: str, network: str) -> None:
    assert network_of(ip) == network


def test_one_network_limiter_counts_every_address_of_a_24() -> None:
    # ``--per-net`` is an AddressLimiter keyed by network_of: neighbours share the places.
    limiter = AddressLimiter(3)
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert limiter.try_acquire(network_of(ip))
    assert not limiter.try_acquire(network_of("192.0.2.200"))
    assert limiter.try_acquire(network_of("192.0.3.1"))  # the next /24 is another network
    limiter.release(network_of("192.0.2.2"))
    assert limiter.try_acquire(network_of("192.0.2.77"))


async def test_network_limiter_caps_a_24_and_queues_in_order(autojump_clock: object) -> None:
    limiter = AddressLimiter(2)
    busy: dict[str, int] = {}
    most: dict[str, int] = {}
    granted: dict[int, float] = {}

    async def connection(number: int, ip: str) -> None:
        network = network_of(ip)
        await limiter.acquire(network)
        try:
            busy[network] = busy.get(network, 0) + 1
            most[network] = max(most.get(network, 0), busy[network])
            granted[number] = trio.current_time()
            await trio.sleep(1)
            busy[network] -= 1
        finally:
            limiter.release(network)

    async with trio.open_nursery() as nursery:
        for number in range(6):  # six addresses of one /24, two of another
            nursery.start_soon(connection, number, f"203.0.113.{number + 1}")
            await trio.testing.wait_all_tasks_blocked()
        for number in (6, 7):
            nursery.start_soon(connection, number, f"198.51.100.{number}")
    assert most == {"203.0.113.0/24": 2, "198.51.100.0/24": 2}
    assert [granted[n] for n in range(6)] == [0, 0, 1, 1, 2, 2]  # in the order they asked
    assert granted[6] == granted[7] == 0  # the other network never waits for the busy one
    assert not limiter._slots
