"""Hand-built scan output folders for the tests of ``pins``, ``bundle`` and ``inspect``, and
``checked_entries``, which reads a finished folder back (``merge``, ``--dask``).

``write_scan`` lays out what ``chainscan FILE -o OUT`` writes (one folder per target with
one DER or PEM file per certificate, and ``manifest.jsonl``), built from certificates of the
in-memory test PKI, so the readers can be tested without the scanner. Per-certificate facts
come from ``analyze_der`` (as the writer's do); roles follow the manifest's rule: position 0
is the leaf, a self-signed certificate the root, anything else an intermediate.

``openssl_pin`` is the independent oracle: the documented four-stage OpenSSL pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chainscan.analysis._analyze import analyze_der, der_to_pem

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not found")

PIPELINE = (
    "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der"
    " | openssl dgst -sha256 -binary | openssl enc -base64"
)
"""The pin recipe of the Volt MX / TrustKit / Android docs, run by ``bash -o pipefail``."""

PUBKEY_PIPELINE = (
    "openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl enc -base64"
)


def _bash(script: str, data: bytes) -> str:
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], input=data, capture_output=True, check=True
    )
    return proc.stdout.decode("ascii").strip()


def openssl_pin(cert_pem: bytes) -> str:
    """The SPKI pin of a PEM certificate, by the OpenSSL pipeline."""
    return _bash(PIPELINE, cert_pem)


def openssl_pubkey_pin(key_pem: bytes) -> str:
    """The SPKI pin of a PEM public key, by the OpenSSL pipeline."""
    return _bash(PUBKEY_PIPELINE, key_pem)


def _name(der: bytes) -> str:
    facts = analyze_der(der)
    if facts.cn:
        return re.sub(r"[^A-Za-z0-9]", "_", facts.cn)
    return f"sha256_{facts.sha256[:16]}"


def cert_entry(der: bytes, position: int, file: str) -> dict[str, Any]:
    """One ``chain`` item of a manifest entry."""
    facts = analyze_der(der)
    fields = dataclasses.asdict(facts)
    fields.pop("size")
    fields["sans"] = list(facts.sans)
    if position == 0:
        role = "leaf"
    elif facts.self_signed:
        role = "root"
    else:
        role = "intermediate"
    return {"position": position, "file": file, "role": role, "pin": facts.pin, **fields}


@dataclass
class Target:
    """One manifest entry to write."""

    host: str
    chain: Sequence[bytes] = ()
    port: int = 443
    address: str | None = "127.0.0.1"
    sni: str | None = ""
    """SNI sent: ``""`` (default) means the host, None means none (IP targets)."""
    status: str = "ok"
    error_kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> str:
        where = f"_{self.address.replace(':', '_')}" if self.address else ""
        return f"{self.host}_{self.port}{where}"


def write_scan(out: Path, targets: Sequence[Target], *, cert_format: str = "der") -> Path:
    """Write the target folders and ``manifest.jsonl`` into ``out``; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for target in targets:
        chain = []
        if target.status == "ok":
            folder = out / target.dir
            folder.mkdir(exist_ok=True)
            for position, der in enumerate(target.chain):
                rel = f"{target.dir}/{_name(der)}.{cert_format}"
                data = der if cert_format == "der" else der_to_pem(der)
                (out / rel).write_bytes(data)
                chain.append(cert_entry(der, position, rel))
        entry = {
            "host": target.host,
            "port": target.port,
            "sni": target.host if target.sni == "" else target.sni,
            "address": target.address,
            "status": target.status,
            "error_kind": target.error_kind,
            "dir": target.dir if target.status == "ok" else None,
            "chain": chain,
            **target.extra,
        }
        lines.append(json.dumps(entry))
    manifest = out / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def checked_entries(out: Path) -> list[tuple[dict[str, Any], tuple[tuple[str, str], ...]]]:
    """The entries of a finished scan folder, each with its (file, sha256) pairs, after checking
    that ``manifest.jsonl`` and ``manifest.json`` list the same entries and that every file
    listed has the digest the manifest gives."""
    manifest = json.loads((out / "manifest.json").read_text())
    jsonl = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert jsonl == manifest["targets"]
    checked = []
    for entry in manifest["targets"]:
        files = tuple((c["file"], c["sha256"]) for c in entry["chain"])
        for name, digest in files:
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
        checked.append((entry, files))
    return checked
