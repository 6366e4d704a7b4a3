"""RDP: the X.224 Connection Request with an RDP Negotiation Request ([MS-RDPBCGR] 2.2.1.1
and 2.2.1.2, "Enhanced RDP Security": 5.4.5).

    C: TPKT { X.224 CR TPDU { RDP_NEG_REQ requestedProtocols = SSL | HYBRID } }
    S: TPKT { X.224 CC TPDU { RDP_NEG_RSP selectedProtocol } }        -> TLS
       or   { X.224 CC TPDU { RDP_NEG_FAILURE failureCode } }

Both SSL (TLS, then RDP) and HYBRID (TLS, then CredSSP) begin with a TLS handshake, so we
offer both: a server that requires NLA still shows its certificate. A confirm without a
negotiation response, or one selecting standard RDP security (0), means TLS is not offered.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import Dialogue

__all__ = ["RdpDialogue"]

_PROTOCOL_SSL = 0x1
_PROTOCOL_HYBRID = 0x2
_NEG_REQ = bytes([0x01, 0x00, 0x08, 0x00]) + (_PROTOCOL_SSL | _PROTOCOL_HYBRID).to_bytes(
    4, "little"
)
_X224_CR = bytes([6 + len(_NEG_REQ), 0xE0, 0, 0, 0, 0, 0]) + _NEG_REQ
_REQUEST = bytes([3, 0]) + (4 + len(_X224_CR)).to_bytes(2, "big") + _X224_CR

_FAILURES = {
    1: "SSL_REQUIRED_BY_SERVER",
    2: "SSL_NOT_ALLOWED_BY_SERVER",
    3: "SSL_CERT_NOT_ON_SERVER",
    4: "INCONSISTENT_FLAGS",
    5: "HYBRID_REQUIRED_BY_SERVER",
    6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}
_UNSUPPORTED_FAILURES = frozenset({2, 3})


class RdpDialogue(Dialogue):
    name = "rdp"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._buffer = b""

    def start(self) -> bytes:
        return _REQUEST

    def _receive(self, data: bytes) -> bytes:
        self._buffer += data
        if len(self._buffer) < 4:
            return b""
        if self._buffer[0] != 3:
            self.fail(ErrorKind.PROTOCOL_ERROR, "not a TPKT packet", self._buffer)
        length = int.from_bytes(self._buffer[2:4], "big")
        if length < 11:
            self.fail(ErrorKind.PROTOCOL_ERROR, "a TPKT packet too short for X.224", self._buffer)
        if len(self._buffer) < length:
            return b""
        packet, rest = self._buffer[:length], self._buffer[length:]
        if packet[5] & 0xF0 != 0xD0:
            self.fail(ErrorKind.PROTOCOL_ERROR, "not an X.224 Connection Confirm", packet)
        negotiation = packet[11:]
        if len(negotiation) < 8:
            self.fail(
                ErrorKind.STARTTLS_UNSUPPORTED,
                "the server offers only standard RDP security (no negotiation response)",
                packet,
            )
        kind, value = negotiation[0], int.from_bytes(negotiation[4:8], "little")
        if kind == 0x02:
            if value == 0:
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED,
                    "the server selected standard RDP security",
                    packet,
                )
            return self._go(rest)
        if kind == 0x03:
            name = _FAILURES.get(value, f"failure code {value}")
            failure = (
                ErrorKind.STARTTLS_UNSUPPORTED
                if value in _UNSUPPORTED_FAILURES
                else (ErrorKind.STARTTLS_REFUSED)
            )
            self.fail(failure, f"the server refused TLS ({name})", packet)
        self.fail(ErrorKind.PROTOCOL_ERROR, "not an RDP negotiation response", packet)
