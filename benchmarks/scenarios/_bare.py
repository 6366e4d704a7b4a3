"""The least a trio program can do to hold N handshakes at once: a yardstick for chainscan's RSS.

``python -m benchmarks.scenarios._bare TARGETS``: for every ``name:port{ip}`` line, at once,
connect, run a TLS handshake with trio's SSLStream (SNI = name, no verification), take the leaf's
DER and close. No limits, no output files, no analysis. Prints ``ok N failed M``.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Sequence

import trio


async def one(context: ssl.SSLContext, name: str, port: int, ip: str, counts: list[int]) -> None:
    try:
        with trio.fail_after(120):
            stream = await trio.open_tcp_stream(ip, port)
            tls = trio.SSLStream(stream, context, server_hostname=name)
            try:
                await tls.do_handshake()
                der = tls.getpeercert(binary_form=True)
                counts[0 if der else 1] += 1
            finally:
                await trio.aclose_forcefully(tls)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError):
        counts[1] += 1


async def amain(path: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    counts = [0, 0]
    async with trio.open_nursery() as nursery:
        with open(path) as f:  # noqa: ASYNC230 (a small local file, read once at start)
            for line in f:
                endpoint, ip = line.strip().rstrip("}").split("{")
                name, port = endpoint.rsplit(":", 1)
                nursery.start_soon(one, context, name, int(port), ip, counts)
    print(f"ok {counts[0]} failed {counts[1]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    trio.run(amain, args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
