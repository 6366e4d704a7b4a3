"""Plaintext dialogues before TLS: SMTP, IMAP, POP3, FTP, LDAP, XMPP, PostgreSQL, MySQL, RDP.

Each protocol is one pure module (bytes in, bytes out, see :mod:`._common` for the interface
and the error kinds); :func:`make_dialogue` picks one by the name :attr:`Target.protocol`
holds. The table of names, schemes and ports is :mod:`._table`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..._models import ErrorKind
from ._common import MAX_DIALOGUE_BYTES, Dialogue, DialogueFailed, server_words
from ._ftp import FtpDialogue
from ._imap import ImapDialogue
from ._ldap import LdapDialogue
from ._mysql import MysqlDialogue
from ._pop3 import Pop3Dialogue
from ._postgres import PostgresDialogue
from ._rdp import RdpDialogue
from ._smtp import LmtpDialogue, SmtpDialogue
from ._xmpp import XmppDialogue, XmppServerDialogue

__all__ = [
    "MAX_DIALOGUE_BYTES",
    "Dialogue",
    "DialogueFailed",
    "make_dialogue",
    "server_words",
]

_DIALOGUES: dict[str, Callable[[str], Dialogue]] = {
    "smtp": SmtpDialogue,
    "lmtp": LmtpDialogue,
    "imap": ImapDialogue,
    "pop3": Pop3Dialogue,
    "ftp": FtpDialogue,
    "ldap": LdapDialogue,
    "xmpp": XmppDialogue,
    "xmpp-server": XmppServerDialogue,
    "postgres": PostgresDialogue,
    "mysql": MysqlDialogue,
    "rdp": RdpDialogue,
}


def make_dialogue(protocol: str, domain: str) -> Dialogue:
    """A fresh dialogue for ``protocol`` (a key of ``PROTOCOLS``) asking for ``domain``.

    Raises DialogueFailed (``bad-input``) for a name that is none: a Target made through the
    API may carry anything, and the probe must not raise.
    """
    make = _DIALOGUES.get(protocol)
    if make is None:
        raise DialogueFailed(
            ErrorKind.BAD_INPUT,
            f"unknown protocol {protocol!r}: use one of {', '.join(_DIALOGUES)} or None",
        )
    return make(domain)
