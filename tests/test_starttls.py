"""The pure STARTTLS dialogues, without sockets: transcripts in, bytes out, typed failures.

Each protocol is checked on a transcript of a real exchange (what the client must send, and
that it is ready for TLS exactly after the server's go-ahead), fed whole and fed one byte at
a time (a server may split its replies anywhere), and on the ways a server says no. Input
parsing (schemes, ``--starttls``, ports) and folder names for protocol targets are here too.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainscan import BadLine, ErrorKind, Target, parse_line
from chainscan._errors import UsageError
from chainscan.output._naming import target_dirname
from chainscan.output._output import entry_key
from chainscan.scan._starttls import Dialogue, DialogueFailed, make_dialogue, server_words
from chainscan.scan._starttls._ldap import _REQUEST as LDAP_REQUEST
from chainscan.scan._starttls._table import AUTO_PORTS, PROTOCOLS, SCHEMES
from tests.test_naming import SMALL

Exchange = list[tuple[bytes, bytes]]
"""(what the server sends, what the client must answer) in order; the last answer starts TLS."""


def drive(protocol: str, first: bytes, exchange: Exchange, *, bytewise: bool = False) -> None:
    """Run ``exchange``; assert the client's bytes and that TLS may start at the end only."""
    dialogue = make_dialogue(protocol, "example.com")
    assert dialogue.start() == first
    for server, expected in exchange:
        assert not dialogue.ready
        if bytewise:
            answer = b"".join(dialogue.receive(server[i : i + 1]) for i in range(len(server)))
        else:
            answer = dialogue.receive(server)
        assert answer == expected
    assert dialogue.ready


def failure(protocol: str, *server: bytes) -> DialogueFailed:
    dialogue = make_dialogue(protocol, "example.com")
    dialogue.start()
    with pytest.raises(DialogueFailed) as caught:
        for data in server:
            dialogue.receive(data)
    return caught.value


MYSQL_GREETING_BODY = (
    b"\x0a10.11.6-MariaDB\x00"
    + (7).to_bytes(4, "little")
    + b"saltsalt"
    + b"\x00"
    + (0xFFFE).to_bytes(2, "little")  # CLIENT_SSL (0x800) among them
    + b"\x2d\x02\x00\xff\x81\x15"
    + bytes(10)
    + b"moresaltmore\x00mysql_native_password\x00"
)
MYSQL_GREETING = len(MYSQL_GREETING_BODY).to_bytes(3, "little") + b"\x00" + MYSQL_GREETING_BODY


def ldap_response(code: int, message_id: int = 1, diagnostic: bytes = b"") -> bytes:
    body = b"\x0a\x01" + bytes([code]) + b"\x04\x00" + b"\x04" + bytes([len(diagnostic)])
    body += diagnostic
    op = b"\x78" + bytes([len(body)]) + body
    inner = b"\x02\x01" + bytes([message_id]) + op
    return b"\x30" + bytes([len(inner)]) + inner


def rdp_confirm(kind: int, value: int) -> bytes:
    neg = bytes([kind, 0, 8, 0]) + value.to_bytes(4, "little")
    x224 = bytes([6 + len(neg), 0xD0, 0, 0, 0x12, 0x34, 0]) + neg
    return bytes([3, 0]) + (4 + len(x224)).to_bytes(2, "big") + x224


XMPP_OPEN = (
    b"<?xml version='1.0'?><stream:stream to=\"example.com\" version='1.0' xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams'>"
)
XMPP_FEATURES = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.com'"
    b" version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
    b"<required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    b"</stream:features>"
)
XMPP_STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
XMPP_PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

TRANSCRIPTS: dict[str, tuple[bytes, Exchange]] = {
    "smtp": (
        b"",
        [
            (b"220-mx.example.com ESMTP\r\n220 welcome\r\n", b"EHLO chainscan.invalid\r\n"),
            (b"250-mx.example.com\r\n250-SIZE 1000\r\n250 STARTTLS\r\n", b"STARTTLS\r\n"),
            (b"220 2.0.0 Ready to start TLS\r\n", b""),
        ],
    ),
    "lmtp": (
        b"",
        [
            (b"220 lmtp ready\r\n", b"LHLO chainscan.invalid\r\n"),
            (b"250-lmtp\r\n250 starttls\r\n", b"STARTTLS\r\n"),
            (b"220 go\r\n", b""),
        ],
    ),
    "imap": (
        b"",
        [
            (b"* OK IMAP4rev1 ready\r\n", b"c1 CAPABILITY\r\n"),
            (
                b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\nc1 OK done\r\n",
                b"c2 STARTTLS\r\n",
            ),
            (b"c2 OK Begin TLS negotiation now\r\n", b""),
        ],
    ),
    "pop3": (
        b"",
        [
            (b"+OK POP3 ready\r\n", b"CAPA\r\n"),
            (b"+OK\r\nTOP\r\nSTLS\r\nUIDL\r\n.\r\n", b"STLS\r\n"),
            (b"+OK Begin TLS\r\n", b""),
        ],
    ),
    "ftp": (
        b"",
        [
            (b"220-Welcome\r\nfree text\r\n220 ready\r\n", b"AUTH TLS\r\n"),
            (b"234 AUTH TLS successful\r\n", b""),
        ],
    ),
    "ldap": (LDAP_REQUEST, [(ldap_response(0), b"")]),
    "postgres": (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", [(b"S", b"")]),
    "mysql": (
        b"",
        [
            (
                MYSQL_GREETING,
                b"\x20\x00\x00\x01"
                + (0x1 | 0x200 | 0x800 | 0x8000).to_bytes(4, "little")
                + (1 << 24).to_bytes(4, "little")
                + b"\x2d"
                + bytes(23),
            )
        ],
    ),
    "rdp": (
        b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00",
        [(rdp_confirm(0x02, 1), b"")],
    ),
    "xmpp": (XMPP_OPEN, [(XMPP_FEATURES, XMPP_STARTTLS), (XMPP_PROCEED, b"")]),
    "xmpp-server": (
        XMPP_OPEN.replace(b"jabber:client", b"jabber:server"),
        [
            (XMPP_FEATURES.replace(b"jabber:client", b"jabber:server"), XMPP_STARTTLS),
            (XMPP_PROCEED, b""),
        ],
    ),
}


def test_every_protocol_has_a_dialogue_and_a_transcript() -> None:
    assert set(TRANSCRIPTS) == set(PROTOCOLS)
    for name in PROTOCOLS:
        dialogue = make_dialogue(name, "example.com")
        assert isinstance(dialogue, Dialogue) and dialogue.name == name


@pytest.mark.parametrize("protocol", sorted(TRANSCRIPTS))
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_transcript(protocol: str, bytewise: bool) -> None:
    first, exchange = TRANSCRIPTS[protocol]
    drive(protocol, first, exchange, bytewise=bytewise)


def test_imap_skips_capability_when_the_greeting_lists_starttls() -> None:
    drive(
        "imap",
        b"",
        [(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", b"c2 STARTTLS\r\n"), (b"c2 OK\r\n", b"")],
    )


def test_pop3_without_capa_asks_for_stls_anyway() -> None:
    exchange = [(b"+OK\r\n", b"CAPA\r\n"), (b"-ERR no\r\n", b"STLS\r\n"), (b"+OK\r\n", b"")]
    drive("pop3", b"", exchange)


def test_ftp_waits_through_a_preliminary_reply() -> None:
    drive("ftp", b"", [(b"120 ready in 1 minute\r\n", b""), (b"220 ok\r\n", b"AUTH TLS\r\n"),
                       (b"234 go\r\n", b"")])  # fmt: skip


def test_rdp_hybrid_selection_also_starts_tls() -> None:
    first, _ = TRANSCRIPTS["rdp"]
    drive("rdp", first, [(rdp_confirm(0x02, 2), b"")])


UNSUPPORTED = {
    "smtp": [b"220 hi\r\n", b"250-mx\r\n250 8BITMIME\r\n"],
    "smtp-helo-only": [b"220 hi\r\n", b"502 5.5.1 EHLO not implemented\r\n"],
    "imap": [b"* OK hi\r\n", b"* CAPABILITY IMAP4rev1\r\nc1 OK\r\n"],
    "imap-preauth": [b"* PREAUTH already in\r\n"],
    "pop3": [b"+OK\r\n", b"+OK\r\nUIDL\r\n.\r\n"],
    "ftp": [b"220 hi\r\n", b"502 Command not implemented\r\n"],
    "ldap": [ldap_response(2, diagnostic=b"unsupported extended operation")],
    "postgres": [b"N"],
    "mysql": [MYSQL_GREETING.replace(b"saltsalt\x00\xfe\xff", b"saltsalt\x00\xfe\xf7")],
    "rdp": [rdp_confirm(0x02, 0)],
    "rdp-failure": [rdp_confirm(0x03, 2)],
    "xmpp": [XMPP_FEATURES.replace(b"starttls", b"other")],
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported(case: str) -> None:
    exc = failure(case.split("-")[0], *UNSUPPORTED[case])
    assert exc.kind is ErrorKind.STARTTLS_UNSUPPORTED, exc.message


REFUSED = {
    "smtp-banner": ("smtp", [b"554 no service here\r\n"], "'554 no service here'"),
    "smtp": ("smtp", [b"220 hi\r\n", b"250 STARTTLS\r\n250 x\r\n"], None),
    "smtp-454": ("smtp", [b"220 a\r\n", b"250-a\r\n250 STARTTLS\r\n", b"454 later\r\n"], "454"),
    "imap-bye": ("imap", [b"* BYE too many\r\n"], "too many"),
    "imap-no": ("imap", [b"* OK [CAPABILITY STARTTLS] x\r\n", b"c2 NO nope\r\n"], "nope"),
    "pop3": ("pop3", [b"+OK\r\n", b"+OK\r\nSTLS\r\n.\r\n", b"-ERR nope\r\n"], "nope"),
    "ftp": ("ftp", [b"220 hi\r\n", b"534 policy\r\n"], "534 policy"),
    "ldap": ("ldap", [ldap_response(53, diagnostic=b"unwilling")], "unwilling"),
    "ldap-notice": ("ldap", [ldap_response(52, message_id=0, diagnostic=b"bye")], "bye"),
    "mysql": ("mysql", [b"\x17\x00\x00\x00\xff\x6a\x04Host is not allowed!!"], "Host is not"),
    "rdp": ("rdp", [rdp_confirm(0x03, 5)], "HYBRID_REQUIRED_BY_SERVER"),
    "xmpp": (
        "xmpp",
        [
            XMPP_FEATURES.split(b"<stream:features>")[0]
            + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            b"</stream:error>"
        ],
        "host-unknown",
    ),
    "xmpp-failure": ("xmpp", [XMPP_FEATURES, b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"],
                     "failure"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case: str) -> None:
    protocol, server, words = REFUSED[case]
    exc = failure(protocol, *server)
    if case == "smtp":
        assert exc.kind is ErrorKind.STARTTLS_UNSUPPORTED  # STARTTLS on the first line only
        return
    assert exc.kind is ErrorKind.STARTTLS_REFUSED, exc.message
    assert words is None or words in exc.message


NOT_THE_PROTOCOL = {
    "smtp": [b"SSH-2.0-OpenSSH_9.6\r\n"],
    "imap": [b"220 smtp here\r\n"],
    "pop3": [b"* OK imap\r\n"],
    "ftp": [b"HTTP/1.1 400 Bad Request\r\n"],
    "ldap": [b"HTTP/1.1 400 Bad Request\r\n\r\n"],
    "postgres": [b"H"],
    "mysql": [b"\x05\x00\x00\x00\x09abcde"],
    "rdp": [b"HTTP/1.1 400 Bad Request\r\n\r\n"],
    "xmpp": [b"<html>hello</html>"],
    "xmpp-dtd": [b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>"],
}


@pytest.mark.parametrize("case", sorted(NOT_THE_PROTOCOL))
def test_protocol_error(case: str) -> None:
    exc = failure(case.split("-")[0], *NOT_THE_PROTOCOL[case])
    assert exc.kind is ErrorKind.PROTOCOL_ERROR, exc.message


@pytest.mark.parametrize(
    ("protocol", "go", "extra"),
    [
        ("smtp", b"220 go\r\n", b"250 injected\r\n"),
        ("ftp", b"234 go\r\n", b"200 injected\r\n"),
        ("imap", b"c2 OK\r\n", b"* injected\r\n"),
        ("pop3", b"+OK\r\n", b"+OK injected\r\n"),
        ("postgres", b"S", b"injected"),
        ("ldap", ldap_response(0), b"injected"),
        ("rdp", rdp_confirm(0x02, 1), b"injected"),
    ],
)
def test_plaintext_after_the_go_ahead_is_a_protocol_error(
    protocol: str, go: bytes, extra: bytes
) -> None:
    _, exchange = TRANSCRIPTS[protocol]
    dialogue = make_dialogue(protocol, "example.com")
    dialogue.start()
    for server, _ in exchange[:-1]:
        dialogue.receive(server)
    if protocol == "imap":
        dialogue = make_dialogue("imap", "example.com")
        dialogue.receive(b"* OK [CAPABILITY STARTTLS] hi\r\n")
    with pytest.raises(DialogueFailed) as caught:
        dialogue.receive(go + extra)
    assert caught.value.kind is ErrorKind.PROTOCOL_ERROR
    assert "injected" in caught.value.message


def test_eof_in_the_middle_is_eof_with_the_servers_words() -> None:
    dialogue = make_dialogue("smtp", "example.com")
    dialogue.receive(b"220-half a banner\r\n")
    with pytest.raises(DialogueFailed) as caught:
        dialogue.receive_eof()
    assert caught.value.kind is ErrorKind.EOF
    assert "'220-half a banner'" in caught.value.message


def test_xmpp_asks_for_the_domain_quoted() -> None:
    dialogue = make_dialogue("xmpp", "a'b\"<c")
    assert b'to="a\'b&quot;&lt;c"' in dialogue.start()


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"220 hello\r\n", "'220 hello'"),
        (b"a\r\nb\nc", "'a / b / c'"),
        (b"\x1b[31mred\x07", "'\\x1b[31mred\\x07'"),
        (b"\xff\xfe bad", "'\ufffd\ufffd bad'"),
        (b"\xe2\x80\xae evil", "'\\u202e evil'"),
        (b"a \t  b\x1fc", "'a b\\x1fc'"),
        (b"x" * 1000, "'" + "x" * 117 + "...'"),
    ],
)
def test_server_words(data: bytes, shown: str) -> None:
    assert server_words(data) == shown


# --------------------------------------------------------------------------------------------
# Input lines: schemes, --starttls and ports


def parse(text: str, **options: object) -> Target:
    result = parse_line(text, line=1, source="t", **options)  # type: ignore[arg-type]
    assert isinstance(result, Target), result
    return result


@pytest.mark.parametrize(
    ("text", "protocol", "port"),
    [
        ("smtp://mail.example.com", "smtp", 25),
        ("SMTP://mail.example.com:2525/", "smtp", 2525),
        ("submission://mail.example.com", "smtp", 587),
        ("lmtp://mail.example.com", "lmtp", 24),
        ("imap://mail.example.com", "imap", 143),
        ("pop3://mail.example.com", "pop3", 110),
        ("ftp://files.example.com", "ftp", 21),
        ("ldap://dir.example.com", "ldap", 389),
        ("xmpp://chat.example.com", "xmpp", 5222),
        ("xmpp-client://chat.example.com", "xmpp", 5222),
        ("xmpp-server://chat.example.com", "xmpp-server", 5269),
        ("postgres://db.example.com", "postgres", 5432),
        ("postgresql://db.example.com/dbname", "postgres", 5432),
        ("mysql://db.example.com", "mysql", 3306),
        ("mariadb://db.example.com", "mysql", 3306),
        ("rdp://desk.example.com", "rdp", 3389),
        ("smtps://mail.example.com", None, 465),
        ("imaps://mail.example.com", None, 993),
        ("pop3s://mail.example.com", None, 995),
        ("ldaps://dir.example.com", None, 636),
        ("ftps://files.example.com", None, 990),
        ("xmpps://chat.example.com", None, 5223),
        ("https://www.example.com", None, 443),
        ("https://www.example.com:25", None, 25),  # an explicit scheme wins over the port
    ],
)
def test_schemes(text: str, protocol: str | None, port: int) -> None:
    target = parse(text)
    assert (target.protocol, target.port) == (protocol, port)


@pytest.mark.parametrize(("port", "protocol"), sorted(AUTO_PORTS.items()))
def test_auto_picks_the_protocol_of_well_known_ports(port: int, protocol: str) -> None:
    assert parse(f"host.example:{port}").protocol == protocol
    assert parse(f"host.example:{port}", starttls="none").protocol is None
    assert parse("host.example", default_port=port).protocol == protocol


@pytest.mark.parametrize("port", [443, 465, 636, 990, 993, 995, 5223, 8443, 24])
def test_auto_keeps_direct_tls_on_other_ports(port: int) -> None:
    assert parse(f"host.example:{port}").protocol is None


def test_starttls_option_applies_to_lines_without_a_scheme() -> None:
    assert parse("host.example:4433", starttls="imap").protocol == "imap"
    assert parse("https://host.example:4433", starttls="imap").protocol is None
    assert parse("smtp://host.example", starttls="imap").protocol == "smtp"


def test_unknown_starttls_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown --starttls 'gopher'"):
        parse_line("x.example", line=1, source="t", starttls="gopher")


def test_unknown_scheme_is_a_bad_line() -> None:
    result = parse_line("gopher://x.example", line=1, source="t")
    assert isinstance(result, BadLine) and "unknown scheme gopher://" in result.reason


def test_every_scheme_names_a_protocol() -> None:
    assert set(SCHEMES.values()) == set(PROTOCOLS)


# --------------------------------------------------------------------------------------------
# Identity: keys, folders, manifest


def test_protocol_is_part_of_the_identity() -> None:
    direct = parse("mail.example.com:2525")
    smtp = parse("smtp://mail.example.com:2525")
    imap = parse("imap://mail.example.com:2525")
    assert len({direct.key, smtp.key, imap.key}) == 3
    assert direct.key == ("mail.example.com", 2525, None, "mail.example.com")  # as before
    names = {target_dirname(t) for t in (direct, smtp, imap)}
    assert names == {
        "mail.example.com_2525",
        "smtp_mail.example.com_2525",
        "imap_mail.example.com_2525",
    }


@pytest.mark.parametrize(
    "text",
    [
        "smtp://192.0.2.1",
        "xmpp-server://chat.example:5269{192.0.2.7}",
        "postgres://[2001:db8::1]",
        "smtp://under_score.example",
        "smtp://Mail.Example.COM",
    ],
)
def test_protocol_folder_names_are_injective_and_keys_round_trip(text: str) -> None:
    target = parse(text)
    name = target_dirname(target)
    assert name.startswith(f"{target.protocol}_")
    assert name != target_dirname(parse(text.split("://", 1)[1], starttls="none"))
    entry = {
        "host": target.host,
        "port": target.port,
        "protocol": target.protocol,
        "requested_address": target.address,
        "sni": target.sni,
    }
    assert entry_key(entry) == target.key


def test_a_direct_target_named_like_a_protocol_keeps_its_folder() -> None:
    # "smtp" is a valid single-label host name: its direct-TLS folder is what it always was
    assert target_dirname(parse("smtp:8443")) == "smtp_8443"
    assert target_dirname(parse("smtp://smtp:8443")) == "smtp_smtp_8443"


PROTOCOL_TARGETS = st.builds(
    Target,
    host=st.one_of(SMALL, st.sampled_from(["smtp", "xmpp-server", "25", "1.2.3.4", "::1"])),
    port=st.sampled_from([0, 1, 25, 5269]),
    sni=st.one_of(st.none(), SMALL, st.sampled_from(["smtp", "sni", "nosni", "25"])),
    address=st.one_of(st.none(), SMALL, st.sampled_from(["smtp", "25", "::1"])),
    protocol=st.sampled_from([None, "smtp", "imap", "xmpp-server"]),
)


@given(st.lists(PROTOCOL_TARGETS, max_size=20, unique_by=lambda target: target.key))
def test_folder_names_stay_injective_with_protocols(targets: list[Target]) -> None:
    names = [target_dirname(target) for target in targets]
    assert len({name.lower() for name in names}) == len(names), names


def test_pop3_unsupported_quotes_the_capabilities() -> None:
    exc = failure("pop3", b"+OK\r\n", b"+OK\r\nTOP\r\nUIDL\r\n.\r\n")
    assert exc.kind is ErrorKind.STARTTLS_UNSUPPORTED
    assert "'TOP / UIDL'" in exc.message
