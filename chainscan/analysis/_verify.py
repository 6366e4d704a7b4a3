"""Trust and hostname: is a served chain valid for the name that was asked for? Pure but for
:func:`load_trust_store`, which reads the trust store once per run.

Theory of operation
-------------------

Two questions, answered apart, because an inventory wants both answers even when one fails:

* **Trust** (``verify``): does the chain lead to a root of the trust store? The verdict comes
  from ``cryptography.x509.verification`` (the Web PKI profile of RFC 5280 and the CA/Browser
  Forum rules, as rustls-webpki applies them), built per target with
  ``PolicyBuilder().store(...).time(now).build_server_verifier(name)``. The verifier also checks
  the name, so to keep trust apart from the hostname it is given a name the leaf *is* for (the
  requested name if the leaf matches it, else the leaf's first subjectAltName). A mismatch is
  then reported once, by the hostname check, instead of hiding every other reason.
* **Hostname** (``match_hostname``): RFC 6125 matching of the requested name (the SNI name, else
  the IP literal) against the leaf's subjectAltName entries only: one wildcard, as the whole
  leftmost label, never for IP addresses, and no commonName fallback (browsers dropped it).

The verifier says *that* a chain fails, in terse words ("candidates exhausted"), so chainscan
also walks the served chain itself (``_walk``): from the leaf, each step takes the served
certificate, or the trust-store root, whose subject is the current certificate's issuer and
whose key verifies its signature (legacy hashes too: a SHA-1 intermediate is still *linked*).
Where the walk stops names the failure precisely: at a trust-store root (then the verifier's
own reason stands: expired, forbidden algorithm, ...), at a served self-signed certificate
that is not in the store (``untrusted-root``; the leaf itself: ``self-signed-leaf``), or at a
certificate whose issuer is neither served nor in the store (a leaf there: a needed
intermediate was not sent, ``incomplete-chain``; a CA there: its root is unknown, an untrusted
or private root, or an intermediate is missing, which nothing offline can tell apart). The walk
also gives the served path, from which ``_problems`` reads order, root-sent and duplicates.

Caching. The same few intermediates and roots appear in thousands of chains. Certificates are
parsed once per run (:class:`CertCache`, keyed by SHA-256 of the DER; a leaf is parsed once for
both its facts and its checks), a signature check between two CA certificates is made once per
run (``_links``), and so is the walk from the leaf's issuer on (``_walks``: it depends on the
served CA certificates only). What depends on the leaf is redone per target: its facts, the
verifier (Rust, which checks the leaf's signature) and the walk's first step (which checks it
again: the verifier does not say which issuer it tried). Every cache is keyed by the bytes it
depends on (through their SHA-256), so a verdict never depends on what was seen before.
The trust store's roots are only loaded (subject, issuer, fingerprint) when the store is read;
their facts (and the self-signature check that is one of them) are worked out for the few a
run reaches (:meth:`Cert.unanalysed`): analysing Mozilla's ~120 roots up front cost every
process of a scan 60-90 ms of CPU, more than analysing a few hundred chains.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from .._errors import UsageError
from .._models import CertFacts
from .._trust_paths import SYSTEM_BUNDLES, read_trust_store
from ._analyze import (
    _warnings_lock,
    analyze_der,
    load_and_analyze,
    pem_to_der_list,
    signature_verifies,
)
from ._policy import CA_POLICY, EE_POLICY, ProfileNote, bc_not_critical, first_weak_key

__all__ = [
    "SYSTEM_BUNDLES",
    "Cert",
    "CertCache",
    "ChainLink",
    "TrustStore",
    "TrustVerdict",
    "Verifier",
    "load_trust_store",
    "match_hostname",
]

_CACHE_SIZE = 65536
"""Distinct CA certificates (and CA-to-CA signature checks) remembered per run."""

_WALK_CACHE_SIZE = 16384
"""Walks from a served CA certificate remembered (see ``Verifier._walk``)."""

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _Lru(Generic[_K, _V]):
    """A thread-safe LRU mapping of bounded size."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._max:
                self._items.popitem(last=False)


# --------------------------------------------------------------------------------------------
# Certificates


class Cert:
    """One certificate, parsed once: its DER, its facts and the ``cryptography`` object.

    Immutable but for one memo: a trust store's roots are made with :meth:`unanalysed`, and
    their facts (subject strings, key, fingerprints, a self-signature check) are worked out on
    first use, because a run reaches a handful of the store's roots and loading all of them
    fully would cost more start-up time than most scans spend on analysis.
    """

    __slots__ = ("_facts", "_sha256", "cert", "der")

    def __init__(self, der: bytes, facts: CertFacts | None, cert: x509.Certificate | None) -> None:
        self.der = der
        self.cert = cert
        """None when ``cryptography`` cannot load it (``facts.parse_error`` says why)."""
        self._facts = facts
        self._sha256 = facts.sha256 if facts is not None else hashlib.sha256(der).hexdigest()

    @classmethod
    def unanalysed(cls, der: bytes, cert: x509.Certificate) -> Cert:
        """A loaded certificate whose facts are analysed when first asked for."""
        return cls(der, None, cert)

    @property
    def facts(self) -> CertFacts:
        facts = self._facts
        if facts is None:  # what _load says, once (a benign race: both threads agree)
            facts = self._facts = _load(self.der).facts
        return facts

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def label(self) -> str:
        """``'CN'`` (or the subject, or the fingerprint) for messages."""
        name = self.facts.cn or self.facts.subject or f"sha256:{self.sha256[:16]}"
        return repr(name)


def _load(der: bytes) -> Cert:
    """Facts and parsed object from one parse (``cert`` is None if it cannot be placed in a
    path: not loadable, or its names cannot be read)."""
    loaded = load_and_analyze(der)
    return Cert(der=der, facts=loaded.facts, cert=loaded.cert)


def _load_root(der: bytes) -> Cert | None:
    """A trust store's certificate, facts left for later; None where :func:`_load` would give
    no parsed object (not loadable, names unreadable). Warnings are swallowed, as the analysis
    records them (a negative serial) rather than letting them reach stderr."""
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cert = x509.load_der_x509_certificate(der)
            _names = (cert.subject, cert.issuer)
        except Exception:
            return None
    return Cert.unanalysed(der, cert)


class CertCache:
    """Parsed certificates by SHA-256 of the DER, an LRU of CA certificates for one run.

    Leaves are parsed every time (each is seen once; keeping them, even a few hundred, costs
    more in memory traffic than the rare repeat saves), CA certificates once per run. Safe to
    share between threads.
    """

    def __init__(self, max_entries: int = _CACHE_SIZE) -> None:
        self._certs: _Lru[str, Cert] = _Lru(max_entries)

    def get(self, der: bytes, *, keep: bool = True) -> Cert:
        """The parsed certificate; remembered when ``keep`` (pass False for leaves)."""
        der = bytes(der)
        digest = hashlib.sha256(der).hexdigest()
        known = self._certs.get(digest)
        if known is not None:
            return known
        cert = _load(der)
        if keep:
            self._certs.put(digest, cert)
        return cert


# --------------------------------------------------------------------------------------------
# Trust stores


class TrustStore:
    """The roots a chain must lead to, named for the manifest. Immutable after construction."""

    __slots__ = (
        "_by_object",
        "_by_subject",
        "_digests",
        "_store",
        "name",
        "public",
        "roots",
        "skipped",
        "source",
    )

    def __init__(
        self,
        *,
        name: str,
        source: str,
        roots: Sequence[Cert],
        skipped: int = 0,
        public: bool | None = None,
    ) -> None:
        self.name = name
        self.public = name in ("certifi", "system") if public is None else public
        """Publicly trusted roots (a browser root program): Certificate Transparency applies."""
        """``certifi``, ``system`` or the bundle's path, as given."""
        self.source = source
        """The file the roots were read from."""
        self.roots = tuple(r for r in roots if r.cert is not None)
        self.skipped = skipped
        """Certificates of the bundle that could not be parsed and were left out."""
        self._by_subject: dict[x509.Name, list[Cert]] = {}
        for root in self.roots:
            assert root.cert is not None
            self._by_subject.setdefault(root.cert.subject, []).append(root)
        self._digests = frozenset(r.sha256 for r in self.roots)
        self._store = Store([r.cert for r in self.roots if r.cert is not None])
        self._by_object = {id(r.cert): r for r in self.roots}
        """The roots by identity of their parsed object (the objects the store holds)."""

    def __repr__(self) -> str:
        return f"<TrustStore {self.name!r}: {len(self.roots)} roots from {self.source}>"

    @property
    def store(self) -> Store:
        return self._store

    def candidates(self, issuer: x509.Name) -> list[Cert]:
        """Roots whose subject is ``issuer``."""
        return self._by_subject.get(issuer, [])

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._digests

    def root_of(self, cert: x509.Certificate) -> Cert | None:
        """The root whose parsed object is ``cert`` (as the verifier returns it), if any."""
        root = self._by_object.get(id(cert))
        return root if root is not None and root.cert is cert else None

    def holds_key_of(self, cert: Cert) -> bool:
        """A root with the same subject and key (the same root, maybe re-issued) is here."""
        if cert.cert is None:
            return False
        return any(
            root.facts.spki_sha256 == cert.facts.spki_sha256
            for root in self.candidates(cert.cert.subject)
        )

    @classmethod
    def from_pem(cls, data: bytes, *, name: str, source: str) -> TrustStore:
        """Every parsable certificate of a PEM bundle (or of a single DER certificate)."""
        if b"-----BEGIN CERTIFICATE-----" in data:
            try:
                ders = pem_to_der_list(data)
            except ValueError as exc:
                raise UsageError(f"--trust-store {name}: {source}: {exc}") from None
        else:
            ders = [data]
        roots = []
        skipped = 0
        for der in ders:
            cert = _load_root(bytes(der))
            if cert is None:
                skipped += 1
            else:
                roots.append(cert)
        if not roots:
            raise UsageError(
                f"--trust-store {name}: {source} holds no certificate that can be parsed"
            )
        return cls(name=name, source=source, roots=tuple(roots), skipped=skipped)


def load_trust_store(spec: str = "certifi") -> TrustStore:
    """``certifi`` (Mozilla's roots, the default), ``system``, or a PEM/DER file's path.

    Raises :class:`~chainscan.UsageError` naming the file when it cannot be read or holds no
    certificate.
    """
    path, data = read_trust_store(spec)
    return TrustStore.from_pem(data, name=spec, source=str(path))


# --------------------------------------------------------------------------------------------
# Hostname


_NOT_IPV4 = re.compile(r"[^0-9.]")
"""A character no IPv4 literal has (``ipaddress`` accepts ASCII digits and dots only)."""


def _is_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = name.strip("[]")
    if ":" not in text and _NOT_IPV4.search(text):
        return None  # neither IPv6 (which needs a colon) nor IPv4: skip the costly refusal
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _dns_match(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    name = name.rstrip(".").lower()
    if not pattern or not name:
        return False
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    base = pattern[2:]
    if base.count(".") < 1 or "*" in base:
        return False  # "*.com" and partial wildcards match nothing
    head, dot, rest = name.partition(".")
    return bool(head) and bool(dot) and rest == base


def match_hostname(name: str, sans: Sequence[str]) -> str | None:
    """The subjectAltName entry (``DNS:...`` / ``IP:...``) that ``name`` matches, or None."""
    ip = _is_ip(name)
    for san in sans:
        kind, _, value = san.partition(":")
        if ip is not None:
            if kind == "IP" and _is_ip(value) == ip:
                return san
        elif kind == "DNS" and _dns_match(value, name):
            return san
    return None


def _verifier_subject(name: str, sans: Sequence[str]) -> Subject:
    """A name the leaf is for: ``name`` if it matches, else its first usable SAN."""
    chosen = name if match_hostname(name, sans) or not sans else None
    if chosen is None:
        for san in sans:
            kind, _, value = san.partition(":")
            if kind == "IP" and _is_ip(value) is not None:
                chosen = value
                break
            if kind == "DNS" and value:
                chosen = "x" + value[1:] if value.startswith("*.") else value
                break
    chosen = chosen or name
    ip = _is_ip(chosen)
    if ip is not None:
        return IPAddress(ip)
    return DNSName(chosen.rstrip(".").lower())


# --------------------------------------------------------------------------------------------
# Verdicts


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainLink:
    """One certificate of the chain that was built, leaf first."""

    sha256: str
    spki_sha256: str | None
    subject: str | None
    source: Literal["sent", "store", "fetched"]
    """``sent`` by the server, taken from the trust ``store``, or ``fetched`` from an AIA URL
    (only in the completed chain, see ``_completion``)."""
    position: int | None
    """Position in the served chain (None for a certificate from the store)."""
    cn: str | None = None
    not_after: str | None = None
    """ISO 8601 UTC; lets ``pins`` date a pin on a store root the server did not send."""


End = Literal["anchor", "self-signed", "missing-issuer", "unparsable"]

_Walk = tuple[tuple[int, ...], End, Cert | None]
"""What ``Verifier._walk`` finds: (served path, where it ended, the store root reached)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustVerdict:
    """Whether a served chain leads to a trusted root, why not, and the chain that was built."""

    store: str
    trusted: bool
    reason: str | None
    """Why not, in words; None when trusted."""
    error: str | None
    """The verifier's own message (cleaned of object dumps), when it refused the chain."""
    chain: tuple[ChainLink, ...]
    """The verified chain when trusted; otherwise the path chainscan could build."""
    path: tuple[int, ...]
    """Served positions on the path from the leaf (``path[0] == 0``)."""
    end: End
    """Where the walk stopped: at a store ``anchor``, a served ``self-signed`` certificate,
    a ``missing-issuer``, or an ``unparsable`` certificate."""
    anchor_in_store: bool = False
    """The walk reached a root of the trust store."""
    notes: tuple[ProfileNote, ...] = ()
    """Relaxations of the CA/Browser Forum profile the chain needed (``_policy``)."""


_ENCOUNTERED = re.compile(r"\s*\(encountered processing <Certificate\(subject=<Name\((.*?)\)>.*$")
_OID_DEBUG = re.compile(r"AlgorithmIdentifier \{.*?oid: (\d+(?:\.\d+)+).*$")


def _clean_error(message: str) -> str:
    text = " ".join(message.split())
    text = text.removeprefix("validation failed: ")
    text = _ENCOUNTERED.sub(lambda m: f" (at {m.group(1)})", text)
    return _OID_DEBUG.sub(lambda m: f"signature algorithm {m.group(1)}", text)[:300]


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``parent``'s key verifies ``child``'s signature, whatever the hash (SHA-1, MD5 too)."""
    if child.issuer != parent.subject:
        return False
    try:
        return signature_verifies(child, parent)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _notes(
    certs: Sequence[Cert],
    anchor: x509.Certificate | None,
    store: TrustStore,
) -> tuple[ProfileNote, ...]:
    """The profile relaxations the served CA certificates (and the anchor) need."""
    notes = [
        ProfileNote(code="basic-constraints-not-critical", position=position, label=cert.label)
        for position, cert in enumerate(certs)
        if position > 0 and cert.facts.is_ca and bc_not_critical(cert.cert)
    ]
    if anchor is not None and bc_not_critical(anchor):
        root = store.root_of(anchor)
        if root is not None and not any(c.sha256 == root.sha256 for c in certs):
            notes.append(
                ProfileNote(code="basic-constraints-not-critical", position=None, label=root.label)
            )
    return tuple(notes)


class Verifier:
    """Trust verdicts against one trust store, with the run's caches. Thread-safe."""

    def __init__(self, store: TrustStore, *, max_links: int = _CACHE_SIZE) -> None:
        self.store = store
        self._links: _Lru[tuple[str, str], bool] = _Lru(max_links)
        self._walks: _Lru[tuple[tuple[str, ...], int], _Walk] = _Lru(_WALK_CACHE_SIZE)

    def _issued(self, child: Cert, parent: Cert) -> bool:
        if child.cert is None or parent.cert is None:
            return False
        if child.cert.issuer != parent.cert.subject:
            return False
        if not child.facts.is_ca:  # leaves are seen once: nothing to gain from caching
            return _signed_by(child.cert, parent.cert)
        key = (child.sha256, parent.sha256)
        known = self._links.get(key)
        if known is None:
            known = _signed_by(child.cert, parent.cert)
            self._links.put(key, known)
        return known

    def _walk(self, certs: Sequence[Cert]) -> _Walk:
        """(served path, where it ended, the store root reached if any).

        Only the leaf's step is worked out for every chain. The steps after it never revisit
        position 0, so they depend on nothing but the certificates at positions 1 and up and
        the position the leaf's issuer was found at: they are remembered per run under those
        (the fingerprints stand for the bytes, as in ``_links``), and the many chains that
        share their intermediates are walked from the leaf's issuer on only once.
        """
        if not certs or certs[0].cert is None:
            return (0,), "unparsable", None
        step = self._step(certs, [0])
        if not isinstance(step, int):
            end, anchor = step
            return (0,), end, anchor
        key = (tuple(cert.sha256 for cert in certs[1:]), step)
        known = self._walks.get(key)
        if known is None:
            known = self._walk_on(certs, [0, step])
            self._walks.put(key, known)
        return known

    def _walk_on(self, certs: Sequence[Cert], path: list[int]) -> _Walk:
        """The rest of a walk whose path so far is ``path``."""
        while True:
            step = self._step(certs, path)
            if not isinstance(step, int):
                end, anchor = step
                return tuple(path), end, anchor
            path.append(step)
            if len(path) > len(certs):  # pragma: no cover - positions are never revisited
                return tuple(path), "missing-issuer", None

    def _step(self, certs: Sequence[Cert], path: Sequence[int]) -> int | tuple[End, Cert | None]:
        """From ``certs[path[-1]]``: the served position of its issuer, or where the walk ends
        (and the store root reached, if any)."""
        current = certs[path[-1]]
        assert current.cert is not None
        if current.facts.self_signed:
            anchor = current if current.sha256 in self.store else None
            if anchor is None and self.store.holds_key_of(current):
                anchor = current
            return ("anchor" if anchor else "self-signed"), anchor
        for root in self.store.candidates(current.cert.issuer):
            if self._issued(current, root):
                return "anchor", root
        for position, candidate in enumerate(certs):
            if position in path or candidate.cert is None:
                continue
            if self._issued(current, candidate):
                return position
        return "missing-issuer", None

    def verify(self, certs: Sequence[Cert], name: str, now: dt.datetime) -> TrustVerdict:
        """The verdict for a served chain (leaf first) and the requested name.

        A trusted chain's path is read from the verified chain; only a refused chain is walked
        (``_walk``) to say why, which saves a signature check per target in the common case.
        """
        leaf = certs[0] if certs else None
        if leaf is None or leaf.cert is None:
            problem = leaf.facts.parse_error if leaf is not None else "no certificate"
            return TrustVerdict(
                store=self.store.name,
                trusted=False,
                reason=f"the leaf certificate cannot be parsed ({problem})",
                error=None,
                chain=self._links_of(certs, (0,), None) if certs else (),
                path=(0,),
                end="unparsable",
            )
        intermediates = [c.cert for c in certs[1:] if c.cert is not None]
        error: str | None = None
        built: list[x509.Certificate] | None = None
        try:
            verifier = (
                PolicyBuilder()
                .store(self.store.store)
                .time(now)
                .extension_policies(ca_policy=CA_POLICY, ee_policy=EE_POLICY)
                .build_server_verifier(_verifier_subject(name, leaf.facts.sans))
            )
            built = verifier.verify(leaf.cert, intermediates)
        except VerificationError as exc:
            error = _clean_error(str(exc))
        except Exception as exc:  # a certificate the verifier cannot even consider
            error = _clean_error(f"{type(exc).__name__}: {exc}")
        if built is not None:
            served: dict[str, int] = {}
            for index, sent in enumerate(certs):
                served.setdefault(sent.sha256, index)  # the first of duplicates
            parsed = {id(sent.cert): sent for sent in certs if sent.cert is not None}
            links = []
            facts_built = []
            for cert in built:
                facts = self._facts_of(cert, parsed)
                facts_built.append(facts)
                position = served.get(facts.sha256)
                links.append(
                    ChainLink(
                        sha256=facts.sha256,
                        spki_sha256=facts.spki_sha256,
                        subject=facts.subject,
                        source="sent" if position is not None else "store",
                        position=position,
                        cn=facts.cn,
                        not_after=facts.not_after,
                    )
                )
            notes = _notes(certs, built[-1] if built else None, self.store)
            weak = first_weak_key(facts_built)
            path_built = tuple(link.position for link in links if link.position is not None)
            if weak is not None:  # the verifier does not check key sizes; clients do
                index, why = weak
                label = facts_built[index].cn or facts_built[index].subject or "a certificate"
                return TrustVerdict(
                    store=self.store.name,
                    trusted=False,
                    reason=f"{label!r} has {why}: browsers, rustls and OpenSSL refuse it",
                    error=None,
                    chain=tuple(links),
                    path=path_built,
                    end="anchor",
                    anchor_in_store=True,
                    notes=notes,
                )
            return TrustVerdict(
                store=self.store.name,
                trusted=True,
                reason=None,
                error=None,
                chain=tuple(links),
                path=path_built,
                end="anchor",
                anchor_in_store=True,
                notes=notes,
            )
        path, end, anchor = self._walk(certs)
        return TrustVerdict(
            store=self.store.name,
            trusted=False,
            reason=self._reason(certs, path, end, error),
            error=error,
            chain=self._links_of(certs, path, anchor),
            path=path,
            end=end,
            anchor_in_store=anchor is not None,
            notes=_notes(certs, anchor.cert if anchor is not None else None, self.store),
        )

    def _facts_of(self, cert: x509.Certificate, parsed: dict[int, Cert]) -> CertFacts:
        """The facts of a certificate of a verified chain.

        The verifier returns the very objects it was given (the served ones, the store's), so
        their facts are at hand; they are used only if the object's DER is the one they were
        computed from, else (and for any other object) the DER is analysed.
        """
        der = cert.public_bytes(Encoding.DER)
        known = parsed.get(id(cert))
        if known is None or known.cert is not cert:
            known = self.store.root_of(cert)
        if known is not None and known.der == der:
            return known.facts
        return analyze_der(der)

    def _links_of(
        self, certs: Sequence[Cert], path: Sequence[int], anchor: Cert | None
    ) -> tuple[ChainLink, ...]:
        links = [
            ChainLink(
                sha256=certs[p].sha256,
                spki_sha256=certs[p].facts.spki_sha256,
                subject=certs[p].facts.subject,
                source="sent",
                position=p,
                cn=certs[p].facts.cn,
                not_after=certs[p].facts.not_after,
            )
            for p in path
            if p < len(certs)
        ]
        if anchor is not None and anchor.sha256 != links[-1].sha256:
            links.append(
                ChainLink(
                    sha256=anchor.sha256,
                    spki_sha256=anchor.facts.spki_sha256,
                    subject=anchor.facts.subject,
                    source="store",
                    position=None,
                    cn=anchor.facts.cn,
                    not_after=anchor.facts.not_after,
                )
            )
        return tuple(links)

    def _reason(
        self, certs: Sequence[Cert], path: Sequence[int], end: End, error: str | None
    ) -> str:
        last = certs[path[-1]]
        store = self.store.name
        if end == "self-signed":
            if len(path) == 1:
                return "the leaf is self-signed: no trust store has it"
            return (
                f"the chain ends at the root {last.label}, which is not in the trust store "
                f"({store})"
            )
        if end == "missing-issuer":
            issuer = repr(last.facts.issuer) if last.facts.issuer else "its issuer"
            if not last.facts.is_ca:
                return (
                    f"incomplete chain: the leaf's issuer {issuer} was not sent and is not in the "
                    f"trust store ({store}); the server must send the intermediate"
                )
            return (
                f"the issuer {issuer} of {last.label} was not sent and is not in the trust store "
                f"({store}): an untrusted or private root (or a missing intermediate)"
            )
        return error or "the verifier refused the chain"
