"""A TLS server that holds every connection, then completes all their handshakes at once.

``python -m benchmarks.scenarios._slowtls --cert PEM --key PEM --hold-count N ADDRESS:PORT ...``

It accepts connections and reads nothing until either ``--hold-count`` connections are open or
``--hold-seconds`` have passed since the first one; it then keeps holding them for
``--plateau`` seconds (the client has N handshakes in flight all that time, each having sent its
ClientHello and waiting for the answer), then releases them: each connection's TLS handshake is
completed (trio's SSLStream) and the connection closed. New connections after the release are
served at once. One line per second on stdout says how many are held.

Runs in a process of its own, so its sockets count against its own file limit, not the
client's. Ends after ``--max-seconds``, on SIGTERM, or when its parent dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence

import trio

from .._system import die_with_parent


class Gate:
    def __init__(self, hold_count: int, hold_seconds: float, plateau: float) -> None:
        self.hold_count = hold_count
        self.hold_seconds = hold_seconds
        self.plateau = plateau
        self.open_now = 0
        self.accepted = 0
        self.completed = 0
        self.failed = 0
        self.first: float | None = None
        self.released = trio.Event()


async def serve(gate: Gate, context: ssl.SSLContext, stream: trio.SocketStream) -> None:
    gate.accepted += 1
    gate.open_now += 1
    if gate.first is None:
        gate.first = trio.current_time()
    try:
        await gate.released.wait()
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            with trio.fail_after(60):
                await tls.do_handshake()
            gate.completed += 1
            await tls.aclose()
        except (trio.BrokenResourceError, trio.TooSlowError, trio.ClosedResourceError):
            gate.failed += 1
    finally:
        gate.open_now -= 1
        await stream.aclose()


async def report(gate: Gate) -> None:
    released_at: float | None = None
    while True:
        now = trio.current_time()
        if not gate.released.is_set() and gate.first is not None:
            full = gate.open_now >= gate.hold_count
            if released_at is None and (full or now - gate.first >= gate.hold_seconds):
                released_at = now + gate.plateau
                print(f"slowtls: holding {gate.open_now}; release in {gate.plateau} s", flush=True)
            if released_at is not None and now >= released_at:
                gate.released.set()
                print(f"slowtls: released {gate.open_now}", flush=True)
        print(
            f"slowtls: t={time.monotonic():.1f} open={gate.open_now} accepted={gate.accepted} "
            f"completed={gate.completed} failed={gate.failed}",
            flush=True,
        )
        await trio.sleep(1.0)


async def amain(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    gate = Gate(args.hold_count, args.hold_seconds, args.plateau)
    listeners = []
    for item in args.listen:
        address, port = item.rsplit(":", 1)
        listeners += await trio.open_tcp_listeners(int(port), host=address, backlog=4096)
    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report, gate)
            print("slowtls: ready", flush=True)

            async def handler(stream: trio.SocketStream) -> None:
                await serve(gate, context, stream)

            for listener in listeners:
                nursery.start_soon(trio.serve_listeners, handler, [listener])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios._slowtls")
    parser.add_argument("listen", nargs="+", help="ADDRESS:PORT")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--hold-count", type=int, default=10000)
    parser.add_argument("--hold-seconds", type=float, default=60.0)
    parser.add_argument("--plateau", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    die_with_parent()
    # Nothing to clean up (the kernel closes the sockets): end at once on SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    trio.run(amain, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
