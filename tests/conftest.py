"""Shared fixtures: an in-memory test PKI and real servers on loopback.

Every fixture here is synchronous (plain pytest fixtures), so trio-mode tests can use them, and
every server runs in its own threads (see ``tests/servers.py``), independent of the event loop
and of ``MockClock``. Servers are started per test, so counters start at zero, and stopped at
teardown; a server thread that does not stop fails the test's teardown.

The SNI servers (``tls_server``, ``tls12_server``, ``tls13_server``, ``ipv6_server``,
``flaky_server``) all serve :attr:`PKI.chains`:

    a.test       ECDSA P-256 leaf + intermediate             (2 certificates)
    b.test       RSA-2048 leaf + intermediate                (2 certificates)
    no/unknown   ECDSA leaf "default.test" + intermediate 2 + root   (3 certificates)
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from .pki import CA, Issued
from .servers import (
    FlakyServer,
    Handler,
    ScriptedServer,
    ServedChain,
    ServerHandle,
    SilentServer,
    TLSServer,
    legacy_chain,
    legacy_server,
    refused_port,
    require_ipv6,
    require_legacy_tls,
    served_chain,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PKI:
    """The session's certificates, and the chains the SNI servers serve."""

    root: CA
    """``chainscan test root`` (ECDSA)."""
    intermediate: CA
    """``chainscan test intermediate`` (ECDSA), signed by the root; issues a.test and b.test."""
    intermediate2: CA
    """``chainscan test intermediate 2`` (RSA), signed by the root; issues default.test."""
    a_ec: Issued
    """``a.test`` leaf, ECDSA P-256, SAN DNS:a.test."""
    b_rsa: Issued
    """``b.test`` leaf, RSA-2048, SAN DNS:b.test."""
    default: Issued
    """``default.test`` leaf, ECDSA, SANs DNS:default.test and IP:127.0.0.1, IP:::1."""
    chains: dict[str | None, ServedChain]
    """SNI name (None = no or unknown SNI) -> what the SNI servers load and send."""
    legacy: ServedChain
    """``legacy.test`` RSA-1024 / SHA-1 leaf + its RSA-1024 / SHA-1 root (for TLS 1.0)."""


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    tmp = tmp_path_factory.mktemp("pki")
    root = CA("chainscan test root")
    intermediate = root.child_ca("chainscan test intermediate")
    intermediate2 = root.child_ca("chainscan test intermediate 2", key_type="rsa")
    a_ec = intermediate.issue("a.test")
    b_rsa = intermediate.issue("b.test", key_type="rsa")
    default = intermediate2.issue("default.test", "127.0.0.1", "::1")
    return PKI(
        root=root,
        intermediate=intermediate,
        intermediate2=intermediate2,
        a_ec=a_ec,
        b_rsa=b_rsa,
        default=default,
        chains={
            "a.test": served_chain(tmp, a_ec, intermediate),
            "b.test": served_chain(tmp, b_rsa, intermediate),
            None: served_chain(tmp, default, intermediate2, root),
        },
        legacy=legacy_chain(tmp),
    )


@pytest.fixture
def tls_server(pki: PKI) -> Iterator[ServerHandle]:
    """SNI server on 127.0.0.1, TLS 1.2 and 1.3 (the stdlib server defaults)."""
    with TLSServer(pki.chains) as handle:
        yield handle


@pytest.fixture
def tls12_server(pki: PKI) -> Iterator[ServerHandle]:
    """SNI server on 127.0.0.1 that speaks TLS 1.2 only."""
    only = ssl.TLSVersion.TLSv1_2
    with TLSServer(pki.chains, min_version=only, max_version=only) as handle:
        yield handle


@pytest.fixture
def tls13_server(pki: PKI) -> Iterator[ServerHandle]:
    """SNI server on 127.0.0.1 that speaks TLS 1.3 only."""
    only = ssl.TLSVersion.TLSv1_3
    with TLSServer(pki.chains, min_version=only, max_version=only) as handle:
        yield handle


@pytest.fixture
def ipv6_server(pki: PKI) -> Iterator[ServerHandle]:
    """SNI server on ::1; skips the test when ::1 is unavailable."""
    require_ipv6()
    with TLSServer(pki.chains, "::1") as handle:
        yield handle


@pytest.fixture(name="legacy_server")
def legacy_server_fixture(pki: PKI) -> Iterator[ServerHandle]:
    """TLS 1.0-only server at SECLEVEL=0 serving ``pki.legacy`` to every client; skips the
    test (with the reason) when the local OpenSSL cannot do TLS 1.0."""
    require_legacy_tls()
    with legacy_server({None: pki.legacy}) as handle:
        yield handle


@pytest.fixture
def flaky_server(pki: PKI) -> Iterator[Callable[..., ServerHandle]]:
    """Factory: ``flaky_server(n_drop, *, reset=False, host="127.0.0.1")`` starts a
    :class:`~tests.servers.FlakyServer` serving ``pki.chains`` and returns its handle."""
    with contextlib.ExitStack() as stack:

        def start(n_drop: int, *, reset: bool = False, host: str = "127.0.0.1") -> ServerHandle:
            return stack.enter_context(FlakyServer(n_drop, pki.chains, host, reset=reset))

        yield start


@pytest.fixture
def silent_server() -> Iterator[ServerHandle]:
    """Accepts TCP on 127.0.0.1 and never sends a byte."""
    with SilentServer() as handle:
        yield handle


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ServerHandle]]:
    """Factory: ``scripted_server(handler, host="127.0.0.1")`` starts a
    :class:`~tests.servers.ScriptedServer` running ``handler(sock)`` per connection."""
    with contextlib.ExitStack() as stack:

        def start(handler: Handler, host: str = "127.0.0.1") -> ServerHandle:
            return stack.enter_context(ScriptedServer(handler, host))

        yield start


@pytest.fixture(name="refused_port")
def refused_port_fixture() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    return refused_port()
