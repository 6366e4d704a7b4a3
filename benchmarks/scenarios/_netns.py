"""A network namespace of our own, joined to the host by a veth pair, removed afterwards.

::

    host                                   namespace NAME
    HOST_IF 10.213.0.1/24  <--- veth --->  NS_IF 10.213.0.2/24
    routes: 10.213.N.0/24 via 10.213.0.2   extra addresses on lo: 10.213.N.x/32

Everything sent to 10.213.0.0/16 goes to the namespace and nowhere else: the addresses exist
only on this pair, and the namespace has no other interface. The namespace, the pair, the routes
and every iptables rule made inside the namespace are deleted when the ``with`` block ends,
errors and Ctrl-C included (iptables rules live in the namespace, so they die with it).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

PREFIX = "10.213"
HOST_ADDRESS = f"{PREFIX}.0.1"
NS_ADDRESS = f"{PREFIX}.0.2"


class NetnsError(Exception):
    """A namespace, link, address, route or rule could not be made."""


def ip(*args: str) -> None:
    _run(["ip", *args])


def _run(argv: Sequence[str]) -> None:
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    host_if: str
    ns_if: str

    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def iptables(self, *args: str) -> None:
        _run([*self.exec_prefix(), "iptables", *args])


@contextlib.contextmanager
def namespace(name: str, subnets: Sequence[int], addresses: Sequence[str]) -> Iterator[Namespace]:
    """Create the namespace; route ``10.213.<s>.0/24`` for every ``s`` of ``subnets`` to it and
    put ``addresses`` on its loopback."""
    ns = Namespace(name=name, host_if=f"{name}-h"[:15], ns_if=f"{name}-n"[:15])
    created = False
    try:
        ip("netns", "add", name)
        created = True
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        ip("link", "set", ns.ns_if, "netns", name)
        ip("addr", "add", f"{HOST_ADDRESS}/24", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ip("-n", name, "addr", "add", f"{NS_ADDRESS}/24", "dev", ns.ns_if)
        ip("-n", name, "link", "set", ns.ns_if, "up")
        ip("-n", name, "link", "set", "lo", "up")
        for address in addresses:
            ip("-n", name, "addr", "add", f"{address}/32", "dev", "lo")
        for s in subnets:
            ip("route", "add", f"{PREFIX}.{s}.0/24", "via", NS_ADDRESS, "dev", ns.host_if)
        yield ns
    finally:
        if created:
            # Deleting the namespace deletes its end of the pair, hence the pair, its routes
            # and the rules made inside it.
            with contextlib.suppress(NetnsError):
                ip("netns", "del", name)
            with contextlib.suppress(NetnsError):
                ip("link", "del", ns.host_if)  # normally already gone with its peer
