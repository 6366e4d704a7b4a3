"""A tarpit: accept TCP connections, then say nothing and read nothing.

``python -m benchmarks.scenarios._tarpit --max-seconds S ADDRESS:PORT ...``

A client's connect succeeds and its ClientHello goes unanswered, so it waits for its handshake
timeout: the worst kind of dead target. Connections are held until the client closes them (seen
as readable at EOF) or, beyond ``--hold`` of them, the oldest is dropped. The process ends after
``--max-seconds``, on SIGTERM, or when its parent dies.
"""

from __future__ import annotations

import argparse
import collections
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence

from .._system import die_with_parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios._tarpit")
    parser.add_argument("listen", nargs="+", help="ADDRESS:PORT to listen on")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--hold", type=int, default=15000, help="connections held at most")
    args = parser.parse_args(argv)
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    for item in args.listen:
        address, port = item.rsplit(":", 1)
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((address, int(port)))
        lsock.listen(4096)
        lsock.setblocking(False)
        sel.register(lsock, selectors.EVENT_READ, "listener")
    held: collections.OrderedDict[int, socket.socket] = collections.OrderedDict()
    accepted = 0
    print("tarpit: ready", flush=True)
    end = time.monotonic() + args.max_seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            if key.data == "listener":
                lsock = key.fileobj  # type: ignore[assignment]
                for _ in range(256):
                    try:
                        conn, _addr = lsock.accept()
                    except BlockingIOError:
                        break
                    accepted += 1
                    conn.setblocking(False)
                    held[conn.fileno()] = conn
                    sel.register(conn, selectors.EVENT_READ, "conn")
                    while len(held) > args.hold:
                        _, old = held.popitem(last=False)
                        sel.unregister(old)
                        old.close()
            else:
                conn = key.fileobj  # type: ignore[assignment]
                # Readable: either the ClientHello (left unread: we stay silent; peek to see
                # whether it is EOF) or the client closing.
                try:
                    data = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if data:
                    # Data we will never read: stop watching it, keep holding the socket.
                    sel.unregister(conn)
                    continue
                sel.unregister(conn)
                held.pop(conn.fileno(), None)
                conn.close()
    print(f"tarpit: accepted {accepted}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
