"""``--per-ip`` and ``--per-net`` hold across ``--workers`` processes and ``--dask`` tasks,
counted where it matters: at the servers.

A fleet of TLS listeners on loopback addresses in three /24s of 127/8 (three addresses in
127.0.1.0/24, three in 127.0.2.0/24, one alone in 127.0.3.0/24) records, per address and per
/24, the most connections it held at once. Each connection is held for ``HOLD`` seconds right
after ``accept`` and *before* the handshake: the client is then certainly inside its gate (it
connected through it and waits for our ServerHello), so the server never counts a connection
the client has already released, and a cap that does not hold shows up as a count above it.
No timing is asserted, only counts.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainscan._models import Target
from chainscan.run._partition import shard_of
from tests.conftest import PKI
from tests.runs import manifest_rows
from tests.servers import TLSServer, _Conn
from tests.test_cli import FAST, chainscan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOLD = 0.15
"""Seconds each connection is held open before its handshake."""
PER_IP = 2
PER_NET = 3
NETWORKS = {"127.0.1": 3, "127.0.2": 3, "127.0.3": 1}
"""/24 -> addresses listening in it (.1, .2, ...)."""
NAMES_PER_ADDRESS = 12


class Census:
    """Connections open now and the most open at once, per address and per /24."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.total = 0

    def enter(self, *keys: str) -> None:
        with self._lock:
            self.total += 1
            for key in keys:
                self.open[key] = self.open.get(key, 0) + 1
                self.most[key] = max(self.most.get(key, 0), self.open[key])

    def leave(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.open[key] -= 1


class CountingServer(TLSServer):
    """A TLS server that holds each connection ``HOLD`` seconds, counted, before its handshake."""

    def __init__(self, pki: PKI, host: str, census: Census) -> None:
        super().__init__(pki.chains, host)
        self._census = census
        self._keys = (host, str(ipaddress.ip_network(f"{host}/24", strict=False)))

    def _serve(self, conn: _Conn) -> None:
        self._census.enter(*self._keys)
        try:
            time.sleep(HOLD)
        finally:
            self._census.leave(*self._keys)
        self._handshake(conn)


@pytest.fixture
def fleet(pki: PKI) -> Iterator[tuple[Census, dict[str, int]]]:
    """The listening fleet: its census and each address's port."""
    census = Census()
    servers = [
        CountingServer(pki, f"{net}.{n}", census)
        for net, count in NETWORKS.items()
        for n in range(1, count + 1)
    ]
    ports: dict[str, int] = {}
    try:
        for server in servers:
            ports[server.host] = server.start().port
        yield census, ports
    finally:
        for server in servers:
            server.stop()


def _hosts_file(tmp_path: Path, ports: dict[str, int]) -> tuple[Path, int]:
    lines = []
    for number in range(NAMES_PER_ADDRESS):  # interleaved: every address is asked at once
        for address, port in ports.items():
            lines.append(f"n{number}-{address.replace('.', '-')}.test:{port}{{{address}}}\n")
    for address, port in ports.items():
        lines.append(f"{address}:{port}\n")  # the IP literal: the same address, another target
    path = tmp_path / "hosts.txt"
    path.write_text("".join(lines))
    return path, len(lines)


def _check(census: Census, ports: dict[str, int], out: Path, targets: int) -> None:
    rows = manifest_rows(out)
    assert len(rows) == len(set(rows)) == targets  # each target once
    assert {row[3] for row in rows} == {"ok"}
    assert census.total == targets  # one connection per target: nothing was retried
    per_address = {address: census.most[address] for address in ports}
    per_net = {net: census.most[f"{net}.0/24"] for net in NETWORKS}
    assert max(per_address.values()) == PER_IP, per_address  # never above; reached
    assert per_address[next(a for a in ports if a.startswith("127.0.3."))] == PER_IP
    assert per_net == {"127.0.1": PER_NET, "127.0.2": PER_NET, "127.0.3": PER_IP}, per_net


def _split_by_address(ports: dict[str, int], places: int) -> bool:
    """Would placing by address alone (``shard_of``) split a /24 of the fleet?"""
    for net in ("127.0.1", "127.0.2"):
        addresses = [a for a in ports if a.startswith(f"{net}.")]
        targets = [Target(host="x.test", port=443, sni=None, address=a) for a in addresses]
        if len({shard_of(t, places) for t in targets}) > 1:
            return True
    return False


LIMITS = [
    *FAST,  # then longer timeouts than FAST's: a loaded machine must not fail a held handshake
    *("--handshake-timeout", "20", "--deadline", "60"),
    *("--per-ip", str(PER_IP), "--per-net", str(PER_NET), "--rate", "0", "--retries", "0"),
]


def test_both_caps_hold_across_two_worker_processes(
    fleet: tuple[Census, dict[str, int]], tmp_path: Path
) -> None:
    census, ports = fleet
    assert _split_by_address(ports, 2)  # without placement by network, the caps would not hold
    hosts, targets = _hosts_file(tmp_path, ports)
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), "--workers", "2", *LIMITS)
    assert proc.returncode in (0, 1), proc.stderr
    _check(census, ports, out, targets)


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="Dask's distributed is not installed (pip install 'chainscan[dask]')",
)
def test_both_caps_hold_across_the_tasks_of_a_two_worker_dask_cluster(
    fleet: tuple[Census, dict[str, int]], tmp_path: Path
) -> None:
    census, ports = fleet
    assert _split_by_address(ports, 8)  # 4 shards per task slot, 2 slots
    hosts, targets = _hosts_file(tmp_path, ports)
    out = tmp_path / "out"
    proc = chainscan(str(hosts), "-o", str(out), "--dask", "local:2", *LIMITS)
    assert proc.returncode in (0, 1), proc.stderr
    _check(census, ports, out, targets)
