"""Unit tests for chainscan.analysis._analyze (DER -> CertFacts) and for the test PKI in tests.pki.

No sockets. Where a fact can be computed independently (fingerprints, the SPKI pin, the
signature algorithm name, the serial), it is checked against hashlib or the ``openssl`` CLI
rather than against ``cryptography``, which ``_analyze`` itself uses.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from chainscan.analysis._analyze import analyze_der, der_to_pem, pem_to_der_list
from tests.pki import (
    CA,
    DEFAULT_NOT_AFTER,
    Issued,
    chain_pem,
    der_int,
    der_tlv,
    make_key,
    mutate_tbs,
    split_der,
    write_server_files,
)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
needs_openssl = pytest.mark.skipif(not Path(OPENSSL).exists(), reason="openssl CLI not found")


# --------------------------------------------------------------------------------------------
# Shared PKI, built once per session (cached helpers rather than fixtures, so hypothesis tests
# can use them too).


@functools.cache
def root() -> CA:
    return CA()


@functools.cache
def intermediate() -> CA:
    return root().child_ca("chainscan test intermediate", key_type="rsa")


@functools.cache
def rsa_leaf() -> Issued:
    return intermediate().issue("rsa.example", "www.rsa.example", key_type="rsa")


@functools.cache
def ec_leaf() -> Issued:
    return intermediate().issue("ec.example", "127.0.0.1", "::1")


@functools.cache
def legacy_root() -> CA:
    return CA("legacy root", key_type="rsa", key_size=1024, hash=hashes.SHA1())


@functools.cache
def legacy_leaf() -> Issued:
    return legacy_root().issue("legacy.example", key_type="rsa", key_size=1024, hash=hashes.SHA1())


def openssl(*args: str, data: bytes) -> str:
    done = subprocess.run([OPENSSL, *args], input=data, capture_output=True, check=True)
    return done.stdout.decode()


def openssl_pin(der: bytes) -> str:
    """The SPKI pin the way the OkHttp / HPKP documentation computes it."""
    pipeline = (
        f"{OPENSSL} x509 -inform der -pubkey -noout"
        f" | {OPENSSL} pkey -pubin -outform der"
        f" | {OPENSSL} dgst -sha256 -binary | base64"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], input=der, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def openssl_signature_algorithm(der: bytes) -> str:
    text = openssl("x509", "-inform", "der", "-noout", "-text", data=der)
    match = re.search(r"Signature Algorithm: (\S+)", text)
    assert match is not None, text
    return match.group(1)


# --------------------------------------------------------------------------------------------
# The test PKI itself


def test_pki_ca_and_leaf_constraints() -> None:
    assert root().cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert intermediate().cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf_bc = rsa_leaf().cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert leaf_bc.value.ca is False and leaf_bc.critical
    assert intermediate().cert.issuer == root().cert.subject
    assert intermediate().path == (intermediate(), root())
    rsa_leaf().cert.verify_directly_issued_by(intermediate().cert)
    intermediate().cert.verify_directly_issued_by(root().cert)


def test_pki_expired_certificate_dates() -> None:
    not_before = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    not_after = dt.datetime(2020, 1, 1, 12, 30, tzinfo=dt.UTC)
    expired = root().issue("expired.example", not_before=not_before, not_after=not_after)
    assert expired.cert.not_valid_before_utc == not_before
    assert expired.cert.not_valid_after_utc == not_after
    assert expired.cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    assert rsa_leaf().cert.not_valid_after_utc == DEFAULT_NOT_AFTER


def test_pki_chain_pem_keeps_the_given_order() -> None:
    leaf, inter, top = ec_leaf(), intermediate(), root()
    assert pem_to_der_list(chain_pem(leaf, inter, top)) == [leaf.der, inter.der, top.der]
    assert pem_to_der_list(chain_pem(leaf, top, inter)) == [leaf.der, top.der, inter.der]
    assert pem_to_der_list(chain_pem(leaf)) == [leaf.der]


def test_pki_server_files_load_into_ssl_context(tmp_path: Path) -> None:
    certfile, keyfile = write_server_files(tmp_path, rsa_leaf(), intermediate())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    assert pem_to_der_list(certfile.read_bytes()) == [rsa_leaf().der, intermediate().der]
    assert b"BEGIN PRIVATE KEY" in keyfile.read_bytes()  # PKCS#8


def test_pki_rsa_keys_are_pooled_but_consecutive_keys_differ() -> None:
    first, second = make_key("rsa", 1024), make_key("rsa", 1024)
    assert first.public_key() != second.public_key()


@needs_openssl
def test_pki_legacy_sha1_certificates_verify_with_openssl(tmp_path: Path) -> None:
    (tmp_path / "root.pem").write_bytes(legacy_root().pem)
    (tmp_path / "leaf.pem").write_bytes(legacy_leaf().pem)
    ca_file, leaf_file = str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")
    verify = [OPENSSL, "verify", "-auth_level", "0", "-CAfile", ca_file, leaf_file]
    subprocess.run(verify, check=True, capture_output=True)
    assert isinstance(legacy_leaf().cert.signature_hash_algorithm, hashes.SHA1)


def test_pki_extra_extension_replaces_the_default() -> None:
    bogus = x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x01\x02")
    issued = root().issue("bogus.example", extra_extensions=[bogus])
    assert issued.der.count(bytes.fromhex("0603551d13")) == 1  # one basicConstraints OID


# --------------------------------------------------------------------------------------------
# Facts of well-formed certificates


def test_rsa_leaf_facts() -> None:
    leaf = rsa_leaf()
    facts = analyze_der(leaf.der)
    assert facts.parse_error is None
    assert facts.subject == "CN=rsa.example,O=chainscan tests"
    assert facts.issuer == "CN=chainscan test intermediate,O=chainscan tests"
    assert facts.cn == "rsa.example"
    assert facts.sans == ("DNS:rsa.example", "DNS:www.rsa.example")
    assert facts.serial == format(leaf.cert.serial_number, "x")
    assert facts.not_before == "2000-01-01T00:00:00Z"
    assert facts.not_after == "3000-01-01T00:00:00Z"
    assert facts.signature_algorithm == "sha256WithRSAEncryption"  # the intermediate is RSA
    assert (facts.key_type, facts.key_size, facts.curve) == ("RSA", 2048, None)
    assert facts.is_ca is False
    assert facts.self_signed is False


def test_ec_leaf_facts() -> None:
    facts = analyze_der(ec_leaf().der)
    assert facts.parse_error is None
    assert (facts.key_type, facts.key_size, facts.curve) == ("EC", 256, "secp256r1")
    assert facts.sans == ("DNS:ec.example", "IP:127.0.0.1", "IP:::1")
    assert facts.is_ca is False


def test_p384_root_facts() -> None:
    facts = analyze_der(CA("p384 root", key_size=384, hash=hashes.SHA384()).der)
    assert (facts.key_type, facts.key_size, facts.curve) == ("EC", 384, "secp384r1")
    assert facts.signature_algorithm == "ecdsa-with-SHA384"
    assert facts.self_signed is True


def test_intermediate_and_root_facts() -> None:
    inter = analyze_der(intermediate().der)
    assert (inter.is_ca, inter.self_signed) == (True, False)
    assert inter.signature_algorithm == "ecdsa-with-SHA256"  # signed by the EC root
    assert inter.sans == ()
    top = analyze_der(root().der)
    assert (top.is_ca, top.self_signed) == (True, True)
    assert top.subject == top.issuer == "CN=chainscan test root,O=chainscan tests"


def test_legacy_sha1_rsa1024_facts() -> None:
    leaf = analyze_der(legacy_leaf().der)
    assert leaf.parse_error is None
    assert leaf.signature_algorithm == "sha1WithRSAEncryption"
    assert (leaf.key_type, leaf.key_size) == ("RSA", 1024)
    top = analyze_der(legacy_root().der)
    # cryptography's verify_directly_issued_by refuses SHA-1; the fallback must still say True.
    assert (top.signature_algorithm, top.is_ca, top.self_signed) == (
        "sha1WithRSAEncryption",
        True,
        True,
    )


def test_md5_and_ecdsa_sha1_signatures() -> None:
    md5 = analyze_der(legacy_root().issue("md5.example", hash=hashes.MD5()).der)
    assert md5.signature_algorithm == "md5WithRSAEncryption"
    ec_sha1 = analyze_der(CA("ec sha1 root", hash=hashes.SHA1()).der)
    assert ec_sha1.signature_algorithm == "ecdsa-with-SHA1"
    assert ec_sha1.self_signed is True


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [("ed25519", ("Ed25519", 256)), ("ed448", ("Ed448", 456)), ("dsa", ("DSA", 2048))],
)
def test_other_key_types(key_type: str, expected: tuple[str, int]) -> None:
    ca = CA(f"{key_type} root", key_type=key_type)  # type: ignore[arg-type]
    facts = analyze_der(ca.der)
    assert facts.parse_error is None
    assert (facts.key_type, facts.key_size, facts.curve) == (*expected, None)
    assert facts.self_signed is True
    assert (
        facts.signature_algorithm
        == {
            "ed25519": "ed25519",
            "ed448": "ed448",
            "dsa": "dsa-with-sha256",
        }[key_type]
    )


def test_key_type_outside_the_documented_list_is_unknown() -> None:
    # An X25519 key (key agreement only) in a certificate: cryptography parses it.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x25519.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root().cert.subject)
        .public_key(x25519.X25519PrivateKey.generate().public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        .sign(root().key, hashes.SHA256())
    )
    facts = analyze_der(cert.public_bytes(serialization.Encoding.DER))
    assert facts.parse_error is None
    assert (facts.key_type, facts.key_size, facts.spki_sha256 is not None) == (
        "unknown",
        None,
        True,
    )


def test_san_variants_and_missing_cn() -> None:
    ca = root()
    mixed = analyze_der(ca.issue("a.example", "10.0.0.1", "2001:db8::1", "me@example.org").der)
    assert mixed.sans == ("DNS:a.example", "IP:10.0.0.1", "IP:2001:db8::1", "email:me@example.org")
    assert analyze_der(ca.issue("https://uri.example/x", cn="u").der).sans == (
        "URI:https://uri.example/x",
    )
    no_san = analyze_der(ca.issue("nosan.example", san=False).der)
    assert (no_san.cn, no_san.sans) == ("nosan.example", ())
    no_cn = analyze_der(ca.issue("nocn.example", cn=None).der)
    assert (no_cn.cn, no_cn.subject, no_cn.sans) == (
        None,
        "O=chainscan tests",
        ("DNS:nocn.example",),
    )


def test_other_general_names_are_formatted() -> None:
    san = x509.SubjectAlternativeName(
        [
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])),
            x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
            x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01x"),
        ]
    )
    facts = analyze_der(root().issue("x.example", extra_extensions=[san]).der)
    assert facts.sans == ("DirName:CN=dir", "RID:1.2.3.4", "othername:1.3.6.1.4.1.311.20.2.3")


def test_expired_certificate_dates_are_reported_in_utc() -> None:
    expired = root().issue(
        "old.example",
        not_before=dt.datetime(2018, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        not_after=dt.datetime(2019, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    )
    facts = analyze_der(expired.der)
    assert (facts.not_before, facts.not_after) == ("2018-05-06T07:08:09Z", "2019-12-31T23:59:59Z")


def test_self_signed_needs_a_matching_signature_not_just_names() -> None:
    # Subject equal to the issuer, but the signature is the root's, not the leaf's own key.
    lookalike = root().issue(cn="chainscan test root", san=False)
    assert lookalike.cert.subject == lookalike.cert.issuer
    assert analyze_der(lookalike.der).self_signed is False
    # A root re-signed by a stranger: names still match, the signature no longer does.
    stranger = make_key("ec")
    assert analyze_der(mutate_tbs(root().der, stranger)).self_signed is False
    legacy_forged = mutate_tbs(legacy_root().der, make_key("rsa", 1024), hash=hashes.SHA1())
    assert analyze_der(legacy_forged).self_signed is False


def test_common_signatures_are_checked_as_cryptography_checks_them() -> None:
    """ECDSA and RSA PKCS#1 v1.5 with SHA-2 are checked with the issuer's parsed key (issue 16:
    a third of the check's cost); the answer is ``verify_directly_issued_by``'s, signature good
    or bad, whoever signed, and other algorithms (SHA-1, Ed25519) still take the general path."""
    from cryptography.exceptions import InvalidSignature

    from chainscan.analysis._analyze import _common_signature_verifies, signature_verifies

    def reference(child: x509.Certificate, parent: x509.Certificate) -> bool:
        try:
            child.verify_directly_issued_by(parent)
        except InvalidSignature:
            return False
        return True

    rsa_ca = CA("rsa sha384 root", key_type="rsa", hash=hashes.SHA384())
    ec_ca = CA("ec sha512 root", hash=hashes.SHA512())
    stranger = make_key("ec")
    pairs = [
        (intermediate().cert, root().cert),  # ECDSA P-256, SHA-256
        (rsa_leaf().cert, intermediate().cert),  # RSA, SHA-256
        (rsa_ca.issue("rsa384.example").cert, rsa_ca.cert),  # RSA, SHA-384
        (ec_ca.issue("ec512.example").cert, ec_ca.cert),  # ECDSA, SHA-512
        (root().cert, root().cert),  # self-signed
    ]
    forged = x509.load_der_x509_certificate(mutate_tbs(intermediate().der, stranger))
    rsa_forged = x509.load_der_x509_certificate(
        mutate_tbs(rsa_leaf().der, make_key("rsa"), hash=hashes.SHA384())
    )
    bad = [(forged, root().cert), (rsa_forged, intermediate().cert)]
    for child, parent in pairs + bad:
        expected = reference(child, parent)
        assert _common_signature_verifies(child, parent) is expected
        assert signature_verifies(child, parent) is expected
    assert [reference(c, p) for c, p in pairs + bad] == [True] * len(pairs) + [False] * len(bad)
    legacy = legacy_leaf().cert
    assert _common_signature_verifies(legacy, legacy_root().cert) is None  # SHA-1: general path
    assert signature_verifies(legacy, legacy_root().cert) is True
    ed = CA("ed25519 root", key_type="ed25519")
    assert _common_signature_verifies(ed.cert, ed.cert) is None
    assert signature_verifies(ed.cert, ed.cert) is True


def test_results_are_cached_and_accept_bytes_like_input() -> None:
    der = ec_leaf().der
    assert analyze_der(der) is analyze_der(bytes(der))
    assert analyze_der(bytearray(der)) == analyze_der(der)  # type: ignore[arg-type]
    assert analyze_der(memoryview(der)) == analyze_der(der)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Independent checks: hashlib and the openssl CLI


@functools.cache
def all_good_certs() -> list[bytes]:
    # Cached: hypothesis replays draws, so the same index must give the same bytes every time.
    return [
        rsa_leaf().der,
        ec_leaf().der,
        intermediate().der,
        root().der,
        legacy_root().der,
        legacy_leaf().der,
        CA("ed25519 pin root", key_type="ed25519").der,
    ]


def test_fingerprints_match_hashlib() -> None:
    for der in all_good_certs():
        facts = analyze_der(der)
        assert facts.sha256 == hashlib.sha256(der).hexdigest()
        assert facts.sha1 == hashlib.sha1(der).hexdigest()
        assert facts.size == len(der)


@needs_openssl
def test_spki_pin_matches_openssl_pipeline() -> None:
    for der in all_good_certs():
        facts = analyze_der(der)
        assert facts.spki_sha256 == openssl_pin(der)
        assert facts.pin == f"sha256/{openssl_pin(der)}"


@needs_openssl
def test_signature_algorithm_and_serial_match_openssl() -> None:
    for der in all_good_certs():
        facts = analyze_der(der)
        # Same names as OpenSSL, but for case: OpenSSL prints ED25519, the manifest ed25519.
        assert facts.signature_algorithm is not None
        assert facts.signature_algorithm.casefold() == openssl_signature_algorithm(der).casefold()
        serial = openssl("x509", "-inform", "der", "-noout", "-serial", data=der)
        assert facts.serial is not None
        assert int(facts.serial, 16) == int(serial.strip().removeprefix("serial="), 16)
        assert not facts.serial.startswith("0") and facts.serial == facts.serial.lower()


# --------------------------------------------------------------------------------------------
# Broken input: never raise, always fingerprint


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30", b"\x30\x82\xff\xff", b"-----BEGIN CERTIFICATE-----\n", b"\x00" * 64],
)
def test_garbage_gives_parse_error(data: bytes) -> None:
    facts = analyze_der(data)
    assert facts.parse_error is not None and facts.parse_error.startswith("not a parsable")
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.size == len(data)
    assert (facts.subject, facts.serial, facts.spki_sha256, facts.sans) == (None, None, None, ())


def test_truncated_der_gives_parse_error() -> None:
    der = rsa_leaf().der
    for cut in (1, 2, 4, 10, len(der) // 2, len(der) - 1):
        facts = analyze_der(der[:cut])
        assert facts.parse_error is not None
        assert facts.sha256 == hashlib.sha256(der[:cut]).hexdigest()
    trailing = analyze_der(der + b"\x00")
    assert trailing.sha256 == hashlib.sha256(der + b"\x00").hexdigest()


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    facts = analyze_der(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.size == len(data)


@given(st.data())
def test_corrupted_certificates_never_raise(data: st.DataObject) -> None:
    der = bytearray(data.draw(st.sampled_from(all_good_certs())))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(der) - 1))
        der[index] = data.draw(st.integers(0, 255))
    facts = analyze_der(bytes(der))
    assert facts.sha256 == hashlib.sha256(der).hexdigest()


@needs_openssl
def test_negative_serial_openssl_parses_cryptography_objects() -> None:
    leaf = ec_leaf()
    der = mutate_tbs(leaf.der, intermediate().key, lambda el: [el[0], der_int(-5), *el[2:]])
    assert openssl("x509", "-inform", "der", "-noout", "-serial", data=der).strip() == "serial=-05"
    facts = analyze_der(der)
    assert facts.parse_error is not None and "serial" in facts.parse_error
    assert facts.sha256 == hashlib.sha256(der).hexdigest()
    assert facts.serial == "-5"
    assert facts.cn == "ec.example"  # the rest is still read


@needs_openssl
def test_malformed_basic_constraints_fills_what_works() -> None:
    bogus = x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x01\x02garbage")
    issued = root().issue("bad-bc.example", extra_extensions=[(bogus, True)])
    subject = openssl("x509", "-inform", "der", "-noout", "-subject", data=issued.der)
    assert "bad-bc.example" in subject
    facts = analyze_der(issued.der)
    assert facts.parse_error is not None and facts.parse_error.startswith("extensions:")
    assert facts.sha256 == hashlib.sha256(issued.der).hexdigest()
    assert (facts.is_ca, facts.sans) == (None, ())
    assert facts.cn == "bad-bc.example"
    assert facts.spki_sha256 == openssl_pin(issued.der)


def test_unknown_public_key_algorithm() -> None:
    def break_spki(elements: list[bytes]) -> list[bytes]:
        spki_index = 6 if elements[0][0] == 0xA0 else 5
        _alg, bits = split_der(elements[spki_index])
        unknown_alg = der_tlv(0x30, der_tlv(0x06, bytes.fromhex("2a0304")))  # 1.2.3.4
        elements[spki_index] = der_tlv(0x30, unknown_alg + bits)
        return elements

    der = mutate_tbs(ec_leaf().der, intermediate().key, break_spki)
    facts = analyze_der(der)
    assert facts.parse_error is not None and "public_key:" in facts.parse_error
    assert (facts.key_type, facts.key_size, facts.spki_sha256) == ("unknown", None, None)
    assert facts.cn == "ec.example"


def test_unknown_signature_algorithm_falls_back_to_dotted_oid() -> None:
    # Swap ecdsa-with-SHA256 (1.2.840.10045.4.3.2) for the unassigned 1.2.840.10045.4.3.9,
    # inside the TBS and outside it; same length, so the structure stays valid.
    known = bytes.fromhex("06082a8648ce3d040302")
    der = root().der
    assert der.count(known) == 2
    odd = der.replace(known, bytes.fromhex("06082a8648ce3d040309"))
    facts = analyze_der(odd)
    assert facts.signature_algorithm == "1.2.840.10045.4.3.9"
    assert facts.self_signed is None  # names match, but the signature cannot be checked
    assert facts.parse_error is not None and facts.parse_error.startswith("self_signed:")


# --------------------------------------------------------------------------------------------
# PEM helpers


def test_der_to_pem_matches_cryptography_and_round_trips() -> None:
    for issued in (rsa_leaf(), ec_leaf()):
        assert der_to_pem(issued.der) == issued.pem
        assert pem_to_der_list(der_to_pem(issued.der)) == [issued.der]
    assert pem_to_der_list(der_to_pem(b"not a cert")) == [b"not a cert"]


def test_pem_to_der_list_ignores_surrounding_text() -> None:
    text = b"subject=...\n" + ec_leaf().pem + b"junk\r\n" + root().pem.replace(b"\n", b"\r\n")
    assert pem_to_der_list(text) == [ec_leaf().der, root().der]
    assert pem_to_der_list(b"no certificates here") == []


def test_pem_to_der_list_names_the_bad_block() -> None:
    bad = ec_leaf().pem + b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="block 2"):
        pem_to_der_list(bad)
