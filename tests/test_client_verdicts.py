"""Trust as mainstream clients decide it (``_policy``), without sockets.

A CA with a non-critical basicConstraints is accepted (with a warning); weak keys anywhere in
the built chain are refused; and, on random chains, no ``error`` but ``hostname-mismatch`` ever
sits beside ``trusted: true``.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainscan.analysis._inventory import Inventory
from chainscan.analysis._problems import JUDGED_APART
from chainscan.analysis._verify import TrustStore
from tests.pki import CA, PrivateKey

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NON_CRITICAL_CA = (x509.BasicConstraints(ca=True, path_length=None), False)


@functools.cache
def root() -> CA:
    return CA("client root")


@functools.cache
def inter() -> CA:
    return root().child_ca("client intermediate")


@functools.cache
def rsa_root() -> CA:
    return CA("client rsa root", key_type="rsa")


@functools.cache
def rsa_inter() -> CA:
    return rsa_root().child_ca("client rsa intermediate", key_type="rsa")


@functools.cache
def other_rsa_root() -> CA:
    return CA("random other root", key_type="rsa")


@functools.cache
def rsa512() -> PrivateKey:
    """cryptography will not generate RSA-512; OpenSSL will (and cryptography loads it)."""
    pem = subprocess.run(
        ["openssl", "genrsa", "512"], check=True, capture_output=True, timeout=60
    ).stdout
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 512
    return key


def rsa8192_public() -> rsa.RSAPublicKey:
    """An RSA-8192 *public* key (a random odd modulus): a leaf's own key is never used to
    verify anything in its chain, and generating a real one takes half a minute."""
    rng = random.Random(8192)
    modulus = rng.getrandbits(8192) | (1 << 8191) | 1
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


def inventory(*roots: CA) -> Inventory:
    store = TrustStore.from_pem(
        b"".join(r.pem for r in roots or (root(),)), name="test", source="test"
    )
    return Inventory(store, clock=lambda: NOW)


def analyze(chain: list[bytes], name: str, inv: Inventory | None = None):  # type: ignore[no-untyped-def]
    return (inv or inventory()).analyze(chain, name, NOW)


def test_a_non_critical_basic_constraints_intermediate_is_trusted_with_a_warning() -> None:
    lax = root().child_ca("lax intermediate", extra_extensions=[NON_CRITICAL_CA])
    leaf = lax.issue("lax.example")
    analysis = analyze([leaf.der, lax.der], "lax.example")
    assert analysis.verdict.trusted, analysis.verdict.reason
    assert [(p.code, p.severity, p.position) for p in analysis.problems] == [
        ("basic-constraints-not-critical", "warning", 1)
    ]
    assert "lax intermediate" in analysis.problems[0].message


def test_a_non_critical_basic_constraints_root_is_trusted_with_a_warning() -> None:
    lax_root = CA("lax root", extra_extensions=[NON_CRITICAL_CA])
    lax_inter = lax_root.child_ca("lax root's intermediate")
    leaf = lax_inter.issue("r.example")
    analysis = analyze([leaf.der, lax_inter.der], "r.example", inventory(lax_root))
    assert analysis.verdict.trusted, analysis.verdict.reason
    assert [(p.code, p.position) for p in analysis.problems] == [
        ("basic-constraints-not-critical", None)
    ]


def test_a_non_critical_ca_false_is_still_no_ca() -> None:
    not_ca = root().child_ca(
        "not a ca", extra_extensions=[(x509.BasicConstraints(ca=False, path_length=None), False)]
    )
    leaf = not_ca.issue("n.example")
    analysis = analyze([leaf.der, not_ca.der], "n.example")
    assert not analysis.verdict.trusted


def test_path_length_is_still_enforced_under_a_lax_ca() -> None:
    lax = root().child_ca(
        "lax pathlen 0", extra_extensions=[(x509.BasicConstraints(ca=True, path_length=0), False)]
    )
    below = lax.child_ca("below pathlen 0")
    leaf = below.issue("p.example")
    analysis = analyze([leaf.der, below.der, lax.der], "p.example")
    assert not analysis.verdict.trusted
    assert "path length" in (analysis.verdict.reason or "")


def test_rsa_512_and_1024_leaves_are_refused_and_8192_is_fine() -> None:
    for key, bits in ((rsa512(), 512), (None, 1024)):
        leaf = inter().issue("w.example", key_type="rsa", key_size=1024, key=key)
        analysis = analyze([leaf.der, inter().der], "w.example")
        assert not analysis.verdict.trusted
        assert [p.code for p in analysis.problems] == ["weak-key"]
        assert f"RSA key of {bits} bits" in (analysis.verdict.reason or "")
    big = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=big.example"))
        .issuer_name(inter().cert.subject)
        .public_key(rsa8192_public())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("big.example")]), False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                inter().key.public_key()  # type: ignore[arg-type]
            ),
            False,
        )
        .sign(inter().key, hashes.SHA256())  # type: ignore[arg-type]
    )
    der = big.public_bytes(serialization.Encoding.DER)
    analysis = analyze([der, inter().der], "big.example")
    assert analysis.verdict.trusted, analysis.verdict.reason
    assert analysis.problems == ()


def test_a_weak_intermediate_or_store_root_makes_the_chain_untrusted() -> None:
    weak_inter = root().child_ca("weak intermediate", key_type="rsa", key_size=1024)
    leaf = weak_inter.issue("i.example")
    analysis = analyze([leaf.der, weak_inter.der], "i.example")
    assert not analysis.verdict.trusted
    assert [(p.code, p.position) for p in analysis.problems] == [("weak-key", 1)]
    weak_root = CA("weak root", key_type="rsa", key_size=1024)
    child = weak_root.child_ca("under the weak root")
    leaf = child.issue("k.example")
    analysis = analyze([leaf.der, child.der], "k.example", inventory(weak_root))
    assert not analysis.verdict.trusted
    assert "weak" in (analysis.verdict.reason or "")  # the verifier checks signing keys
    assert [p.code for p in analysis.problems] == ["untrusted"]  # the root was not sent


def test_md5_and_sha1_below_the_root_are_refused() -> None:
    inv = inventory(rsa_root())
    for algorithm in (hashes.MD5(), hashes.SHA1()):
        leaf = rsa_inter().issue("h.example", hash=algorithm)
        analysis = analyze([leaf.der, rsa_inter().der], "h.example", inv)
        assert not analysis.verdict.trusted
        assert [(p.code, p.position) for p in analysis.problems] == [("weak-signature", 0)]
        weak = rsa_root().child_ca(f"{algorithm.name} intermediate", hash=algorithm)
        analysis = analyze([weak.issue("h.example").der, weak.der], "h.example", inv)
        assert not analysis.verdict.trusted
        assert [(p.code, p.position) for p in analysis.problems] == [("weak-signature", 1)]


# --------------------------------------------------------------------------------------------
# The invariant, on random chains


DEFECTS = (
    "inter-sha1",
    "inter-md5",
    "inter-rsa1024",
    "inter-lax",
    "other-root",
    "inter-expired",
    "inter-expiring",
    "leaf-sha1",
    "leaf-md5",
    "leaf-rsa1024",
    "leaf-future",
    "leaf-expired",
    "leaf-long",
    "no-san",
    "no-inter",
    "root-sent",
    "inter-twice",
    "wrong-name",
)
"""What can be wrong with a random chain; each example has a few (often just one)."""


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[bytes], str]:
    defects = set(draw(st.lists(st.sampled_from(DEFECTS), max_size=3)))
    inter_hash = (
        hashes.SHA1()
        if "inter-sha1" in defects
        else hashes.MD5()
        if "inter-md5" in defects
        else hashes.SHA256()
    )
    parent = other_rsa_root() if "other-root" in defects else rsa_root()
    middle = parent.child_ca(
        "random intermediate",
        hash=inter_hash,
        key_type="rsa",  # RSA: it may sign with MD5
        key_size=1024 if "inter-rsa1024" in defects else 2048,
        extra_extensions=[NON_CRITICAL_CA] if "inter-lax" in defects else [],
        not_after=(
            NOW - DAY
            if "inter-expired" in defects
            else NOW + 5 * DAY
            if "inter-expiring" in defects
            else None
        ),
    )
    start = NOW + DAY if "leaf-future" in defects else NOW - 30 * DAY
    length = 600 * DAY if "leaf-long" in defects else 90 * DAY
    if "leaf-expired" in defects:
        start, length = NOW - 200 * DAY, 90 * DAY
    leaf = middle.issue(
        "x.example",
        hash=hashes.SHA1()
        if "leaf-sha1" in defects
        else hashes.MD5()
        if "leaf-md5" in defects
        else hashes.SHA256(),
        key_type="rsa" if "leaf-rsa1024" in defects else "ec",
        key_size=1024 if "leaf-rsa1024" in defects else None,
        not_before=start,
        not_after=start + length,
        san="no-san" not in defects,
    )
    chain = [leaf.der]
    if "no-inter" not in defects:
        chain.append(middle.der)
    if "root-sent" in defects:
        chain.append(parent.der)
    if "inter-twice" in defects:
        chain.append(middle.der)
    return chain, "y.example" if "wrong-name" in defects else "x.example"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_no_error_problem_ever_sits_beside_trusted(case: tuple[list[bytes], str]) -> None:
    chain, name = case
    analysis = analyze(chain, name, inventory(rsa_root()))
    errors = [
        p.code for p in analysis.problems if p.severity == "error" and p.code not in JUDGED_APART
    ]
    if analysis.verdict.trusted:
        assert errors == [], (errors, analysis.problems)
    else:
        assert errors, analysis.verdict.reason  # an untrusted chain always says why
