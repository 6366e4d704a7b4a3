"""Pure: which protocols exist, their URL schemes and well-known ports. No dialogue code here,
so the input parser can import it cheaply.

``PROTOCOLS`` lists the protocols with a plaintext dialogue before TLS (STARTTLS in the wide
sense), by the name the manifest records. ``AUTO_PORTS`` is what ``--starttls auto`` (the
default) uses for lines without a scheme. ``DIRECT_SCHEMES`` are the implicit-TLS schemes,
which connect with TLS straight away, like ``https://``; their default port is the scheme's.
"""

from __future__ import annotations

__all__ = [
    "AUTO",
    "AUTO_PORTS",
    "DIRECT_SCHEMES",
    "NONE",
    "PROTOCOLS",
    "SCHEMES",
    "protocol_port",
]

AUTO = "auto"
"""``--starttls auto``: choose by port for lines without a scheme."""
NONE = "none"
"""``--starttls none``: direct TLS for every line without a scheme."""

PROTOCOLS: dict[str, int] = {
    "smtp": 25,
    "lmtp": 24,
    "imap": 143,
    "pop3": 110,
    "ftp": 21,
    "ldap": 389,
    "xmpp": 5222,
    "xmpp-server": 5269,
    "postgres": 5432,
    "mysql": 3306,
    "rdp": 3389,
}
"""Protocol name -> its well-known port (the default port of its scheme)."""

SCHEMES: dict[str, str] = {name: name for name in PROTOCOLS} | {
    "submission": "smtp",
    "postgresql": "postgres",
    "mariadb": "mysql",
    "xmpp-client": "xmpp",
}
"""URL scheme -> protocol name (aliases included)."""

_SUBMISSION_PORT = 587
_SCHEME_PORTS = {"submission": _SUBMISSION_PORT}

AUTO_PORTS: dict[int, str] = {
    port: name
    for name, port in PROTOCOLS.items()
    if name != "lmtp"  # 24 is not LMTP's
} | {_SUBMISSION_PORT: "smtp"}
"""Port -> protocol for ``--starttls auto``. Every other port, the implicit-TLS ones (443,
465, 636, 990, 993, 995, 3269, 5223, 5061, ...) among them, is direct TLS."""

DIRECT_SCHEMES: dict[str, int | None] = {
    "https": None,  # None: --port, as before (443 unless changed)
    "smtps": 465,
    "imaps": 993,
    "pop3s": 995,
    "ldaps": 636,
    "ftps": 990,
    "xmpps": 5223,
}
"""Implicit-TLS scheme -> default port (None: ``--port``)."""


def protocol_port(scheme: str) -> int:
    """The default port of a STARTTLS scheme (``submission`` -> 587, ``smtp`` -> 25)."""
    return _SCHEME_PORTS.get(scheme, PROTOCOLS[SCHEMES[scheme]])
