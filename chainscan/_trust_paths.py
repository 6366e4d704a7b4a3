"""Where ``--trust-store`` reads its roots from: shared by the analysis and the scan layer.

No dependency beyond the standard library and ``certifi``, so the scanning process can find the
bundle (for AIA fetching, ``scan._aia``) without importing the analysis.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

from ._errors import UsageError

__all__ = ["SYSTEM_BUNDLES", "trust_store_path"]

SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, FreeBSD, OpenBSD
    "/etc/ssl/ca-bundle.pem",  # openSUSE
)
"""Where ``--trust-store system`` looks, after OpenSSL's own default CA file."""


def trust_store_path(spec: str) -> Path:
    """The file ``--trust-store spec`` reads: ``certifi``, ``system`` or a path.

    Raises :class:`~chainscan.UsageError` when ``system`` finds no bundle.
    """
    if spec == "certifi":
        return Path(certifi.where())
    if spec == "system":
        default = ssl.get_default_verify_paths().cafile
        found = [p for p in (default, *SYSTEM_BUNDLES) if p and Path(p).is_file()]
        if not found:
            raise UsageError(
                "--trust-store system: no system CA bundle found (looked for "
                f"{', '.join(p for p in (default, *SYSTEM_BUNDLES) if p)})"
            )
        return Path(found[0])
    return Path(spec)
