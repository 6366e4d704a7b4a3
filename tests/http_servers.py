"""A loopback HTTP server for the fetch tests: fixed routes, counted requests, hostile bodies.

``HttpServer({"/path": route})`` serves each route from a thread per connection on
127.0.0.1 (port 0: the kernel picks one). A route is a :class:`Route`: status, body, headers,
and optionally a delay before answering, a body dripped a byte at a time, or a huge body
streamed without being held. ``requests`` counts what came in, per path.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["HttpServer", "Route"]


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    stream_bytes: int = 0
    """Send this many zero bytes (in 64 KiB writes) instead of ``body``."""
    declare_length: bool = True
    """Send a Content-Length (for ``stream_bytes``: the full size)."""
    drip: float = 0.0
    """Send ``body`` one byte every ``drip`` seconds."""


class HttpServer:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.requests: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.bodies: list[bytes] = []
        """Bodies of POST requests, in order."""
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(self.rfile.read(length))
                self.do_GET()

            def do_GET(self) -> None:
                outer.requests[self.path] += 1
                outer.hosts.append(self.headers.get("Host", ""))
                route = outer.routes.get(self.path, Route(status=404))
                if route.delay:
                    outer._stop.wait(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                size = route.stream_bytes or len(route.body)
                if route.declare_length:
                    self.send_header("Content-Length", str(size))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if route.stream_bytes:
                        chunk = bytes(65536)
                        sent = 0
                        while sent < route.stream_bytes and not outer._stop.is_set():
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    elif route.drip:
                        for byte in route.body:
                            if outer._stop.wait(route.drip):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    else:
                        self.wfile.write(route.body)
                except OSError:
                    pass  # the client hung up: what a size cap does
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        time.sleep(0)
