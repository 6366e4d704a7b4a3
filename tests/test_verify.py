"""Trust, hostname and problem codes, without sockets (``_verify``, ``_problems``, ``_inventory``).

The loopback fleet in ``test_inventory.py`` covers every code end to end; these tests pin down
the rules one at a time, at a fixed time.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from chainscan._errors import UsageError
from chainscan.analysis._inventory import Inventory
from chainscan.analysis._problems import PROBLEMS
from chainscan.analysis._verify import TrustStore, Verifier, load_trust_store, match_hostname
from tests.inventory_fleet import self_signed_leaf
from tests.pki import CA

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@functools.cache
def root() -> CA:
    return CA("verify root")


@functools.cache
def inter() -> CA:
    return root().child_ca("verify intermediate")


def inventory(*roots: CA, warn_days: int = 30) -> Inventory:
    store = TrustStore.from_pem(
        b"".join(r.pem for r in roots or (root(),)), name="test", source="test"
    )
    return Inventory(store, warn_days=warn_days, clock=lambda: NOW)


def codes(chain: list[bytes], name: str, inv: Inventory | None = None) -> list[str]:
    analysis = (inv or inventory()).analyze(chain, name, NOW)
    return [p.code for p in analysis.problems]


@pytest.mark.parametrize(
    ("name", "sans", "expected"),
    [
        ("a.example.com", ["DNS:a.example.com"], "DNS:a.example.com"),
        ("A.Example.COM.", ["DNS:a.example.com"], "DNS:a.example.com"),
        ("a.example.com", ["DNS:*.example.com"], "DNS:*.example.com"),
        ("example.com", ["DNS:*.example.com"], None),  # the wildcard needs a label
        ("a.b.example.com", ["DNS:*.example.com"], None),  # ... exactly one
        ("a.com", ["DNS:*.com"], None),  # no wildcard over a public suffix-like label
        ("fa.example.com", ["DNS:f*.example.com"], None),  # no partial wildcards
        ("127.0.0.1", ["DNS:127.0.0.1", "IP:127.0.0.1"], "IP:127.0.0.1"),
        ("::1", ["IP:0:0:0:0:0:0:0:1"], "IP:0:0:0:0:0:0:0:1"),
        ("127.0.0.1", ["DNS:127.0.0.1"], None),  # an IP matches IP entries only
        ("a.example.com", [], None),
    ],
)
def test_hostname_matching_follows_rfc_6125(
    name: str, sans: list[str], expected: str | None
) -> None:
    assert match_hostname(name, sans) == expected


def test_a_good_chain_is_trusted_and_the_built_chain_ends_at_the_store_root() -> None:
    leaf = inter().issue("good.example")
    analysis = inventory().analyze([leaf.der, inter().der], "good.example", NOW)
    assert analysis.verdict.trusted and analysis.verdict.reason is None
    assert analysis.problems == ()
    assert [link.source for link in analysis.verdict.chain] == ["sent", "sent", "store"]
    assert analysis.verdict.chain[-1].subject == root().cert.subject.rfc4514_string()
    hostname = analysis.hostname_json()
    assert hostname == {"name": "good.example", "matches": True, "matched_by": "DNS:good.example"}


def test_trust_is_judged_apart_from_the_hostname() -> None:
    leaf = inter().issue("other.example")
    analysis = inventory().analyze([leaf.der, inter().der], "asked.example", NOW)
    assert analysis.verdict.trusted  # for the names it is for
    assert [p.code for p in analysis.problems] == ["hostname-mismatch"]
    assert analysis.hostname_json()["matches"] is False


def test_validity_codes_at_a_fixed_time() -> None:
    def leaf(**dates: dt.datetime) -> bytes:
        return inter().issue("t.example", **dates).der  # type: ignore[arg-type]

    expired = leaf(not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    assert codes([expired, inter().der], "t.example") == ["expired"]
    future = leaf(not_before=NOW + DAY, not_after=NOW + 90 * DAY)
    assert codes([future, inter().der], "t.example") == ["not-yet-valid"]
    soon = leaf(not_before=NOW - 60 * DAY, not_after=NOW + 20 * DAY)
    assert codes([soon, inter().der], "t.example") == ["expires-soon"]
    assert codes([soon, inter().der], "t.example", inventory(warn_days=10)) == []
    long = leaf(not_before=NOW - DAY, not_after=NOW + 399 * DAY)
    assert codes([long, inter().der], "t.example") == ["long-validity"]
    # 398 days is allowed; so is any length before 2020-09-01
    fine = leaf(not_before=NOW - DAY, not_after=NOW + 397 * DAY)
    assert codes([fine, inter().der], "t.example") == []


def test_untrusted_root_sent_or_not_and_self_signed_leaf() -> None:
    private = CA("private verify root")
    private_inter = private.child_ca("private verify intermediate")
    leaf = private_inter.issue("p.example")
    assert codes([leaf.der, private_inter.der], "p.example") == ["untrusted-root"]
    sent = inventory().analyze([leaf.der, private_inter.der, private.der], "p.example", NOW)
    assert [p.code for p in sent.problems] == ["untrusted-root", "root-sent"]
    assert "not in the trust store" in (sent.verdict.reason or "")
    self_signed = self_signed_leaf("s.example")
    assert codes([self_signed.der], "s.example") == ["self-signed-leaf"]


def test_incomplete_chain_and_order_and_duplicates() -> None:
    leaf = inter().issue("c.example")
    incomplete = inventory().analyze([leaf.der], "c.example", NOW)
    assert [p.code for p in incomplete.problems] == ["incomplete-chain"]
    assert "intermediate" in (incomplete.verdict.reason or "")
    upper = root().child_ca("verify upper")
    lower = upper.child_ca("verify lower")
    deep = lower.issue("d.example")
    reversed_chain = inventory().analyze([deep.der, upper.der, lower.der], "d.example", NOW)
    assert reversed_chain.verdict.trusted and reversed_chain.verdict.path == (0, 2, 1)
    assert [p.code for p in reversed_chain.problems] == ["chain-out-of-order"]
    dup = inventory().analyze([leaf.der, inter().der, inter().der], "c.example", NOW)
    assert [(p.code, p.position) for p in dup.problems] == [("duplicate-certificate", 2)]


def test_weak_keys_and_signatures() -> None:
    rsa1024 = inter().issue("w.example", key_type="rsa", key_size=1024)
    assert codes([rsa1024.der, inter().der], "w.example") == ["weak-key"]
    sha1_inter = root().child_ca("verify sha1 intermediate", hash=hashes.SHA1())
    leaf = sha1_inter.issue("h.example")
    analysis = inventory().analyze([leaf.der, sha1_inter.der], "h.example", NOW)
    assert [(p.code, p.position) for p in analysis.problems] == [("weak-signature", 1)]
    assert not analysis.verdict.trusted
    assert "signature algorithm 1.2.840.10045.4.1" in (analysis.verdict.reason or "")
    # a SHA-1 self-signature on a root is never checked: not a problem
    sha1_root = CA("verify sha1 root", hash=hashes.SHA1())
    ok = sha1_root.issue("r.example")
    assert codes([ok.der], "r.example", inventory(sha1_root)) == []


def test_no_san_and_the_catch_all_untrusted() -> None:
    bare = inter().issue("n.example", san=False)
    analysis = inventory().analyze([bare.der, inter().der], "n.example", NOW)
    assert [p.code for p in analysis.problems] == ["no-san"]
    assert analysis.hostname_json()["matches"] is False
    assert "subjectAltName" in (analysis.verdict.reason or "")
    garbage = inventory().analyze([b"not a certificate"], "n.example", NOW)
    assert [p.code for p in garbage.problems] == ["untrusted"]
    assert garbage.verdict.reason and "cannot be parsed" in garbage.verdict.reason
    assert garbage.hostname_json()["matches"] is None


def test_every_documented_code_has_a_severity_and_is_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "inventory.md").read_text()
    for code, (severity, meaning) in PROBLEMS.items():
        assert severity in ("error", "warning") and meaning
        assert f"`{code}`" in doc


def test_intermediates_are_parsed_and_linked_once_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chainscan.analysis import _verify

    parsed: list[bytes] = []
    linked: list[str] = []
    real_load, real_signed_by = _verify._load, _verify._signed_by

    def counting_load(der: bytes) -> _verify.Cert:
        parsed.append(der)
        return real_load(der)

    def counting_signed_by(child: object, parent: object) -> bool:
        linked.append(child.subject.rfc4514_string())  # type: ignore[attr-defined]
        return real_signed_by(child, parent)  # type: ignore[arg-type]

    monkeypatch.setattr(_verify, "_load", counting_load)
    monkeypatch.setattr(_verify, "_signed_by", counting_signed_by)
    inv = inventory()
    for index in range(5):
        name = f"h{index}.example"
        good = inter().issue(name)
        assert inv.analyze([good.der, inter().der], name, NOW).verdict.trusted
        # an expired leaf is refused: its chain is walked to say why
        expired = inter().issue(name, not_before=NOW - 9 * DAY, not_after=NOW - DAY)
        assert not inv.analyze([expired.der, inter().der], name, NOW).verdict.trusted
    assert parsed.count(inter().der) == 1  # parsed once for 10 chains
    assert len(parsed) == 12  # and each leaf once, and the store's root when it was loaded
    intermediate = inter().cert.subject.rfc4514_string()
    assert linked.count(intermediate) == 1  # intermediate -> root: checked once
    assert len(linked) == 6  # and each walked leaf -> intermediate once


def test_trust_stores(tmp_path: Path) -> None:
    certifi_store = load_trust_store("certifi")
    assert len(certifi_store.roots) > 50 and certifi_store.name == "certifi"
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(root().pem + inter().pem)
    assert len(load_trust_store(str(bundle)).roots) == 2
    der = tmp_path / "root.der"
    der.write_bytes(root().der)
    assert len(load_trust_store(str(der)).roots) == 1
    with pytest.raises(UsageError, match="cannot read"):
        load_trust_store(str(tmp_path / "missing.pem"))
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(UsageError, match="no certificate"):
        load_trust_store(str(empty))
    # the test root is not a Mozilla root
    verdict = Verifier(certifi_store).verify(
        [
            Inventory(certifi_store)._certs.get(inter().issue("x.example").der, keep=False),
            Inventory(certifi_store)._certs.get(inter().der),
        ],
        "x.example",
        NOW,
    )
    assert not verdict.trusted and verdict.end == "missing-issuer"


def test_corrupted_chains_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from chainscan._models import ScanResult, Status, Target

    leaf = inter().issue("a.example", "*.b.example", "127.0.0.1")
    inv = inventory()
    rng = random.Random(6)
    target = Target(host="a.example", port=443, sni="a.example")
    for _ in range(300):
        chain = [bytearray(leaf.der), bytearray(inter().der)]
        for _flip in range(rng.randint(1, 4)):
            cert = rng.choice(chain)
            cert[rng.randrange(len(cert))] = rng.randrange(256)
        result = ScanResult(target=target, status=Status.OK, chain=tuple(map(bytes, chain)))
        fields = inv.entry_fields(result)
        assert isinstance(fields["trust"]["trusted"], bool)
    # and should a bug slip through, the entry keeps a verdict that says so
    monkeypatch.setattr(inv, "analyze", lambda *a: 1 / 0)
    broken = inv.entry_fields(ScanResult(target=target, status=Status.OK, chain=(leaf.der,)))
    assert broken["trust"]["trusted"] is False
    assert broken["trust"]["reason"].startswith("internal error while analysing: ZeroDivision")
