"""Certificate Transparency: the leaf's embedded SCTs, and whether browsers would want more. Pure.

Theory of operation
-------------------
A publicly trusted leaf carries Signed Certificate Timestamps (RFC 6962) in its
``1.3.6.1.4.1.11129.2.4.2`` extension: promises by CT logs that the certificate is (or will be)
logged. ``cryptography`` parses them; chainscan records each one's log ID (base64, as the log
lists publish it) and timestamp in the entry's ``ct`` object.

The rule applied, the part of Chrome's and Apple's CT policies that can be checked from the
certificate alone (embedded SCTs):

* a leaf valid for 180 days or less needs SCTs from at least **2** distinct logs;
* a leaf valid for longer needs at least **3**.

Chrome also wants the logs run by distinct operators, and both accept SCTs delivered in the
TLS handshake or a stapled OCSP response instead; chainscan sees neither (Python's ``ssl``
does not expose them, and there is no log list offline), so ``no-sct`` and ``too-few-scts``
are ``warning``s, not errors: they say that Chrome and Safari will refuse the chain *unless*
the server sends SCTs another way.

The check applies only to chains the verdict trusts and that end at a root of a **public**
store (``--trust-store certifi`` or ``system``): a private CA given with ``--trust-store FILE``
is not subject to CT, and browsers do not require it for locally added roots.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..manifest._model import parse_time
from ._problems import Problem

__all__ = ["CT_CODES", "SHORT_LIFETIME_DAYS", "Sct", "ct_check", "embedded_scts", "required_scts"]

SHORT_LIFETIME_DAYS = 180
CT_CODES = frozenset({"no-sct", "too-few-scts"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Sct:
    log_id: str
    """The log's ID (SHA-256 of its key), base64."""
    timestamp: str
    """When the log promised to include the certificate, ISO 8601 UTC (milliseconds)."""


def embedded_scts(cert: x509.Certificate | None) -> list[Sct] | None:
    """The leaf's embedded SCTs; None when it has no SCT extension (or it cannot be read)."""
    if cert is None:
        return None
    try:
        ext = cert.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        )
    except Exception:
        return None
    out = []
    for sct in ext.value:
        moment = sct.timestamp.replace(tzinfo=None)
        out.append(
            Sct(
                log_id=base64.b64encode(sct.log_id).decode("ascii"),
                timestamp=moment.isoformat(timespec="milliseconds") + "Z",
            )
        )
    return out


def required_scts(not_before: str | None, not_after: str | None) -> int:
    """SCTs from distinct logs that Chrome and Apple want for a leaf of this lifetime."""
    start, end = parse_time(not_before), parse_time(not_after)
    if start is None or end is None:
        return 3
    return 2 if end - start <= dt.timedelta(days=SHORT_LIFETIME_DAYS) else 3


def ct_check(
    cert: x509.Certificate | None,
    *,
    not_before: str | None,
    not_after: str | None,
    label: str,
    public: bool,
    trusted: bool,
) -> tuple[list[Problem], dict[str, Any] | None]:
    """(problems, the entry's ``ct`` object or None when there is nothing to say)."""
    scts = embedded_scts(cert)
    applies = public and trusted
    if scts is None and not applies:
        return [], None
    found = scts or []
    logs = len({s.log_id for s in found})
    needed = required_scts(not_before, not_after)
    problems = []
    if applies and logs == 0:
        problems.append(
            Problem(
                code="no-sct",
                position=0,
                message=f"leaf {label} embeds no SCT; Chrome and Safari refuse it unless the "
                f"server sends {needed} SCTs in the handshake or a stapled OCSP response",
            )
        )
    elif applies and logs < needed:
        problems.append(
            Problem(
                code="too-few-scts",
                position=0,
                message=f"leaf {label} embeds SCTs from {logs} log(s); Chrome and Safari want "
                f"{needed} for its lifetime",
            )
        )
    return problems, {
        "scts": [{"log_id": s.log_id, "timestamp": s.timestamp} for s in found],
        "logs": logs,
        "required": needed if applies else None,
    }
