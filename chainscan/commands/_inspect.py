"""``chainscan inspect FILE...``: the manifest's certificate facts for files on disk, offline.

Reads certificates (DER, PEM, PEM bundles) and, for backup pins, public keys, certificate
signing requests and unencrypted private keys (only their public half is reported). Each
certificate goes through :func:`chainscan.analysis._analyze.analyze_der`, the code the scan uses, so
``inspect`` prints exactly what the manifest would say about it. Keys and CSRs get the same
SPKI pin (base64 SHA-256 of the DER SubjectPublicKeyInfo), computed by the same helper.

:func:`read_material` is pure (bytes in, values out) and is also how ``chainscan pins
--backup FILE`` reads its spare keys. ``_inspect_cli`` parses the arguments and prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_der_public_key,
    load_pem_private_key,
    load_pem_public_key,
)

from .._errors import UsageError
from .._models import CertFacts
from .._untrusted import terminal_safe
from ..analysis._analyze import (
    analyze_der,
    basic_constraints_ca,
    common_name,
    describe_error,
    describe_key,
    pem_to_der_list,
    san_names,
    spki_digest,
)
from ..analysis._entry import cert_entry
from ..manifest._model import cert_role

__all__ = [
    "Material",
    "cert_fields",
    "read_file",
    "read_material",
    "render_json",
    "render_text",
    "role_of",
]

Kind = Literal["certificate", "public-key", "csr", "private-key"]

_MAX_FILE = 16 * 1024 * 1024
"""Largest file ``inspect`` reads (a PEM bundle of every public root is ~250 KB)."""

_PEM_ANY = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>.*?)-----END (?P=label)-----", re.DOTALL
)
_CERT_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    dsa.DSAPublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    x25519.X25519PublicKey,
    x448.X448PublicKey,
)
"""Public keys a certificate can carry (what ``CertificatePublicKeyTypes`` names)."""

_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_PUBLIC_LABELS = {b"PUBLIC KEY", b"RSA PUBLIC KEY"}
_PRIVATE_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Material:
    """One certificate, public key, CSR or private key read from a file."""

    source: str
    """The file name as given."""
    index: int
    """1-based position of this item in its file."""
    kind: Kind
    facts: CertFacts | None = None
    """For certificates: everything ``analyze_der`` says (the manifest's facts)."""
    spki_sha256: str | None = None
    key_type: str | None = None
    key_size: int | None = None
    curve: str | None = None
    subject: str | None = None
    """CSRs: the requested subject (RFC 4514)."""
    cn: str | None = None
    sans: tuple[str, ...] = ()
    is_ca: bool | None = None
    """CSRs: the requested basicConstraints CA flag."""
    error: str | None = None
    """Why a key or CSR could not be fully read."""

    @property
    def pin(self) -> str | None:
        spki = self.facts.spki_sha256 if self.facts is not None else self.spki_sha256
        return None if spki is None else f"sha256/{spki}"

    @property
    def pin_value(self) -> str | None:
        return self.facts.spki_sha256 if self.facts is not None else self.spki_sha256

    @property
    def backup_kind(self) -> Literal["leaf", "ca"] | None:
        """What this key would back up: a CA key, a leaf key, or unknown (a bare key)."""
        is_ca = self.facts.is_ca if self.facts is not None else self.is_ca
        if self.kind in ("public-key", "private-key"):
            return None
        return "ca" if is_ca else "leaf"

    @property
    def label(self) -> str:
        return f"{self.source} #{self.index}" if self.index > 1 else self.source

    def to_json(self) -> dict[str, Any]:
        if self.facts is not None:
            fields = cert_fields(self.facts, position=self.index - 1, file=self.source)
            return {"source": self.source, "kind": self.kind, **fields}
        return {
            "source": self.source,
            "kind": self.kind,
            "position": self.index - 1,
            "subject": self.subject,
            "cn": self.cn,
            "sans": list(self.sans),
            "is_ca": self.is_ca,
            "key_type": self.key_type,
            "key_size": self.key_size,
            "curve": self.curve,
            "spki_sha256": self.spki_sha256,
            "pin": self.pin,
            "parse_error": self.error,
        }


def role_of(facts: CertFacts) -> str:
    """``root`` (self-signed), ``intermediate`` (other CA) or ``leaf``: ``cert_role`` of a
    certificate on its own."""
    return cert_role(self_signed=facts.self_signed, is_ca=facts.is_ca, position=None)


def cert_fields(facts: CertFacts, *, position: int, file: str) -> dict[str, Any]:
    """The manifest's per-certificate fields, built by the function that builds the manifest's.

    Only ``role`` differs: the manifest knows the chain and calls position 0 the leaf; a file
    on its own says nothing of the sort, so here the role comes from the certificate
    (:func:`role_of`).
    """
    return {**cert_entry(facts, position=position, file=file), "role": role_of(facts)}


# --------------------------------------------------------------------------------------------
# Reading


def _key_material(
    source: str, index: int, kind: Kind, key: PublicKeyTypes, **extra: Any
) -> Material:
    if not isinstance(key, _CERT_KEY_TYPES):
        # Diffie-Hellman (named without touching ``dh``, whose import warns: FFDH deprecated)
        return Material(
            source=source,
            index=index,
            kind=kind,
            key_type="unknown",
            error=f"a {type(key).__name__} cannot be a certificate's key",
            **extra,
        )
    key_type, key_size, curve = describe_key(key)
    return Material(
        source=source,
        index=index,
        kind=kind,
        spki_sha256=spki_digest(key),
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        **extra,
    )


def _csr_material(source: str, index: int, csr: x509.CertificateSigningRequest) -> Material:
    problems = []
    subject = cn = None
    sans: tuple[str, ...] = ()
    is_ca = None
    try:
        subject = csr.subject.rfc4514_string()
        cn = common_name(csr.subject)
    except Exception as exc:
        problems.append(f"subject: {describe_error(exc)}")
    try:
        sans = san_names(csr.extensions)
        is_ca = basic_constraints_ca(csr.extensions)
    except Exception as exc:
        problems.append(f"extensions: {describe_error(exc)}")
    try:
        key = csr.public_key()
    except Exception as exc:
        problems.append(f"public_key: {describe_error(exc)}")
        return Material(
            source=source,
            index=index,
            kind="csr",
            subject=subject,
            cn=cn,
            sans=sans,
            is_ca=is_ca,
            error="; ".join(problems),
        )
    material = _key_material(
        source, index, "csr", key, subject=subject, cn=cn, sans=sans, is_ca=is_ca
    )
    if problems:
        return _with_error(material, "; ".join(problems))
    return material


def _with_error(material: Material, error: str) -> Material:
    joined = "; ".join(e for e in (material.error, error) if e)
    return dataclasses.replace(material, error=joined)


def _private_public(key: PrivateKeyTypes) -> PublicKeyTypes:
    return key.public_key()


def _pem_item(label: bytes, block: bytes, source: str, index: int) -> Material | None:
    if label in _CERT_LABELS:
        try:
            ders = pem_to_der_list(block.replace(label, b"CERTIFICATE"))
        except ValueError as exc:
            return Material(source=source, index=index, kind="certificate", error=str(exc))
        return Material(source=source, index=index, kind="certificate", facts=analyze_der(ders[0]))
    if label in _CSR_LABELS:
        try:
            csr = x509.load_pem_x509_csr(block.replace(label, b"CERTIFICATE REQUEST"))
        except ValueError as exc:
            return Material(source=source, index=index, kind="csr", error=describe_error(exc))
        return _csr_material(source, index, csr)
    if label in _PUBLIC_LABELS:
        try:
            public = load_pem_public_key(block)
        except (ValueError, TypeError) as exc:
            return Material(
                source=source, index=index, kind="public-key", error=describe_error(exc)
            )
        return _key_material(source, index, "public-key", public)
    if label in _PRIVATE_LABELS:
        try:
            private = load_pem_private_key(block, password=None)
        except (ValueError, TypeError) as exc:
            return Material(
                source=source, index=index, kind="private-key", error=describe_error(exc)
            )
        return _key_material(source, index, "private-key", _private_public(private))
    return None


def _der_item(data: bytes, source: str) -> Material | None:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    else:
        return Material(source=source, index=1, kind="certificate", facts=analyze_der(data))
    try:
        public = load_der_public_key(data)
    except (ValueError, TypeError):
        pass
    else:
        return _key_material(source, 1, "public-key", public)
    try:
        csr = x509.load_der_x509_csr(data)
    except ValueError:
        pass
    else:
        return _csr_material(source, 1, csr)
    try:
        private = load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        pass
    else:
        return _key_material(source, 1, "private-key", _private_public(private))
    return None


def read_material(data: bytes, source: str) -> list[Material]:
    """Every certificate, public key, CSR and private key in ``data`` (PEM or DER), in order.

    A DER blob that is none of these but is an ASN.1 SEQUENCE is reported as a certificate
    ``analyze_der`` could not parse (as the scan would save it). Raises ``ValueError`` naming
    ``source`` when nothing usable is found.
    """
    if b"-----BEGIN " in data:
        items: list[Material] = []
        skipped: list[str] = []
        for match in _PEM_ANY.finditer(data):
            label = match.group("label")
            item = _pem_item(label, match.group(0), source, len(items) + 1)
            if item is None:
                skipped.append(label.decode("ascii"))
            else:
                items.append(item)
        if not items:
            what = f" (only {', '.join(sorted(set(skipped)))})" if skipped else ""
            raise ValueError(
                f"{source}: no certificate, public key, CSR or private key PEM block{what}"
            )
        return items
    item = _der_item(data, source)
    if item is not None:
        return [item]
    if data[:1] == b"\x30":
        return [Material(source=source, index=1, kind="certificate", facts=analyze_der(data))]
    raise ValueError(f"{source}: not a PEM or DER certificate, public key, CSR or private key")


def read_file(path: Path) -> list[Material]:
    """``read_material`` of a file; :class:`~chainscan.UsageError` (with the path) when it cannot
    be used."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE:
        raise UsageError(f"{path}: larger than {_MAX_FILE // (1024 * 1024)} MB; not read")
    try:
        return read_material(data, str(path))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# Output


def _text_value(value: Any) -> str:
    """One field on one line; names a certificate chose are escaped (``terminal_safe``)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(terminal_safe(v) for v in value) if value else "-"
    return terminal_safe(value)


_SKIP_TEXT = {"source", "kind", "position", "file"}


def _expiry(not_after: str, fields: dict[str, Any], now: dt.datetime) -> str:
    """``in 79 days (valid)``, ``3 days ago (EXPIRED)``, ``... (NOT YET VALID)``."""
    from ._show_text import days_left

    left = days_left(not_after, now)
    if left is None:
        return "-"
    begins = fields.get("not_before")
    if left < 0:
        return f"{-left} day{'s' if left != -1 else ''} ago (EXPIRED)"
    when = f"in {left} day{'s' if left != 1 else ''}"
    if isinstance(begins, str) and begins > now.strftime("%Y-%m-%dT%H:%M:%SZ"):
        return f"{when} (NOT YET VALID)"
    return f"{when} (valid)"


def render_text(items: Sequence[Material], now: dt.datetime | None = None) -> str:
    """Each item's fields, one per line; certificates get an ``expires`` line (days left and
    status, as of ``now``, default the current time)."""
    now = now or dt.datetime.now(dt.UTC)
    blocks = []
    for item in items:
        fields = item.to_json()
        lines = [f"{terminal_safe(item.label)}: {item.kind}"]
        width = max(len(k) for k in fields)
        for key, value in fields.items():
            if key in _SKIP_TEXT or (key == "parse_error" and value is None):
                continue
            if item.facts is None and value in (None, []):
                continue
            lines.append(f"  {key.ljust(width)}  {_text_value(value)}")
            if key == "not_after" and isinstance(value, str):
                lines.append(f"  {'expires'.ljust(width)}  {_expiry(value, fields, now)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def render_json(items: Sequence[Material]) -> str:
    return json.dumps([item.to_json() for item in items], indent=2, ensure_ascii=False) + "\n"
