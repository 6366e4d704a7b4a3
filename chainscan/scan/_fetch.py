"""HTTP fetches of URLs found in certificates (AIA caIssuers), behind the fetch guard.

Theory of operation
-------------------
The HTTP itself is httpcore's (the engine under httpx), on trio: ``AsyncConnectionPool`` with
a network backend of ours, :class:`GuardedBackend`. httpcore asks the backend to connect to
the URL's host; the backend resolves the name once (the run's cached resolver), passes every
address through :class:`~chainscan.scan._fetch_guard.FetchGuard`, and connects httpcore's own
trio backend to the *checked IP literal*: there is no second lookup a DNS rebinding could
answer differently. The request still carries the name in its ``Host`` header. httpx has no
public hook for the network backend, which is why httpcore is used directly.

:meth:`Fetcher.get` bounds everything a hostile server could stretch:

* time: one ``--fetch-timeout`` for the whole fetch, redirects and body included, however
  slowly the bytes drip (a trio deadline, not a per-read timer), and never past the target's
  deadline the caller holds;
* size: a ``Content-Length`` over ``max_bytes`` is refused before the body is read, and a body
  that grows past it is cut off;
* redirects: at most :data:`MAX_REDIRECTS`, each to an ``http://`` URL that passes the guard
  again (a redirect to ``https://``, ``file:``, or a denied address is refused);
* concurrency: at most ``concurrency`` fetches at once, and :data:`PER_HOST` per host (polite:
  thousands of leaves share one CA's AIA host);
* repetition: each URL is fetched once per run; concurrent requests for a URL wait for the
  first one (the cache holds the outcome, failures included, for the run).

A response body never reaches a message: errors name the URL, the status, the size or the
guard's rule, never what the server said.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin

import httpcore
import trio

from ._fetch_guard import FetchGuard, FetchRefused
from ._resolve import ResolveFailed, Resolver

__all__ = ["MAX_REDIRECTS", "PER_HOST", "Fetcher", "GuardedBackend", "Response"]

MAX_REDIRECTS = 3
PER_HOST = 2
_CACHE_LIMIT = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = b"chainscan (certificate inventory; AIA fetch)"


class _FetchFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """What one URL gave: the body (status 200, within the size cap), or why not."""

    url: str
    body: bytes | None = None
    content_type: str | None = None
    error: str | None = None
    refused: bool = False
    """The guard refused the URL, a redirect, or every address (no connection was made)."""


_HEADER_ROOM = 64 * 1024


class _CappedStream(httpcore.AsyncNetworkStream):
    """A connection that fails once more than ``cap`` bytes were read from it."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, cap: int) -> None:
        self._inner = inner
        self._left = cap
        self._cap = cap

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data = await self._inner.read(max_bytes, timeout)
        self._left -= len(data)
        if self._left < 0:
            raise _FetchFailed(f"the answer is over {self._cap - _HEADER_ROOM} bytes")
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("only http:// is fetched")

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's trio backend, connecting only to addresses the guard allows."""

    def __init__(self, guard: FetchGuard, resolver: Resolver, max_read: int) -> None:
        self._guard = guard
        self._resolver = resolver
        self._inner = httpcore.TrioBackend()
        self.max_read = max_read
        """Bytes read from one connection at most (body cap plus room for the headers)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver.resolve(host.strip("[]"), port)
        except ResolveFailed as exc:
            raise _FetchFailed(exc.message) from None
        allowed = []
        refusal: FetchRefused | None = None
        for address in addresses:
            try:
                self._guard.check_address(address.ip, url=f"http://{host}:{port}/")
            except FetchRefused as exc:
                refusal = refusal or exc
                continue
            allowed.append(address)
        if not allowed:
            raise refusal or _FetchFailed(f"no address for {host}")
        error: Exception | None = None
        for address in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    address.ip, port, timeout=timeout, socket_options=socket_options
                )
                return _CappedStream(stream, self.max_read)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise _FetchFailed(f"cannot connect to {host} port {port}: {error}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never asked for
        raise FetchRefused("unix sockets are never fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Pending:
    __slots__ = ("done", "response")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.response: Response | None = None


class Fetcher:
    """Guarded, bounded, cached HTTP GETs for one run (see the module docstring)."""

    def __init__(
        self,
        guard: FetchGuard,
        resolver: Resolver | None = None,
        *,
        max_bytes: int = 1024 * 1024,
        timeout: float = 10.0,
        concurrency: int = 16,
    ) -> None:
        self.guard = guard
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._resolver = resolver or Resolver()
        self._slots = trio.Semaphore(concurrency)
        self._hosts: dict[str, trio.Semaphore] = {}
        self._cache: dict[tuple[str, str, bytes, str], _Pending] = {}
        self.requests = 0
        """HTTP requests sent (redirects count), for tests and the run summary."""

    async def get(self, url: str, *, max_bytes: int | None = None) -> Response:
        """The body at ``url`` (cached per run); never raises but for cancellation."""
        return await self._cached(("GET", url, b"", ""), max_bytes)

    async def post(
        self, url: str, body: bytes, content_type: str, *, max_bytes: int | None = None
    ) -> Response:
        """POST ``body`` to ``url`` (an OCSP request; cached per run by URL and body)."""
        return await self._cached(("POST", url, body, content_type), max_bytes)

    async def _cached(
        self, request: tuple[str, str, bytes, str], max_bytes: int | None
    ) -> Response:
        url = request[1]
        pending = self._cache.get(request)
        if pending is not None:
            await pending.done.wait()
            assert pending.response is not None
            return pending.response
        pending = _Pending()
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[request] = pending
        try:
            pending.response = await self._get(request, max_bytes or self.max_bytes)
        finally:
            if pending.response is None:  # cancelled: let a later caller try again
                self._cache.pop(request, None)
                pending.response = Response(url=url, error="the fetch was cancelled")
            pending.done.set()
        return pending.response

    async def _get(self, request: tuple[str, str, bytes, str], max_bytes: int) -> Response:
        url = request[1]
        try:
            with trio.fail_after(self.timeout):
                async with self._slots:
                    return await self._follow(request, max_bytes)
        except FetchRefused as exc:
            return Response(url=url, error=f"refused: {exc.message}", refused=True)
        except _FetchFailed as exc:
            return Response(url=url, error=exc.message)
        except trio.TooSlowError:
            return Response(url=url, error=f"no complete answer within {self.timeout:g}s")
        except httpcore.TimeoutException:
            return Response(url=url, error=f"no complete answer within {self.timeout:g}s")
        except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
            return Response(url=url, error=f"HTTP failed: {type(exc).__name__}")
        except httpcore.UnsupportedProtocol:
            return Response(url=url, error="refused: not an http:// URL", refused=True)

    async def _follow(self, request: tuple[str, str, bytes, str], max_bytes: int) -> Response:
        method, url, payload, payload_type = request
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            checked = self.guard.check_url(current)
            host_slot = self._hosts.setdefault(checked.host, trio.Semaphore(PER_HOST))
            async with host_slot:
                status, location, content_type, body = await self._request(
                    method, current, payload, payload_type, max_bytes
                )
            if status in _REDIRECTS and location:
                current = urljoin(current, location)
                continue
            if status != 200:
                raise _FetchFailed(f"HTTP status {status}")
            return Response(url=url, body=body, content_type=content_type)
        raise _FetchFailed(f"more than {MAX_REDIRECTS} redirects")

    async def _request(
        self, method: str, url: str, payload: bytes, payload_type: str, max_bytes: int
    ) -> tuple[int, str | None, str | None, bytes]:
        self.requests += 1
        headers = [(b"User-Agent", _USER_AGENT), (b"Accept", b"*/*"), (b"Connection", b"close")]
        if method == "POST":
            headers.append((b"Content-Type", payload_type.encode("ascii")))
        backend = GuardedBackend(self.guard, self._resolver, max_bytes + _HEADER_ROOM)
        async with (
            httpcore.AsyncConnectionPool(network_backend=backend, max_connections=1) as pool,
            pool.stream(method, url, headers=headers, content=payload or None) as response,
        ):
            fields = {k.decode("latin-1").lower(): v for k, v in response.headers}
            location = fields.get("location")
            kind = fields.get("content-type")
            if response.status != 200:
                return (
                    response.status,
                    location.decode("latin-1") if location else None,
                    None,
                    b"",
                )
            declared = fields.get("content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
                raise _FetchFailed(f"the body is {int(declared)} bytes (at most {max_bytes})")
            body = bytearray()
            # No early exit from httpcore's body iterator (its nested async generators would
            # be abandoned): the capped stream below raises once the answer is too long.
            async for chunk in response.aiter_stream():
                body += chunk
            if len(body) > max_bytes:
                raise _FetchFailed(f"the body is over {max_bytes} bytes")
            return 200, None, kind.decode("latin-1") if kind else None, bytes(body)
