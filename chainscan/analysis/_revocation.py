"""Revocation: what a CRL or an OCSP response says about a leaf, and the verdict. Pure.

Theory of operation
-------------------
The scan layer (``scan._revocation``) fetches the leaf's CRL distribution point and/or asks its
OCSP responder, and hands the bytes to :func:`read_crl` / :func:`read_ocsp` here. They check,
without any network:

* **CRL**: it parses; its issuer is the leaf's issuer; its signature verifies with the issuer's
  key (legacy hashes included); then the leaf's serial number is looked up. A CRL is parsed and
  checked once per (CRL, issuer) and turned into a set of serial numbers
  (:class:`CrlIndex`), so the thousands of leaves that share one CRL cost one parse and one
  signature check, then a dictionary lookup each.
* **OCSP**: the response is ``successful``; it is about this certificate (serial and issuer key
  hash); it is signed by the issuer itself, or by a responder certificate the issuer signed
  that carries the OCSPSigning extended key usage (RFC 6960 4.2.2.2).

Each gives a :class:`~chainscan._models.RevocationCheck` (frozen, it travels in the
``ScanResult``): its status (``good``, ``revoked``, ``unknown``), dates, or an error. The
verdict (:func:`verdict`), made when the manifest entry is written (``now``):

* ``revoked``: a check whose signature verified says revoked (a revocation is final, so even a
  stale CRL that lists the leaf counts); the ``revoked`` problem (error) gives the date and
  reason.
* ``good``: a check whose signature verified says good and is fresh (``now`` before its
  nextUpdate, and not before its thisUpdate).
* ``unknown`` otherwise: nothing answered, answers were stale, badly signed, or the responder
  did not know the certificate. Never silently "fine": the ``revocation-unknown`` problem
  (warning) says why.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from .._models import RevocationCheck
from ._analyze import signature_verifies
from ._problems import Problem

__all__ = ["CrlIndex", "read_crl", "read_ocsp", "verdict"]

_SKEW = dt.timedelta(minutes=5)
"""Clock skew tolerated on thisUpdate."""
_INDEX_CACHE = 64


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _reason(value: x509.ReasonFlags | None) -> str | None:
    return None if value is None else value.value


@dataclass(frozen=True, slots=True)
class CrlIndex:
    """One CRL, checked against one issuer: its dates and its revoked serials."""

    error: str | None
    this_update: str | None
    next_update: str | None
    revoked: dict[int, tuple[str | None, str | None]]
    """serial -> (revocation date, reason)."""


_crl_lock = threading.Lock()
_crl_cache: OrderedDict[tuple[str, str], CrlIndex] = OrderedDict()
_crl_seen: dict[int, tuple[bytes, bytes, CrlIndex]] = {}
"""The same CRL ``bytes`` object (and issuer) seen before: found without hashing it."""


def _index_crl(data: bytes, issuer: x509.Certificate) -> CrlIndex:
    try:
        crl = (
            x509.load_pem_x509_crl(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_crl(data)
        )
    except Exception:
        return CrlIndex("not a CRL", None, None, {})
    this_update = _iso(crl.last_update_utc)
    next_update = _iso(crl.next_update_utc)
    if crl.issuer != issuer.subject:
        return CrlIndex("the CRL is not the leaf issuer's", this_update, next_update, {})
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        return CrlIndex(
            "the CRL's signature does not verify with the issuer's key",
            this_update,
            next_update,
            {},
        )
    revoked: dict[int, tuple[str | None, str | None]] = {}
    for entry in crl:
        reason = None
        with contextlib.suppress(Exception):
            reason = _reason(entry.extensions.get_extension_for_class(x509.CRLReason).value.reason)
        revoked[entry.serial_number] = (_iso(entry.revocation_date_utc), reason)
    return CrlIndex(None, this_update, next_update, revoked)


def crl_index(data: bytes, issuer: x509.Certificate) -> CrlIndex:
    """The checked CRL (cached per run by the CRL's and the issuer's SHA-256). Thread-safe.

    The fetcher hands every leaf of a CRL the very same ``bytes`` object, so a CRL already seen
    is found by identity first, without hashing megabytes again per leaf.
    """
    issuer_der = issuer.public_bytes(serialization.Encoding.DER)
    with _crl_lock:
        seen = _crl_seen.get(id(data))
        if seen is not None and seen[0] is data and seen[1] == issuer_der:
            return seen[2]
    key = (hashlib.sha256(data).hexdigest(), hashlib.sha256(issuer_der).hexdigest())
    with _crl_lock:
        known = _crl_cache.get(key)
        if known is not None:
            _crl_cache.move_to_end(key)
            _crl_seen[id(data)] = (data, issuer_der, known)
            return known
    index = _index_crl(data, issuer)
    with _crl_lock:
        _crl_cache[key] = index
        while len(_crl_cache) > _INDEX_CACHE:
            _crl_cache.popitem(last=False)
        _crl_seen[id(data)] = (data, issuer_der, index)  # holds ``data``: its id stays its own
        while len(_crl_seen) > _INDEX_CACHE:
            _crl_seen.pop(next(iter(_crl_seen)))
    return index


def read_crl(
    url: str, data: bytes, leaf: x509.Certificate, issuer: x509.Certificate
) -> RevocationCheck:
    """What the CRL at ``url`` says about ``leaf``."""
    index = crl_index(data, issuer)
    if index.error is not None:
        return RevocationCheck(
            source="crl",
            url=url,
            error=index.error,
            this_update=index.this_update,
            next_update=index.next_update,
        )
    entry = index.revoked.get(leaf.serial_number)
    return RevocationCheck(
        source="crl",
        url=url,
        status="good" if entry is None else "revoked",
        revoked_at=None if entry is None else entry[0],
        reason=None if entry is None else entry[1],
        this_update=index.this_update,
        next_update=index.next_update,
    )


def ocsp_request(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER OCSP request for ``leaf`` (SHA-1 CertID, as responders expect)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _verify_tbs(key: Any, signature: bytes, data: bytes, algorithm: Any) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            key.verify(signature, data)
    except Exception:
        return False
    return True


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The issuer, or a delegated responder certificate it issued for OCSP signing.

    The responder is named by its key hash (SHA-1 of the public key bits, which is what
    ``SubjectKeyIdentifier.from_public_key`` computes) or by its subject name.
    """
    by_key = response.responder_key_hash
    by_name = response.responder_name
    ski = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    if (by_key is not None and by_key == ski) or (
        by_name is not None and by_name == issuer.subject
    ):
        return issuer
    for cert in response.certificates:
        key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        if (by_key is not None and by_key != key_id) or (
            by_name is not None and by_name != cert.subject
        ):
            continue
        if cert.issuer != issuer.subject or not signature_verifies(cert, issuer):
            continue
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage:
            return cert
    return None


def read_ocsp(
    url: str, data: bytes, leaf: x509.Certificate, issuer: x509.Certificate
) -> RevocationCheck:
    """What the OCSP response from ``url`` says about ``leaf``."""

    def failed(error: str, **dates: str | None) -> RevocationCheck:
        return RevocationCheck(source="ocsp", url=url, error=error, **dates)

    try:
        response = ocsp.load_der_ocsp_response(data)
    except Exception:
        return failed("not an OCSP response")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return failed(f"the responder answered {response.response_status.name.lower()}")
    dates = {
        "this_update": _iso(response.this_update_utc),
        "next_update": _iso(response.next_update_utc),
    }
    if response.serial_number != leaf.serial_number:
        return failed("the response is about another certificate", **dates)
    signer = _ocsp_signer(response, issuer)
    if signer is None:
        return failed(
            "the response is signed by neither the issuer nor its OCSP responder", **dates
        )
    if not _verify_tbs(
        signer.public_key(),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
    ):
        return failed("the response's signature does not verify", **dates)
    status = response.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        return RevocationCheck(
            source="ocsp",
            url=url,
            status="revoked",
            revoked_at=_iso(response.revocation_time_utc),
            reason=_reason(response.revocation_reason),
            **dates,
        )
    return RevocationCheck(
        source="ocsp",
        url=url,
        status="good" if status == ocsp.OCSPCertStatus.GOOD else "unknown",
        **dates,
    )


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stale(check: RevocationCheck, now: dt.datetime) -> str | None:
    this_update, next_update = _parse(check.this_update), _parse(check.next_update)
    if this_update is not None and this_update - _SKEW > now:
        return f"its thisUpdate {check.this_update} is in the future"
    if next_update is not None and next_update < now:
        return f"it is stale (nextUpdate {check.next_update})"
    return None


def verdict(
    checks: tuple[RevocationCheck, ...], now: dt.datetime, label: str
) -> tuple[dict[str, Any], list[Problem]]:
    """The entry's ``revocation`` object and its problems (``revoked``, ``revocation-unknown``)."""
    listed = []
    why: list[str] = []
    final: RevocationCheck | None = None
    status = "unknown"
    for check in checks:
        stale = None if check.error or check.status is None else _stale(check, now)
        listed.append(
            {
                "source": check.source,
                "url": check.url,
                "status": check.status,
                "error": check.error or stale,
                "this_update": check.this_update,
                "next_update": check.next_update,
            }
        )
        if check.error:
            why.append(f"{check.source} {check.url}: {check.error}")
        elif check.status == "revoked":
            status, final = "revoked", check
            break
        elif stale is not None:
            why.append(f"{check.source} {check.url}: {stale}")
        elif check.status == "good" and status != "good":
            status, final = "good", check
        elif check.status == "unknown":
            why.append(f"{check.source} {check.url}: the responder does not know the certificate")
    if not checks:
        why.append("no CRL or OCSP URL answered")
    problems = []
    if status == "revoked" and final is not None:
        reason = f" ({final.reason})" if final.reason else ""
        problems.append(
            Problem(
                code="revoked",
                position=0,
                message=f"leaf {label} was revoked on {final.revoked_at or '?'}{reason}, "
                f"says the {final.source.upper()} at {final.url}",
            )
        )
    elif status == "unknown":
        problems.append(
            Problem(
                code="revocation-unknown",
                position=0,
                message=f"the revocation status of leaf {label} is unknown: " + "; ".join(why),
            )
        )
    return {
        "status": status,
        "source": None if final is None else final.source,
        "revoked_at": None if final is None else final.revoked_at,
        "reason": None if final is None else final.reason,
        "checks": listed,
    }, problems
