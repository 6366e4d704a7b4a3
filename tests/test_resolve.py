"""Literal addresses: the fast path agrees with ``ipaddress`` on every kind of host string."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from chainscan.scan._resolve import Address, literal_address

HOSTS = [
    # canonical IPv4, the fast path
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "192.0.2.10",
    # not IPv4: leading zeros, too few or many parts, out of range, signs, spaces, other digits
    "010.0.0.1",
    "1.2.3.04",
    "127.1",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-4",
    "+1.2.3.4",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4\n",
    "\u0661.2.3.4",  # ARABIC-INDIC DIGIT ONE
    "1.2.3.4\x00",
    "1.2.3.\udc80",  # a lone surrogate (from surrogateescape)
    "0x7f.0.0.1",
    "",
    # names
    "example.com",
    "n00001.fleet.test",
    "xn--bcher-kva.example",
    "1.2.3.4.example",
    # IPv6, canonical or not, scoped, mapped
    "::1",
    "2001:db8::1",
    "2001:DB8:0::1",
    "::ffff:192.0.2.1",
    "fe80::1%eth0",
    "2001:db8::1:443",
    "1:2",
    ":",
]


def reference(host: str, port: int) -> Address | None:
    """The original definition: whatever ``ipaddress`` accepts, in its canonical form."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return Address(socket.AF_INET6, str(ip), (str(ip), port, 0, 0))
    return Address(socket.AF_INET, str(ip), (str(ip), port))


@pytest.mark.parametrize("host", HOSTS, ids=repr)
def test_literal_address_matches_ipaddress(host: str) -> None:
    assert literal_address(host, 8443) == reference(host, 8443)


def test_literal_ipv4_address_is_used_as_is() -> None:
    address = literal_address("192.0.2.10", 443)
    assert address == Address(socket.AF_INET, "192.0.2.10", ("192.0.2.10", 443))
    assert address is not None and address.family is socket.AF_INET
