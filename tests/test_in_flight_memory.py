"""What one handshake in flight holds on the Python side (issue 16, part 4).

With 10,000 handshakes waiting for their servers, every object a waiting connection keeps is
multiplied by 10,000 (``python -m benchmarks.scenarios.scale --tracemalloc`` lists them). These
tests pin the trims structurally, without timing: the coroutines a waiting target's task is
suspended in, and the objects it holds instead of a wrapper or a closure.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from chainscan._models import BadLine, ScanOptions, ScanResult, Target
from chainscan.scan import _schedule, _tls
from chainscan.scan._schedule import Scheduler

PACKAGE = str(Path(_schedule.__file__).resolve().parents[1])
HELD = 5


def _chainscan_frames(task: trio.lowlevel.Task) -> list[str]:
    """Names of the chainscan coroutines ``task`` is suspended in, outermost first."""
    names = []
    coro = task.coro
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is None:
            break
        if str(Path(code.co_filename).resolve()).startswith(PACKAGE):
            names.append(code.co_name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return names


def _target_tasks() -> list[trio.lowlevel.Task]:
    found = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        assert task is not None
        if task.name == _schedule._TASK_NAME:
            found.append(task)
        pending += [t for n in task.child_nurseries for t in n.child_tasks]
    return found


@asynccontextmanager
async def _waiting_targets() -> AsyncIterator[list[trio.lowlevel.Task]]:
    """``HELD`` targets of a scan, each having sent its ClientHello to a server on loopback
    that accepts and never answers: their tasks, while they wait."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(HELD)
    port = listener.getsockname()[1]
    accepted: list[trio.socket.SocketType] = []
    all_accepted = trio.Event()
    options = ScanOptions(concurrency=HELD, rate=0, per_ip=0, retries=0, deadline=60)
    targets = [
        Target(host="127.0.0.1", port=port, sni=f"h{i}.test", raw=str(i), line=i + 1)
        for i in range(HELD)
    ]
    send, receive = trio.open_memory_channel[ScanResult | BadLine](HELD)

    async def accept() -> None:
        while len(accepted) < HELD:
            conn, _ = await listener.accept()
            accepted.append(conn)
        all_accepted.set()

    with listener, trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            nursery.start_soon(lambda: Scheduler(options).run(targets, send, blocking_source=False))
            await all_accepted.wait()
            # Every ClientHello is out and every target waits for an answer that never comes.
            await trio.testing.wait_all_tasks_blocked()
            tasks = _target_tasks()
            assert len(tasks) == HELD
            yield tasks
            nursery.cancel_scope.cancel()
        for conn in accepted:
            conn.close()
    await receive.aclose()


async def test_a_waiting_handshake_is_suspended_in_few_chainscan_coroutines() -> None:
    """A target waiting for its server's answer is suspended in three chainscan coroutines:
    the task with the target's attempts under its deadline (``_run_target``), the attempt's
    addresses (``probe``) and the connection (``_attempt``, with the handshake loop inline).
    Each coroutine frame is 200-400 bytes per handshake in flight, and trio keeps a frame
    object as large beside the task's first one; before the trims there were six
    (``_attempts`` and ``_handshake``, then ``scan_one`` as well)."""
    async with _waiting_targets() as tasks:
        for task in tasks:
            assert _chainscan_frames(task) == ["_run_target", "probe", "_attempt"]


async def test_a_waiting_handshake_is_inside_one_cancel_scope() -> None:
    """The connection's scope (connect, then handshake timeout, or the target's deadline if
    that comes first) is the only cancel scope between a waiting target's task and the scan's
    nursery. Each open scope costs about 800 bytes (a CancelScope, a CancelStatus with two
    sets, a deadline-heap entry); the scheduler's scope on the target's deadline and the
    probe's handshake scope made two. Reads trio's ``Task._cancel_status``."""
    async with _waiting_targets() as tasks:
        for task in tasks:
            assert task.parent_nursery is not None
            nursery_status = task.parent_nursery.cancel_scope._cancel_status
            status = task._cancel_status
            scopes = 0
            while status is not nursery_status:
                assert status is not None
                scopes += 1
                status = status.parent
            assert scopes == 1


def test_a_handshake_holds_openssls_object_without_the_sslobject_wrapper() -> None:
    """``ssl.SSLObject`` adds an instance, its ``__dict__`` and a weak reference per
    connection; ``Handshake`` holds what ``SSLContext._wrap_bio`` makes, and still works."""
    hs = _tls.Handshake(_tls.client_context(), "bücher.test")
    assert not isinstance(hs._obj, ssl.SSLObject)
    assert not hasattr(hs, "__dict__")
    hello = hs.start()
    assert hello[:1] == b"\x16"  # a TLS handshake record: the ClientHello
    assert hs.version is None and not hs.done
    # The server name is IDNA-encoded as ssl.SSLContext.wrap_bio encodes it.
    assert b"xn--bcher-kva.test" in hello


def test_a_targets_gate_is_a_slotted_object_not_a_closure() -> None:
    """Each target in flight holds its ``gate(ip)``: a ``_Progress`` (no ``__dict__``), rather
    than a function closing over three cells; and ``gate(ip)`` is that object itself, not a
    gate object per connection (``_PausedGate``, until the trim)."""
    progress = _schedule._Progress(None, 0.0)  # type: ignore[arg-type]
    assert not hasattr(progress, "__dict__")
    assert callable(progress)
    assert progress("192.0.2.1") is progress


def test_a_handshake_waiting_for_its_chain_holds_no_list_of_its_own() -> None:
    """Until the chain arrives, ``Handshake.chain`` is the shared empty tuple, not an empty
    list per connection in flight (56 bytes each)."""
    hs = _tls.Handshake(_tls.client_context(), "a.test")
    hs.start()
    assert type(hs.chain) is tuple and len(hs.chain) == 0
