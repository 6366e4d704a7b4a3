"""The library API, one suite run under trio and under asyncio, plus its synchronous form.

Each test is a plain function that runs its body with ``anyio.run(body, backend=...)``, for
``backend`` in trio and asyncio (the ``backend`` fixture). The bodies use anyio only for what the
test itself needs (timeouts, cancel scopes, sleeps), so the same code exercises
``chainscan.open_scan`` from a trio task and from an asyncio task. (pytest-trio's ``trio_mode``
claims every ``async def`` test for trio; plain functions leave it out of the way, and anyio's
own pytest plugin, also installed, only acts on tests marked ``anyio``.)

Servers are the loopback servers of ``tests/servers.py`` (threads, independent of the loop).
Timeouts here are generous upper bounds that only fire when something hangs, never targets.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import anyio
import pytest

import chainscan
from chainscan import BadLine, ScanOptions, ScanResult, Status
from chainscan.analysis._inventory import Inventory

from .conftest import PKI
from .servers import ServerHandle

FAST = ScanOptions(
    concurrency=50, rate=0, per_ip=0, connect_timeout=5, handshake_timeout=5, deadline=10
)
SLOW = ScanOptions(
    concurrency=50, rate=0, per_ip=0, connect_timeout=60, handshake_timeout=60, deadline=120
)
"""For silent servers: only cancellation can end these scans within a test's time."""

HANG = 30.0
"""Upper bound for anything that should be immediate; hit only when something hangs."""


@pytest.fixture(params=["trio", "asyncio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def run(backend: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` under ``backend``, and check the scan left no thread of its own behind."""
    anyio.run(body, backend=backend)
    assert not [t for t in threading.enumerate() if t.name == "chainscan-trio"]


def named(server: ServerHandle, names: list[str]) -> list[str]:
    return [f"{name}:{server.port}{{{server.host}}}" for name in names]


def all_closed(server: ServerHandle) -> bool:
    """Every connection the server accepted has ended (the client closed it)."""
    return server.accepted > 0 and len(server.records) == server.accepted


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (a server's counters) until it holds; fail after :data:`HANG`."""
    for _ in range(int(HANG / 0.01)):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("the condition did not hold in time")


def test_open_scan_streams_chains_bad_lines_and_dedups(
    backend: str, tls_server: ServerHandle
) -> None:
    lines = [*named(tls_server, ["a.test", "b.test", "a.test"]), "bad:99999"]
    got: list[ScanResult | BadLine] = []

    async def body() -> None:
        async with chainscan.open_scan(lines, FAST) as results:
            async for result in results:
                got.append(result)

    run(backend, body)
    bad = [r for r in got if isinstance(r, BadLine)]
    assert len(bad) == 1 and "out of range" in bad[0].reason
    oks = {r.target.sni: r for r in got if isinstance(r, ScanResult)}
    assert sorted(oks) == ["a.test", "b.test"] and len(got) == 3
    for name, result in oks.items():
        assert result.status is Status.OK
        assert result.chain == tls_server.chain_for(name)
        assert result.inventory is None


def test_scan_all_returns_every_result(backend: str, tls_server: ServerHandle) -> None:
    names = [f"h{i}.test" for i in range(30)]
    got: list[ScanResult | BadLine] = []

    async def body() -> None:
        got.extend(await chainscan.scan_all(named(tls_server, names), FAST))

    run(backend, body)
    assert sorted(r.target.sni or "" for r in got if isinstance(r, ScanResult)) == sorted(names)
    assert all(isinstance(r, ScanResult) and r.status is Status.OK for r in got)


def test_the_issues_example_prints_a_result(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body() -> None:
        async with chainscan.open_scan(["a.invalid"], chainscan.ScanOptions()) as results:
            async for r in results:
                assert isinstance(r, ScanResult)
                print(r.status, r.error_kind)

    run(backend, body)
    assert capsys.readouterr().out == "failed dns\n"


def test_leaving_early_cancels_and_closes_every_connection(
    backend: str, tls_server: ServerHandle, silent_server: ServerHandle
) -> None:
    silent = [f"s{i}.test:{silent_server.port}{{127.0.0.1}}" for i in range(20)]
    got: list[ScanResult | BadLine] = []

    async def body() -> None:
        with anyio.fail_after(HANG):
            async with chainscan.open_scan(
                [*silent, *named(tls_server, ["a.test"])], SLOW
            ) as results:
                async for result in results:
                    got.append(result)
                    await until(lambda: silent_server.accepted >= 5)
                    break  # silent handshakes are still waiting

    run(backend, body)
    assert len(got) == 1 and isinstance(got[0], ScanResult) and got[0].status is Status.OK
    # The block was left only after the scan stopped: every silent connection was closed.
    assert silent_server.wait_for(all_closed)


def test_the_callers_cancellation_stops_the_scan(backend: str, silent_server: ServerHandle) -> None:
    silent = [f"s{i}.test:{silent_server.port}{{127.0.0.1}}" for i in range(10)]
    outcome: list[bool] = []

    async def body() -> None:
        with anyio.fail_after(HANG), anyio.CancelScope() as scope:
            async with chainscan.open_scan(silent, SLOW) as results:

                async def cancel_when_all_connected() -> None:
                    await until(lambda: silent_server.accepted == 10)
                    scope.cancel()

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_when_all_connected)
                    async for _ in results:
                        raise AssertionError("a silent server gave a result")
        outcome.append(scope.cancelled_caught)

    run(backend, body)
    assert outcome == [True]
    assert silent_server.wait_for(all_closed)


def test_an_exception_in_the_loop_body_comes_out_as_raised(
    backend: str, tls_server: ServerHandle, silent_server: ServerHandle
) -> None:
    silent = [f"s{i}.test:{silent_server.port}{{127.0.0.1}}" for i in range(5)]

    class Stop(Exception):
        pass

    async def body() -> None:
        with anyio.fail_after(HANG), pytest.raises(Stop):
            async with chainscan.open_scan([*silent, *named(tls_server, ["b.test"])], SLOW) as rs:
                async for _ in rs:
                    await until(lambda: silent_server.accepted >= 2)
                    raise Stop

    run(backend, body)
    assert silent_server.wait_for(all_closed)


def test_a_consumer_that_stops_reading_stops_the_scan(
    backend: str, tls_server: ServerHandle
) -> None:
    options = ScanOptions(concurrency=2, rate=0, per_ip=0, retries=0)
    names = [f"h{i}.test" for i in range(300)]
    counts: list[int] = []

    async def body() -> None:
        with anyio.fail_after(HANG * 2):
            async with chainscan.open_scan(named(tls_server, names), options) as results:
                first = await results.__anext__()
                assert isinstance(first, ScanResult)
                await until(lambda: tls_server.handshakes >= 30)
                await anyio.sleep(0.5)  # the scan runs on, if nothing holds it back
                counts.append(tls_server.handshakes)
                counts.append(1 + len([r async for r in results]))

    run(backend, body)
    # Admission (64 targets) + the channels' few slots, not the 300 of the input.
    assert counts[0] < 100, counts
    assert counts[1] == 300


def test_inventory_fields_match_the_manifests(
    backend: str, tls_server: ServerHandle, pki: PKI, tmp_path: Path
) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(pki.root.pem)
    options = ScanOptions(concurrency=10, rate=0, per_ip=0, trust_store=str(bundle), deadline=10)
    got: list[ScanResult | BadLine] = []

    async def body() -> None:
        got.extend(
            await chainscan.scan_all(
                [*named(tls_server, ["a.test", "wrong.test"]), "127.0.0.1:1"],
                options,
                inventory=True,
            )
        )

    run(backend, body)
    by_sni = {r.target.sni: r for r in got if isinstance(r, ScanResult)}
    assert by_sni[None].status is Status.FAILED and by_sni[None].inventory is None
    reference = Inventory.from_options(options)
    for sni in ("a.test", "wrong.test"):
        result = by_sni[sni]
        inventory = result.inventory
        assert inventory is not None
        fields = reference.entry_fields(result)
        assert inventory.trust.trusted is fields["trust"]["trusted"]
        assert inventory.hostname.matches is fields["hostname"]["matches"]
        assert [p.code for p in inventory.problems] == [p["code"] for p in fields["problems"]]
        assert [c.sha256 for c in inventory.certs] == [
            chainscan.analyze_der(der).sha256 for der in result.chain
        ]
    assert by_sni["a.test"].inventory is not None
    assert by_sni["a.test"].inventory.hostname.matches is True
    wrong = by_sni["wrong.test"].inventory
    assert wrong is not None and wrong.hostname.matches is False
    assert "hostname-mismatch" in {p.code for p in wrong.problems}


def test_a_bad_trust_store_fails_before_anything_is_sent(
    backend: str, tls_server: ServerHandle
) -> None:
    options = ScanOptions(trust_store="/nonexistent/roots.pem")

    async def body() -> None:
        with pytest.raises(chainscan.UsageError):
            async with chainscan.open_scan(named(tls_server, ["a.test"]), options, inventory=True):
                pass

    run(backend, body)
    assert tls_server.accepted == 0


# ---- synchronous callers --------------------------------------------------------------------


def test_sync_scan_all_and_streaming(tls_server: ServerHandle) -> None:
    got = chainscan.scan_all_sync([*named(tls_server, ["a.test", "b.test"]), "bad:0"], FAST)
    assert sorted(r.target.sni or "" for r in got if isinstance(r, ScanResult)) == [
        "a.test",
        "b.test",
    ]
    assert len([r for r in got if isinstance(r, BadLine)]) == 1
    with chainscan.open_scan_sync(named(tls_server, ["a.test"]), FAST, inventory=True) as rs:
        (only,) = list(rs)
    assert isinstance(only, ScanResult) and only.inventory is not None
    assert not [t for t in threading.enumerate() if t.name == "chainscan-trio"]


def test_sync_early_exit_and_exception(
    tls_server: ServerHandle, silent_server: ServerHandle
) -> None:
    silent = [f"s{i}.test:{silent_server.port}{{127.0.0.1}}" for i in range(10)]
    with chainscan.open_scan_sync([*silent, *named(tls_server, ["a.test"])], SLOW) as results:
        first = next(iter(results))
        assert silent_server.wait_for(lambda h: h.accepted >= 2)
    assert isinstance(first, ScanResult) and first.status is Status.OK
    assert silent_server.wait_for(all_closed)
    with (
        pytest.raises(KeyError),
        chainscan.open_scan_sync([*silent, *named(tls_server, ["b.test"])], SLOW) as results,
    ):
        for _ in results:
            raise KeyError("stop")
    assert silent_server.wait_for(all_closed)
    assert not [t for t in threading.enumerate() if t.name == "chainscan-trio"]


def test_asyncio_guest_host_passes_the_basics(tls_server: ServerHandle) -> None:
    """The other host of ``_bridge`` (trio guest mode) stays working: the benchmark uses it."""
    got: list[ScanResult | BadLine] = []

    async def body() -> None:
        open_scan = partial(chainscan.open_scan, _host="guest")
        async with open_scan(named(tls_server, ["a.test", "b.test"]), FAST) as results:
            async for result in results:
                got.append(result)
                break

    anyio.run(body, backend="asyncio")
    assert len(got) == 1


def test_inventory_takes_a_fetched_intermediate_into_account_as_the_manifest_does(
    backend: str, tmp_path: Path
) -> None:
    """A leaf served alone, its intermediate fetched from its AIA URL (a loopback HTTP server):
    the API's problems name the gap exactly as the manifest's do."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    from .http_servers import HttpServer, Route
    from .pki import CA
    from .servers import TLSServer, served_chain

    root = CA("api aia root")
    inter = root.child_ca("api aia intermediate")
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(root.pem)
    got: list[ScanResult | BadLine] = []
    with HttpServer({"/inter.der": Route(body=inter.der)}) as http:
        url = http.url("/inter.der")
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url)
        )
        leaf = inter.issue(
            "alone.test", extra_extensions=[x509.AuthorityInformationAccess([access])]
        )
        options = ScanOptions(
            rate=0, per_ip=0, deadline=10, trust_store=str(bundle), fetch_allow=("127.0.0.1/32",)
        )
        with TLSServer({None: served_chain(tmp_path, leaf)}) as tls:

            async def body() -> None:
                got.extend(
                    await chainscan.scan_all(named(tls, ["alone.test"]), options, inventory=True)
                )

            run(backend, body)
    (result,) = got
    assert isinstance(result, ScanResult) and result.fetched and result.inventory is not None
    fields = Inventory.from_options(options).entry_fields(result)
    assert [(p.code, p.message) for p in result.inventory.problems] == [
        (p["code"], p["message"]) for p in fields["problems"]
    ]
    assert "should also send 'api aia intermediate'" in result.inventory.problems[0].message


def test_the_pump_takes_what_is_ready_without_a_turn_of_the_run_loop_each() -> None:
    """Counted, not timed: 300 results waiting in the scheduler's channel go to the host in
    two posts (a batch is at most 256) and the pump's task runs a handful of steps, not one
    per result (each ``await receive()`` with an item ready is still a turn of the run loop,
    which is what a scan under asyncio paid once per result on top of the trio core)."""
    import trio

    from chainscan import _bridge

    posts: list[int] = []
    steps = 0

    class Count(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            nonlocal steps
            if task.name.endswith("_pump"):
                steps += 1

    async def main() -> None:
        send, receive = trio.open_memory_channel[object](1000)
        for n in range(300):
            send.send_nowait(n)
        send.close()
        run = _bridge._Run()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                _bridge._pump, receive, lambda batch: posts.append(len(batch)), run, 1000
            )

    trio.run(main, instruments=[Count()])
    assert posts == [256, 44]
    assert steps <= 6  # before: over 300
