"""The writer's shortcuts change no output.

The writer parses each certificate once for its file, its manifest facts and its trust checks
(``Inventory.load_chain``), the verifier remembers walks from a served CA certificate
(``Verifier._walk``), and host names skip ``ipaddress`` when they cannot be IP literals. Each
entry must still be exactly what the plain path gives: ``analyze_der`` facts and a fresh
``Inventory`` per entry, whatever the caches hold and in whatever order targets arrive.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import random
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from chainscan._models import ScanResult, Status, Target
from chainscan.analysis._analyze import analyze_der, load_and_analyze
from chainscan.analysis._entry import entry_for
from chainscan.analysis._inventory import Inventory
from chainscan.analysis._verify import TrustStore, _is_ip
from chainscan.output._naming import _default_sni
from chainscan.output._output import OutputDir
from tests.inventory_fleet import self_signed_leaf
from tests.pki import CA, der_tlv, make_key, mutate_tbs

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@functools.cache
def root() -> CA:
    return CA("equivalence root")


@functools.cache
def inter() -> CA:
    return root().child_ca("equivalence intermediate")


@functools.cache
def rsa_inter() -> CA:
    return root().child_ca("equivalence rsa intermediate", key_type="rsa")


@functools.cache
def upper() -> CA:
    return root().child_ca("equivalence upper")


@functools.cache
def lower() -> CA:
    return upper().child_ca("equivalence lower")


@functools.cache
def stranger() -> CA:
    """A root that issued nothing here: with it as the store, every chain is walked."""
    return CA("equivalence stranger")


@functools.cache
def private_inter() -> CA:
    return CA("equivalence private root").child_ca("equivalence private intermediate")


def forged(der: bytes) -> bytes:
    """The same certificate (names and all) signed by a stranger's key."""
    return mutate_tbs(der, make_key("ec"))


def country_usa(der: bytes, signer: CA) -> bytes:
    """The certificate with a subject ``C=USA``: cryptography warns on reading it."""

    def edit(elements: list[bytes]) -> list[bytes]:
        oid = der_tlv(0x06, bytes.fromhex("550406"))  # countryName
        attribute = der_tlv(0x30, oid + der_tlv(0x13, b"USA"))
        subject = der_tlv(0x30, der_tlv(0x31, attribute))
        return [*elements[:5], subject, *elements[6:]]

    return mutate_tbs(der, signer.key, edit)


def ok(chain: list[bytes], host: str) -> ScanResult:
    """A result for ``host`` (sent as the SNI unless it is an IP literal)."""
    sni = None if ":" in host or host[0].isdigit() else host
    return ScanResult(
        target=Target(host=host, port=443, sni=sni, raw=f"{host}:443", source="t", line=1),
        status=Status.OK,
        chain=tuple(chain),
        attempts=1,
        address="192.0.2.7",
    )


@functools.cache
def results() -> tuple[ScanResult, ...]:
    """Chains that exercise every branch of the walk, the caches and the hostname check."""
    good = inter().issue("good.test")
    shared = inter().issue("a.shared.test", "b.shared.test", "192.0.2.9")
    rsa = rsa_inter().issue("rsa.test", key_type="rsa")
    expired = inter().issue("expired.test", not_before=NOW - 9 * DAY, not_after=NOW - DAY)
    reversed_leaf = lower().issue("reversed.test")
    private = private_inter().issue("private.test")
    usa = country_usa(inter().issue("usa.test").der, inter())
    chains: list[tuple[list[bytes], str]] = [
        ([good.der, inter().der], "good.test"),
        ([forged(good.der), inter().der], "good.test"),  # not signed by its issuer
        ([good.der, inter().der, root().der], "good.test"),
        ([forged(good.der), inter().der, root().der], "good.test"),
        ([good.der, inter().der, inter().der], "good.test"),
        ([good.der], "good.test"),
        ([good.der, root().der, inter().der], "good.test"),
        ([expired.der, inter().der], "expired.test"),
        ([forged(expired.der), inter().der], "expired.test"),
        ([rsa.der, rsa_inter().der], "rsa.test"),
        ([forged(rsa.der), rsa_inter().der, root().der], "rsa.test"),
        ([reversed_leaf.der, upper().der, lower().der], "reversed.test"),
        ([reversed_leaf.der, lower().der, upper().der], "reversed.test"),
        ([forged(reversed_leaf.der), lower().der, upper().der], "reversed.test"),
        ([upper().issue("upper.test").der, upper().der, lower().der], "upper.test"),
        ([private.der, private_inter().der], "private.test"),
        ([self_signed_leaf("self.test").der], "self.test"),
        ([self_signed_leaf("self.test").der, inter().der], "self.test"),
        ([shared.der, inter().der], "a.shared.test"),  # one leaf, many names
        ([shared.der, inter().der], "b.shared.test"),
        ([shared.der, inter().der], "c.shared.test"),  # mismatch
        ([shared.der, inter().der], "192.0.2.9"),  # an IP literal, without SNI
        ([shared.der, inter().der], "::1"),
        ([usa, inter().der], "usa.test"),
        ([b"not a certificate", inter().der], "garbage.test"),
        ([good.der, b"not a certificate", inter().der], "good.test"),
        ([inter().der, root().der], "inter.test"),  # a CA served as the leaf
    ]
    return tuple(ok(chain, host) for chain, host in chains)


def store(*cas: CA) -> TrustStore:
    return TrustStore.from_pem(b"".join(ca.pem for ca in cas), name="test", source="test")


def inventory(trusted: TrustStore) -> Inventory:
    return Inventory(trusted, clock=lambda: NOW, deployments=True)


def plain_entry(result: ScanResult, trusted: TrustStore, files: list[str]) -> dict[str, Any]:
    """The entry as the writer made it before sharing parses: analyze_der + fresh caches."""
    entry = entry_for(result, [analyze_der(der) for der in result.chain], files, "d")
    entry.update(inventory(trusted).entry_fields(result))
    return entry


def written(out: OutputDir, result: ScanResult) -> dict[str, Any]:
    entry = out._write_chain(result)
    return {**entry, "dir": "d", "chain": [{**c, "file": "f"} for c in entry["chain"]]}


def test_writer_entries_equal_the_plain_path_with_fresh_or_warm_caches(tmp_path: Path) -> None:
    for number, trusted in enumerate((store(root()), store(stranger()))):
        items = list(results())
        expected = [plain_entry(r, trusted, ["f"] * len(r.chain)) for r in items]
        for round_ in range(3):  # fresh caches, then warm ones, in another order each time
            out = OutputDir(tmp_path / f"out{number}-{round_}", inventory=inventory(trusted))
            out.prepare()
            order = list(range(len(items)))
            random.Random(round_).shuffle(order)
            got = {i: written(out, items[i]) for i in order}
            got_again = {i: written(out, items[i]) for i in reversed(order)}
            out.close(run={}, complete=True)
            for index, want in enumerate(expected):
                want = {**want, "dir": "d"}
                assert got[index] == want, (round_, items[index].target)
                assert got_again[index] == want, (round_, items[index].target)


def test_a_leaf_not_signed_by_its_claimed_issuer_keeps_its_own_verdict() -> None:
    genuine = inter().issue("sig.test")
    fake = forged(genuine.der)
    for trusted, trusts_genuine in ((store(root()), True), (store(stranger()), False)):
        for first, second in ((genuine.der, fake), (fake, genuine.der)):
            inv = inventory(trusted)
            verdicts = {
                der: inv.analyze([der, inter().der, root().der], "sig.test").verdict
                for der in (first, second, first)
            }
            bad = verdicts[fake]
            assert not bad.trusted and bad.end == "missing-issuer" and bad.path == (0,)
            codes = [p.code for p in inv.analyze([fake, inter().der], "sig.test").problems]
            assert "incomplete-chain" in codes
            good = verdicts[genuine.der]
            assert good.path[:2] == (0, 1) and good.trusted is trusts_genuine


def test_walks_from_the_same_ca_certificates_in_another_order_differ() -> None:
    inv = inventory(store(stranger()))
    leaf = lower().issue("order.test").der
    in_order = inv.analyze([leaf, lower().der, upper().der], "order.test").verdict
    swapped = inv.analyze([leaf, upper().der, lower().der], "order.test").verdict
    assert in_order.path == (0, 1, 2) and swapped.path == (0, 2, 1)
    again = inv.analyze([leaf, lower().der, upper().der], "order.test").verdict
    assert again == in_order


def test_a_trusted_chain_lists_the_facts_of_its_certificates() -> None:
    inv = inventory(store(root()))
    leaf = inter().issue("trusted.test")
    verdict = inv.analyze([leaf.der, inter().der], "trusted.test").verdict
    assert verdict.trusted
    expected = [analyze_der(der) for der in (leaf.der, inter().der, root().der)]
    assert [(link.sha256, link.spki_sha256, link.subject) for link in verdict.chain] == [
        (facts.sha256, facts.spki_sha256, facts.subject) for facts in expected
    ]
    assert [link.position for link in verdict.chain] == [0, 1, None]


def test_one_parse_gives_analyze_der_facts() -> None:
    usa = country_usa(inter().issue("usa.test").der, inter())
    samples = [
        root().der,
        inter().der,
        rsa_inter().issue("r.test", key_type="rsa").der,
        self_signed_leaf("s.test").der,
        forged(inter().issue("f.test").der),
        usa,
        b"not a certificate",
        root().der[:-10],
    ]
    for der in samples:
        loaded = load_and_analyze(der)
        assert loaded.facts == analyze_der(der)
        unparsable = (loaded.facts.parse_error or "").startswith("not a parsable")
        assert (loaded.cert is None) is unparsable
        if loaded.cert is not None:
            assert loaded.cert.fingerprint(hashes.SHA256()).hex() == loaded.facts.sha256
    assert "warning: " in (analyze_der(usa).parse_error or "")


def _reference_is_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


IP_LIKE = [
    "",
    "1.2.3.4",
    "1.2.3.4.",
    "01.2.3.4",
    "256.1.1.1",
    "1.2.3",
    "[::1]",
    "::1",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "1::2::3",
    "\u0661.2.3.4",  # an Arabic-Indic digit: not an IPv4 literal
    "1.2.3.4 ",
    "example.com",
    "xn--bcher-kva.example",
    "*.example.com",
    "12345",
]


@given(st.one_of(st.sampled_from(IP_LIKE), st.text(alphabet="0123456789.:[]abcf%", max_size=24)))
def test_ip_literal_fast_paths_agree_with_ipaddress(name: str) -> None:
    assert _is_ip(name) == _reference_is_ip(name)
    try:
        ipaddress.ip_address(name)
        default = None
    except ValueError:
        default = name
    assert _default_sni(name) == default


@given(st.text(max_size=40))
def test_ip_literal_fast_paths_agree_with_ipaddress_on_any_text(name: str) -> None:
    assert _is_ip(name) == _reference_is_ip(name)
