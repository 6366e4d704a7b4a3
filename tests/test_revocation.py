"""Revocation from a CRL and an OCSP responder on loopback (``--revocation``, issue 12).

Cases: good, revoked (with date and reason), the responder does not know the certificate,
stale, badly signed, and the server down, for the CRL and the OCSP responder; ``both`` falling
back from a dead CRL to OCSP; and many leaves sharing one CRL, which is fetched once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from chainscan.output._output import read_manifest_entries
from tests.http_servers import HttpServer, Route
from tests.inventory_fleet import run
from tests.pki import CA, Issued
from tests.servers import TLSServer, refused_port, served_chain

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "8", "-q"]
ALLOW = ["--fetch-allow", "127.0.0.1/32"]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
REVOKED_AT = NOW - 3 * DAY


def crl(issuer: CA, revoked: list[Issued], *, next_update: dt.datetime, key: Any = None) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW - DAY)
        .next_update(next_update)
    )
    for leaf in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(leaf.cert.serial_number)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
            .build()
        )
    signed = builder.sign(key or issuer.key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.DER)


def ocsp_response(
    leaf: Issued,
    issuer: CA,
    status: ocsp.OCSPCertStatus,
    *,
    next_update: dt.datetime | None = None,
    signer: CA | None = None,
) -> bytes:
    signer = signer or issuer
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=NOW - DAY,
        next_update=next_update or NOW + 3 * DAY,
        revocation_time=REVOKED_AT if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=x509.ReasonFlags.superseded
        if status == ocsp.OCSPCertStatus.REVOKED
        else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    response = builder.sign(signer.key, hashes.SHA256())  # type: ignore[arg-type]
    return response.public_bytes(serialization.Encoding.DER)


def extensions(crl_url: str | None, ocsp_url: str | None) -> list[x509.ExtensionType]:
    out: list[x509.ExtensionType] = []
    if crl_url:
        out.append(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            )
        )
    if ocsp_url:
        out.append(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            )
        )
    return out


@dataclass
class Scans:
    crl: dict[str, dict[str, Any]]
    ocsp: dict[str, dict[str, Any]]
    both: dict[str, dict[str, Any]]
    http: HttpServer


def scan(tmp: Path, hosts: list[str], port: int, root: CA, *extra: str) -> dict[str, Any]:
    tmp.mkdir()
    store = tmp / "root.pem"
    store.write_bytes(root.pem)
    listing = tmp / "hosts.txt"
    listing.write_text("".join(f"{h}:{port}{{127.0.0.1}}\n" for h in hosts))
    code, _out, err = run(
        str(listing), "-o", str(tmp / "out"), "--trust-store", str(store), *FAST, *extra
    )
    assert code == 0, err
    return {e["sni"]: e for e in read_manifest_entries(tmp / "out" / "manifest.json")}


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("revocation")
    root = CA("revocation root")
    inter = root.child_ca("revocation intermediate", key_type="rsa")
    impostor = CA("revocation intermediate", key_type="rsa")  # same name, another key
    down = f"http://127.0.0.1:{refused_port()}/x"
    with HttpServer({}) as http:
        leaves: dict[str, Issued] = {}
        plan = {
            # name: (crl path, ocsp path)
            "good.test": ("/inter.crl", "/ocsp/good"),
            "revoked.test": ("/inter.crl", "/ocsp/revoked"),
            "unknown.test": (None, "/ocsp/unknown"),
            "stale.test": ("/stale.crl", "/ocsp/stale"),
            "forged.test": ("/forged.crl", "/ocsp/forged"),
            "down.test": (down, down),
            "fallback.test": (down, "/ocsp/fallback"),
        }
        for i in range(20):
            plan[f"shared{i}.test"] = ("/inter.crl", None)
        for name, (crl_path, ocsp_path) in plan.items():
            leaves[name] = inter.issue(
                name,
                extra_extensions=extensions(
                    crl_path if crl_path is None or "://" in crl_path else http.url(crl_path),
                    ocsp_path if ocsp_path is None or "://" in ocsp_path else http.url(ocsp_path),
                ),
            )
        later = NOW + 3 * DAY
        good = ocsp.OCSPCertStatus.GOOD
        http.routes.update(
            {
                "/inter.crl": Route(body=crl(inter, [leaves["revoked.test"]], next_update=later)),
                "/stale.crl": Route(body=crl(inter, [], next_update=NOW - DAY)),
                "/forged.crl": Route(body=crl(inter, [], next_update=later, key=impostor.key)),
                "/ocsp/good": Route(body=ocsp_response(leaves["good.test"], inter, good)),
                "/ocsp/revoked": Route(
                    body=ocsp_response(leaves["revoked.test"], inter, ocsp.OCSPCertStatus.REVOKED)
                ),
                "/ocsp/unknown": Route(
                    body=ocsp_response(leaves["unknown.test"], inter, ocsp.OCSPCertStatus.UNKNOWN)
                ),
                "/ocsp/stale": Route(
                    body=ocsp_response(leaves["stale.test"], inter, good, next_update=NOW - DAY)
                ),
                "/ocsp/forged": Route(
                    body=ocsp_response(leaves["forged.test"], inter, good, signer=impostor)
                ),
                "/ocsp/fallback": Route(body=ocsp_response(leaves["fallback.test"], inter, good)),
            }
        )
        chains = {name: served_chain(tmp, leaf, inter) for name, leaf in leaves.items()}
        with TLSServer(chains) as tls:
            names = list(chains)
            by_crl = scan(tmp / "crl", names, tls.port, root, *ALLOW)
            by_ocsp = scan(tmp / "ocsp", names, tls.port, root, *ALLOW, "--revocation", "ocsp")
            by_both = scan(tmp / "both", names, tls.port, root, *ALLOW, "--revocation", "both")
        yield Scans(crl=by_crl, ocsp=by_ocsp, both=by_both, http=http)


def codes(entry: dict[str, Any]) -> list[str]:
    return [p["code"] for p in entry["problems"]]


def test_crl_good_and_revoked(scans: Scans) -> None:
    good = scans.crl["good.test"]
    assert good["revocation"]["status"] == "good" and good["revocation"]["source"] == "crl"
    assert good["trust"]["trusted"] is True and codes(good) == []
    revoked = scans.crl["revoked.test"]
    assert revoked["revocation"]["status"] == "revoked"
    assert revoked["revocation"]["reason"] == "keyCompromise"
    assert revoked["revocation"]["revoked_at"] == REVOKED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert revoked["trust"]["trusted"] is False and codes(revoked) == ["revoked"]
    message = revoked["problems"][0]["message"]
    assert REVOKED_AT.strftime("%Y-%m-%d") in message and "keyCompromise" in message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("stale.test", "stale"),
        ("forged.test", "signature does not verify"),
        ("down.test", "cannot connect"),
    ],
)
def test_crl_answers_that_cannot_be_used_are_unknown(scans: Scans, name: str, why: str) -> None:
    entry = scans.crl[name]
    assert entry["revocation"]["status"] == "unknown"
    assert codes(entry) == ["revocation-unknown"]
    assert why in entry["problems"][0]["message"]
    assert entry["trust"]["trusted"] is True  # unknown is a warning: clients soft-fail


def test_no_crl_published_means_no_field_in_crl_mode(scans: Scans) -> None:
    assert "revocation" not in scans.crl["unknown.test"]  # it has OCSP only


def test_thousands_of_leaves_share_one_crl_download(scans: Scans) -> None:
    for i in range(20):
        assert scans.crl[f"shared{i}.test"]["revocation"]["status"] == "good"
    # three scans (crl, ocsp, both); the ocsp one asks no CRL: one download per scan
    assert scans.http.requests["/inter.crl"] == 2


@pytest.mark.parametrize(
    ("name", "status", "code", "why"),
    [
        ("good.test", "good", None, None),
        ("revoked.test", "revoked", "revoked", "superseded"),
        ("unknown.test", "unknown", "revocation-unknown", "does not know"),
        ("stale.test", "unknown", "revocation-unknown", "stale"),
        ("forged.test", "unknown", "revocation-unknown", "neither the issuer"),
        ("down.test", "unknown", "revocation-unknown", "cannot connect"),
    ],
)
def test_ocsp(scans: Scans, name: str, status: str, code: str | None, why: str | None) -> None:
    entry = scans.ocsp[name]
    assert entry["revocation"]["status"] == status
    assert codes(entry) == ([code] if code else [])
    if why:
        assert why in entry["problems"][0]["message"]
    assert [c["source"] for c in entry["revocation"]["checks"]] == ["ocsp"]


def test_both_asks_ocsp_when_the_crl_gave_nothing(scans: Scans) -> None:
    entry = scans.both["fallback.test"]
    assert [c["source"] for c in entry["revocation"]["checks"]] == ["crl", "ocsp"]
    assert entry["revocation"]["status"] == "good" and entry["revocation"]["source"] == "ocsp"
    good = scans.both["good.test"]
    assert [c["source"] for c in good["revocation"]["checks"]] == ["crl"]  # CRL first, enough


def test_diff_says_when_a_host_becomes_revoked(tmp_path: Path) -> None:
    from tests.inventory_fleet import RenewableServer

    root = CA("diff revocation root")
    inter = root.child_ca("diff revocation intermediate", key_type="rsa")
    with HttpServer({}) as http:
        leaf = inter.issue("r.test", extra_extensions=extensions(http.url("/c.crl"), None))
        later = NOW + 3 * DAY
        http.routes["/c.crl"] = Route(body=crl(inter, [], next_update=later))
        server = RenewableServer({"r.test": served_chain(tmp_path, leaf, inter)})
        with server as tls:
            scan(tmp_path / "old", ["r.test"], tls.port, root, *ALLOW)
            http.routes["/c.crl"] = Route(body=crl(inter, [leaf], next_update=later))
            scan(tmp_path / "new", ["r.test"], tls.port, root, *ALLOW)
    code, out, err = run(
        "diff", str(tmp_path / "old" / "out"), str(tmp_path / "new" / "out"), "--json"
    )
    assert code == 0, err
    changes = {c["kind"]: c["message"] for c in json.loads(out)["changes"]}
    assert "keyCompromise" in changes["newly-revoked"]
    assert "newly-untrusted" in changes and changes["new-problems"] == "revoked"
