"""Helpers for the inventory tests: loopback fleets, servers whose chains change, the CLI.

* :func:`fleet` builds the certificates of a fleet with one target per problem code, all under
  one test root (the trust store given with ``--trust-store``), dated relative to *now*: the
  scanner validates at the real time.
* :class:`RenewableServer` is a :class:`~tests.servers.TLSServer` whose chains can be replaced
  while it runs (same port), so two scans of one target list see a renewal in between.
* :class:`DualServer` loads a second certificate (another key type) for some names into the
  same context, as servers holding an RSA and an ECDSA certificate side by side do.
* :func:`run` runs ``chainscan ...`` in this process and returns (exit code, stdout, stderr).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from chainscan._cli import main as chainscan_main
from tests.pki import CA, Issued
from tests.servers import ServedChain, TLSServer, served_chain

__all__ = [
    "EXPECTED",
    "SECLEVEL0",
    "DualServer",
    "Fleet",
    "RenewableServer",
    "fleet",
    "run",
    "self_signed_leaf",
]

SECLEVEL0 = "ALL:@SECLEVEL=0"
"""Server ciphers that still load RSA-1024 and SHA-1 certificates."""

DAY = dt.timedelta(days=1)

EXPECTED: dict[str, set[str]] = {
    "good.test": set(),
    "expired.test": {"expired"},
    "future.test": {"not-yet-valid"},
    "soon.test": {"expires-soon"},
    "wrong.test": {"hostname-mismatch"},
    "self.test": {"self-signed-leaf"},
    "private.test": {"untrusted-root"},
    "incomplete.test": {"incomplete-chain"},
    "reversed.test": {"chain-out-of-order"},
    "rootsent.test": {"root-sent"},
    "dup.test": {"duplicate-certificate"},
    "rsa1024.test": {"weak-key"},
    "sha1.test": {"weak-signature"},
    "nosan.test": {"no-san"},
    "long.test": {"long-validity"},
    "clientonly.test": {"untrusted"},
    "noncrit.test": {"basic-constraints-not-critical"},
}
"""SNI name -> the problem codes its chain must have (and no others), with the fleet's root as
the trust store."""


def self_signed_leaf(name: str) -> CA:
    """A self-signed end-entity certificate for ``name`` (CA=FALSE, SAN DNS:name)."""
    return CA(
        name,
        extra_extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            x509.SubjectAlternativeName([x509.DNSName(name)]),
        ],
    )


@dataclass(frozen=True, slots=True)
class Fleet:
    root: CA
    intermediate: CA
    chains: dict[str | None, ServedChain]

    def root_pem(self, folder: Path) -> Path:
        path = folder / "fleet-root.pem"
        path.write_bytes(self.root.pem)
        return path


def fleet(tmp: Path, now: dt.datetime | None = None) -> Fleet:
    """One SNI name per problem code (see :data:`EXPECTED`); no or unknown SNI: good.test."""
    now = now or dt.datetime.now(dt.UTC)
    root = CA("fleet root")
    inter = root.child_ca("fleet intermediate")
    private_root = CA("private root")
    private_inter = private_root.child_ca("private intermediate")
    upper = root.child_ca("fleet upper intermediate")
    lower = upper.child_ca("fleet lower intermediate")
    sha1_inter = root.child_ca("fleet sha1 intermediate", hash=hashes.SHA1())
    lax_inter = root.child_ca(
        "fleet lax intermediate",
        extra_extensions=[(x509.BasicConstraints(ca=True, path_length=None), False)],
    )
    self_signed = self_signed_leaf("self.test")

    def leaf(name: str, **kwargs: object) -> Issued:
        return inter.issue(name, **kwargs)  # type: ignore[arg-type]

    good = leaf("good.test")
    chains: dict[str | None, ServedChain] = {
        "good.test": served_chain(tmp, good, inter),
        "expired.test": served_chain(
            tmp, leaf("expired.test", not_before=now - 100 * DAY, not_after=now - 10 * DAY), inter
        ),
        "future.test": served_chain(
            tmp, leaf("future.test", not_before=now + 10 * DAY, not_after=now + 100 * DAY), inter
        ),
        "soon.test": served_chain(
            tmp, leaf("soon.test", not_before=now - 80 * DAY, not_after=now + 10 * DAY), inter
        ),
        "wrong.test": served_chain(tmp, leaf("other.test"), inter),
        "self.test": served_chain(tmp, self_signed.issued),
        "private.test": served_chain(tmp, private_inter.issue("private.test"), private_inter),
        "incomplete.test": served_chain(tmp, leaf("incomplete.test")),
        "reversed.test": served_chain(tmp, lower.issue("reversed.test"), upper, lower),
        "rootsent.test": served_chain(tmp, leaf("rootsent.test"), inter, root),
        "dup.test": served_chain(tmp, leaf("dup.test"), inter, inter),
        "rsa1024.test": served_chain(
            tmp, leaf("rsa1024.test", key_type="rsa", key_size=1024), inter
        ),
        "sha1.test": served_chain(tmp, sha1_inter.issue("sha1.test"), sha1_inter),
        "nosan.test": served_chain(tmp, leaf("nosan.test", san=False), inter),
        "long.test": served_chain(
            tmp, leaf("long.test", not_before=now - DAY, not_after=now + 500 * DAY), inter
        ),
        "clientonly.test": served_chain(
            tmp,
            leaf(
                "clientonly.test",
                extra_extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])],
            ),
            inter,
        ),
        "noncrit.test": served_chain(tmp, lax_inter.issue("noncrit.test"), lax_inter),
    }
    chains[None] = chains["good.test"]
    return Fleet(root=root, intermediate=inter, chains=chains)


class RenewableServer(TLSServer):
    """A TLSServer whose chains :meth:`renew` replaces while it keeps its port."""

    def __init__(self, chains: Mapping[str | None, ServedChain], host: str = "127.0.0.1") -> None:
        super().__init__(chains, host, ciphers=SECLEVEL0)

    def renew(self, chains: Mapping[str | None, ServedChain]) -> None:
        default = None if None in chains else next(iter(chains))
        contexts = {
            name: self._context(certfile, keyfile, None, None, SECLEVEL0, 0)
            for name, (certfile, keyfile, _der) in chains.items()
        }
        ders = {name: tuple(der) for name, (_c, _k, der) in chains.items()}
        ders.setdefault(None, ders[default])
        with self._lock:
            self._contexts = contexts
            self._default_context = contexts[default]
            self._ders = ders
            if self.handle is not None:
                self.handle.chains = dict(ders)


class DualServer(TLSServer):
    """A TLSServer that also loads ``extra[name]`` (another key type) for ``name``."""

    def __init__(
        self,
        chains: Mapping[str | None, ServedChain],
        extra: Mapping[str | None, ServedChain],
        host: str = "127.0.0.1",
    ) -> None:
        self._extra = {chains[name].certfile: served for name, served in extra.items()}
        super().__init__(chains, host)

    def _context(
        self,
        certfile: str | Path,
        keyfile: str | Path,
        min_version: ssl.TLSVersion | None,
        max_version: ssl.TLSVersion | None,
        ciphers: str | None,
        num_tickets: int,
    ) -> ssl.SSLContext:
        ctx = super()._context(certfile, keyfile, min_version, max_version, ciphers, num_tickets)
        second = self._extra.get(str(certfile))
        if second is not None:
            ctx.load_cert_chain(second.certfile, second.keyfile)
        return ctx


def run(*args: str) -> tuple[int, str, str]:
    """``chainscan ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = chainscan_main(list(args))
    return code, out.getvalue(), err.getvalue()
