"""Where the chain as sent stops (``scan._aia``): the completer's per-run memo of the walk from
the leaf's issuer on gives what ``top_of`` gives, chain by chain, and is taken once per
distinct set of sent CA certificates (issue 16). Pure: no network (anchors given)."""

from __future__ import annotations

import itertools

import pytest
import trio
from cryptography import x509

from chainscan import ScanOptions
from chainscan.scan import _aia
from chainscan.scan._resolve import Resolver
from tests.pki import CA


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    root = CA("top root")
    inter = root.child_ca("top inter")
    lower = inter.child_ca("top lower")
    other = CA("top other root")
    return {
        "root": root.der,
        "inter": inter.der,
        "lower": lower.der,
        "other": other.der,
        "leaf": lower.issue("a.example").der,
        "leaf2": lower.issue("b.example").der,
        "leaf_inter": inter.issue("c.example").der,
        "self": CA("top self-signed leaf").der,
    }


def _chains(pki: dict[str, bytes]) -> list[tuple[bytes, ...]]:
    cas = ["root", "inter", "lower", "other"]
    chains = []
    for leaf in ("leaf", "leaf2", "leaf_inter", "self"):
        for size in range(4):
            for cas_sent in itertools.permutations(cas, size):
                chains.append((pki[leaf], *(pki[c] for c in cas_sent)))
    chains.append((b"not a certificate", pki["inter"]))
    return chains


def _completer(anchors: frozenset[bytes]) -> _aia.ChainCompleter:
    return _aia.ChainCompleter(ScanOptions(fetch=True), Resolver(), anchors=anchors)


@pytest.mark.parametrize("anchored_root", [True, False])
def test_the_remembered_walk_ends_where_top_of_does(
    pki: dict[str, bytes], anchored_root: bool
) -> None:
    root_subject = _aia.names_of(pki["root"])
    assert root_subject is not None
    anchors = frozenset([root_subject[1]]) if anchored_root else frozenset()
    completer = _completer(anchors)
    chains = _chains(pki)

    async def main() -> list[tuple[bytes | None, bool]]:
        out = []
        for chain in chains * 2:  # the second round comes from the memo
            top, anchored = await completer._top(chain)
            out.append((None if top is None else _aia._der(top), anchored))
        return out

    got = trio.run(main)

    async def expected() -> list[tuple[bytes | None, bool]]:
        out = []
        for chain in chains * 2:
            top = _aia.top_of(chain)
            reaches = top is not None and await _completer(anchors)._reaches_anchor(top)
            out.append((None if top is None else _aia._der(top), reaches))
        return out

    assert got == trio.run(expected)
    assert any(anchored for _, anchored in got) and not all(anchored for _, anchored in got)


def test_the_walk_from_the_issuer_is_taken_once_per_set_of_sent_ca_certificates(
    pki: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[int] = []
    real = _aia._walk_on

    def counting(certs: list[x509.Certificate | None], first: int) -> int:
        walks.append(first)
        return real(certs, first)

    monkeypatch.setattr(_aia, "_walk_on", counting)
    completer = _completer(frozenset())
    sent = (pki["lower"], pki["inter"], pki["root"])

    async def main() -> None:
        for leaf in (pki["leaf"], pki["leaf2"], pki["leaf"]):
            top, anchored = await completer._top((leaf, *sent))
            assert top is not None and _aia._der(top) == pki["root"] and anchored
        top, _ = await completer._top((pki["leaf"], pki["inter"], pki["lower"], pki["root"]))
        assert top is not None and _aia._der(top) == pki["root"]

    trio.run(main)
    assert walks == [1, 2]  # once for the first order sent, once for the other
