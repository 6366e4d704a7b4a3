"""Missing intermediates fetched from AIA caIssuers, behind the fetch guard (issues 12 and 20).

One loopback TLS server sends leaves without their intermediate; each leaf's caIssuers URL
points at a loopback HTTP server route that serves the intermediate (DER, PKCS#7), or misbehaves
(down, slow, garbage, 50 MB, redirects). The tests allow loopback explicitly with
``--fetch-allow 127.0.0.1/32``; without it, and for every other denied kind of address, the
guard refuses before any connection is made.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID

from chainscan.output._output import read_manifest_entries
from chainscan.scan._fetch import Fetcher
from chainscan.scan._fetch_guard import FetchGuard, FetchRefused, parse_cidr
from tests.http_servers import HttpServer, Route
from tests.inventory_fleet import RenewableServer, run
from tests.pki import CA
from tests.servers import TLSServer, refused_port, served_chain

FAST = ["--connect-timeout", "2", "--handshake-timeout", "2", "--deadline", "8", "-q"]
ALLOW = ["--fetch-allow", "127.0.0.1/32"]


def aia(url: str) -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url)
            )
        ]
    )


@dataclass
class Aia:
    root: CA
    inter: CA
    upper: CA
    lower: CA
    out: Path
    entries: dict[str, dict[str, Any]]
    http: HttpServer
    served: dict[str, tuple[bytes, ...]]


CASES = {
    # name: (route path, route)
    "der.test": "/inter.der",
    "p7c.test": "/inter.p7c",
    "redirect.test": "/redirect",
    "down.test": None,  # a port nothing listens on
    "slow.test": "/slow",
    "garbage.test": "/garbage",
    "huge.test": "/huge",
    "hugechunked.test": "/huge-unannounced",
    "https.test": "/to-https",
    "metadata.test": "/to-metadata",
    "loop.test": "/loop",
    "notfound.test": "/missing",
}


def scan(tmp: Path, hosts: list[str], port: int, root: CA, *extra: str) -> dict[str, Any]:
    store = tmp / "root.pem"
    store.write_bytes(root.pem)
    listing = tmp / "hosts.txt"
    listing.write_text("".join(f"{h}:{port}{{127.0.0.1}}\n" for h in hosts))
    out = tmp / "out"
    code, _out, err = run(str(listing), "-o", str(out), "--trust-store", str(store), *FAST, *extra)
    assert code == 0, err
    return {e["sni"]: e for e in read_manifest_entries(out / "manifest.json")}


@pytest.fixture(scope="module")
def aia_scan(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("aia")
    root = CA("aia root")
    inter = root.child_ca("aia intermediate")
    upper = root.child_ca("aia upper intermediate")
    with HttpServer({}) as http:
        lower = upper.child_ca("aia lower intermediate", extra_extensions=[aia(http.url("/upper"))])
        http.routes.update(
            {
                "/inter.der": Route(
                    body=inter.der, headers={"Content-Type": "application/pkix-cert"}
                ),
                "/inter.p7c": Route(
                    body=pkcs7.serialize_certificates([inter.cert], Encoding.DER),
                    headers={"Content-Type": "application/pkcs7-mime"},
                ),
                "/upper": Route(body=upper.der),
                "/redirect": Route(status=302, headers={"Location": "/inter.der"}),
                "/slow": Route(body=inter.der, delay=4.0),
                "/garbage": Route(body=b"<html>\x1b[2J pwned </html>"),
                "/huge": Route(stream_bytes=50 * 1024 * 1024),
                "/huge-unannounced": Route(stream_bytes=50 * 1024 * 1024, declare_length=False),
                "/to-https": Route(status=301, headers={"Location": "https://127.0.0.1/x"}),
                "/to-metadata": Route(
                    status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
                ),
                "/loop": Route(status=302, headers={"Location": "/loop"}),
            }
        )
        down = f"http://127.0.0.1:{refused_port()}/inter.der"
        chains = {}
        for name, path in CASES.items():
            url = down if path is None else http.url(path)
            leaf = inter.issue(name, extra_extensions=[aia(url)])
            chains[name] = served_chain(tmp, leaf)  # the leaf alone
        chains["deep.test"] = served_chain(tmp, lower.issue("deep.test"), lower)  # upper missing
        chains["good.test"] = served_chain(tmp, inter.issue("good.test"), inter)
        with TLSServer(chains) as tls:
            entries = scan(tmp, [*chains], tls.port, root, *ALLOW, "--fetch-timeout", "1")
        yield Aia(
            root=root,
            inter=inter,
            upper=upper,
            lower=lower,
            out=tmp / "out",
            entries=entries,
            http=http,
            served={name: served.der for name, served in chains.items()},
        )


def codes(entry: dict[str, Any]) -> list[str]:
    return [p["code"] for p in entry["problems"]]


@pytest.mark.parametrize("name", ["der.test", "p7c.test", "redirect.test"])
def test_a_missing_intermediate_is_fetched_and_the_chain_judged_both_ways(
    aia_scan: Aia, name: str
) -> None:
    entry = aia_scan.entries[name]
    assert entry["trust"]["trusted"] is False  # as sent: Android apps, OkHttp, curl, Python
    completion = entry["completion"]
    assert completion["trusted"] is True, completion  # completed: browsers
    assert [c["source"] for c in completion["chain"]] == ["sent", "fetched", "store"]
    url = aia_scan.http.url(CASES[name])
    assert completion["chain"][1]["url"] == url
    assert completion["chain"][1]["sha256"] == aia_scan.inter.cert.fingerprint(SHA256()).hex()
    assert codes(entry) == ["incomplete-chain"]
    message = entry["problems"][0]["message"]
    assert "should also send 'aia intermediate'" in message and url in message
    (fetch,) = completion["fetched"]
    assert fetch["error"] is None and fetch["url"] == url
    (cert,) = fetch["certs"]
    assert cert["used"] is True
    saved = aia_scan.out / cert["file"]
    assert saved.parent.name == "fetched" and saved.read_bytes() == aia_scan.inter.der
    # the chain as sent stays byte-exact, and the fetched file is not part of it
    assert [(aia_scan.out / c["file"]).read_bytes() for c in entry["chain"]] == list(
        aia_scan.served[name]
    )


def test_a_missing_upper_intermediate_is_an_incomplete_chain_not_an_unknown_root(
    aia_scan: Aia,
) -> None:
    entry = aia_scan.entries["deep.test"]
    assert entry["trust"]["trusted"] is False and entry["completion"]["trusted"] is True
    assert codes(entry) == ["incomplete-chain"]
    assert "aia upper intermediate" in entry["problems"][0]["message"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("down.test", "cannot connect"),
        ("slow.test", "within 1s"),
        ("garbage.test", "not a DER certificate"),
        ("huge.test", "at most 1048576"),
        ("hugechunked.test", "over 1048576 bytes"),
        ("https.test", "only http://"),
        ("metadata.test", "169.254.169.254"),
        ("loop.test", "more than 3 redirects"),
        ("notfound.test", "HTTP status 404"),
    ],
)
def test_a_failed_fetch_is_recorded_and_the_chain_stays_incomplete(
    aia_scan: Aia, name: str, error: str
) -> None:
    entry = aia_scan.entries[name]
    assert entry["trust"]["trusted"] is False
    completion = entry["completion"]
    assert completion["trusted"] is False
    (fetch,) = completion["fetched"]
    assert error in fetch["error"] and fetch["certs"] == []
    assert codes(entry) == ["incomplete-chain"]
    assert "pwned" not in str(entry)  # a body never reaches the manifest


def test_a_complete_chain_fetches_nothing(aia_scan: Aia) -> None:
    entry = aia_scan.entries["good.test"]
    assert entry["trust"]["trusted"] is True and "completion" not in entry


def test_each_url_is_fetched_once_per_run(tmp_path: Path) -> None:
    root = CA("once root")
    inter = root.child_ca("once intermediate")
    with HttpServer({"/i.der": Route(body=inter.der)}) as http:
        ext = [aia(http.url("/i.der"))]
        chains = {
            f"h{i}.test": served_chain(tmp_path, inter.issue(f"h{i}.test", extra_extensions=ext))
            for i in range(20)
        }
        with TLSServer(chains) as tls:
            entries = scan(tmp_path, [*chains], tls.port, root, *ALLOW)
        assert http.requests["/i.der"] == 1
        assert http.hosts[0] == f"127.0.0.1:{http.port}"
    assert all(e["completion"]["trusted"] for e in entries.values())


def test_no_fetch_stays_offline_and_loopback_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = CA("offline root")
    inter = root.child_ca("offline intermediate")
    with HttpServer({"/i.der": Route(body=inter.der)}) as http:
        leaf = inter.issue("o.test", extra_extensions=[aia(http.url("/i.der"))])
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with TLSServer({"o.test": served_chain(tmp_path, leaf)}) as tls:
            offline = scan(tmp_path / "a", ["o.test"], tls.port, root, "--no-fetch")
            guarded = scan(tmp_path / "b", ["o.test"], tls.port, root)
        assert http.requests["/i.der"] == 0
    assert "completion" not in offline["o.test"]
    assert codes(offline["o.test"]) == ["incomplete-chain"]
    (fetch,) = guarded["o.test"]["completion"]["fetched"]
    assert "loopback" in fetch["error"] and "--fetch-allow" in fetch["error"]


# --------------------------------------------------------------------------------------------
# The guard: every denied kind of address is refused before any connection


DENIED_URLS = [
    "http://127.0.0.1/ca.der",
    "http://127.1.2.3:8080/ca.der",
    "http://[::1]/ca.der",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.10.1/ca.der",
    "http://[fe80::1]/ca.der",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://192.0.0.192/opc/v1/",
    "http://224.0.0.1/ca.der",
    "http://[ff02::1]/ca.der",
    "http://0.0.0.0/ca.der",
    "http://[::]/ca.der",
    "http://255.255.255.255/ca.der",
    "http://[::ffff:127.0.0.1]/ca.der",
    "http://[::ffff:169.254.169.254]/ca.der",
    "http://localhost/ca.der",  # a name that resolves to loopback
    "https://10.0.0.1/ca.der",
    "file:///etc/passwd",
    "ftp://10.0.0.1/ca.der",
    "http://user:pw@10.0.0.1/ca.der",
    "http:///nohost",
    "http://10.0.0.1/\x1b[2J",
]


@pytest.mark.parametrize("url", DENIED_URLS)
async def test_a_denied_url_is_refused_without_a_connection(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_connection(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a connection was attempted for {url!r}")

    monkeypatch.setattr(httpcore.TrioBackend, "connect_tcp", no_connection)
    fetcher = Fetcher(FetchGuard(), timeout=5)
    response = await fetcher.get(url)
    assert response.refused, response
    assert response.body is None and response.error and response.error.startswith("refused")


def test_deny_wins_over_allow_and_private_ranges_are_allowed() -> None:
    net = ipaddress.ip_network
    guard = FetchGuard(allow=[net("127.0.0.0/8")], deny=[net("127.0.0.2/32"), net("10.9.0.0/16")])
    guard.check_address("127.0.0.1")
    with pytest.raises(FetchRefused, match="--fetch-deny"):
        guard.check_address("127.0.0.2")
    with pytest.raises(FetchRefused, match="--fetch-deny"):
        guard.check_address("10.9.1.1")
    for private in ("10.0.0.1", "172.16.5.5", "192.168.1.1", "fd12::1", "100.64.0.1"):
        FetchGuard().check_address(private)
    with pytest.raises(FetchRefused, match="loopback"):
        FetchGuard().check_address("::1")


def test_the_cli_refuses_a_bad_cidr(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        run("hosts.txt", "-o", str(tmp_path / "o"), "--fetch-allow", "not-a-net")
    assert exited.value.code == 2
    with pytest.raises(ValueError, match="not an IP network"):
        parse_cidr("not-a-net")


# --------------------------------------------------------------------------------------------
# report and diff


def test_report_lists_the_hosts_that_need_completion(aia_scan: Aia) -> None:
    code, out, err = run("report", str(aia_scan.out))
    assert code == 0, err
    section = out.split("missing intermediates fetched (AIA) (")[1].split("hostname mismatch")[0]
    assert "der.test" in section and "the server should send" in section
    assert aia_scan.http.url("/inter.der") in section
    assert "slow.test" in section and "still untrusted" in section
    assert "good.test" not in section


def test_the_html_report_lists_them_too(aia_scan: Aia, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _, err = run("report", str(aia_scan.out), "--html", str(page), "-q")
    assert code == 0, err
    html = page.read_text()
    section = html.split("<h2>Missing intermediates fetched (AIA)</h2>")[1].split("<h2>")[0]
    assert "der.test" in section and "the server should send" in section
    assert "slow.test" in section and "still untrusted" in section
    assert "good.test" not in section


def test_diff_says_when_a_chain_starts_to_need_completion(tmp_path: Path) -> None:
    root = CA("diff root")
    inter = root.child_ca("diff intermediate")
    with HttpServer({"/i.der": Route(body=inter.der)}) as http:
        leaf = inter.issue("d.test", extra_extensions=[aia(http.url("/i.der"))])
        (tmp_path / "old").mkdir()
        (tmp_path / "new").mkdir()
        server = RenewableServer({"d.test": served_chain(tmp_path / "old", leaf, inter)})
        with server as tls:
            scan(tmp_path / "old", ["d.test"], tls.port, root, *ALLOW)
            server.renew({"d.test": served_chain(tmp_path / "new", leaf)})  # intermediate dropped
            scan(tmp_path / "new", ["d.test"], tls.port, root, *ALLOW)
    code, out, err = run(
        "diff", str(tmp_path / "old" / "out"), str(tmp_path / "new" / "out"), "--json"
    )
    assert code == 0, err
    changes = json.loads(out)["changes"]
    kinds = [c["kind"] for c in changes]
    assert kinds == ["intermediate-changed", "newly-untrusted", "needs-completion", "new-problems"]
    needs = changes[2]["message"]
    assert "diff intermediate" in needs and http.url("/i.der") in needs


def test_the_leaf_is_parsed_once_for_the_completer_and_the_revocation_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scanning process parses each leaf once (issue 16): the revocation checker takes
    the one the completer has just parsed; another leaf is parsed anew."""
    import trio

    from chainscan import ScanOptions, ScanResult, Status, Target
    from chainscan.scan import _aia
    from chainscan.scan._resolve import Resolver
    from chainscan.scan._revocation import RevocationChecker

    ca = CA("memo root")
    leaves = [ca.issue("a.example").der, ca.issue("b.example").der]
    parsed: list[bytes] = []
    real = _aia.load_certificate

    def counting(der: bytes) -> x509.Certificate | None:
        parsed.append(der)
        return real(der)

    monkeypatch.setattr(_aia, "load_certificate", counting)
    options = ScanOptions(fetch=True, revocation="crl")
    completer = _aia.ChainCompleter(options, Resolver(), anchors=frozenset())
    checker = RevocationChecker(options, completer)

    async def main() -> None:
        for leaf in leaves:
            result = ScanResult(
                target=Target(host="a.example", port=443, sni="a.example"),
                status=Status.OK,
                chain=(leaf, ca.der),
            )
            result = await completer(result, trio.current_time() + 10)
            await checker(result, trio.current_time() + 10)

    trio.run(main)
    assert [p for p in parsed if p in leaves] == leaves  # each leaf once
    assert completer.load_leaf(leaves[1]) is completer.load_leaf(leaves[1])
