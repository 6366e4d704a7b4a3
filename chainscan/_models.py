"""Frozen value objects shared by every stage of a scan.

Data flows one way through chainscan::

    text lines -> Target -> (schedule, probe) -> ScanResult -> (analyze) -> CertFacts
        -> (output) DER files + manifest entries

Every object here is immutable and carries no behaviour beyond small derived properties, so
the stages can be tested apart and results can cross threads and processes safely.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .analysis._chain_inventory import ChainInventory

WARN_DAYS = 30
"""The default ``--warn-days`` of the scan and of every command: certificates expiring within
this many days are reported."""


class Status(enum.StrEnum):
    """What became of one line of input."""

    OK = "ok"
    """The handshake got far enough to receive the server's certificate chain."""
    FAILED = "failed"
    """No chain: see ``error_kind``."""
    INVALID = "invalid"
    """The input line could not be understood; nothing was sent."""


class ErrorKind(enum.StrEnum):
    """Stable, documented reasons why a target has no chain (see docs/manifest.md)."""

    BAD_INPUT = "bad-input"
    """The input line is not a valid target (bad port, empty host, invalid name, ...)."""
    DNS = "dns"
    """The name does not exist or has no address (permanent)."""
    DNS_TEMPORARY = "dns-temporary"
    """The resolver failed temporarily (SERVFAIL, timeout); retried."""
    REFUSED = "refused"
    """TCP connection refused: nothing listens on that port (permanent)."""
    UNREACHABLE = "unreachable"
    """No route to the network or host (permanent)."""
    TIMEOUT_CONNECT = "timeout-connect"
    """The TCP connection did not complete within --connect-timeout; retried."""
    TIMEOUT_HANDSHAKE = "timeout-handshake"
    """The server did not send its certificates within --handshake-timeout; retried."""
    TIMEOUT = "timeout"
    """The target's total deadline (--deadline, all attempts and waits) ran out."""
    RESET = "reset"
    """The server reset the connection during the handshake; retried."""
    EOF = "eof"
    """The server closed the connection before sending its certificates; retried."""
    TLS_ALERT = "tls-alert"
    """The server answered with a TLS alert (e.g. handshake_failure) (permanent)."""
    NOT_TLS = "not-tls"
    """The server answered with something that is not TLS (HTTP, SSH, ...) (permanent)."""
    TLS_ERROR = "tls-error"
    """Any other TLS protocol failure (permanent)."""
    TOO_LARGE = "too-large"
    """The server sent more handshake data than the documented cap (permanent)."""
    NO_CERTIFICATE = "no-certificate"
    """The handshake finished without a certificate (anonymous or PSK suite) (permanent)."""
    LOCAL = "local"
    """A failure on our side (out of file descriptors, no local address, ...)."""
    STARTTLS_UNSUPPORTED = "starttls-unsupported"
    """The plaintext protocol does not offer TLS on this connection (permanent)."""
    STARTTLS_REFUSED = "starttls-refused"
    """The server refused to start TLS, or refused the session before it (permanent)."""
    PROTOCOL_ERROR = "protocol-error"
    """The plaintext dialogue before TLS broke its protocol (permanent)."""


TRANSIENT_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.DNS_TEMPORARY,
        ErrorKind.TIMEOUT_CONNECT,
        ErrorKind.TIMEOUT_HANDSHAKE,
        ErrorKind.RESET,
        ErrorKind.EOF,
    }
)
"""Error kinds worth another attempt; every other kind is final."""


TargetKey = tuple[str, int, str | None, str | None] | tuple[str, int, str | None, str | None, str]
"""What identifies a target: host, port, requested address, SNI, and the STARTTLS protocol
when there is one (direct-TLS targets keep the four-item key they always had)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One endpoint to scan, as parsed from an input line."""

    host: str
    """Name to resolve (IDNA A-label, lower case) or an IP literal (IPv6 without brackets)."""
    port: int
    """TCP port, 1-65535."""
    sni: str | None
    """Server name to send in the TLS ClientHello; None sends no SNI."""
    address: str | None = None
    """Explicit IP address to connect to instead of resolving ``host`` (``host{ip}`` form)."""
    raw: str = ""
    """The input line as written (stripped), for the manifest."""
    line: int = 0
    """1-based line number in the input; 0 for targets made through the API."""
    source: str = ""
    """Input file name as given (``-`` for stdin, ``<api>`` for strings given to the API)."""
    protocol: str | None = None
    """Plaintext dialogue before TLS (``smtp``, ``imap``, ...: the README's Input section);
    None for direct TLS."""

    @property
    def key(self) -> TargetKey:
        """Identity used to drop duplicates and to resume: what is connected to and asked."""
        if self.protocol is None:
            return (self.host, self.port, self.address, self.sni)
        return (self.host, self.port, self.address, self.sni, self.protocol)


@dataclass(frozen=True, slots=True, kw_only=True)
class BadLine:
    """An input line that is not a valid target."""

    source: str
    """Input file name as given on the command line (``-`` for stdin)."""
    line: int
    """1-based line number."""
    raw: str
    """The line as written (stripped, truncated to 200 characters)."""
    reason: str
    """What is wrong and what to do, e.g. ``port 99999 is out of range (1-65535)``."""

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timings:
    """Where the time of the successful (or last) attempt went, in seconds."""

    resolve: float = 0.0
    connect: float = 0.0
    handshake: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeOutcome:
    """The result of one connection attempt (one TCP connect + TLS handshake)."""

    chain: tuple[bytes, ...] = ()
    """DER certificates exactly as the server sent them, in order; empty on failure."""
    chain_sent: int = 0
    """Certificates the server sent; ``chain`` keeps the first ``max_chain_length`` of them."""
    error_kind: ErrorKind | None = None
    error: str | None = None
    """Human-readable message for the failure."""
    address: str | None = None
    """IP address connected to (or last tried)."""
    tls_version: str | None = None
    """Negotiated protocol, e.g. ``TLSv1.3``."""
    cipher: str | None = None
    """Negotiated cipher suite (OpenSSL name)."""
    timings: Timings = field(default_factory=Timings)

    @property
    def ok(self) -> bool:
        return self.error_kind is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    """Everything known about one target after all its attempts."""

    target: Target
    status: Status
    chain: tuple[bytes, ...] = ()
    """DER certificates as sent by the server, leaf first (server's order)."""
    chain_sent: int = 0
    """Certificates the server sent; ``chain`` keeps the first ``max_chain_length`` of them."""
    error_kind: ErrorKind | None = None
    error: str | None = None
    attempts: int = 0
    """Connection attempts made (0 for invalid lines and DNS failures)."""
    elapsed: float = 0.0
    """Seconds from the first attempt to the result, backoff waits included."""
    address: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    timings: Timings = field(default_factory=Timings)
    deployments: tuple[DeploymentProbe, ...] = ()
    """Extra handshakes of ``--deployments`` (every address, client profile, no SNI)."""
    fetched: tuple[Fetch, ...] = ()
    """URLs of the chain's certificates fetched after the handshake (AIA caIssuers), in order."""
    revocation: tuple[RevocationCheck, ...] = ()
    """What the leaf's CRL and OCSP responder said (``--revocation``), in the order asked."""
    inventory: ChainInventory | None = None
    """Trust, hostname and problems of ``chain``: only from the library API opened with
    ``inventory=True``, and only when there is a chain; None otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationCheck:
    """One CRL or OCSP answer about the leaf, checked (``analysis._revocation``)."""

    source: str
    """``crl`` or ``ocsp``."""
    url: str
    status: str | None = None
    """``good``, ``revoked`` or ``unknown`` (the responder does not know it); None on error."""
    error: str | None = None
    """Why there is no usable answer: the fetch failed, or the answer is not signed by the
    issuer, is about another certificate, is not a CRL or OCSP response."""
    revoked_at: str | None = None
    reason: str | None = None
    """The CRL or OCSP reason code, e.g. ``keyCompromise``."""
    this_update: str | None = None
    next_update: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """One URL found in a certificate, fetched by the scan, and what it gave (see
    docs/inventory.md, "Missing intermediates")."""

    url: str
    purpose: str = "ca-issuers"
    """Why it was fetched: ``ca-issuers`` (the AIA extension's issuer certificate)."""
    for_sha256: str
    """SHA-256 of the certificate whose URL it is."""
    certs: tuple[bytes, ...] = ()
    """DER certificates the URL served (one DER certificate, or a PKCS#7 certs-only bundle)."""
    error: str | None = None
    """Why nothing usable came (refused by the fetch guard, HTTP status, size, time, garbage)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentProbe:
    """One extra handshake of ``--deployments``: one address, one client profile."""

    variant: str
    """``default``, ``tls1.2-rsa``, ``tls1.2-ecdsa`` or ``no-sni`` (see docs/inventory.md)."""
    sni: str | None
    """The server name sent (None for ``no-sni``)."""
    outcome: ProbeOutcome
    """What the handshake gave; ``outcome.address`` is the address probed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFacts:
    """What chainscan reports about one DER certificate (see docs/manifest.md)."""

    sha256: str
    """SHA-256 of the DER, lower-case hex."""
    sha1: str
    """SHA-1 of the DER, lower-case hex."""
    size: int
    """Length of the DER in bytes."""
    parse_error: str | None = None
    """Why ``cryptography`` could not parse it; all fields below are then None/empty."""
    subject: str | None = None
    """RFC 4514 string."""
    issuer: str | None = None
    cn: str | None = None
    """First subject commonName, or None."""
    sans: tuple[str, ...] = ()
    """subjectAltName entries as ``DNS:name``, ``IP:addr``, ``URI:...``, ``email:...``."""
    serial: str | None = None
    """Serial number, lower-case hex without leading zeros."""
    not_before: str | None = None
    """ISO 8601 UTC, e.g. ``2026-01-01T00:00:00Z``."""
    not_after: str | None = None
    signature_algorithm: str | None = None
    """e.g. ``sha256WithRSAEncryption``, ``ecdsa-with-SHA256``, ``ed25519``."""
    key_type: str | None = None
    """``RSA``, ``EC``, ``DSA``, ``Ed25519``, ``Ed448`` or ``unknown``."""
    key_size: int | None = None
    """Key size in bits."""
    curve: str | None = None
    """EC curve name, e.g. ``secp256r1``."""
    is_ca: bool | None = None
    """basicConstraints CA flag; None when the extension is absent."""
    self_signed: bool | None = None
    """Subject equals issuer and the signature verifies with its own key."""
    spki_sha256: str | None = None
    """Base64 SHA-256 of the DER SubjectPublicKeyInfo: the pin value."""

    @property
    def pin(self) -> str | None:
        """``sha256/BASE64`` pin string (HPKP / OkHttp form)."""
        return None if self.spki_sha256 is None else f"sha256/{self.spki_sha256}"


class CertFormat(enum.StrEnum):
    """How certificate files are written (like KonySSLPinningTool's ``--cert_format``)."""

    DER = "der"
    PEM = "pem"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    """How a scan behaves. Every field has the CLI's default."""

    concurrency: int = 500
    """Connections open at once, at most (--concurrency)."""
    rate: float = 500.0
    """New connections per second across the whole scan; 0 means unlimited (--rate)."""
    burst: int = 0
    """Token-bucket depth; 0 picks min(rate, concurrency) (at least 1)."""
    per_ip: int = 16
    """Connections open at once to one IP address, at most (--per-ip); 0: no limit."""
    per_net: int = 0
    """Connections open at once to one IPv4 /24 or IPv6 /64, at most (--per-net); 0: no limit."""
    connect_timeout: float = 5.0
    """Seconds for the TCP connection to complete (--connect-timeout)."""
    handshake_timeout: float = 10.0
    """Seconds for the whole TLS handshake, however the server drips bytes (--handshake-timeout)."""
    deadline: float = 30.0
    """Seconds for one target, all attempts and backoff waits included (--deadline)."""
    retries: int = 2
    """Extra attempts after a transient failure (--retries)."""
    backoff_base: float = 0.5
    """First backoff ceiling in seconds; doubles each retry (full jitter)."""
    backoff_cap: float = 8.0
    """Largest backoff ceiling in seconds."""
    default_port: int = 443
    """Port for lines that name none (--port)."""
    starttls: str = "auto"
    """Plaintext dialogue for lines without a scheme (--starttls): ``auto`` (by port), ``none``
    (direct TLS) or a protocol name (``smtp``, ``imap``, ...)."""
    sni: str | None = None
    """Force this SNI name for every target (--sni)."""
    max_handshake_bytes: int = 4 * 1024 * 1024
    """Handshake bytes accepted from one server before giving up with ``too-large``."""
    max_chain_length: int = 64
    """Certificates kept per chain; the rest are counted in the manifest, not saved."""
    cert_format: CertFormat = CertFormat.DER
    trust_store: str = "certifi"
    """Roots chains are verified against: ``certifi``, ``system`` or a PEM file (--trust-store)."""
    warn_days: int = WARN_DAYS
    """Certificates expiring within this many days get ``expires-soon`` (--warn-days)."""
    deployments: bool = False
    """Probe every address with several client profiles and without SNI (--deployments)."""
    fetch: bool = True
    """Fetch missing intermediates from AIA caIssuers URLs (off: --no-fetch)."""
    fetch_allow: tuple[str, ...] = ()
    """CIDRs fetched from although the fetch guard denies them by default (--fetch-allow)."""
    fetch_deny: tuple[str, ...] = ()
    """CIDRs never fetched from, on top of the defaults (--fetch-deny)."""
    fetch_timeout: float = 10.0
    """Seconds for one URL, redirects and body included (--fetch-timeout)."""
    fetch_max_bytes: int = 1024 * 1024
    """Largest body accepted from a caIssuers URL or an OCSP responder."""
    revocation: str = "crl"
    """``crl``, ``ocsp``, ``both`` or ``off`` (--revocation); nothing without fetching."""
    crl_max_bytes: int = 32 * 1024 * 1024
    """Largest CRL accepted."""
