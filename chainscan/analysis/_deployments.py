"""The ``deployments`` object of ``--deployments``: the chains a name serves, and whether one pin
set fits them all. Pure: the probes (``scan._deployments``) happen in the scan; this runs where
the entry is built (``_inventory``, in the writer).

:func:`summarize` groups the chains: each distinct chain once, where it was seen, and the
verdict. The *key set* of a chain is its leaf's key and its intermediates' keys (roots left
out: sent or not, clients use their own). ``pin-safe``: every probe that sent the requested name
got the same key set, on every address. ``not-pin-safe``: they differ, and ``differences`` says
how (leaf keys, intermediates). ``unknown``: what was seen agrees but some address answered no
profile at all. ``safe_roles`` lists the roles (``leaf``, ``intermediate``) whose keys are the
same everywhere, i.e. what can still be pinned. The ``no-sni`` chain does not enter the verdict
(apps send SNI), but a different one is listed as a difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._models import DeploymentProbe
from ..manifest._model import short_pin

__all__ = ["KeySet", "summarize"]


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
        detail = " / ".join(f"{short_pin(leaf)} at {_where(w)}" for leaf, w in by_leaf.items())
        differences.append({"kind": "leaf-key", "message": f"leaf keys differ: {detail}"})
    if len(by_inter) > 1:
        detail = " / ".join(
            f"{', '.join(short_pin(s) for s in sorted(inter)) or 'none'} at {_where(w)}"
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
                        f"({cn!r}, {short_pin(key_set.leaf)}); apps send SNI, so it does not "
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
