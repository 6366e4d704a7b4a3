"""The curated public surface: what ``import chainscan`` offers, and nothing private."""

from __future__ import annotations

import importlib
from pathlib import Path

import chainscan

EXPECTED = {
    "BadLine",
    "CertFacts",
    "CertFormat",
    "ChainInventory",
    "ChainLink",
    "ChainscanError",
    "Deduplicator",
    "ErrorKind",
    "HostnameCheck",
    "InputError",
    "OutputError",
    "ProbeOutcome",
    "Problem",
    "ScanOptions",
    "ScanResult",
    "ScanResults",
    "Status",
    "Target",
    "Timings",
    "TrustVerdict",
    "UsageError",
    "analyze_der",
    "load_targets",
    "open_scan",
    "open_scan_sync",
    "parse_line",
    "scan_all",
    "scan_all_sync",
}


LAYERS = {"analysis", "commands", "manifest", "output", "run", "scan"}
"""The layer folders (``chainscan/scan/`` ...): namespaces of private modules, not API."""


def test_exports_are_exactly_the_documented_names() -> None:
    public = {name for name in vars(chainscan) if not name.startswith("_")}
    assert public - LAYERS == EXPECTED


def test_layers_hold_only_private_modules() -> None:
    root = Path(chainscan.__file__).parent
    for layer in LAYERS:
        package = importlib.import_module(f"chainscan.{layer}")
        assert not {n for n in vars(package) if not n.startswith("_")}, layer
        modules = [m.stem for m in (root / layer).rglob("*.py") if m.stem != "__init__"]
        assert modules and all(m.startswith("_") for m in modules), (layer, modules)


def test_exports_come_from_private_modules() -> None:
    for name in EXPECTED:
        module = getattr(getattr(chainscan, name), "__module__", "")
        assert module.startswith("chainscan."), (name, module)
        assert module.rsplit(".", 1)[1].startswith("_"), (name, module)
