"""``run._partition``: where ``--workers`` and ``--dask`` place a target so that ``--per-ip``
and ``--per-net`` hold across processes. A fake ``getaddrinfo``: no DNS, no sockets."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

from chainscan._models import BadLine, ScanOptions, Target
from chainscan.run._partition import Placed, Placement, placed, shard_of
from chainscan.scan._intake import take_input
from chainscan.scan._resolve import Resolver


def target(host: str, address: str | None = None, line: int = 0) -> Target:
    return Target(host=host, port=443, sni=host, address=address, line=line, raw=host)


class FakeDNS:
    """``getaddrinfo`` from a table; counts lookups and the most that ran at once."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []
        self.running = 0
        self.most = 0

    async def __call__(self, host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        self.asked.append(host)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await trio.sleep(0.01)
        finally:
            self.running -= 1
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in self.table[host]
        ]


TABLE = {
    "a.test": ["198.51.100.7", "203.0.113.1"],
    "b.test": ["198.51.100.7"],
    "c.test": ["198.51.100.8"],
    "d.test": ["2001:db8::1"],
    "e.test": ["2001:db8::ffff"],
}


class Collect:
    def __init__(self, placement: Placement, places: int) -> None:
        self.placement = placement
        self.places = places
        self.routed: list[tuple[Target, int]] = []
        self.bad: list[BadLine] = []
        self.flushes = 0

    async def record(self, bad: BadLine) -> None:
        self.bad.append(bad)

    async def route(self, target: Target) -> None:
        self.routed.append((target, self.placement.place(target, self.places)))

    async def flush(self) -> None:
        self.flushes += 1


async def place_all(
    options: ScanOptions, items: list[Target | BadLine], places: int = 1000
) -> tuple[Collect, FakeDNS]:
    dns = FakeDNS(TABLE)
    placement = Placement(options, Resolver(getaddrinfo=dns))
    collect = Collect(placement, places)
    await take_input(items, placed(collect, placement), blocking=False)
    return collect, dns


async def test_names_of_one_address_share_a_place_with_the_address_itself(
    autojump_clock: object,
) -> None:
    targets = [
        target("a.test"),
        target("b.test"),
        target("x.test", address="198.51.100.7"),
        target("198.51.100.7"),
        target("c.test"),
    ]
    collect, dns = await place_all(ScanOptions(per_ip=16, per_net=0), [*targets])
    places = [place for _, place in collect.routed]
    assert [t for t, _ in collect.routed] == targets  # input order kept
    assert len(set(places[:4])) == 1  # a.test goes where its first address goes
    assert collect.placement.key(targets[0]) == "198.51.100.7"
    assert collect.placement.key(targets[4]) == "198.51.100.8"
    assert sorted(dns.asked) == ["a.test", "b.test", "c.test"]  # no lookup for an address


async def test_with_per_net_the_key_is_the_24_or_the_64(autojump_clock: object) -> None:
    targets = [target(h) for h in ("a.test", "b.test", "c.test", "d.test", "e.test")]
    targets.append(target("y.test", address="198.51.100.200"))
    collect, _ = await place_all(ScanOptions(per_ip=0, per_net=4), [*targets])
    keys = [collect.placement.key(t) for t in targets]
    assert keys == ["198.51.100.0/24"] * 3 + ["2001:db8::/64"] * 2 + ["198.51.100.0/24"]
    places = [place for _, place in collect.routed]
    assert len({places[0], places[1], places[2], places[5]}) == 1 and places[3] == places[4]


async def test_a_name_that_does_not_resolve_is_placed_by_its_name(autojump_clock: object) -> None:
    missing = target("gone.test")
    collect, _ = await place_all(ScanOptions(per_net=2), [missing])
    assert collect.placement.key(missing) == "gone.test"
    assert collect.routed == [(missing, collect.placement.place(missing, 1000))]


async def test_without_caps_nothing_is_resolved_and_shard_of_places(autojump_clock: object) -> None:
    targets = [target("a.test"), target("b.test"), target("z.test", address="192.0.2.1")]
    options = ScanOptions(per_ip=0, per_net=0)
    dns = FakeDNS(TABLE)
    placement = Placement(options, Resolver(getaddrinfo=dns))
    collect = Collect(placement, 7)
    router = placed(collect, placement)
    assert router is collect  # no wrapper, no batch held back
    await take_input([*targets], router, blocking=False)
    assert dns.asked == []
    assert [p for _, p in collect.routed] == [shard_of(t, 7) for t in targets]


async def test_a_batch_is_resolved_concurrently_once_per_name(autojump_clock: object) -> None:
    bad = BadLine(source="f", line=3, raw="bad:0", reason="port 0 is out of range")
    names = [f"n{i}.test" for i in range(50)]
    dns = FakeDNS({name: [f"192.0.2.{i}"] for i, name in enumerate(names)})
    placement = Placement(ScanOptions(), Resolver(getaddrinfo=dns))
    collect = Collect(placement, 10)
    items: list[Target | BadLine] = [target(n, line=i) for i, n in enumerate(names * 2)]
    items.insert(3, bad)
    router = placed(collect, placement)
    assert isinstance(router, Placed)
    await take_input(items, router, blocking=False)
    assert sorted(dns.asked) == sorted(names)  # one lookup per name (the resolver's cache)
    assert dns.most > 10  # concurrently, not one after another
    assert len(collect.routed) == 100 and collect.bad == [bad]
    for t, place in collect.routed:
        assert place == shard_of(target("x", address=f"192.0.2.{names.index(t.host)}"), 10)


# ---------------------------------------------------------------- one batch per Dask shard


class _FakeFuture:
    def __init__(self, cluster: _FakeCluster, batch: list[Target]) -> None:
        self.cluster = cluster
        self.batch = batch

    def result(self) -> list[object]:
        return []

    def release(self) -> None:
        pass


class _FakeCluster:
    """A Dask client and ``distributed.wait`` in one: a batch finishes when waited for, oldest
    first; records which batches were out together."""

    def __init__(self) -> None:
        self.out: list[_FakeFuture] = []
        self.most_out = 0
        self.together: list[set[str]] = []

    def nthreads(self) -> dict[str, int]:
        return {"tcp://127.0.0.1:1": 1, "tcp://127.0.0.1:2": 1}

    def submit(self, fn: object, batch: list[Target], *args: object, **kw: object) -> _FakeFuture:
        future = _FakeFuture(self, batch)
        self.out.append(future)
        self.most_out = max(self.most_out, len(self.out))
        self.together.append({f.batch[0].host for f in self.out})
        return future

    def wait(
        self, futures: list[_FakeFuture], **_: object
    ) -> tuple[set[_FakeFuture], set[_FakeFuture]]:
        done = self.out.pop(0)
        return {done}, set(futures) - {done}


async def test_a_dask_shard_never_has_two_batches_out_while_a_cap_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chainscan.run import _dask

    cluster = _FakeCluster()
    monkeypatch.setattr(_dask, "_import_distributed", lambda: cluster)
    spec: Any = None  # what the analysis needs: only passed along to the tasks
    driver = _dask._Driver(cluster, ScanOptions(per_ip=2), spec, lambda ready: None)
    assert driver.slots == 2
    # Shard 0 has three batches in a row, then shard 1: the second batch of shard 0 waits for
    # the first although 4 batches may be out at once.
    batches = [("s0-a", 0), ("s0-b", 0), ("s1-a", 1), ("s0-c", 0)]
    for host, shard in batches:
        await trio.to_thread.run_sync(driver.submit, [target(host)], shard)
    await trio.to_thread.run_sync(driver.drain)
    for out in cluster.together:
        assert len({host.split("-")[0] for host in out}) == len(out), cluster.together
    assert cluster.most_out == 2  # s0-c and s1-a

    # Without a shard (both caps off) batches of one shard may be out together.
    free = _FakeCluster()
    monkeypatch.setattr(_dask, "_import_distributed", lambda: free)
    driver = _dask._Driver(free, ScanOptions(per_ip=0), spec, lambda ready: None)
    for host, _ in batches:
        await trio.to_thread.run_sync(driver.submit, [target(host)], None)
    await trio.to_thread.run_sync(driver.drain)
    assert free.most_out == 4


async def test_names_are_remembered_across_batches_within_a_bound(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainscan.run import _partition

    monkeypatch.setattr(_partition, "_ANSWERS", 2)
    dns = FakeDNS(TABLE)
    placement = Placement(ScanOptions(), Resolver(getaddrinfo=dns, max_entries=1))
    for names in (["a.test", "b.test"], ["a.test"], ["c.test", "d.test"], ["a.test"]):
        await placement.prepare([target(n) for n in names])
        assert [placement.key(target(n)) for n in names] == [TABLE[n][0] for n in names]
    # a.test: looked up, remembered for the second batch, forgotten (2 names kept), again.
    assert dns.asked.count("a.test") == 2 and len(placement._answers) == 2


# ---------------------------------------------------------------- --workers: the client's answer


async def test_a_worker_connects_where_the_main_process_placed_a_name(
    autojump_clock: object,
) -> None:
    import io

    from chainscan.run._workers import _Dispatch, _GivenAnswers, _read_targets

    class Pipe:
        def __init__(self) -> None:
            self.data = b""

        async def send_all(self, data: bytes) -> None:
            self.data += data

    class Child:
        def __init__(self) -> None:
            self.stdin = Pipe()

    # The main process's DNS answers a.test with 198.51.100.7 first ...
    placement = Placement(ScanOptions(per_net=2), Resolver(getaddrinfo=FakeDNS(TABLE)))
    children = [Child() for _ in range(3)]
    send, _ = trio.open_memory_channel[list[BadLine]](10)
    items: list[Target | BadLine] = [target("a.test"), target("z.test", address="192.0.2.9")]
    router = placed(_Dispatch(children, send, placement), placement)  # type: ignore[arg-type]
    await take_input(items, router, blocking=False)
    data = b"".join(child.stdin.data for child in children)
    # ... a worker's resolver, a rotated answer (203.0.113.1 first), which it never asks for.
    worker_dns = FakeDNS({"a.test": ["203.0.113.1", "198.51.100.7"]})
    resolver = _GivenAnswers()
    resolver._getaddrinfo = worker_dns  # type: ignore[assignment]
    assert sorted(_read_targets(io.BytesIO(data), resolver), key=lambda t: t.host) == items
    assert resolver.given == {"a.test": ("198.51.100.7", "203.0.113.1")}
    first = await resolver.resolve("a.test", 443)
    assert [a.ip for a in first] == ["198.51.100.7", "203.0.113.1"]
    assert worker_dns.asked == [] and resolver.given == {}


def test_resolver_remember_keeps_a_cached_answer_and_only_addresses() -> None:
    resolver = Resolver(max_entries=2)
    resolver.remember("a.test", ["192.0.2.1", "not an address", "2001:db8::1"])
    resolver.remember("a.test", ["192.0.2.2"])  # cached already: kept
    resolver.remember("b.test", ["junk"])  # nothing usable: nothing cached
    resolver.remember("c.test", [])
    assert dict(resolver._cache) == {
        "a.test": (("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6))
    }
