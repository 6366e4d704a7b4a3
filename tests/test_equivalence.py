"""Every execution mode writes the same scan: ``--writer thread``, ``--writer process``,
``--workers 2`` and ``--dask local:2`` over one loopback fleet give the same folder.

The fleet: the inventory fleet (one SNI name per problem code, ``tests/inventory_fleet.py``)
served from two addresses (127.0.0.1 and 127.0.0.2: ``--workers`` and ``--dask`` split by
address, so both halves of each split get targets), IP targets without SNI, a refused port, a
server that is not TLS, invalid lines and a duplicate line.

Two checks, so that a change shows whichever mode it touches:

* **Same folder in every mode**: every certificate file byte for byte, and every manifest entry
  field for field, in its order, apart from the timings (``elapsed``, ``timings``); the entries
  are compared by input line (their order in the manifest is completion order). The summaries
  are equal; the ``run`` headers differ only where they name the mode.
* **The folder is what the fleet serves** (an oracle that does not use chainscan): each
  ``ok`` entry lists exactly the DER the server sends for its SNI, in order, in files named by
  the subject CN (KonySSLPinningTool: non-alphanumerics to ``_``), with SHA-256, SHA-1 and SPKI
  pins computed here from the DER, the problem codes the fleet was built to have, and the
  failures and invalid lines where they belong. A change to the common writer would pass the
  first check in all four modes and fail this one.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.inventory_fleet import EXPECTED, SECLEVEL0, Fleet, fleet
from tests.runs import (
    certificate_files,
    chainscan,
    entries,
    entries_by_line,
    finish,
    manifest_rows,
)
from tests.servers import ScriptedServer, TLSServer, http_banner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OPTIONS = ["--connect-timeout", "2", "--handshake-timeout", "3", "--deadline", "8", "-q"]
BAD_LINES = ["bad:99999", "exa mple.test"]
MODES = {
    "thread": ["--writer", "thread"],
    "process": ["--writer", "process"],
    "workers": ["--workers", "2"],
    "dask": ["--dask", "local:2"],
}
HAVE_DASK = importlib.util.find_spec("distributed") is not None


@dataclasses.dataclass(frozen=True)
class Scans:
    fleet: Fleet
    hosts: Path
    lines: list[str]
    ports: dict[str, int]
    """Address -> port of its TLS server; ``not-tls`` and ``refused`` as well."""
    out: dict[str, Path]
    """Mode -> output folder."""
    codes: dict[str, int]


def _refused_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scans]:
    tmp = tmp_path_factory.mktemp("equivalence")
    served = fleet(tmp)
    trust = served.root_pem(tmp)
    with (
        TLSServer(served.chains, "127.0.0.1", ciphers=SECLEVEL0) as one,
        TLSServer(served.chains, "127.0.0.2", ciphers=SECLEVEL0) as two,
        ScriptedServer(http_banner, "127.0.0.2") as not_tls,
    ):
        ports = {"127.0.0.1": one.port, "127.0.0.2": two.port, "not-tls": not_tls.port}
        ports["refused"] = _refused_port()
        lines = [
            f"{name}:{port}{{{address}}}"
            for address, port in list(ports.items())[:2]
            for name in EXPECTED
        ]
        lines[5:5] = BAD_LINES
        lines += [f"127.0.0.1:{one.port}", f"127.0.0.2:{two.port}"]  # no SNI: the default chain
        lines += [f"plain.test:{not_tls.port}{{127.0.0.2}}", f"closed.test:{ports['refused']}"]
        lines[-1] += "{127.0.0.1}"
        lines.append(lines[0])  # a duplicate: scanned once, listed once
        hosts = tmp / "hosts.txt"
        hosts.write_text("\n".join(lines) + "\n")
        out, codes = {}, {}
        for mode, extra in MODES.items():
            if mode == "dask" and not HAVE_DASK:
                continue
            out[mode] = tmp / mode
            proc = chainscan(
                str(hosts), "-o", str(out[mode]), "--trust-store", str(trust), *OPTIONS, *extra
            )
            codes[mode], stderr = finish(proc, timeout=180)
            assert codes[mode] == 1, f"{mode}: {stderr}"  # not-TLS, refused, invalid lines
    yield Scans(served, hosts, lines, ports, out, codes)


@pytest.mark.parametrize(
    "mode",
    [
        "process",
        "workers",
        pytest.param("dask", marks=pytest.mark.skipif(not HAVE_DASK, reason="no distributed")),
    ],
)
def test_every_mode_writes_the_same_folder(scans: Scans, mode: str) -> None:
    reference, folder = scans.out["thread"], scans.out[mode]
    assert certificate_files(folder) == certificate_files(reference)  # byte for byte
    assert entries_by_line(folder) == entries_by_line(reference)
    assert sorted(manifest_rows(folder)) == sorted(manifest_rows(reference))
    header = json.loads((folder / "manifest.json").read_text())
    expected = json.loads((reference / "manifest.json").read_text())
    assert header["summary"] == expected["summary"]
    assert header["schema"] == expected["schema"] and header["tool"] == expected["tool"]
    mode_fields = {"started", "finished", "seconds", "output", "argv", "workers", "writer", "dask"}
    assert {k: v for k, v in header["run"].items() if k not in mode_fields} == {
        k: v for k, v in expected["run"].items() if k not in mode_fields
    }
    assert header["run"]["complete"] is True


def _pin(der: bytes) -> str:
    spki = x509.load_der_x509_certificate(der).public_key()
    raw = spki.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256/" + base64.b64encode(hashlib.sha256(raw).digest()).decode()


def _file_name(der: bytes) -> str:
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME
    )
    return re.sub(r"[^A-Za-z0-9]", "_", str(cn[0].value))


def test_the_folder_is_what_the_fleet_serves(scans: Scans) -> None:
    out = scans.out["thread"]
    by_line = {e["input"]["line"]: e for e in entries(out)}
    assert sorted(by_line) == list(range(1, len(scans.lines)))  # the duplicate is not listed
    for number, text in enumerate(scans.lines[:-1], start=1):
        entry = by_line[number]
        assert entry["input"]["text"] == text
        if text in BAD_LINES:
            assert (entry["status"], entry["error_kind"], entry["chain"]) == (
                "invalid",
                "bad-input",
                [],
            )
            continue
        if text.startswith(("plain.test", "closed.test")):
            kind = "not-tls" if text.startswith("plain") else "refused"
            assert (entry["status"], entry["error_kind"]) == ("failed", kind)
            assert entry["chain"] == [] and entry["dir"] is None
            continue
        name = entry["sni"]
        served = scans.fleet.chains[name].der  # None (no SNI): the default chain
        assert entry["status"] == "ok" and entry["error_kind"] is None, entry
        assert entry["address"] == (entry["requested_address"] or entry["host"])
        assert entry["chain_length"] == len(served) == len(entry["chain"])
        names_seen: dict[str, int] = {}
        for position, (cert, der) in enumerate(zip(entry["chain"], served, strict=True)):
            assert cert["position"] == position
            assert (out / cert["file"]).read_bytes() == der
            assert cert["sha256"] == hashlib.sha256(der).hexdigest()
            assert cert["sha1"] == hashlib.sha1(der).hexdigest()
            assert cert["pin"] == _pin(der)
            stem = _file_name(der)
            names_seen[stem] = names_seen.get(stem, 0) + 1
            suffix = "" if names_seen[stem] == 1 else f"_{names_seen[stem]}"
            assert cert["file"] == f"{entry['dir']}/{stem}{suffix}.der"
            issuer_is_subject = x509.load_der_x509_certificate(der).issuer == (
                x509.load_der_x509_certificate(der).subject
            )
            role = "leaf" if position == 0 else ("root" if issuer_is_subject else "intermediate")
            assert cert["role"] == role
        if name is not None:
            assert {problem["code"] for problem in entry["problems"]} == EXPECTED[name]
            assert entry["hostname"]["name"] == name
        else:  # an IP target without SNI: good.test's chain, which names no address, so
            # no name was asked and none is checked (issue 15, docs/inventory.md, Hostname)
            assert {problem["code"] for problem in entry["problems"]} == set()
            assert entry["hostname"]["matches"] is None
            assert entry["trust"]["trusted"] is True
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    targets = 2 * len(EXPECTED) + 2
    assert summary == {
        "targets": targets + 2 + len(BAD_LINES),
        "ok": targets,
        "failed": 2,
        "invalid": len(BAD_LINES),
        "by_error_kind": {"bad-input": len(BAD_LINES), "not-tls": 1, "refused": 1},
    }
    # Every file in the folder is one the manifest lists: nothing else was written.
    listed = {cert["file"] for e in by_line.values() for cert in e["chain"]}
    assert set(certificate_files(out)) == listed


def test_the_splitting_modes_really_split(scans: Scans) -> None:
    """Both addresses were scanned, so ``--workers 2`` gave both workers targets (a worker is
    chosen by address): the equivalence above covers the dealing out and the merging back."""
    addresses = {e["address"] for e in entries(scans.out["workers"]) if e["status"] == "ok"}
    assert addresses == {"127.0.0.1", "127.0.0.2"}
    header = json.loads((scans.out["workers"] / "manifest.json").read_text())["run"]
    assert (header["workers"], header["writer"]) == (2, None)
