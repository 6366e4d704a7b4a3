"""The curated public surface: what ``import chainscan`` offers, and nothing private."""

from __future__ import annotations

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


def test_exports_are_exactly_the_documented_names() -> None:
    public = {name for name in vars(chainscan) if not name.startswith("_")}
    assert public == EXPECTED


def test_exports_come_from_private_modules() -> None:
    for name in EXPECTED:
        module = getattr(getattr(chainscan, name), "__module__", "")
        assert module.startswith("chainscan._"), (name, module)
