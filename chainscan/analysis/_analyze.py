"""Pure certificate analysis: DER bytes in, :class:`~chainscan._models.CertFacts` out.

No I/O happens here. ``analyze_der`` is the one entry point used by the writer (manifest
entries) and by ``inspect`` / ``pins`` / ``diff``, which read DER files back.

Theory of operation
-------------------

A scan sees hostile and broken certificates, so ``analyze_der`` never raises, whatever the
bytes. It works in three layers, each of which degrades separately:

1. Fingerprints (``sha256``, ``sha1``, ``size``) come from ``hashlib`` over the raw bytes and
   always succeed: a certificate that nothing can parse can still be named and diffed.
2. ``x509.load_der_x509_certificate`` parses the outer structure. If it refuses (not DER, not
   a certificate, truncated), the facts carry only the fingerprints and ``parse_error``.
3. ``cryptography`` parses several parts lazily (extensions, the public key, the dates), so
   a certificate that loads can still fail when a field is read: a garbage basicConstraints
   value, a duplicate extension, a key algorithm it does not know. Each field is read on its
   own; what works is filled in, and ``parse_error`` names each field that failed, e.g.
   ``extensions: error parsing asn1 value: ...``.
   Reading every field behind its own guard costs; so the fields are first read at once
   (``_facts_at_once``: the same reads, in the same order, under one guard), and only a
   certificate where one of them raises is read again field by field to say which. The facts
   are the same either way (``tests/test_analyze_at_once.py``).

Some defects make ``cryptography`` *warn* rather than raise (today: a serial number that is
zero or negative, which RFC 5280 forbids and a future release will refuse). Those warnings are
recorded into ``parse_error`` too (``warning: ...``) instead of going to stderr once per scan,
or, under ``-W error``, turning into an exception at load time and hiding every field. Recording
warnings means ``warnings.catch_warnings``, which swaps process-global state; a module lock keeps
concurrent ``analyze_der`` calls (e.g. from worker threads) from corrupting each other's swap.

``self_signed`` first tries ``Certificate.verify_directly_issued_by``. That refuses legacy
signature hashes (SHA-1, MD5: ``ValueError('Unsupported signature algorithm')``), which are
exactly the old roots a scan finds, so on refusal the signature is checked by hand with the
certificate's own public key, hash and padding.

The same intermediates appear in thousands of chains, so results are cached (LRU, keyed by the
DER bytes); ``CertFacts`` is frozen, so sharing one instance is safe. ``load_and_analyze`` is the
uncached form for callers that also need the parsed certificate (``_verify``: trust and the
walk), so a leaf is parsed once for both its facts and its signature checks.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import re
import threading
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from .._models import CertFacts

__all__ = [
    "Loaded",
    "analyze_der",
    "basic_constraints_ca",
    "common_name",
    "der_to_pem",
    "describe_error",
    "describe_key",
    "load_and_analyze",
    "pem_to_der_list",
    "san_names",
    "spki_digest",
]

_T = TypeVar("_T")
_S = TypeVar("_S")

_CACHE_SIZE = 4096
_MAX_MESSAGE = 200
"""Longest text kept from one exception or warning message."""

_warnings_lock = threading.Lock()


def analyze_der(der: bytes) -> CertFacts:
    """Facts about one DER certificate; never raises (problems go to ``parse_error``).

    Results are cached by the DER bytes (LRU, 4096 entries).
    """
    return _analyze_cached(bytes(der))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _analyze_cached(der: bytes) -> CertFacts:
    return load_and_analyze(der).facts


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    """One certificate parsed once: its facts, and the parsed object for checking signatures."""

    facts: CertFacts
    """Exactly what :func:`analyze_der` says about the same bytes."""
    cert: x509.Certificate | None
    """None when ``cryptography`` cannot load it, or cannot read its subject or issuer (such
    a certificate cannot be placed in a path). ``cryptography`` keeps the names it parsed on
    the object, so the names read for the facts serve the path checks too."""


def load_and_analyze(der: bytes) -> Loaded:
    """:func:`analyze_der`'s facts and the parsed certificate, from one parse; never raises.

    Not cached: for certificates seen once (leaves) or cached by the caller.
    """
    der = bytes(der)
    sha256 = hashlib.sha256(der).hexdigest()
    sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    cert: x509.Certificate | None = None
    reader: _Reader | None = None
    at_once = False
    try:
        with _warnings_lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cert = x509.load_der_x509_certificate(der)
            except Exception as exc:
                facts = CertFacts(
                    sha256=sha256,
                    sha1=sha1,
                    size=len(der),
                    parse_error=f"not a parsable certificate: {describe_error(exc)}",
                )
                return Loaded(facts, None)
            quick = _facts_at_once(cert, sha256=sha256, sha1=sha1, size=len(der))
            if quick is not None:
                facts, at_once = quick, True
            else:  # a field failed: read each on its own, to name the ones that did
                reader = _Reader(cert)
                facts = reader.facts(sha256=sha256, sha1=sha1, size=len(der))
        # dict.fromkeys: the same warning may fire more than once (at load and on access).
        notes = list(dict.fromkeys(f"warning: {_clip(str(w.message))}" for w in caught))
        if notes:
            parse_error = "; ".join(([facts.parse_error] if facts.parse_error else []) + notes)
            facts = dataclasses.replace(facts, parse_error=parse_error)
    except Exception as exc:  # a bug of ours or of a dependency: still no exception out
        facts = CertFacts(
            sha256=sha256,
            sha1=sha1,
            size=len(der),
            parse_error=f"internal error while analysing: {describe_error(exc)}",
        )
    names_read = at_once or (reader is not None and reader.names_read)
    if cert is None or names_read or _names_readable(cert):
        return Loaded(facts, cert)
    return Loaded(facts, None)


def _names_readable(cert: x509.Certificate) -> bool:
    """Subject and issuer can be read (checked when the analysis stopped before reading them)."""
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a negative serial warns; here it must not raise
        try:
            _names = (cert.subject, cert.issuer)
        except Exception:
            return False
    return True


def _facts_at_once(
    cert: x509.Certificate, *, sha256: str, sha1: str, size: int
) -> CertFacts | None:
    """:meth:`_Reader.facts` for a certificate whose fields all read: the same reads in the
    same order, without a guard around each; None as soon as one raises (the caller then
    reads them one by one). Nearly every certificate takes this way, and it costs about a
    sixth less than the guarded one (a leaf is analysed once per target)."""
    try:
        subject = cert.subject
        issuer = cert.issuer
        extensions = cert.extensions
        public_key = cert.public_key()
        key_type, key_size, curve = describe_key(public_key)
        return CertFacts(
            sha256=sha256,
            sha1=sha1,
            size=size,
            subject=subject.rfc4514_string(),
            issuer=issuer.rfc4514_string(),
            cn=common_name(subject),
            sans=san_names(extensions) or (),
            serial=f"{cert.serial_number:x}",
            not_before=_iso(cert.not_valid_before_utc),
            not_after=_iso(cert.not_valid_after_utc),
            signature_algorithm=_sig_name(cert),
            key_type=key_type,
            key_size=key_size,
            curve=curve,
            is_ca=basic_constraints_ca(extensions),
            self_signed=_self_signed(cert, subject, issuer),
            spki_sha256=spki_digest(public_key),
            parse_error=None,
        )
    except Exception:
        return None


class _Reader:
    """Reads the fields of one loaded certificate, each on its own, collecting failures."""

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert
        self.failures: list[str] = []
        self.names_read = False
        """:meth:`facts` has read both the subject and the issuer."""

    def attempt(self, field: str, read: Callable[[], _T]) -> _T | None:
        """``read()``, or None with the failure recorded under ``field``."""
        try:
            return read()
        except Exception as exc:
            self.failures.append(f"{field}: {describe_error(exc)}")
            return None

    def derive(self, field: str, source: _S | None, read: Callable[[_S], _T]) -> _T | None:
        """``read(source)``; None, and no second failure, when ``source`` already failed."""
        return None if source is None else self.attempt(field, lambda: read(source))

    def facts(self, *, sha256: str, sha1: str, size: int) -> CertFacts:
        cert = self.cert
        subject = self.attempt("subject", lambda: cert.subject)
        issuer = self.attempt("issuer", lambda: cert.issuer)
        names = (subject, issuer) if subject is not None and issuer is not None else None
        self.names_read = names is not None
        extensions = self.attempt("extensions", lambda: cert.extensions)
        public_key = self.attempt("public_key", cert.public_key)
        key_type, key_size, curve = describe_key(public_key)
        return CertFacts(
            sha256=sha256,
            sha1=sha1,
            size=size,
            subject=self.derive("subject", subject, x509.Name.rfc4514_string),
            issuer=self.derive("issuer", issuer, x509.Name.rfc4514_string),
            cn=self.derive("cn", subject, common_name),
            sans=self.derive("sans", extensions, san_names) or (),
            serial=self.attempt("serial", lambda: f"{cert.serial_number:x}"),
            not_before=self.attempt("not_before", lambda: _iso(cert.not_valid_before_utc)),
            not_after=self.attempt("not_after", lambda: _iso(cert.not_valid_after_utc)),
            signature_algorithm=self.attempt("signature_algorithm", lambda: _sig_name(cert)),
            key_type=key_type,
            key_size=key_size,
            curve=curve,
            is_ca=self.derive("is_ca", extensions, basic_constraints_ca),
            self_signed=self.derive("self_signed", names, lambda n: _self_signed(cert, *n)),
            spki_sha256=(
                None
                if public_key is None
                else self.attempt("spki_sha256", lambda: spki_digest(public_key))
            ),
            parse_error="; ".join(self.failures) or None,
        )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """An exception as ``Type: message``, the message on one line and clipped."""
    message = _clip(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _iso(moment: datetime) -> str:
    # isoformat always writes four year digits (strftime("%Y") does not for years < 1000).
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def common_name(name: x509.Name) -> str | None:
    """The first commonName of ``name`` (bytes values decoded leniently), or None."""
    for attribute in name.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def _format_general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return f"unknown:{name!r}"  # pragma: no cover - cryptography has no other GeneralName


def san_names(extensions: x509.Extensions) -> tuple[str, ...]:
    """subjectAltName entries as the manifest writes them (``DNS:name``, ``IP:addr``, ...)."""
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(_format_general_name(name) for name in san.value)


def basic_constraints_ca(extensions: x509.Extensions) -> bool | None:
    """The basicConstraints CA flag; None without the extension."""
    try:
        return extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return None


def _sig_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = oid._name  # OpenSSL-style short name; "Unknown OID" when cryptography has none
    return oid.dotted_string if not name or name == "Unknown OID" else name


def describe_key(key: CertificatePublicKeyTypes | None) -> tuple[str, int | None, str | None]:
    """(key_type, key_size in bits, curve name); ``unknown`` when the key cannot be read."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    # EdDSA sizes are the public key lengths (32 and 57 bytes), as commonly quoted.
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    return "unknown", None, None


def spki_digest(key: CertificatePublicKeyTypes) -> str:
    """The pin value: base64 SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def _self_signed(cert: x509.Certificate, subject: x509.Name, issuer: x509.Name) -> bool:
    return subject == issuer and signature_verifies(cert, cert)


def signature_verifies(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``parent``'s key verifies ``child``'s signature, whatever the hash (SHA-1, MD5 too).

    ``cryptography`` refuses to check legacy hashes; those are checked by hand here. Names are
    not compared: callers do that. Raises ``UnsupportedAlgorithm`` when the pair cannot be
    checked at all (an unknown key or signature algorithm).
    """
    common = _common_signature_verifies(child, parent)
    if common is not None:
        return common
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass  # refused, not failed: legacy hash or unusual algorithm; check by hand
    else:
        return True
    key = parent.public_key()
    signature, tbs = child.signature, child.tbs_certificate_bytes
    hash_algorithm = child.signature_hash_algorithm
    try:
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, tbs)
        elif hash_algorithm is None:
            raise UnsupportedAlgorithm("signature algorithm has no hash")
        elif isinstance(key, rsa.RSAPublicKey):
            # cryptography reports no parameters for legacy algorithms: PKCS#1 v1.5 then.
            params = child.signature_algorithm_parameters
            rsa_padding = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            key.verify(signature, tbs, rsa_padding, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, tbs, ec.ECDSA(hash_algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, tbs, hash_algorithm)
        else:
            raise UnsupportedAlgorithm(
                f"cannot check a {child.signature_algorithm_oid.dotted_string} signature "
                f"made with a {type(key).__name__}"
            )
    except InvalidSignature:
        return False
    return True


_COMMON_ECDSA: dict[x509.ObjectIdentifier, type[hashes.HashAlgorithm]] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: hashes.SHA256,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: hashes.SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: hashes.SHA512,
}
_COMMON_RSA: dict[x509.ObjectIdentifier, type[hashes.HashAlgorithm]] = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: hashes.SHA256,
    SignatureAlgorithmOID.RSA_WITH_SHA384: hashes.SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512: hashes.SHA512,
}


def _common_signature_verifies(child: x509.Certificate, parent: x509.Certificate) -> bool | None:
    """The check of :func:`signature_verifies` for the algorithms nearly every chain uses
    (ECDSA and RSA PKCS#1 v1.5 with SHA-2), made with the key ``cryptography`` keeps parsed on
    ``parent``; None for anything else, left to the general path.

    ``verify_directly_issued_by`` loads the issuer's key from its DER on every call, a third
    of the check's cost for a P-256 key. For these algorithms both ask OpenSSL the same
    question (and where that method refuses, the general path asks exactly this one), so the
    answer is the same; any surprise falls back to the general path.
    """
    try:
        oid = child.signature_algorithm_oid
        key = parent.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            ec_hash = _COMMON_ECDSA.get(oid)
            if ec_hash is None:
                return None
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(ec_hash()))
        elif isinstance(key, rsa.RSAPublicKey):
            rsa_hash = _COMMON_RSA.get(oid)
            if rsa_hash is None:
                return None
            key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), rsa_hash())
        else:
            return None
    except InvalidSignature:
        return False
    except Exception:
        return None
    return True


# --------------------------------------------------------------------------------------------
# PEM <-> DER

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----(?P<body>.*?)-----END CERTIFICATE-----", re.DOTALL
)


def pem_to_der_list(data: bytes) -> list[bytes]:
    """The DER bytes of every ``CERTIFICATE`` PEM block in ``data``, in order.

    The certificates are not parsed (so unparsable ones are returned too); text around and
    between blocks is ignored. Raises ``ValueError`` naming the block whose base64 is invalid.
    """
    ders = []
    for index, match in enumerate(_PEM_BLOCK.finditer(data), start=1):
        body = b"".join(match.group("body").split())
        try:
            ders.append(base64.b64decode(body, validate=True))
        except binascii.Error as exc:
            raise ValueError(f"PEM certificate block {index}: invalid base64 ({exc})") from None
    return ders


def der_to_pem(der: bytes) -> bytes:
    """One ``CERTIFICATE`` PEM block (64-column base64, as OpenSSL writes it)."""
    encoded = base64.b64encode(der)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return b"\n".join([b"-----BEGIN CERTIFICATE-----", *lines, b"-----END CERTIFICATE-----", b""])
