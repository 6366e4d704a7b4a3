"""``--deployments``: every chain a name serves, and whether one pin set fits them all.

Theory of operation
-------------------

One handshake shows one certificate. A server often holds an RSA and an ECDSA certificate
side by side and picks one by what the client offers; the addresses behind one name may run
different deployments; a client that sends no SNI often gets the default virtual host's
certificate. An app that pins sees whichever of these its connection lands on.

So after a target's ordinary probe succeeds, :class:`DeploymentProber` (the scheduler's
optional follow-up hook) probes each resolved address with each client profile of
:data:`VARIANTS`:

=================  ======================================================================
``default``        the scan's own client: TLS 1.0 to 1.3, every cipher (TLS 1.3 where the
                   server has it); the ordinary probe is reused for its address
``tls1.2-rsa``     TLS 1.2 at most, only RSA-authenticated suites (OpenSSL ``aRSA``)
``tls1.2-ecdsa``   TLS 1.2 at most, only ECDSA-authenticated suites (``aECDSA``)
``no-sni``         the default client without a server name (skipped for IP targets,
                   which send none anyway)
=================  ======================================================================

Each probe is one attempt of ``_probe.probe`` through the scheduler's own ``gate`` (per-address
cap, global slot, rate token), so ``--deployments`` stays within ``--concurrency``, ``--per-ip``
and ``--rate``; they run concurrently, all within one more ``--deadline``. A profile the server
cannot serve (no RSA certificate: a ``tls-alert``) is an answer, not an error.

:func:`chainscan.analysis._deployments.summarize` (pure, on the analysis side, where the entry
is built) then groups the chains and gives the verdict (``pin-safe``, ``not-pin-safe``,
``unknown``); its module says how.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import trio

from .._models import (
    DeploymentProbe,
    ErrorKind,
    ProbeOutcome,
    ScanOptions,
    ScanResult,
    Status,
)
from ._probe import Gate, probe
from ._resolve import ResolveFailed, Resolver
from ._tls import client_context

__all__ = ["VARIANTS", "DeploymentProber", "variant_contexts"]

VARIANTS: tuple[str, ...] = ("default", "tls1.2-rsa", "tls1.2-ecdsa", "no-sni")
"""Client profiles of ``--deployments``, in the order they are reported."""

_VARIANT_CIPHERS = {
    "tls1.2-rsa": "aRSA:@SECLEVEL=0",
    "tls1.2-ecdsa": "aECDSA:@SECLEVEL=0",
}


def variant_contexts() -> dict[str, ssl.SSLContext]:
    """One client context per profile (``no-sni`` shares ``default``'s)."""
    contexts = {"default": client_context()}
    for variant, ciphers in _VARIANT_CIPHERS.items():
        ctx = client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
        contexts[variant] = ctx
    contexts["no-sni"] = contexts["default"]
    return contexts


class DeploymentProber:
    """The scheduler's follow-up for ``--deployments``: adds ``ScanResult.deployments``."""

    def __init__(
        self,
        options: ScanOptions,
        *,
        contexts: Mapping[str, ssl.SSLContext] | None = None,
        probe_fn: Callable[..., Any] = probe,
    ) -> None:
        self.options = options
        self._contexts = dict(contexts) if contexts is not None else variant_contexts()
        self._probe = probe_fn

    async def __call__(self, result: ScanResult, *, resolver: Resolver, gate: Gate) -> ScanResult:
        if result.status is not Status.OK:
            return result
        target = result.target
        try:
            addresses = [
                a.ip for a in await resolver.resolve(target.address or target.host, target.port)
            ]
        except ResolveFailed:
            addresses = []
        if result.address is not None and result.address not in addresses:
            addresses.insert(0, result.address)
        variants = [v for v in VARIANTS if not (v == "no-sni" and target.sni is None)]
        plan = [(ip, v) for ip in addresses for v in variants]
        found: dict[tuple[str, str], ProbeOutcome] = {}
        if result.address is not None:
            found[(result.address, "default")] = ProbeOutcome(
                chain=result.chain,
                chain_sent=result.chain_sent,
                address=result.address,
                tls_version=result.tls_version,
                cipher=result.cipher,
                timings=result.timings,
            )

        async def run(ip: str, variant: str) -> None:
            sni = None if variant == "no-sni" else target.sni
            found[(ip, variant)] = await self._probe(
                replace(target, address=ip, sni=sni),
                options=self.options,
                context=self._contexts[variant],
                resolver=resolver,
                gate=gate,
            )

        with trio.move_on_after(self.options.deadline):
            async with trio.open_nursery() as nursery:
                for ip, variant in plan:
                    if (ip, variant) not in found:
                        nursery.start_soon(run, ip, variant)
        probes = []
        for ip, variant in plan:
            outcome = found.get((ip, variant)) or ProbeOutcome(
                error_kind=ErrorKind.TIMEOUT,
                error=f"no answer within the {self.options.deadline:g}s deadline",
                address=ip,
            )
            sni = None if variant == "no-sni" else target.sni
            probes.append(DeploymentProbe(variant=variant, sni=sni, outcome=outcome))
        return replace(result, deployments=tuple(probes))
