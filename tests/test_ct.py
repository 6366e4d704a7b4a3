"""Certificate Transparency: embedded SCTs parsed, and the 2-or-3 rule under a public root.

The test root is made "public" by building the trust store with ``public=True`` (what
``certifi`` and ``system`` are); with ``--trust-store FILE`` (``public`` false) no CT problem
is ever raised.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509

from chainscan import ScanResult, Status, Target
from chainscan.analysis._inventory import Inventory
from chainscan.analysis._verify import TrustStore
from tests.pki import CA, der_tlv

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def sct(log: int, when: dt.datetime) -> bytes:
    """One v1 SCT (RFC 6962 3.2), TLS-encoded; the signature is a placeholder (not checked)."""
    millis = int(when.timestamp() * 1000)
    signature = b"\x30\x06\x02\x01\x01\x02\x01\x01"
    return (
        b"\x00"
        + hashlib.sha256(f"log {log}".encode()).digest()
        + millis.to_bytes(8, "big")
        + b"\x00\x00"  # no extensions
        + b"\x04\x03"  # sha256, ecdsa
        + len(signature).to_bytes(2, "big")
        + signature
    )


def sct_extension(count: int, when: dt.datetime) -> x509.UnrecognizedExtension:
    items = b"".join(len(s).to_bytes(2, "big") + s for s in (sct(i, when) for i in range(count)))
    tls = len(items).to_bytes(2, "big") + items
    return x509.UnrecognizedExtension(SCT_OID, der_tlv(0x04, tls))


@pytest.fixture(scope="module")
def pki() -> tuple[CA, CA]:
    root = CA("ct root")
    return root, root.child_ca("ct intermediate")


def entry(pki: tuple[CA, CA], count: int | None, days: int, *, public: bool) -> dict:  # type: ignore[type-arg]
    root, inter = pki
    start = NOW - 10 * DAY
    extra = [] if count is None else [sct_extension(count, start)]
    leaf = inter.issue(
        "ct.example", not_before=start, not_after=start + days * DAY, extra_extensions=extra
    )
    store = TrustStore.from_pem(root.pem, name="test", source="test")
    store.public = public
    inventory = Inventory(store, clock=lambda: NOW)
    result = ScanResult(
        target=Target(host="ct.example", port=443, sni="ct.example"),
        status=Status.OK,
        chain=(leaf.der, inter.der),
    )
    return inventory.entry_fields(result)


@pytest.mark.parametrize(
    ("count", "days", "codes"),
    [
        (None, 90, ["no-sct"]),  # no SCT extension at all
        (0, 90, ["no-sct"]),
        (1, 90, ["too-few-scts"]),
        (2, 90, []),
        (3, 90, []),
        (2, 365, ["too-few-scts"]),  # longer than 180 days: 3 needed
        (3, 365, []),
    ],
)
def test_the_sct_rule_under_a_public_root(
    pki: tuple[CA, CA], count: int | None, days: int, codes: list[str]
) -> None:
    fields = entry(pki, count, days, public=True)
    assert fields["trust"]["trusted"] is True  # CT problems are warnings: trust stands
    assert [p["code"] for p in fields["problems"]] == codes
    for problem in fields["problems"]:
        assert problem["severity"] == "warning" and problem["position"] == 0
    ct = fields["ct"]
    assert len(ct["scts"]) == (count or 0) and ct["logs"] == (count or 0)
    assert ct["required"] == (2 if days <= 180 else 3)
    for item in ct["scts"]:
        assert item["timestamp"] == "2026-05-22T00:00:00.000Z"
        assert len(item["log_id"]) == 44  # base64 of 32 bytes


@pytest.mark.parametrize("count", [None, 0, 1, 2, 3])
def test_a_private_trust_store_never_gets_a_ct_problem(
    pki: tuple[CA, CA], count: int | None
) -> None:
    fields = entry(pki, count, 90, public=False)
    assert fields["problems"] == []
    if count is None:
        assert "ct" not in fields  # nothing to say: the entry is as before
    else:
        assert fields["ct"]["required"] is None and len(fields["ct"]["scts"]) == count


def test_the_default_stores_are_public() -> None:
    root = CA("ct public root")
    assert TrustStore.from_pem(root.pem, name="certifi", source="x").public
    assert TrustStore.from_pem(root.pem, name="system", source="x").public
    assert not TrustStore.from_pem(root.pem, name="/etc/my-ca.pem", source="x").public
