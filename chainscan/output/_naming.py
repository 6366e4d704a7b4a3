"""Pure: the names of target folders and certificate files in an output folder.

Both names are built from data a server or an input line controls (a certificate's subject CN,
a host name, an SNI), so they are built to be harmless whatever that data is: every name is a
single, non-empty path component of printable ASCII, at most 120 characters, that is a valid
file name on Linux, macOS and Windows (no separators, no ``.``/``..``, no NUL or control
characters, no reserved device names such as ``CON`` or ``lpt1.x``, no trailing dot), and two
names in one folder never differ only by case.

Certificate files follow the KonySSLPinningTool convention (subject CN, every character other
than ``A-Z a-z 0-9`` replaced by ``_``); see :func:`cert_filename`. Target folders are readable
and injective; see :func:`target_dirname`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from .._models import Target, TargetKey
from ..scan._starttls._table import PROTOCOLS

__all__ = [
    "MAX_DIRNAME",
    "MAX_STEM",
    "cert_filename",
    "is_reserved_windows_name",
    "target_dirname",
]

MAX_STEM = 100
"""Longest certificate file name before the extension (``_2`` collision suffixes included)."""

MAX_DIRNAME = 120
"""Longest target folder name (the ``~hash`` suffix included)."""

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_NOT_DIRCHAR = re.compile(r"[^A-Za-z0-9.-]")
_EXT = re.compile(r"[a-z0-9]{1,16}")
_HEX = re.compile(r"[^0-9a-f]")
_PORT = re.compile(r"-?[0-9]+")
_NOT_IPV4 = re.compile(r"[^0-9.]")
"""A character no IPv4 literal has (``ipaddress`` accepts ASCII digits and dots only)."""

_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789"}
)
"""Windows device names: reserved as a whole name and before any extension (``nul.txt``)."""

_HASH_LENGTH = 8
"""Hex digits of BLAKE2b appended to a target folder name that would be ambiguous."""


def is_reserved_windows_name(name: str) -> bool:
    """True if Windows treats ``name`` as a device (``CON``, ``nul.txt``, ``Com1.x.y``, ...)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def cert_filename(cn: str | None, sha256_hex: str, taken: set[str], ext: str) -> str:
    """The file name for one certificate in a target folder, and remember it in ``taken``.

    The KonySSLPinningTool convention: the subject CN with every character that is not ASCII
    ``A-Z a-z 0-9`` replaced by ``_`` (``*.example.com`` -> ``_example_com``), then ``.`` and
    ``ext`` (``der`` or ``pem``; a leading dot is accepted). Then:

    * no CN, or a CN that leaves only underscores -> ``sha256_<first 16 hex of sha256_hex>``;
    * the stem is cut to 100 characters;
    * a Windows device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
      ``LPT0``-``LPT9``, any case) gets a ``_`` appended (``CON`` -> ``CON_``);
    * a name already in ``taken`` (which holds the lower-cased names used in the folder, so the
      comparison ignores case, as macOS and Windows do) gets ``_2``, ``_3``, ... before the
      extension, the stem cut further so it stays within 100 characters.

    The result is added to ``taken`` (lower-cased). It is always a non-empty ASCII name of at
    most 117 characters made of ``A-Z a-z 0-9 _`` and one ``.`` before the extension.
    """
    ext = ext.removeprefix(".").lower()
    if not _EXT.fullmatch(ext):
        raise ValueError(f"invalid certificate file extension {ext!r}")
    stem = _NOT_ALNUM.sub("_", cn)[:MAX_STEM] if cn else ""
    if not stem.strip("_"):
        stem = f"sha256_{_HEX.sub('', sha256_hex.lower())[:16] or 'unknown'}"
    if stem.upper() in _RESERVED:
        stem += "_"
    name = f"{stem}.{ext}"
    number = 1
    while name.lower() in taken:
        number += 1
        suffix = f"_{number}"
        name = f"{stem[: MAX_STEM - len(suffix)]}{suffix}.{ext}"
    taken.add(name.lower())
    return name


def target_dirname(target: Target) -> str:
    """The folder name for one target: readable, and never shared by two different targets.

    The readable form is ``<host>_<port>``, plus ``_<address>`` when the line gave an explicit
    address (``name{ip}``), plus ``_sni_<sni>`` when the SNI sent is not the default one (the
    host for a host name, none for an IP address: so ``--sni`` and IP targets with an SNI),
    or ``_nosni`` for a host name sent without SNI (possible through the API only). Every
    character other than ``A-Z a-z 0-9 . -`` becomes ``_``, so ``::1`` becomes ``__1``.

    When that form could be read back as another target (a character was replaced, including
    ``_`` itself; an upper-case letter, since macOS and Windows ignore case; a name Windows
    reserves, such as ``nul.example``, which gets a ``_`` after its first label; a trailing
    dot; an address or SNI that looks like the ``sni``/``nosni`` markers) or is longer than
    120 characters (it is then cut to 111), ``~`` and 8 hex digits of BLAKE2b of the target's
    key are appended. A name without ``~`` therefore decodes to exactly one target, and two
    different targets share a folder only if they share the readable part and a 32-bit hash.
    Examples: ``example.com_443``, ``example.com_443_192.0.2.7``,
    ``192.0.2.7_443_sni_example.com``, ``__1_8443~1a2b3c4d``.

    A target reached through a plaintext dialogue (``Target.protocol``, e.g. ``smtp``) gets
    the protocol as a first part: ``smtp_mail.example.com_25``. Its second part is a host,
    never a port number (no host is all digits), so it cannot be read as a direct-TLS name,
    whose second part is the port; direct-TLS names are exactly what they were before.
    """
    parts = [target.host, str(target.port)]
    if target.protocol is not None:
        parts.insert(0, target.protocol)
    if target.address is not None:
        parts.append(target.address)
    if target.sni != _default_sni(target.host):
        parts.extend(["nosni"] if target.sni is None else ["sni", target.sni])
    readable = "_".join(parts)
    name = _NOT_DIRCHAR.sub("_", readable)
    first, dot, rest = name.partition(".")
    reserved = is_reserved_windows_name(name)
    if reserved:
        name = f"{first}_{dot}{rest}"
    ambiguous = (
        name != readable
        or reserved
        or name != name.lower()
        or name.endswith(".")
        or _decode(name) != target.key
    )
    if not ambiguous and len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.blake2b(
        repr(target.key).encode("utf-8", "backslashreplace"), digest_size=_HASH_LENGTH // 2
    ).hexdigest()
    return f"{name[: MAX_DIRNAME - _HASH_LENGTH - 1]}~{digest}"


def _default_sni(host: str) -> str | None:
    """The SNI an input line sends by default: the host name, or none for an IP address."""
    if ":" not in host and _NOT_IPV4.search(host):
        return host  # neither IPv6 (which needs a colon) nor IPv4: skip the costly refusal
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def _decode(name: str) -> TargetKey | None:
    """The target key a readable folder name stands for, or None if it stands for none.

    :func:`target_dirname` keeps a name without a hash only if this gives back the target's
    own key; since this is a function of the name alone, such names cannot collide.
    """
    tokens = name.split("_")
    if len(tokens) >= 3 and tokens[0] in PROTOCOLS and not _PORT.fullmatch(tokens[1]):
        key = _decode("_".join(tokens[1:]))
        return None if key is None or len(key) != 4 else (*key, tokens[0])
    if len(tokens) < 2 or not _PORT.fullmatch(tokens[1]):
        return None
    host, port, rest = tokens[0], int(tokens[1]), tokens[2:]
    if str(port) != tokens[1]:
        return None
    sni: str | None
    if rest and rest[-1] == "nosni":
        sni, rest = None, rest[:-1]
    elif len(rest) >= 2 and rest[-2] == "sni":
        sni, rest = rest[-1], rest[:-2]
    else:
        sni = _default_sni(host)
    if len(rest) > 1:
        return None
    return (host, port, rest[0] if rest else None, sni)
