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

:func:`summarize` (pure) then groups the chains: each distinct chain once, where it was seen, and
the verdict. The *key set* of a chain is its leaf's key and its intermediates' keys (roots
left out: sent or not, clients use their own). ``pin-safe``: every probe that sent the requested
name got the same key set, on every address. ``not-pin-safe``: they differ, and ``differences``
says how (leaf keys, intermediates). ``unknown``: what was seen agrees but some address answered
no profile at all. ``safe_roles`` lists the roles (``leaf``, ``intermediate``) whose keys are the
same everywhere, i.e. what can still be pinned. The ``no-sni`` chain does not enter the
verdict (apps send SNI), but a different one is listed as a difference.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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

__all__ = ["VARIANTS", "DeploymentProber", "KeySet", "summarize", "variant_contexts"]

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


# --------------------------------------------------------------------------------------------
# Summary (pure)


@dataclass(frozen=True, slots=True)
class KeySet:
    """What a pin set must cover in one chain: the leaf's key and the intermediates' keys."""

    leaf: str | None
    intermediates: frozenset[str]


ChainFacts = Sequence[Mapping[str, Any]]
"""A chain as manifest ``chain`` items (dicts with ``sha256``, ``spki_sha256``, ``role``...)."""


def _key_set(chain: ChainFacts) -> KeySet:
    leaf = chain[0].get("spki_sha256") if chain else None
    inter = frozenset(
        str(c["spki_sha256"])
        for c in chain[1:]
        if c.get("role") == "intermediate" and c.get("spki_sha256")
    )
    return KeySet(leaf=leaf if isinstance(leaf, str) else None, intermediates=inter)


def _short(spki: str | None) -> str:
    return f"sha256/{spki[:12]}..." if spki else "(no key)"


def _where(items: Sequence[tuple[str | None, str]]) -> str:
    by_address: dict[str, list[str]] = {}
    for address, variant in items:
        by_address.setdefault(address or "?", []).append(variant)
    return "; ".join(f"{a} {', '.join(v)}" for a, v in by_address.items())


def summarize(
    probes: Sequence[DeploymentProbe],
    describe: Callable[[tuple[bytes, ...]], Mapping[str, Any]],
) -> dict[str, Any]:
    """The manifest's ``deployments`` object (see docs/inventory.md).

    ``describe(chain)`` gives the ``certs`` (manifest ``chain`` items), ``trusted`` and
    ``problems`` (codes) of one distinct chain; it is called once per distinct chain.
    """
    chains: list[dict[str, Any]] = []
    chain_ids: dict[tuple[bytes, ...], int] = {}
    rows: list[dict[str, Any]] = []
    for item in probes:
        outcome = item.outcome
        chain_id = None
        if outcome.ok and outcome.chain:
            chain_id = chain_ids.get(outcome.chain)
            if chain_id is None:
                chain_id = chain_ids[outcome.chain] = len(chains)
                described = dict(describe(outcome.chain))
                chains.append({"id": chain_id, **described, "seen": []})
            chains[chain_id]["seen"].append({"address": outcome.address, "variant": item.variant})
        rows.append(
            {
                "address": outcome.address,
                "variant": item.variant,
                "sni": item.sni,
                "status": "ok" if chain_id is not None else "failed",
                "error_kind": None if outcome.error_kind is None else str(outcome.error_kind),
                "error": outcome.error,
                "tls_version": outcome.tls_version,
                "cipher": outcome.cipher,
                "chain": chain_id,
            }
        )
    verdict, key_sets, safe_roles, differences = _verdict(rows, chains)
    return {
        "verdict": verdict,
        "key_sets": key_sets,
        "safe_roles": safe_roles,
        "differences": differences,
        "chains": chains,
        "probes": rows,
    }


def _pinning(row: Mapping[str, Any]) -> bool:
    """A successful probe that sent the requested name: what an app would see."""
    return row["chain"] is not None and row["variant"] != "no-sni"


def _verdict(
    rows: Sequence[Mapping[str, Any]], chains: Sequence[Mapping[str, Any]]
) -> tuple[str, int, list[str], list[dict[str, str]]]:
    """(verdict, number of key sets, safe roles, differences)."""
    seen: dict[KeySet, list[tuple[str | None, str]]] = {}
    for row in rows:
        if _pinning(row):
            key_set = _key_set(chains[row["chain"]]["certs"])
            seen.setdefault(key_set, []).append((row["address"], row["variant"]))
    differences: list[dict[str, str]] = []
    by_leaf: dict[str | None, list[tuple[str | None, str]]] = {}
    by_inter: dict[frozenset[str], list[tuple[str | None, str]]] = {}
    for key_set, where in seen.items():
        by_leaf.setdefault(key_set.leaf, []).extend(where)
        by_inter.setdefault(key_set.intermediates, []).extend(where)
    leaves, inters = set(by_leaf), set(by_inter)
    if len(by_leaf) > 1:
        detail = " / ".join(f"{_short(leaf)} at {_where(w)}" for leaf, w in by_leaf.items())
        differences.append({"kind": "leaf-key", "message": f"leaf keys differ: {detail}"})
    if len(by_inter) > 1:
        detail = " / ".join(
            f"{', '.join(_short(s) for s in sorted(inter)) or 'none'} at {_where(w)}"
            for inter, w in by_inter.items()
        )
        differences.append(
            {"kind": "intermediates", "message": f"intermediate keys differ: {detail}"}
        )
    pinned_leaves = {k.leaf for k in seen}
    for row in rows:
        if row["variant"] == "no-sni" and row["chain"] is not None:
            key_set = _key_set(chains[row["chain"]]["certs"])
            if key_set.leaf not in pinned_leaves:
                certs = chains[row["chain"]]["certs"]
                cn = certs[0].get("cn") if certs else None
                differences.append(
                    {
                        "kind": "no-sni",
                        "message": f"without SNI, {row['address']} sends another leaf "
                        f"({cn!r}, {_short(key_set.leaf)}); apps send SNI, so it does not "
                        "affect pinning",
                    }
                )
    answered = {row["address"] for row in rows if _pinning(row)}
    silent = sorted({str(row["address"]) for row in rows} - {str(a) for a in answered})
    for address in silent:
        kinds = sorted({str(r["error_kind"]) for r in rows if r["address"] == address})
        differences.append(
            {
                "kind": "address-failed",
                "message": f"{address} answered no profile ({', '.join(kinds)}): its chain is "
                "unknown",
            }
        )
    safe_roles = []
    if seen and len(leaves) == 1 and None not in leaves:
        safe_roles.append("leaf")
    if seen and len(inters) == 1 and next(iter(inters)):
        safe_roles.append("intermediate")
    if not seen:
        verdict = "unknown"
    elif len(seen) > 1:
        verdict = "not-pin-safe"
    elif silent:
        verdict = "unknown"
    else:
        verdict = "pin-safe"
    return verdict, len(seen), safe_roles, differences
