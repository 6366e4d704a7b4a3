"""Reading pin configurations back (``_pinconfig``), without sockets. Every format as
``chainscan pins`` writes it is read in ``test_diff.py``; these are the edge cases."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from chainscan.commands._pinconfig import PinConfigError, PinRule, parse_pin_config

SLASHES = base64.b64encode(b"\xff\xff\xff" * 10 + b"\x00\x01").decode()
"""A pin with ``//`` in it: a naive ``//`` comment stripper cuts it in half."""
OTHER = base64.b64encode(bytes(range(32))).decode()


def test_okhttp_pins_with_slashes_and_comments_with_parentheses() -> None:
    assert "//" in SLASHES
    text = f"""// OkHttp CertificatePinner (Kotlin)
val pinner = CertificatePinner.Builder()
    .add(
        "**.api.example.com",
        "sha256/{SLASHES}",  // leaf 'api (prod)', expires 2027-01-01
        /* a (block) comment */ "sha256/{OTHER}"
    )
    .add("www.example.com", "sha256/{OTHER}")
    .build()
"""
    config = parse_pin_config(text.encode())
    assert config.format == "okhttp"
    api, www = config.rules
    assert api.pattern == "**.api.example.com" and api.pins == {SLASHES, OTHER}
    assert www.pattern == "www.example.com" and www.pins == {OTHER}


def test_plain_lists_and_patterns() -> None:
    text = f"""# pins for the app
api.example.com sha256/{SLASHES}
api.example.com {OTHER}   # a second line for the same host
*.cdn.example.com, {OTHER}
{SLASHES}
"""
    config = parse_pin_config(text.encode())
    assert config.format == "list"
    rules = {r.pattern: r for r in config.rules}
    assert rules["api.example.com"].pins == {SLASHES, OTHER}
    assert rules["*.cdn.example.com"].matches("a.cdn.example.com")
    assert not rules["*.cdn.example.com"].matches("cdn.example.com")
    assert not rules["*.cdn.example.com"].matches("a.b.cdn.example.com")
    assert config.rules_for("api.example.com") == (rules["api.example.com"],)  # most specific
    assert config.rules_for("other.example.org") == (rules["*"],)  # the host-less pins
    deep = PinRule(pattern="**.example.com", groups=(frozenset({OTHER}),))
    assert deep.matches("example.com") and deep.matches("a.b.example.com")
    sub = PinRule(pattern="example.com", groups=(), include_subdomains=True)
    assert sub.matches("x.example.com") and not sub.matches("badexample.com")


def test_ios_needs_a_match_in_each_list_and_trustkit_may_not_enforce() -> None:
    ios = f"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>NSAppTransportSecurity</key><dict>
<key>NSPinnedDomains</key><dict><key>a.example.com</key><dict>
<key>NSIncludesSubdomains</key><true/>
<key>NSPinnedLeafIdentities</key><array><dict><key>SPKI-SHA256-BASE64</key>
<string>{SLASHES}</string></dict></array>
<key>NSPinnedCAIdentities</key><array><dict><key>SPKI-SHA256-BASE64</key>
<string>{OTHER}</string></dict></array>
</dict></dict></dict></dict></plist>"""
    (rule,) = parse_pin_config(ios.encode()).rules
    assert rule.groups == (frozenset({SLASHES}), frozenset({OTHER}))
    assert rule.matches("x.a.example.com")
    trustkit = f"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>TSKConfiguration</key><dict>
<key>TSKPinnedDomains</key><dict><key>a.example.com</key><dict>
<key>TSKEnforcePinning</key><false/>
<key>TSKExpirationDate</key><string>2030-01-01</string>
<key>TSKPublicKeyHashes</key><array><string>{OTHER}</string></array>
</dict></dict></dict></dict></plist>"""
    config = parse_pin_config(trustkit.encode())
    (rule,) = config.rules
    assert config.format == "trustkit" and rule.expiration == dt.date(2030, 1, 1)
    assert not rule.enforced_on(dt.date(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<other/>", "not a pin configuration"),
        ("<network-security-config></network-security-config>", "without any pinned host"),
        ('{"a.example.com": ["not a pin"]}', "not a base64 SHA-256 pin"),
        ("a.example.com\n", "has no pin"),
        ("{broken", "not valid JSON"),
    ],
)
def test_unreadable_pin_files_say_why(text: str, message: str) -> None:
    with pytest.raises(PinConfigError, match=message):
        parse_pin_config(text.encode())
