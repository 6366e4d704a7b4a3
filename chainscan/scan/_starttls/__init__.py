"""Plaintext dialogues before TLS: SMTP, IMAP, POP3, FTP, LDAP, XMPP, PostgreSQL, MySQL, RDP.

Each protocol is one pure module (bytes in, bytes out, see :mod:`._common` for the interface
and the error kinds); :func:`make_dialogue` picks one by the name :attr:`Target.protocol`
holds. The table of names, schemes and ports is :mod:`._table`.
"""

from __future__ import annotations

import importlib

from ..._models import ErrorKind
from ._common import MAX_DIALOGUE_BYTES, Dialogue, DialogueFailed, server_words

__all__ = [
    "MAX_DIALOGUE_BYTES",
    "Dialogue",
    "DialogueFailed",
    "make_dialogue",
    "server_words",
]

_DIALOGUES: dict[str, tuple[str, str]] = {
    "smtp": ("_smtp", "SmtpDialogue"),
    "lmtp": ("_smtp", "LmtpDialogue"),
    "imap": ("_imap", "ImapDialogue"),
    "pop3": ("_pop3", "Pop3Dialogue"),
    "ftp": ("_ftp", "FtpDialogue"),
    "ldap": ("_ldap", "LdapDialogue"),
    "xmpp": ("_xmpp", "XmppDialogue"),
    "xmpp-server": ("_xmpp", "XmppServerDialogue"),
    "postgres": ("_postgres", "PostgresDialogue"),
    "mysql": ("_mysql", "MysqlDialogue"),
    "rdp": ("_rdp", "RdpDialogue"),
}
"""Protocol name -> (module, class). Imported on first use: a scan (or ``chainscan show``) of
HTTPS targets loads no dialogue, and the XMPP one pulls in ``urllib``."""


def make_dialogue(protocol: str, domain: str) -> Dialogue:
    """A fresh dialogue for ``protocol`` (a key of ``PROTOCOLS``) asking for ``domain``.

    Raises DialogueFailed (``bad-input``) for a name that is none: a Target made through the
    API may carry anything, and the probe must not raise.
    """
    where = _DIALOGUES.get(protocol)
    if where is None:
        raise DialogueFailed(
            ErrorKind.BAD_INPUT,
            f"unknown protocol {protocol!r}: use one of {', '.join(_DIALOGUES)} or None",
        )
    module = importlib.import_module(f"{__name__}.{where[0]}")
    dialogue: Dialogue = getattr(module, where[1])(domain)
    return dialogue
