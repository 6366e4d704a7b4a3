"""Missing intermediates: follow AIA caIssuers URLs when the chain as sent stops short.

Theory of operation
-------------------
Runs in the scanning process right after a target's handshake (``Scheduler``), within the
target's own deadline, and only decides *what to fetch*; the verdicts are the pure analysis'
(``analysis._completion``), made from the :class:`~chainscan._models.Fetch` records this
module puts in the :class:`~chainscan._models.ScanResult`.

1. Find where the chain as sent stops: from the leaf, follow the sent certificate whose subject
   is the current one's issuer (names only; the analysis checks signatures). If the last one
   is self-signed, or its issuer is the subject of a root of the trust store, nothing is
   missing and nothing is fetched: the common case costs a few name comparisons. Only the
   leaf's step is taken per target: from the leaf's issuer on, the walk and whether its end
   reaches an anchor depend on the sent CA certificates alone, and are remembered per run
   (``ChainCompleter._top``), as the thousands of leaves of one CA come with the same ones.
2. Otherwise fetch the last certificate's caIssuers URLs (``http://`` ones, at most
   :data:`MAX_URLS`), through the run's :class:`~chainscan.scan._fetch.Fetcher` (guarded,
   bounded, cached per URL: the thousands of leaves of one CA cost one fetch). The body is a
   DER certificate or a PKCS#7 certs-only bundle (DER or PEM); anything else is recorded as an
   error ("not a certificate"), never quoted.
3. Of what came, the certificate whose subject is the issuer sought is taken, and step 2
   repeats from it, at most :data:`MAX_DEPTH` times, until an anchor or a self-signed
   certificate is reached.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID

from .._models import Fetch, ScanOptions, ScanResult
from ._fetch_guard import FetchGuard, parse_cidr
from ._resolve import Resolver

if TYPE_CHECKING:  # imported on the first fetch: most scans never need the HTTP client
    from ._fetch import Fetcher

__all__ = ["MAX_DEPTH", "MAX_URLS", "ChainCompleter", "ca_issuers", "parse_certs"]

MAX_DEPTH = 4
"""Certificates fetched one above the other, at most."""
_PARSED_LIMIT = 4096
MAX_URLS = 2
"""caIssuers URLs tried per certificate, at most."""


def access_urls(cert: x509.Certificate, method: x509.ObjectIdentifier) -> list[str]:
    """The URIs of ``cert``'s Authority Information Access extension for ``method``
    (caIssuers or OCSP), in order, any scheme (the fetch guard judges them)."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except Exception:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == method
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def ca_issuers(cert: x509.Certificate) -> list[str]:
    """The caIssuers URIs of ``cert``'s AIA extension, in order."""
    return access_urls(cert, AuthorityInformationAccessOID.CA_ISSUERS)


def parse_certs(body: bytes) -> list[x509.Certificate]:
    """A DER certificate, or the certificates of a PKCS#7 bundle (DER or PEM); ValueError."""
    for load in (
        lambda b: [x509.load_der_x509_certificate(b)],
        pkcs7.load_der_pkcs7_certificates,
        pkcs7.load_pem_pkcs7_certificates,
        lambda b: [x509.load_pem_x509_certificate(b)],
    ):
        try:
            certs = load(body)
        except Exception:
            continue
        if certs:
            return list(certs)
    raise ValueError("not a DER certificate or a PKCS#7 bundle of certificates")


def load_certificate(der: bytes) -> x509.Certificate | None:
    """``der`` parsed, subject and issuer included (they are parsed lazily); None if it fails."""
    try:
        cert = x509.load_der_x509_certificate(der)
        _names = (cert.subject, cert.issuer)
    except Exception:
        return None
    return cert


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``at``; ValueError."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[at], data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or at + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated")
    return tag, at, at + length


def names_of(der: bytes) -> tuple[bytes, bytes] | None:
    """(issuer, subject) of a DER certificate as their raw DER, without a full parse."""
    try:
        _tag, body, _end = _tlv(der, 0)
        _tag, at, _tbs_end = _tlv(der, body)  # tbsCertificate
        fields: list[tuple[int, bytes]] = []
        while len(fields) < 6:
            tag, _start, end = _tlv(der, at)
            fields.append((tag, der[at:end]))
            at = end
        if fields[0][0] == 0xA0:  # [0] version: skip it
            fields = fields[1:]
        return fields[2][1], fields[4][1]  # serial, signature, issuer, validity, subject
    except (ValueError, IndexError):
        return None


def anchor_subjects(store_spec: str) -> frozenset[bytes]:
    """DER subjects of the trust store's roots (``--trust-store``), for step 1.

    Reads the bundle the analysis reads, but parses no more than each root's subject, with a
    few lines of DER reading (no certificate object: a root ``cryptography`` would warn about
    still counts).
    """
    from .._trust_paths import trust_store_path

    try:
        data = trust_store_path(store_spec).read_bytes()
    except Exception:  # the analysis reports an unusable store (UsageError); nothing here
        return frozenset()
    if b"-----BEGIN CERTIFICATE-----" in data:
        ders = [
            base64.b64decode(block, validate=False)
            for block in re.findall(
                rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", data, re.DOTALL
            )
        ]
    else:
        ders = [data]
    found = (names_of(der) for der in ders)
    return frozenset(names[1] for names in found if names is not None)


def top_of(
    chain: Sequence[bytes],
    load: Callable[[bytes], x509.Certificate | None] = load_certificate,
    load_leaf: Callable[[bytes], x509.Certificate | None] = load_certificate,
) -> x509.Certificate | None:
    """The last certificate reached from the leaf through the sent certificates, by name.
    ``load`` parses the CA certificates, ``load_leaf`` the leaf (both: ``load_certificate``
    or a memo of it)."""
    certs = [load_leaf(der) if i == 0 else load(der) for i, der in enumerate(chain)]
    position = _top_position(certs)
    return None if position is None else certs[position]


def _first_step(certs: Sequence[x509.Certificate | None]) -> int | None:
    """Where :func:`top_of`'s walk goes from the leaf: the position of the first sent CA
    certificate named as the leaf's issuer; None when the walk stops at the leaf (it is
    self-issued, or no sent certificate is its issuer). The leaf must be parsed."""
    leaf = certs[0]
    assert leaf is not None
    if leaf.subject == leaf.issuer:
        return None
    for position in range(1, len(certs)):
        cert = certs[position]
        if cert is not None and cert.subject == leaf.issuer:
            return position
    return None


def _walk_on(certs: Sequence[x509.Certificate | None], first: int) -> int:
    """The rest of :func:`top_of`'s walk from ``certs[first]`` (the leaf's issuer): the
    position it ends at. It never goes back to the leaf, so it depends on the CA
    certificates and ``first`` alone (what :class:`ChainCompleter` remembers it by)."""
    used = {0, first}
    current_position = first
    current = certs[first]
    assert current is not None
    while current.subject != current.issuer:
        for position, cert in enumerate(certs):
            if position not in used and cert is not None and cert.subject == current.issuer:
                used.add(position)
                current, current_position = cert, position
                break
        else:
            break
    return current_position


def _top_position(certs: Sequence[x509.Certificate | None]) -> int | None:
    if not certs or certs[0] is None:
        return None
    first = _first_step(certs)
    return 0 if first is None else _walk_on(certs, first)


class ChainCompleter:
    """Fetches what a chain misses, for one run (``--no-fetch`` turns it off)."""

    def __init__(
        self,
        options: ScanOptions,
        resolver: Resolver,
        *,
        anchors: frozenset[bytes] | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.guard = FetchGuard(
            allow=[parse_cidr(c) for c in options.fetch_allow],
            deny=[parse_cidr(c) for c in options.fetch_deny],
        )
        self._options = options
        self._resolver = resolver
        self.fetcher = fetcher
        """Made on the first fetch (``_fetcher``)."""
        self._parsed: dict[bytes, x509.Certificate | None] = {}
        """Sent CA certificates parsed so far (the same few come with thousands of leaves)."""
        self._store = options.trust_store
        self._anchors = anchors
        """Loaded on first need, in a worker thread (never blocking the scan's event loop)."""
        self._loading = trio.Lock()
        self._leaf: tuple[bytes, x509.Certificate | None] | None = None
        """The last leaf parsed (:meth:`load_leaf`)."""
        self._tops: dict[tuple[tuple[bytes, ...], int], int] = {}
        """Where the walk from the leaf's issuer ends (``_walk_on``), by the sent CA
        certificates and the issuer's position: the same few intermediates come with
        thousands of leaves, and their part of the walk is taken once per run."""
        self._anchored: dict[bytes, bool] = {}
        """Whether a sent CA certificate (by its DER) is self-issued or issued by a root of
        the store (:meth:`_reaches_anchor`), once per run."""

    async def fetcher_for_run(self) -> Fetcher:
        """The run's guarded fetcher (made, and the HTTP client imported, on first use)."""
        if self.fetcher is None:
            async with self._loading:
                if self.fetcher is None:
                    module = await trio.to_thread.run_sync(
                        importlib.import_module, "chainscan.scan._fetch"
                    )
                    self.fetcher = module.Fetcher(
                        self.guard,
                        self._resolver,
                        max_bytes=self._options.fetch_max_bytes,
                        timeout=self._options.fetch_timeout,
                    )
        assert self.fetcher is not None
        return self.fetcher

    async def _anchor_set(self) -> frozenset[bytes]:
        if self._anchors is None:
            async with self._loading:
                if self._anchors is None:
                    self._anchors = await trio.to_thread.run_sync(anchor_subjects, self._store)
        return self._anchors

    def _load(self, der: bytes) -> x509.Certificate | None:
        if der in self._parsed:
            return self._parsed[der]
        cert = load_certificate(der)
        if len(self._parsed) < _PARSED_LIMIT:
            self._parsed[der] = cert
        return cert

    def load_leaf(self, der: bytes) -> x509.Certificate | None:
        """``load_certificate(der)``, remembered until the next leaf: the revocation checker
        asks for the leaf this completer has just parsed (one parse per target, not two)."""
        last = self._leaf
        if last is not None and last[0] == der:
            return last[1]
        cert = load_certificate(der)
        self._leaf = (der, cert)
        return cert

    async def _reaches_anchor(self, cert: x509.Certificate) -> bool:
        if cert.subject == cert.issuer:
            return True
        names = names_of(_der(cert))
        return names is not None and names[0] in await self._anchor_set()

    async def _top(self, chain: Sequence[bytes]) -> tuple[x509.Certificate | None, bool]:
        """:func:`top_of` the chain, and whether it reaches an anchor (``_reaches_anchor``):
        worked out per target up to the leaf's issuer, remembered per run from there on (a
        sent CA certificate's answers depend on its bytes and the run's trust store only)."""
        certs = [self.load_leaf(der) if i == 0 else self._load(der) for i, der in enumerate(chain)]
        if certs[0] is None:
            return None, False
        first = _first_step(certs)
        if first is None:
            return certs[0], await self._reaches_anchor(certs[0])
        key = (tuple(chain[1:]), first)
        position = self._tops.get(key)
        if position is None:
            position = _walk_on(certs, first)
            if len(self._tops) < _PARSED_LIMIT:
                self._tops[key] = position
        top = certs[position]
        assert top is not None
        der = chain[position]
        anchored = self._anchored.get(der)
        if anchored is None:
            anchored = await self._reaches_anchor(top)
            if len(self._anchored) < _PARSED_LIMIT:
                self._anchored[der] = anchored
        return top, anchored

    async def __call__(self, result: ScanResult, deadline: float) -> ScanResult:
        """``result`` with the fetches its chain needed (the same object when none), all
        finished (or given up) by ``deadline`` (trio time)."""
        if not result.chain:
            return result
        top, anchored = await self._top(result.chain)
        if top is None or anchored:
            return result
        fetched: list[Fetch] = []
        for _depth in range(MAX_DEPTH):
            found = await self._issuer_of(top, fetched, deadline)
            if found is None or await self._reaches_anchor(found):
                break
            top = found
        if not fetched:
            return result
        return replace(result, fetched=tuple(fetched))

    async def _issuer_of(
        self, cert: x509.Certificate, fetched: list[Fetch], deadline: float
    ) -> x509.Certificate | None:
        urls = ca_issuers(cert)[:MAX_URLS]
        if not urls:
            return None
        sha256 = hashlib.sha256(_der(cert)).hexdigest()
        for url in urls:
            with trio.move_on_at(deadline) as scope:
                response = await (await self.fetcher_for_run()).get(url)
            if scope.cancelled_caught:
                error = "the target's --deadline ran out before the fetch finished"
                fetched.append(Fetch(url=url, for_sha256=sha256, error=error))
                return None
            if response.body is None:
                fetched.append(Fetch(url=url, for_sha256=sha256, error=response.error))
                continue
            try:
                certs = parse_certs(response.body)
            except ValueError as exc:
                fetched.append(Fetch(url=url, for_sha256=sha256, error=str(exc)))
                continue
            ders = tuple(_der(c) for c in certs)
            fetched.append(Fetch(url=url, for_sha256=sha256, certs=ders))
            for candidate in certs:
                if candidate.subject == cert.issuer:
                    return candidate
        return None
