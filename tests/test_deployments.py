"""``--deployments``: every address, client profile and no-SNI chain, and the pin-safe verdict.

Real loopback servers: one holding an RSA and an ECDSA certificate side by side that gives
clients without SNI another certificate; two addresses (127.0.0.1 and 127.0.0.2, the same
port) behind one name serving different leaves, reached through an injected resolver.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from chainscan._models import (
    DeploymentProbe,
    ErrorKind,
    ProbeOutcome,
    ScanOptions,
    ScanResult,
    Target,
)
from chainscan.analysis._deployments import summarize
from chainscan.analysis._inventory import Inventory
from chainscan.analysis._verify import TrustStore
from chainscan.manifest._reader import read_manifest_entries
from chainscan.scan._deployments import VARIANTS
from chainscan.scan._resolve import Resolver
from chainscan.scan._schedule import Scheduler
from tests.inventory_fleet import DualServer, run
from tests.pki import CA
from tests.servers import ServedChain, TLSServer, served_chain

pytestmark = pytest.mark.integration

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "6", "-q"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("deploy")
    root = CA("deploy root")
    inter = root.child_ca("deploy intermediate")
    return {
        "root": root,
        "ec": served_chain(tmp, inter.issue("dual.test"), inter),
        "rsa": served_chain(tmp, inter.issue("dual.test", key_type="rsa"), inter),
        "default": served_chain(tmp, inter.issue("default.test"), inter),
        "single": served_chain(tmp, inter.issue("single.test"), inter),
        "multi_a": served_chain(tmp, inter.issue("multi.test"), inter),
        "multi_b": served_chain(tmp, inter.issue("multi.test"), inter),
        "tmp": tmp,
    }


@pytest.fixture
def dual_server(certs: dict[str, Any]) -> Iterator[int]:
    chains: dict[str | None, ServedChain] = {
        "dual.test": certs["ec"],
        "single.test": certs["single"],
        None: certs["default"],
    }
    with DualServer(chains, {"dual.test": certs["rsa"]}) as handle:
        yield handle.port


def test_dual_certificates_and_no_sni_make_a_host_not_pin_safe(
    dual_server: int, certs: dict[str, Any], tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(
        f"dual.test:{dual_server}{{127.0.0.1}}\nsingle.test:{dual_server}{{127.0.0.1}}\n"
    )
    root = tmp_path / "root.pem"
    root.write_bytes(certs["root"].pem)
    out = tmp_path / "out"
    code, _out, err = run(
        str(hosts), "-o", str(out), "--deployments", "--trust-store", str(root), *FAST
    )
    assert code == 0, err
    entries = {e["sni"]: e for e in read_manifest_entries(out / "manifest.json")}

    dual = entries["dual.test"]["deployments"]
    assert dual["verdict"] == "not-pin-safe" and dual["key_sets"] == 2
    assert dual["safe_roles"] == ["intermediate"]  # both leaves come from one intermediate
    kinds = [d["kind"] for d in dual["differences"]]
    assert kinds == ["leaf-key", "no-sni"]
    probes = {p["variant"]: p for p in dual["probes"]}
    assert list(probes) == list(VARIANTS)
    assert all(p["address"] == "127.0.0.1" and p["status"] == "ok" for p in probes.values())
    chains = dual["chains"]
    leaf_key = {c["id"]: c["certs"][0]["key_type"] for c in chains}
    assert leaf_key[probes["tls1.2-rsa"]["chain"]] == "RSA"
    assert leaf_key[probes["tls1.2-ecdsa"]["chain"]] == "EC"
    assert probes["tls1.2-rsa"]["cipher"].startswith("ECDHE-RSA")
    no_sni = next(c for c in chains if c["id"] == probes["no-sni"]["chain"])
    assert no_sni["certs"][0]["cn"] == "default.test"
    assert "hostname-mismatch" in no_sni["problems"]
    assert probes["no-sni"]["sni"] is None and probes["default"]["sni"] == "dual.test"
    assert all(c["trusted"] for c in chains)
    # the ordinary chain in the entry is the default client's, saved as files as always
    assert entries["dual.test"]["chain"][0]["sha256"] == next(
        c["certs"][0]["sha256"] for c in chains if c["id"] == probes["default"]["chain"]
    )

    single = entries["single.test"]["deployments"]
    assert single["verdict"] == "pin-safe" and single["safe_roles"] == ["leaf", "intermediate"]
    single_probes = {p["variant"]: p for p in single["probes"]}
    assert single_probes["tls1.2-rsa"]["status"] == "failed"  # no RSA certificate: an answer
    assert single_probes["tls1.2-rsa"]["error_kind"] == "tls-alert"
    assert [d["kind"] for d in single["differences"]] == ["no-sni"]


def _second_address_server(
    chains: dict[str | None, ServedChain], port: int, monkeypatch: pytest.MonkeyPatch
) -> TLSServer:
    """A TLSServer on 127.0.0.2 with the given port (the helper always binds port 0)."""
    real = socket.create_server

    def on_port(address: tuple[str, int], **kwargs: Any) -> socket.socket:
        return real((address[0], port), **kwargs)

    server = TLSServer(chains, "127.0.0.2")
    with monkeypatch.context() as patch:
        patch.setattr(socket, "create_server", on_port)
        server.start()
    return server


async def test_each_resolved_address_is_probed_through_the_gates(
    certs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with TLSServer({None: certs["multi_a"]}) as first:
        try:
            second = _second_address_server({None: certs["multi_b"]}, first.port, monkeypatch)
        except OSError as exc:
            pytest.skip(f"cannot listen on 127.0.0.2: {exc}")
        try:

            async def getaddrinfo(host: str, port: int, **_kw: Any) -> list[Any]:
                assert host == "multi.test"
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                ]

            options = ScanOptions(
                deployments=True, rate=0, per_ip=1, connect_timeout=2, handshake_timeout=2
            )
            scheduler = Scheduler(options, resolver=Resolver(getaddrinfo=getaddrinfo))
            send, receive = trio.open_memory_channel[Any](10)
            target = Target(host="multi.test", port=first.port, sni="multi.test")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scheduler.run, [target], send)
                results = [r async for r in receive]
        finally:
            second.stop()
    (result,) = results
    assert isinstance(result, ScanResult)
    addresses = [(p.outcome.address, p.variant) for p in result.deployments]
    assert addresses == [(ip, v) for ip in ("127.0.0.1", "127.0.0.2") for v in VARIANTS]
    store = TrustStore.from_pem(certs["root"].pem, name="test", source="test")
    fields = Inventory(store, deployments=True).entry_fields(result)
    summary = fields["deployments"]
    assert summary["verdict"] == "not-pin-safe"
    (difference,) = [d for d in summary["differences"] if d["kind"] == "leaf-key"]
    assert "127.0.0.1" in difference["message"] and "127.0.0.2" in difference["message"]
    assert summary["safe_roles"] == ["intermediate"]


def _probe(address: str, variant: str, chain: tuple[bytes, ...] = ()) -> DeploymentProbe:
    if chain:
        outcome = ProbeOutcome(chain=chain, chain_sent=len(chain), address=address)
    else:
        outcome = ProbeOutcome(error_kind=ErrorKind.TIMEOUT_CONNECT, error="x", address=address)
    return DeploymentProbe(variant=variant, sni="h.test", outcome=outcome)


def test_verdicts_without_sockets(certs: dict[str, Any]) -> None:
    store = TrustStore.from_pem(certs["root"].pem, name="test", source="test")
    inventory = Inventory(store)

    def describe(chain: tuple[bytes, ...]) -> dict[str, Any]:
        return {"certs": inventory.analyze(chain, "multi.test").cert_json()}

    chain = certs["multi_a"].der
    same = summarize(
        [_probe("192.0.2.1", "default", chain), _probe("192.0.2.2", "default", chain)], describe
    )
    assert same["verdict"] == "pin-safe" and len(same["chains"]) == 1
    assert [s["address"] for s in same["chains"][0]["seen"]] == ["192.0.2.1", "192.0.2.2"]
    silent = summarize(
        [_probe("192.0.2.1", "default", chain), _probe("192.0.2.2", "default")], describe
    )
    assert silent["verdict"] == "unknown"
    assert [d["kind"] for d in silent["differences"]] == ["address-failed"]
    nothing = summarize([_probe("192.0.2.1", "default")], describe)
    assert nothing["verdict"] == "unknown" and nothing["chains"] == []
