"""The in-language reference: the least a trio program must do to fetch N certificate chains.

Run as a script (``python benchmarks/runners/bare_trio.py TARGETS``), with ``TARGETS`` in the
shell tools' format (``name ip port`` per line). For each target, under a
``trio.CapacityLimiter`` of ``--concurrency`` (500, as chainscan's default):

1. a ``trio.socket`` connects to ``ip:port`` (no name resolution, no ``open_tcp_stream``
   happy-eyeballs machinery);
2. a TLS handshake with SNI ``name`` is driven by hand: ``ssl.SSLObject`` over two
   ``ssl.MemoryBIO`` buffers, bytes moved between them and the socket until ``do_handshake``
   returns (no ``trio.SSLStream``, whose general-purpose locking and buffering cost more), and
   the client's last flight (its TLS 1.3 Finished) is sent;
3. the chain's DER is read (``get_unverified_chain``), counted as a success when non-empty, and
   the socket is closed.

No verification, no analysis, no files, no retries, no rate limits: this is the floor that a
trio-based scanner (chainscan) cannot go under, so ``chainscan / bare-trio`` says how much of its
time goes to everything it does on top. Prints one JSON object on stdout:
``{"targets", "ok", "failed", "errors": {kind: count}, "seconds", "completion_times"}``, the
last being every target's completion time in seconds since the scan began (for the harness's
steady-state rate).

This file imports only the standard library and trio (none of the benchmark package), so its
start-up and peak RSS are those of such a program. It is also the module of the harness's runner
for it; the runner class lives in ``bare_trio_runner.py`` so that this script stays standalone.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import ssl
import sys
import time
from collections import Counter
from collections.abc import Sequence

import trio

_ENCODING_DER = 2  # _ssl.ENCODING_DER: the private chain API wants the raw constant
_READ_SIZE = 65536


def client_context() -> ssl.SSLContext:
    """No verification (we only read the chain), no session tickets (every handshake full)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def chain_der(obj: ssl.SSLObject) -> list[bytes]:
    """The server's chain as sent, DER (public API from Python 3.13, private before)."""
    if sys.version_info >= (3, 13):
        return list(obj.get_unverified_chain() or [])
    chain = obj._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [cert.public_bytes(_ENCODING_DER) for cert in chain or []]


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = await sock.send(view)
        view = view[sent:]


async def fetch_chain(
    ctx: ssl.SSLContext,
    name: str,
    address: str,
    port: int,
    time_limit: float,
    connect_limit: float = math.inf,
    handshake_limit: float = math.inf,
) -> list[bytes]:
    """Connect (within ``connect_limit``), handshake with SNI ``name`` (within
    ``handshake_limit`` after the connect), return the chain, all within ``time_limit``;
    raises on any failure."""
    with (
        trio.fail_after(time_limit),
        trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
    ):
        with trio.fail_after(connect_limit):
            await sock.connect((address, port))
        handshake_deadline = trio.current_time() + handshake_limit
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending = outgoing.read()
            if pending:
                await _send_all(sock, pending)
            if done:
                break
            with trio.fail_at(handshake_deadline):
                data = await sock.recv(_READ_SIZE)
            if not data:
                raise ConnectionResetError("the server closed the connection mid-handshake")
            incoming.write(data)
        return chain_der(obj)


def read_targets(path: str) -> list[tuple[str, str, int]]:
    """``name ip port`` lines -> (name, ip, port)."""
    targets = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                targets.append((parts[0], parts[1], int(parts[2])))
    return targets


async def scan(
    targets: Sequence[tuple[str, str, int]],
    concurrency: int,
    time_limit: float,
    completions: list[float] | None = None,
    connect_limit: float = math.inf,
    handshake_limit: float = math.inf,
) -> tuple[int, Counter[str]]:
    """(successes, failures by exception type) over all targets; each target's completion time
    (``time.perf_counter()``) is appended to ``completions`` if given."""
    ctx = client_context()
    limiter = trio.CapacityLimiter(concurrency)
    errors: Counter[str] = Counter()
    ok = 0

    async def one(index: int, name: str, address: str, port: int) -> None:
        nonlocal ok
        try:
            chain = await fetch_chain(
                ctx, name, address, port, time_limit, connect_limit, handshake_limit
            )
            if chain:
                ok += 1
            else:
                errors["empty-chain"] += 1
        except (OSError, ssl.SSLError, trio.TooSlowError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            if completions is not None:
                completions.append(time.perf_counter())
            limiter.release_on_behalf_of(index)

    async with trio.open_nursery() as nursery:
        for index, (name, address, port) in enumerate(targets):
            # Acquire before spawning: at most `concurrency` tasks exist at a time.
            await limiter.acquire_on_behalf_of(index)
            nursery.start_soon(one, index, name, address, port)
    return ok, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch certificate chains with a bare trio loop.")
    parser.add_argument("targets", help="file of `name ip port` lines")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per target")
    parser.add_argument(
        "--connect-timeout", type=float, default=math.inf, help="seconds for the TCP connect"
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=math.inf,
        help="seconds for the TLS handshake, from the connect",
    )
    args = parser.parse_args(argv)
    targets = read_targets(args.targets)
    start = time.perf_counter()
    completions: list[float] = []
    ok, errors = trio.run(
        scan,
        targets,
        args.concurrency,
        args.timeout,
        completions,
        args.connect_timeout,
        args.handshake_timeout,
    )
    report = {
        "targets": len(targets),
        "ok": ok,
        "failed": len(targets) - ok,
        "errors": dict(errors),
        "seconds": round(time.perf_counter() - start, 4),
        "completion_times": [round(t - start, 4) for t in completions],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
