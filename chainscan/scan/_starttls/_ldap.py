"""LDAP's StartTLS extended operation (RFC 4511 sections 4.12 and 4.14, RFC 4513 section 3).

    C: LDAPMessage { messageID 1, ExtendedRequest { requestName 1.3.6.1.4.1.1466.20037 } }
    S: LDAPMessage { messageID 1, ExtendedResponse { resultCode, matchedDN, diagnosticMessage,
                     responseName? } }
       resultCode success (0)                                   -> TLS

Messages are BER (definite lengths only, as LDAP requires). resultCode protocolError (2) is
what a server that does not know the operation returns (RFC 4511 section 4.12), so it means
TLS is not offered, as does unavailable (52) (OpenLDAP without a certificate); any other
code refuses TLS. A Notice of Disconnection (messageID 0) refuses us.
"""

from __future__ import annotations

from ..._models import ErrorKind
from ._common import Dialogue

__all__ = ["LdapDialogue", "read_tlv"]

_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_UNSUPPORTED = frozenset({2, 52})  # protocolError, unavailable


def _tlv(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + value


_REQUEST = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x77, _tlv(0x80, _STARTTLS_OID)))


class _Short(Exception):
    """More bytes are needed."""


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """One BER element at ``offset`` -> (tag, value, offset after it).

    Raises _Short when ``data`` ends inside it, ValueError for what BER does not allow here
    (indefinite lengths, lengths of more than 4 bytes, multi-byte tags).
    """
    if len(data) < offset + 2:
        raise _Short
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 4:
            raise ValueError("indefinite or over-long length")
        if len(data) < start + size:
            raise _Short
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    end = start + length
    if len(data) < end:
        raise _Short
    return tag, data[start:end], end


class LdapDialogue(Dialogue):
    name = "ldap"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._buffer = b""

    def start(self) -> bytes:
        return _REQUEST

    def _receive(self, data: bytes) -> bytes:
        self._buffer += data
        if self._buffer[:1] != b"\x30":
            self.fail(ErrorKind.PROTOCOL_ERROR, "not an LDAP message", self._buffer)
        try:
            tag, message, end = read_tlv(self._buffer)
            if tag != 0x30:
                raise ValueError("not an LDAPMessage")
            id_tag, message_id, after = read_tlv(message)
            op_tag, op, _ = read_tlv(message, after)
            if id_tag != 0x02:
                raise ValueError("no messageID")
            code_tag, code, after = read_tlv(op)
            diagnostic = b""
            if code_tag == 0x0A:
                _, _, after = read_tlv(op, after)  # matchedDN
                _, diagnostic, _ = read_tlv(op, after)
        except _Short:
            return b""
        except (ValueError, IndexError):
            self.fail(ErrorKind.PROTOCOL_ERROR, "not an LDAP response", self._buffer)
        if op_tag != 0x78 or code_tag != 0x0A:
            self.fail(ErrorKind.PROTOCOL_ERROR, "not an LDAP extended response", self._buffer)
        result = int.from_bytes(code, "big") if code else -1
        said = f"result code {result}"
        if message_id == b"\x00":
            self.fail(
                ErrorKind.STARTTLS_REFUSED, f"the server disconnected us ({said})", diagnostic
            )
        if result == 0:
            return self._go(self._buffer[end:])
        kind = (
            ErrorKind.STARTTLS_UNSUPPORTED if result in _UNSUPPORTED else ErrorKind.STARTTLS_REFUSED
        )
        self.fail(kind, f"the server did not start TLS ({said})", diagnostic or self._buffer)
