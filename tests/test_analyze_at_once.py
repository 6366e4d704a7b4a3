"""``load_and_analyze`` reads a certificate's fields at once and falls back to reading them one
by one when one fails (``_analyze._facts_at_once``, issue 16): the facts, warnings included,
and whether the parsed certificate is handed on, are exactly those of the field-by-field
reading, for good certificates and broken ones alike."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from hypothesis import given, settings
from hypothesis import strategies as st

from chainscan.analysis import _analyze
from tests.pki import der_int, der_tlv, mutate_tbs, split_der
from tests.test_analyze import all_good_certs, ec_leaf, intermediate, root


def _broken() -> list[bytes]:
    leaf = ec_leaf()
    negative = mutate_tbs(leaf.der, intermediate().key, lambda el: [el[0], der_int(-5), *el[2:]])
    bogus = x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x01\x02garbage")
    bad_bc = root().issue("bad-bc.example", extra_extensions=[(bogus, True)]).der

    def break_spki(elements: list[bytes]) -> list[bytes]:
        spki_index = 6 if elements[0][0] == 0xA0 else 5
        _alg, bits = split_der(elements[spki_index])
        unknown_alg = der_tlv(0x30, der_tlv(0x06, bytes.fromhex("2a0304")))
        elements[spki_index] = der_tlv(0x30, unknown_alg + bits)
        return elements

    unknown_key = mutate_tbs(leaf.der, intermediate().key, break_spki)
    known = bytes.fromhex("06082a8648ce3d040302")
    odd_signature = root().der.replace(known, bytes.fromhex("06082a8648ce3d040309"))
    return [negative, bad_bc, unknown_key, odd_signature, b"", b"\x30\x03\x02\x01\x01"]


def _field_by_field(der: bytes, monkeypatch: pytest.MonkeyPatch) -> _analyze.Loaded:
    with monkeypatch.context() as patch:
        patch.setattr(_analyze, "_facts_at_once", lambda *args, **kwargs: None)
        return _analyze.load_and_analyze(der)


def _same(der: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = _analyze.load_and_analyze(der)
    careful = _field_by_field(der, monkeypatch)
    assert quick.facts == careful.facts
    assert (quick.cert is None) == (careful.cert is None)


# A count, not len(all_good_certs()): building the shared PKI at collection would take keys of
# ``tests.pki``'s RSA pool before test_analyze's own tests, whose stranger keys must differ.
@pytest.mark.parametrize("index", range(7))
def test_good_certificates_are_read_at_once_with_the_same_facts(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(all_good_certs()) == 7
    der = all_good_certs()[index]
    cert = x509.load_der_x509_certificate(der)
    assert _analyze._facts_at_once(cert, sha256="s", sha1="t", size=1) is not None
    _same(der, monkeypatch)


@pytest.mark.parametrize("index", range(6))
def test_broken_certificates_get_the_field_by_field_facts(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    der = _broken()[index]
    facts = _analyze.load_and_analyze(der).facts
    assert facts.parse_error is not None  # each of them is broken somewhere
    _same(der, monkeypatch)


@settings(max_examples=200)
@given(st.data())
def test_corrupted_certificates_get_the_same_facts_both_ways(data: st.DataObject) -> None:
    der = bytearray(data.draw(st.sampled_from(all_good_certs())))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _same(bytes(der), monkeypatch)
