"""Pure: an ``OSError`` from a socket call -> the manifest's error kind and message.

One mapping for both probes, the scan's (``_probe``, on trio) and the one-host view's
(``_blocking``, on a plain blocking socket), so a target is described with the same words
whichever fetched it.
"""

from __future__ import annotations

import errno

from .._models import ErrorKind

__all__ = ["os_error_kind"]

_REFUSED = {errno.ECONNREFUSED}
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}
_LOCAL = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def os_error_kind(exc: OSError, during: str, ip: str) -> tuple[ErrorKind, str]:
    """The kind and message of ``exc``, raised ``during`` ``socket``, ``connect``,
    ``handshake``, ... with ``ip``."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in _REFUSED:
        return ErrorKind.REFUSED, f"connection to {ip} refused"
    if code in _RESET:
        return ErrorKind.RESET, f"connection to {ip} reset by the server during the {during}"
    if code in _UNREACHABLE:
        return ErrorKind.UNREACHABLE, f"{ip} is unreachable: {reason}"
    if code in _LOCAL:
        return ErrorKind.LOCAL, f"local resource exhausted during the {during}: {reason}"
    if code == errno.ETIMEDOUT:
        kind = ErrorKind.TIMEOUT_CONNECT if during == "connect" else ErrorKind.TIMEOUT_HANDSHAKE
        return kind, f"{ip}: the kernel timed out the {during}"
    return ErrorKind.LOCAL if during == "socket" else ErrorKind.RESET, f"{during} to {ip}: {reason}"
