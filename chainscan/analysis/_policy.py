"""Which rules decide ``trusted``: what mainstream clients accept, not the strictest profile. Pure.

Theory of operation
-------------------
``cryptography.x509.verification`` applies the CA/Browser Forum profile of RFC 5280 by
default, which is stricter than the clients that actually connect. The verdict chainscan
reports is meant to say whether *clients* accept the chain, so the verifier runs with
:data:`CA_POLICY`, the Web PKI defaults relaxed where OpenSSL, browsers (Chrome, Firefox,
Safari), Android and Apple's platform verifier all accept what the profile refuses:

* a CA certificate (intermediate or root) whose ``basicConstraints`` is present with
  ``cA=TRUE`` but is not marked critical. RFC 5280 asks CAs to mark it critical; relying parties
  do not reject it, and many internal PKIs are built this way. chainscan still checks that it
  is present and says ``cA=TRUE`` (the path length is enforced by the verifier itself).

Each relaxation the chain needed is reported as a problem of severity ``warning``
(:func:`profile_notes`: ``basic-constraints-not-critical``), so the stricter profile's objection
is not lost.

The verifier, in turn, does not look at key sizes: an RSA-1024 leaf under a good root verifies.
Browsers, rustls-webpki and OpenSSL at its default security level refuse keys under 2048 bits,
so :func:`weak_key` names such a certificate and ``_verify`` refuses the chain. Finally
:func:`enforce` is the invariant the manifest promises: a chain with an ``error``-severity
problem (other than ``hostname-mismatch``, which is judged apart, in ``hostname``) is never
``trusted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.verification import Criticality, ExtensionPolicy

from .._models import CertFacts

__all__ = [
    "CA_POLICY",
    "EE_POLICY",
    "MIN_KEY_BITS",
    "ProfileNote",
    "bc_not_critical",
    "first_weak_key",
    "weak_key",
]

MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 256}
"""Smallest key each client family accepts (RSA/DSA: CA/B Forum, Chrome, rustls; EC: P-256)."""


def _is_ca(_policy: Any, _cert: x509.Certificate, value: x509.BasicConstraints | None) -> None:
    """basicConstraints validator: present (the policy requires it) and ``cA=TRUE``."""
    if value is None or not value.ca:
        raise ValueError("basicConstraints does not say cA=TRUE")


CA_POLICY = ExtensionPolicy.webpki_defaults_ca().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca
)
"""The Web PKI CA profile with basicConstraints allowed non-critical (see module docstring)."""

EE_POLICY = ExtensionPolicy.webpki_defaults_ee()
"""The Web PKI end-entity profile, unchanged."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileNote:
    """A relaxation a chain needed: the certificate and what the strict profile objects to."""

    code: str
    """A problem code of severity ``warning`` (``basic-constraints-not-critical``)."""
    position: int | None
    """Position in the served chain; None for a trust-store root."""
    label: str
    """The certificate, for the message (``'CN'``)."""


def bc_not_critical(cert: x509.Certificate | None) -> bool:
    """``cert`` is a CA whose basicConstraints is present, says ``cA=TRUE``, and is not critical."""
    if cert is None:
        return False
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except Exception:  # absent, or unreadable: not this relaxation
        return False
    return ext.value.ca and not ext.critical


def weak_key(facts: CertFacts) -> str | None:
    """Why ``facts``' key is too small for mainstream clients, or None."""
    minimum = MIN_KEY_BITS.get(facts.key_type or "")
    if minimum is None or facts.key_size is None or facts.key_size >= minimum:
        return None
    return f"a {facts.key_type} key of {facts.key_size} bits (clients require {minimum})"


def first_weak_key(chain: Sequence[CertFacts]) -> tuple[int, str] | None:
    """(index, reason) of the first certificate of ``chain`` with a weak key."""
    for index, facts in enumerate(chain):
        reason = weak_key(facts)
        if reason is not None:
            return index, reason
    return None
