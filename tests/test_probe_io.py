"""The probe's socket primitives on their own: plain non-blocking sockets, trio waits."""

from __future__ import annotations

import errno
import socket

import pytest
import trio

from chainscan.scan._probe import _connect, _send_all


async def test_send_all_waits_out_a_full_buffer_and_sends_everything() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payload = bytes(range(256)) * 4096  # 1 MiB: far more than the buffers hold
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(payload):
                await trio.lowlevel.wait_readable(b)
                received.extend(b.recv(65536))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                await _send_all(a, payload)
        assert bytes(received) == payload


async def test_send_all_of_a_small_flight_does_not_yield() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        with trio.CancelScope() as scope:
            scope.cancel()
            await _send_all(a, b"hello")  # no checkpoint: not cancelled, all sent
        assert not scope.cancelled_caught
        assert b.recv(16) == b"hello"


async def test_connect_reports_refused_and_connects_to_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.socket() as sock:
            sock.setblocking(False)
            await _connect(sock, ("127.0.0.1", port))
            assert sock.getpeername() == ("127.0.0.1", port)
    with socket.socket() as sock:  # the listener is gone: nothing listens on the port now
        sock.setblocking(False)
        with pytest.raises(OSError) as info:
            await _connect(sock, ("127.0.0.1", port))
        assert info.value.errno == errno.ECONNREFUSED


async def test_a_cancelled_connect_opens_no_connection() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        with socket.socket() as sock:
            sock.setblocking(False)
            with trio.CancelScope() as scope:
                scope.cancel()
                await _connect(sock, listener.getsockname())
            assert scope.cancelled_caught
            with pytest.raises(BlockingIOError):
                listener.accept()
