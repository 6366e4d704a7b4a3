"""An in-memory test PKI: root CAs, intermediates and leaves, built with ``cryptography``.

Modelled on trustme (``CA()``, ``create_child_ca()``, ``issue_cert()``), but with the knobs
chainscan's tests need and trustme does not have: RSA or ECDSA keys of a chosen size, the
signature hash (including legacy SHA-1 and MD5), explicit validity dates (expired
certificates), leaves without subjectAltName, extra or deliberately broken extensions, and raw
DER surgery on the to-be-signed part of a certificate.

Typical use::

    root = CA()
    inter = root.child_ca("chainscan test intermediate")
    leaf = inter.issue("localhost", "127.0.0.1")
    certfile, keyfile = write_server_files(tmp_path, leaf, inter)
    server_ctx.load_cert_chain(certfile, keyfile)
    client_ctx.load_verify_locations(cadata=root.issued.pem.decode())

Theory of operation
-------------------

Keys. ECDSA keys are generated fresh for every certificate (it takes microseconds). RSA and DSA
keys are slow to generate (tens to hundreds of milliseconds for 2048 bits), so they come from a
small module-level pool per (type, size): the first ``_POOL_SIZE`` requests generate keys and
later requests reuse them round-robin. Consecutive certificates therefore still get distinct
keys (a CA and the leaf it signs never share one by accident), but a long test session makes at
most a handful of keys per size. Pass ``key=`` to pin an exact key when a test needs two
certificates with the same (or a known) SubjectPublicKeyInfo.

Legacy signatures. ``cryptography`` (50.x) refuses to *sign certificates* with SHA-1 or MD5:
``CertificateBuilder.sign()`` raises ``UnsupportedAlgorithm('Hash algorithm "sha1" not
supported for signatures')``, for RSA and ECDSA alike. It still signs raw bytes with those
hashes, and still loads and verifies such certificates. So for a refused hash we build the
certificate with SHA-256, then swap the signature AlgorithmIdentifier (inside the TBS and in the
outer certificate) for the legacy one and re-sign the TBS bytes ourselves (see ``resign``). No
``openssl`` subprocess is needed. The smallest RSA key ``cryptography`` will generate is 1024
bits (512 raises ``ValueError``); 1024 works.

DER surgery. ``mutate_tbs`` hands a test the top-level elements of a certificate's
TBSCertificate as raw DER TLVs, lets it replace any of them (a negative serial number, a
garbage extension body) and re-signs the result, so tests can build certificates that OpenSSL
parses but ``cryptography`` refuses, without a hand-written ASN.1 encoder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA",
    "DEFAULT_NOT_AFTER",
    "DEFAULT_NOT_BEFORE",
    "Issued",
    "KeyType",
    "PrivateKey",
    "chain_pem",
    "der_int",
    "der_tlv",
    "make_key",
    "mutate_tbs",
    "resign",
    "split_der",
    "write_server_files",
]

PrivateKey = CertificateIssuerPrivateKeyTypes
"""Any key that can sign a certificate: RSA, EC, DSA, Ed25519, Ed448."""

KeyType = Literal["ec", "rsa", "dsa", "ed25519", "ed448"]

DEFAULT_NOT_BEFORE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
"""Default start of validity (fixed, so tests can assert on dates)."""
DEFAULT_NOT_AFTER = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
"""Default end of validity (fixed; encoded as GeneralizedTime)."""

_ORG = "chainscan tests"

# --------------------------------------------------------------------------------------------
# Keys


_POOL_SIZE = 4
_key_pools: dict[tuple[str, int], list[PrivateKey]] = {}
_key_turns: dict[tuple[str, int], itertools.count[int]] = {}

_CURVES: dict[int, ec.EllipticCurve] = {
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}


def _fresh_key(key_type: KeyType, key_size: int | None) -> PrivateKey:
    if key_type == "ec":
        size = 256 if key_size is None else key_size
        try:
            curve = _CURVES[size]
        except KeyError:
            raise ValueError(f"unsupported EC key size {size!r} (use 256, 384 or 521)") from None
        return ec.generate_private_key(curve)
    if key_type == "rsa":
        return rsa.generate_private_key(65537, 2048 if key_size is None else key_size)
    if key_type == "dsa":
        return dsa.generate_private_key(2048 if key_size is None else key_size)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unrecognized key type {key_type!r}")


def make_key(key_type: KeyType = "ec", key_size: int | None = None) -> PrivateKey:
    """A private key of the given type; RSA and DSA keys come from a small reused pool.

    ``key_size`` is the modulus size for RSA/DSA (default 2048) and picks the curve for EC
    (256 -> P-256, the default; 384 -> P-384; 521 -> P-521). It is ignored for Ed25519/Ed448.
    """
    if key_type not in ("rsa", "dsa"):
        return _fresh_key(key_type, key_size)
    slot = (key_type, 2048 if key_size is None else key_size)
    pool = _key_pools.setdefault(slot, [])
    turn = next(_key_turns.setdefault(slot, itertools.count()))
    if len(pool) < _POOL_SIZE:
        pool.append(_fresh_key(key_type, slot[1]))
        return pool[-1]
    return pool[turn % _POOL_SIZE]


# --------------------------------------------------------------------------------------------
# Minimal DER reading and writing (enough to re-sign a certificate)


def der_tlv(tag: int, content: bytes) -> bytes:
    """Encode one DER element: ``tag`` byte, definite length, ``content``."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def der_int(value: int) -> bytes:
    """Encode an INTEGER (two's complement, minimal length); negative values are allowed."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return der_tlv(0x02, value.to_bytes(size, "big", signed=True))


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, start of content, end of element) for the element at ``pos``."""
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    start = pos + 2 + count
    return tag, start, start + length


def split_der(data: bytes) -> list[bytes]:
    """Split the content of one constructed DER element into its children (each a full TLV)."""
    _tag, start, end = _read_tlv(data, 0)
    children = []
    pos = start
    while pos < end:
        _t, _s, child_end = _read_tlv(data, pos)
        children.append(data[pos:child_end])
        pos = child_end
    return children


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return der_tlv(0x06, bytes(body))


_NULL = b"\x05\x00"
_RSA_SIG_OIDS = {
    "md5": "1.2.840.113549.1.1.4",
    "sha1": "1.2.840.113549.1.1.5",
    "sha224": "1.2.840.113549.1.1.14",
    "sha256": "1.2.840.113549.1.1.11",
    "sha384": "1.2.840.113549.1.1.12",
    "sha512": "1.2.840.113549.1.1.13",
}
_ECDSA_SIG_OIDS = {
    "sha1": "1.2.840.10045.4.1",
    "sha224": "1.2.840.10045.4.3.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_DSA_SIG_OIDS = {
    "sha1": "1.2.840.10040.4.3",
    "sha224": "2.16.840.1.101.3.4.3.1",
    "sha256": "2.16.840.1.101.3.4.3.2",
}


def _algorithm_identifier(key: PrivateKey, hash: hashes.HashAlgorithm | None) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return der_tlv(0x30, _oid("1.3.101.112"))
    if isinstance(key, ed448.Ed448PrivateKey):
        return der_tlv(0x30, _oid("1.3.101.113"))
    if hash is None:
        raise ValueError(f"a hash algorithm is needed to sign with {type(key).__name__}")
    table: dict[str, str]
    if isinstance(key, rsa.RSAPrivateKey):
        table, params = _RSA_SIG_OIDS, _NULL
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        table, params = _ECDSA_SIG_OIDS, b""
    else:
        table, params = _DSA_SIG_OIDS, b""
    try:
        return der_tlv(0x30, _oid(table[hash.name]) + params)
    except KeyError:
        raise ValueError(
            f"no signature algorithm for {hash.name!r} with {type(key).__name__}"
        ) from None


def _sign(key: PrivateKey, data: bytes, hash: hashes.HashAlgorithm | None) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign(data)
    assert hash is not None
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hash)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hash))
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, hash)
    raise ValueError(f"cannot sign with {type(key).__name__}")


def _tbs_sigalg_index(tbs_elements: Sequence[bytes]) -> int:
    # TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, ... }
    return 2 if tbs_elements[0][0] == 0xA0 else 1


def mutate_tbs(
    der: bytes,
    signer: PrivateKey,
    edit: Callable[[list[bytes]], Iterable[bytes]] = list,
    *,
    hash: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008 - immutable
) -> bytes:
    """Rewrite a certificate's TBSCertificate and re-sign it with ``signer`` and ``hash``.

    ``edit`` receives the TBSCertificate's top-level elements as full DER TLVs, in order:
    ``[version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo,
    (issuerUniqueID), (subjectUniqueID), [3] extensions]``, and returns the new list. The
    signature AlgorithmIdentifier (inside the TBS and outside it) is set to match ``signer``
    and ``hash`` after ``edit`` runs. Returns the new certificate's DER; it is not parsed, so
    the result may well be something ``cryptography`` refuses to load.
    """
    tbs, _alg, _sig = split_der(der)
    elements = list(edit(split_der(tbs)))
    algid = _algorithm_identifier(signer, hash)
    elements[_tbs_sigalg_index(elements)] = algid
    new_tbs = der_tlv(0x30, b"".join(elements))
    signature = _sign(signer, new_tbs, hash)
    return der_tlv(0x30, new_tbs + algid + der_tlv(0x03, b"\x00" + signature))


def resign(der: bytes, signer: PrivateKey, hash: hashes.HashAlgorithm | None) -> bytes:
    """Re-sign a certificate unchanged but for the signature algorithm (e.g. SHA-1 or MD5)."""
    return mutate_tbs(der, signer, hash=hash)


# --------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if "://" in name:
        return x509.UniformResourceIdentifier(name)
    if "@" in name:
        return x509.RFC822Name(name)
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return x509.DNSName(name)


def _build(
    *,
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: CertificatePublicKeyTypes,
    signer: PrivateKey,
    hash: hashes.HashAlgorithm | None,
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(DEFAULT_NOT_BEFORE if not_before is None else not_before)
        .not_valid_after(DEFAULT_NOT_AFTER if not_after is None else not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    if isinstance(signer, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        hash = None
    try:
        return builder.sign(signer, hash)  # type: ignore[arg-type]  # SHA-1 etc. refused
    except UnsupportedAlgorithm:
        # cryptography will not sign certificates with SHA-1/MD5: build with SHA-256, then
        # swap the algorithm and re-sign the TBS bytes ourselves (see the module docstring).
        modern = builder.sign(signer, hashes.SHA256())
        der = resign(modern.public_bytes(serialization.Encoding.DER), signer, hash)
        return x509.load_der_x509_certificate(der)


def _merge_extensions(
    defaults: list[tuple[x509.ExtensionType, bool]],
    extra: Iterable[x509.ExtensionType | tuple[x509.ExtensionType, bool]],
) -> list[tuple[x509.ExtensionType, bool]]:
    """``defaults`` with ``extra`` added; an extra extension replaces a default of its OID."""
    added = [item if isinstance(item, tuple) else (item, False) for item in extra]
    replaced = {ext.oid for ext, _critical in added}
    return [(ext, crit) for ext, crit in defaults if ext.oid not in replaced] + added


class CA:
    """A certificate authority: a root (``parent=None``) or an intermediate.

    The CA certificate has basicConstraints CA=TRUE (critical), keyUsage keyCertSign+cRLSign
    and a subjectKeyIdentifier; an intermediate also has an authorityKeyIdentifier pointing at
    its parent. Its subject is ``O=chainscan tests, CN=<name>``.
    """

    def __init__(
        self,
        name: str = "chainscan test root",
        *,
        key_type: KeyType = "ec",
        key_size: int | None = None,
        hash: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008 - immutable
        parent: CA | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        path_length: int | None = None,
        key: PrivateKey | None = None,
        extra_extensions: Iterable[x509.ExtensionType | tuple[x509.ExtensionType, bool]] = (),
    ) -> None:
        self.name = name
        self.parent = parent
        own_key = make_key(key_type, key_size) if key is None else key
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(own_key.public_key())
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=True, path_length=path_length), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (ski, False),
        ]
        if parent is not None:
            extensions.append((parent._aki(), False))
        extensions = _merge_extensions(extensions, extra_extensions)
        cert = _build(
            subject=subject,
            issuer_name=subject if parent is None else parent.issued.cert.subject,
            public_key=own_key.public_key(),
            signer=own_key if parent is None else parent.issued.key,
            hash=hash,
            not_before=not_before,
            not_after=not_after,
            extensions=extensions,
        )
        self.issued: Issued = Issued(cert, own_key)
        """This CA's own certificate and key."""

    def __repr__(self) -> str:
        return f"<CA {self.name!r}{' (root)' if self.parent is None else ''}>"

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def key(self) -> PrivateKey:
        return self.issued.key

    @property
    def der(self) -> bytes:
        return self.issued.der

    @property
    def pem(self) -> bytes:
        return self.issued.pem

    @property
    def path(self) -> tuple[CA, ...]:
        """This CA and its ancestors, nearest first, ending with the root."""
        out: list[CA] = []
        ca: CA | None = self
        while ca is not None:
            out.append(ca)
            ca = ca.parent
        return tuple(out)

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        ski = self.issued.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def child_ca(
        self,
        name: str,
        *,
        key_type: KeyType = "ec",
        key_size: int | None = None,
        hash: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008 - immutable
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        path_length: int | None = None,
        key: PrivateKey | None = None,
        extra_extensions: Iterable[x509.ExtensionType | tuple[x509.ExtensionType, bool]] = (),
    ) -> CA:
        """An intermediate CA signed by this one (``hash`` is the hash *this* CA signs with)."""
        return CA(
            name,
            key_type=key_type,
            key_size=key_size,
            hash=hash,
            parent=self,
            not_before=not_before,
            not_after=not_after,
            path_length=path_length,
            key=key,
            extra_extensions=extra_extensions,
        )

    def issue(
        self,
        *names: str,
        cn: str | Literal[True] | None = True,
        key_type: KeyType = "ec",
        key_size: int | None = None,
        hash: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008 - immutable
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        san: bool = True,
        key: PrivateKey | None = None,
        extra_extensions: Iterable[x509.ExtensionType | tuple[x509.ExtensionType, bool]] = (),
    ) -> Issued:
        """Issue a leaf (end-entity) certificate signed by this CA.

        ``names`` are DNS names, IP literals (-> IP SAN), ``user@host`` (-> email) or URIs.
        ``cn`` is the subject commonName: by default the first name, ``None`` for none.
        ``san=False`` leaves out subjectAltName. ``extra_extensions`` items are extension
        values (non-critical) or ``(value, critical)`` pairs, and replace any default extension
        with the same OID; an ``x509.UnrecognizedExtension`` carrying a well-known OID (e.g.
        basicConstraints with a garbage value) is how to plant a malformed extension. The leaf has
        basicConstraints CA=FALSE (critical), keyUsage, extendedKeyUsage serverAuth+clientAuth
        and an authorityKeyIdentifier.
        """
        leaf_key = make_key(key_type, key_size) if key is None else key
        common_name = (names[0] if names else None) if cn is True else cn
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG)]
            + (
                []
                if common_name is None
                else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
            )
        )
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(leaf_key, rsa.RSAPrivateKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
            (self._aki(), False),
        ]
        if san and names:
            extensions.append(
                (x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
            )
        extensions = _merge_extensions(extensions, extra_extensions)
        cert = _build(
            subject=subject,
            issuer_name=self.issued.cert.subject,
            public_key=leaf_key.public_key(),
            signer=self.issued.key,
            hash=hash,
            not_before=not_before,
            not_after=not_after,
            extensions=extensions,
        )
        return Issued(cert, leaf_key)


def chain_pem(leaf: Issued, *cas: CA) -> bytes:
    """The leaf's PEM followed by each CA's certificate PEM, in the order given."""
    return leaf.pem + b"".join(ca.issued.pem for ca in cas)


def write_server_files(tmp_dir: Path, leaf: Issued, *cas: CA) -> tuple[Path, Path]:
    """Write ``(certfile, keyfile)`` for ``ssl.SSLContext.load_cert_chain``.

    The certfile holds ``chain_pem(leaf, *cas)``: what the server will send, in that order.
    File names carry the leaf's serial number, so several servers can share one directory.
    """
    stem = f"server-{leaf.cert.serial_number:x}"
    certfile = Path(tmp_dir) / f"{stem}.chain.pem"
    keyfile = Path(tmp_dir) / f"{stem}.key.pem"
    certfile.write_bytes(chain_pem(leaf, *cas))
    keyfile.write_bytes(leaf.key_pem)
    return certfile, keyfile
