"""Revocation: ask the leaf's CRL distribution point and/or OCSP responder (``--revocation``).

Theory of operation
-------------------
Runs in the scanning process after the handshake (and after AIA completion, which may have
found the issuer), within what is left of the target's ``--deadline``, through the run's one
guarded :class:`~chainscan.scan._fetch.Fetcher` (the fetch guard, size and time caps, and the
per-URL cache apply, so the thousands of leaves that share one CRL download it once).

* ``crl`` (the default): the leaf's CRL distribution point (``http://`` only; at most 2 URLs,
  until one answers). CRLs may be large: up to ``crl_max_bytes`` (32 MiB).
* ``ocsp``: a POST of an OCSP request (SHA-1 CertID) to the leaf's AIA OCSP URL. One request
  per leaf: OCSP does not share like a CRL, which is why it is not the default (and Let's
  Encrypt has ended its OCSP service).
* ``both``: CRL first; OCSP only when no CRL gave an answer.
* ``off``, or ``--no-fetch``: nothing is asked, and the entry has no ``revocation`` field.

What came back is read by the pure ``analysis._revocation`` (in a worker thread: a big CRL is
parsed and its signature checked once per run, and must not stall the event loop); the
resulting :class:`~chainscan._models.RevocationCheck` records travel in the ``ScanResult``, and
the analysis gives the verdict when the entry is written.
"""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

import trio
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from .._models import RevocationCheck, ScanOptions, ScanResult
from ._aia import ChainCompleter, access_urls, load_certificate

__all__ = ["MAX_URLS", "RevocationChecker", "crl_urls", "ocsp_urls"]

MAX_URLS = 2


def crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except Exception:
        return []
    urls = []
    for point in points:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                urls.append(name.value)
    return urls


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    return access_urls(cert, AuthorityInformationAccessOID.OCSP)


def _issuer(result: ScanResult, leaf: x509.Certificate) -> x509.Certificate | None:
    """The leaf's issuer: a sent certificate, else one fetched from AIA (by name)."""
    candidates = list(result.chain[1:]) + [der for f in result.fetched for der in f.certs]
    for der in candidates:
        cert = load_certificate(der)
        if cert is not None and cert.subject == leaf.issuer:
            return cert
    return None


class RevocationChecker:
    """``--revocation`` for one run; uses the AIA completer's fetcher (see module docstring)."""

    def __init__(self, options: ScanOptions, completer: ChainCompleter) -> None:
        self.mode = options.revocation
        self._completer = completer
        self._crl_max = options.crl_max_bytes

    async def __call__(self, result: ScanResult, deadline: float) -> ScanResult:
        leaf = self._completer.load_leaf(result.chain[0]) if result.chain else None
        if leaf is None:
            return result
        crls = crl_urls(leaf)[:MAX_URLS] if self.mode in ("crl", "both") else []
        ocsps = ocsp_urls(leaf)[:MAX_URLS] if self.mode in ("ocsp", "both") else []
        if not crls and not ocsps:
            return result  # nothing published: nothing to ask, no field
        issuer = _issuer(result, leaf)
        checks: list[RevocationCheck] = []
        if issuer is None:
            for source, url in [("crl", u) for u in crls] + [("ocsp", u) for u in ocsps]:
                error = "the leaf's issuer certificate is not at hand (not sent, not fetched)"
                checks.append(RevocationCheck(source=source, url=url, error=error))
            return replace(result, revocation=tuple(checks))
        from ..analysis import _revocation as pure  # imported on the first check

        with trio.move_on_at(deadline) as scope:
            for url in crls:
                check = await self._crl(url, leaf, issuer, pure)
                checks.append(check)
                if check.status is not None:
                    break
            if not any(c.status is not None for c in checks):
                request = pure.ocsp_request(leaf, issuer)
                for url in ocsps:
                    check = await self._ocsp(url, request, leaf, issuer, pure)
                    checks.append(check)
                    if check.status is not None:
                        break
        if scope.cancelled_caught:
            error = "the target's --deadline ran out before the answer came"
            checks.append(RevocationCheck(source="crl" if crls else "ocsp", url="", error=error))
        return replace(result, revocation=tuple(checks))

    async def _crl(
        self, url: str, leaf: x509.Certificate, issuer: x509.Certificate, pure: ModuleType
    ) -> RevocationCheck:
        fetcher = await self._completer.fetcher_for_run()
        response = await fetcher.get(url, max_bytes=self._crl_max)
        if response.body is None:
            return RevocationCheck(source="crl", url=url, error=response.error)
        read = pure.read_crl
        check: RevocationCheck = await trio.to_thread.run_sync(
            read, url, response.body, leaf, issuer
        )
        return check

    async def _ocsp(
        self,
        url: str,
        request: bytes,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        pure: ModuleType,
    ) -> RevocationCheck:
        fetcher = await self._completer.fetcher_for_run()
        response = await fetcher.post(url, request, "application/ocsp-request")
        if response.body is None:
            return RevocationCheck(source="ocsp", url=url, error=response.error)
        read = pure.read_ocsp
        check: RevocationCheck = read(url, response.body, leaf, issuer)
        return check
