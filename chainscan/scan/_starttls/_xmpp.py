"""XMPP client-to-server and server-to-server STARTTLS (RFC 6120 sections 4 and 5).

    C: <?xml version='1.0'?><stream:stream to='DOMAIN' version='1.0' xmlns='jabber:client'
       xmlns:stream='http://etherx.jabber.org/streams'>        (jabber:server for s2s)
    S: <stream:stream ...><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
       ...</stream:features>
    C: <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
    S: <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>       -> TLS
       <failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>       refused

The server's XML goes through the standard library's incremental expat parser. RFC 6120
section 11.1 forbids DTDs, comments and processing instructions in a stream, so any ``<!``
(which is where entity-expansion bombs live) is a protocol error before expat sees it. A
``<stream:error>`` (``host-unknown`` for a domain the server does not serve, ...) refuses us.
The domain asked for is the target's SNI, else its host.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import cast
from xml.sax.saxutils import quoteattr

from ..._models import ErrorKind
from ._common import Dialogue

__all__ = ["XmppDialogue", "XmppServerDialogue"]

_STREAMS = "{http://etherx.jabber.org/streams}"
_TLS = "{urn:ietf:params:xml:ns:xmpp-tls}"


class XmppDialogue(Dialogue):
    name = "xmpp"
    _namespace = "jabber:client"

    def __init__(self, domain: str) -> None:
        super().__init__(domain)
        self._parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._asked = False
        self._last = b""

    def start(self) -> bytes:
        return (
            "<?xml version='1.0'?><stream:stream to="
            f"{quoteattr(self.domain)} version='1.0' xmlns='{self._namespace}'"
            " xmlns:stream='http://etherx.jabber.org/streams'>"
        ).encode()

    def _receive(self, data: bytes) -> bytes:
        if b"<!" in self._last + data:
            self.fail(
                ErrorKind.PROTOCOL_ERROR,
                "the server sent a DTD or comment, which XMPP forbids",
                self.head,
            )
        self._last = data[-1:]
        try:
            self._parser.feed(data)
            events = cast("list[tuple[str, object]]", list(self._parser.read_events()))
        except ET.ParseError as exc:
            self.fail(ErrorKind.PROTOCOL_ERROR, f"not XMPP ({exc})", self.head)
        out = b""
        for event, element in events:
            if not isinstance(element, ET.Element):
                continue  # namespace events: not asked for
            if event == "start":
                self._depth += 1
                if self._depth == 1 and element.tag != f"{_STREAMS}stream":
                    self.fail(ErrorKind.PROTOCOL_ERROR, "not an XMPP stream", self.head)
                continue
            self._depth -= 1
            if self._depth == 0:
                self.fail(ErrorKind.STARTTLS_REFUSED, "the server closed the stream", self.head)
            if self._depth != 1:
                continue
            out += self._top_level(element)
            if self.ready:
                break
        return out

    def _top_level(self, element: ET.Element) -> bytes:
        if element.tag == f"{_STREAMS}error":
            conditions = " ".join(child.tag.rsplit("}", 1)[-1] for child in element)
            self.fail(
                ErrorKind.STARTTLS_REFUSED,
                "the server sent a stream error",
                (conditions or "stream error").encode(),
            )
        if element.tag == f"{_STREAMS}features" and not self._asked:
            if element.find(f"{_TLS}starttls") is None:
                offered = " ".join(child.tag.rsplit("}", 1)[-1] for child in element)
                self.fail(
                    ErrorKind.STARTTLS_UNSUPPORTED,
                    "the server does not offer <starttls/>; its features",
                    offered.encode(),
                )
            self._asked = True
            return b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        if element.tag == f"{_TLS}proceed" and self._asked:
            self.ready = True
            return b""
        if element.tag == f"{_TLS}failure":
            self.fail(ErrorKind.STARTTLS_REFUSED, "the server refused STARTTLS", b"<failure/>")
        return b""


class XmppServerDialogue(XmppDialogue):
    name = "xmpp-server"
    _namespace = "jabber:server"
