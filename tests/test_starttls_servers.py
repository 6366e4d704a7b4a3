"""Each STARTTLS protocol against a real server implementation, end to end.

For every protocol a real server is started on a free port of 127.0.0.1, with a certificate
chain from the test PKI (leaf + intermediate), and ``chainscan FILE -o DIR`` is run on one
line naming it; the certificate files chainscan saves must be byte-identical to the chain the
server was given, and the manifest must record the protocol. The servers: aiosmtpd (SMTP, LMTP),
pyftpdlib (FTP), Dovecot (IMAP, POP3), PostgreSQL, OpenLDAP's slapd, MariaDB, Prosody (XMPP
client-to-server and server-to-server) and xrdp (RDP); see ``tests/daemons.py`` for how the
system daemons are run, and ``tests/setup-system.sh`` / pyproject's ``test`` extra for where
they come from.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainscan._cli import main

from .conftest import PKI
from .daemons import daemon, free_port, need, need_module, open_dir
from .servers import ServedChain, served_chain

pytestmark = pytest.mark.integration

DOMAIN = "mail.test"
"""The name every server's leaf is issued for (SAN DNS:mail.test, IP:127.0.0.1)."""


@pytest.fixture(scope="module")
def chain(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedChain]:
    """A leaf for mail.test and its intermediate, in a folder every daemon user can read."""
    leaf = pki.intermediate.issue(DOMAIN, "127.0.0.1")
    with open_dir("pki") as folder:
        served = served_chain(folder, leaf, pki.intermediate)
        for path in folder.iterdir():
            path.chmod(0o644)
        yield served


def scan(tmp_path: Path, line: str, *extra: str) -> dict[str, Any]:
    """``chainscan FILE -o DIR`` on one line; the manifest entry, with the saved DER files."""
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(line + "\n")
    out = tmp_path / "out"
    code = main([str(hosts), "-o", str(out), "-q", "--handshake-timeout", "20", *extra])
    (entry,) = [json.loads(text) for text in (out / "manifest.jsonl").read_text().splitlines()]
    entry["ders"] = [(out / cert["file"]).read_bytes() for cert in entry["chain"]]
    entry["exit"] = code
    print(f"\n{line}: {entry['status']} {entry['error_kind']} in {entry['elapsed']}s")
    return entry


def assert_chain(entry: dict[str, Any], protocol: str, chain: ServedChain) -> None:
    assert entry["status"] == "ok", entry["error"]
    assert entry["protocol"] == protocol
    assert tuple(entry["ders"]) == chain.der
    assert entry["dir"].startswith(f"{protocol}_")
    assert entry["exit"] == 0


SSLYZE = Path(__file__).resolve().parents[1] / "benchmarks" / ".venv-sslyze" / "bin" / "python"
"""sslyze in the benchmarks' virtualenv (optional: made by ``benchmarks/run.py``)."""
_SSLYZE_STARTTLS = {
    "smtp": "smtp",
    "imap": "imap",
    "pop3": "pop3",
    "ftp": "ftp",
    "ldap": "ldap",
    "xmpp": "xmpp",
    "xmpp-server": "xmpp_server",
    "postgres": "postgres",
    "rdp": "rdp",
}


def sslyze_agrees(tmp_path: Path, protocol: str, where: str, chain: ServedChain) -> None:
    """When sslyze is there, it must receive the same chain from the same server (sslyze has
    no MySQL support). Without its virtualenv this checks nothing: it is an optional oracle."""
    if not SSLYZE.exists() or protocol not in _SSLYZE_STARTTLS:
        return
    out = tmp_path / "sslyze.json"
    argv = [str(SSLYZE), "-m", "sslyze", "--certinfo", "--quiet", f"--json_out={out}"]
    argv += ["--starttls", _SSLYZE_STARTTLS[protocol], where]
    if protocol.startswith("xmpp"):
        argv += ["--xmpp_to", DOMAIN]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    (result,) = json.loads(out.read_text())["server_scan_results"]
    info = result["scan_result"]["certificate_info"]
    assert info["status"] == "COMPLETED", result
    (deployment, *_) = info["result"]["certificate_deployments"]
    received = deployment["received_certificate_chain"]
    assert tuple(ssl.PEM_cert_to_DER_cert(cert["as_pem"]) for cert in received) == chain.der
    print(f"sslyze --starttls {_SSLYZE_STARTTLS[protocol]}: the same chain")


def server_context(chain: ServedChain) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain.certfile, chain.keyfile)
    return context


# --------------------------------------------------------------------------------------------
# Python servers (pyproject's test extra)


def test_smtp_aiosmtpd(tmp_path: Path, chain: ServedChain) -> None:
    controller_module = need_module("aiosmtpd.controller")
    sink = need_module("aiosmtpd.handlers").Sink

    port = free_port()
    controller = controller_module.Controller(
        sink(), hostname="127.0.0.1", port=port, tls_context=server_context(chain)
    )
    controller.start()
    try:
        entry = scan(tmp_path, f"smtp://127.0.0.1:{port}")
        sslyze_agrees(tmp_path, "smtp", f"127.0.0.1:{port}", chain)
    finally:
        controller.stop()
    assert_chain(entry, "smtp", chain)
    assert entry["sni"] is None  # an IP target sends no SNI, STARTTLS or not


def test_lmtp_aiosmtpd(tmp_path: Path, chain: ServedChain) -> None:
    controller_module = need_module("aiosmtpd.controller")
    sink = need_module("aiosmtpd.handlers").Sink
    lmtp = need_module("aiosmtpd.lmtp").LMTP
    context = server_context(chain)

    class LmtpController(controller_module.Controller):  # type: ignore[misc,name-defined]
        def factory(self) -> Any:
            return lmtp(self.handler, tls_context=context, **self.SMTP_kwargs)

    port = free_port()
    controller = LmtpController(sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        entry = scan(tmp_path, f"lmtp://127.0.0.1:{port}")
    finally:
        controller.stop()
    assert_chain(entry, "lmtp", chain)


def test_smtp_by_port_with_starttls_option(tmp_path: Path, chain: ServedChain) -> None:
    controller_module = need_module("aiosmtpd.controller")
    sink = need_module("aiosmtpd.handlers").Sink

    port = free_port()
    controller = controller_module.Controller(
        sink(), hostname="127.0.0.1", port=port, tls_context=server_context(chain)
    )
    controller.start()
    try:
        entry = scan(tmp_path, f"{DOMAIN}:{port}{{127.0.0.1}}", "--starttls", "smtp")
    finally:
        controller.stop()
    assert_chain(entry, "smtp", chain)
    assert entry["sni"] == DOMAIN


def test_smtp_through_workers_resume_and_deployments(tmp_path: Path, chain: ServedChain) -> None:
    """The STARTTLS target crosses the worker pipe and comes back from --resume as itself;
    the same host and port as direct TLS is another target, in another folder."""
    controller_module = need_module("aiosmtpd.controller")
    sink = need_module("aiosmtpd.handlers").Sink

    port = free_port()
    controller = controller_module.Controller(
        sink(), hostname="127.0.0.1", port=port, tls_context=server_context(chain)
    )
    controller.start()
    try:
        hosts = tmp_path / "hosts.txt"
        hosts.write_text(f"smtp://127.0.0.1:{port}\n127.0.0.1:{port}\nsmtp://127.0.0.1:{port}/\n")
        out = tmp_path / "out"
        assert main([str(hosts), "-o", str(out), "-q", "--workers", "2"]) == 1
        assert main([str(hosts), "-o", str(out), "-q", "--resume"]) == 1
        deployments = tmp_path / "deployments"
        main([str(hosts), "-o", str(deployments), "-q", "--deployments"])
    finally:
        controller.stop()
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == 2  # the duplicate dropped, nothing scanned again by --resume
    by_protocol = {entry.get("protocol"): entry for entry in entries}
    assert by_protocol["smtp"]["status"] == "ok"
    assert by_protocol["smtp"]["dir"] == f"smtp_127.0.0.1_{port}"
    saved = [(out / cert["file"]).read_bytes() for cert in by_protocol["smtp"]["chain"]]
    assert tuple(saved) == chain.der
    assert by_protocol[None]["error_kind"] == "not-tls"  # direct TLS to an SMTP port
    assert "protocol" not in by_protocol[None]
    (smtp,) = [
        json.loads(line)
        for line in (deployments / "manifest.jsonl").read_text().splitlines()
        if '"protocol":"smtp"' in line
    ]
    status = {probe["variant"]: probe["status"] for probe in smtp["deployments"]["probes"]}
    assert status["default"] == status["tls1.2-ecdsa"] == "ok"  # each ran the SMTP dialogue


def test_ftp_pyftpdlib(tmp_path: Path, chain: ServedChain) -> None:
    with warnings.catch_warnings():
        # pyftpdlib still builds on the standard library's asyncore/asynchat on Python 3.11
        warnings.filterwarnings("ignore", r"The async(ore|hat) module", DeprecationWarning)
        handlers = need_module("pyftpdlib.handlers")
        servers = need_module("pyftpdlib.servers")
    need_module("OpenSSL")

    class Handler(handlers.TLS_FTPHandler):  # type: ignore[misc,name-defined]
        certfile = chain.certfile
        keyfile = chain.keyfile
        ssl_context = None

    Handler.authorizer = need_module("pyftpdlib.authorizers").DummyAuthorizer()
    port = free_port()
    server = servers.FTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1})
    thread.start()
    try:
        entry = scan(tmp_path, f"ftp://127.0.0.1:{port}")
        sslyze_agrees(tmp_path, "ftp", f"127.0.0.1:{port}", chain)
    finally:
        server.close_all()
        thread.join(10)
    assert_chain(entry, "ftp", chain)


# --------------------------------------------------------------------------------------------
# System daemons (tests/setup-system.sh)

_DOVECOT_CONF = """\
base_dir = {run}/base
state_dir = {run}/state
log_path = {run}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = <{run}/dh.pem
auth_mechanisms = plain
disable_plaintext_auth = yes
passdb {{
  driver = static
  args = password=unused
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={run}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""


@pytest.fixture(scope="module")
def dovecot(chain: ServedChain) -> Iterator[tuple[int, int]]:
    (binary,) = need("dovecot")
    imap, pop3 = free_port(), free_port()
    with open_dir("dovecot") as run:
        (run / "state").mkdir()
        (run / "base").mkdir(mode=0o755)  # not the config's folder: Dovecot links it there
        # Dovecot 2.3 wants DH parameters; DSA-style ones are quick to make (ECDHE is used).
        subprocess.run(
            ["openssl", "dhparam", "-out", str(run / "dh.pem"), "-dsaparam", "2048"],
            check=True,
            capture_output=True,
        )
        conf = run / "dovecot.conf"
        conf.write_text(
            _DOVECOT_CONF.format(
                run=run, cert=chain.certfile, key=chain.keyfile, imap=imap, pop3=pop3
            )
        )
        with daemon([binary, "-F", "-c", str(conf)], imap, run / "stdout.log"):
            yield imap, pop3


def test_imap_dovecot(tmp_path: Path, chain: ServedChain, dovecot: tuple[int, int]) -> None:
    entry = scan(tmp_path, f"imap://127.0.0.1:{dovecot[0]}")
    sslyze_agrees(tmp_path, "imap", f"127.0.0.1:{dovecot[0]}", chain)
    assert_chain(entry, "imap", chain)


def test_pop3_dovecot(tmp_path: Path, chain: ServedChain, dovecot: tuple[int, int]) -> None:
    entry = scan(tmp_path, f"pop3://127.0.0.1:{dovecot[1]}")
    sslyze_agrees(tmp_path, "pop3", f"127.0.0.1:{dovecot[1]}", chain)
    assert_chain(entry, "pop3", chain)


def _postgres_bin(name: str) -> str:
    for version in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (version / name).exists():
            return str(version / name)
    return need(name)[0]


def test_postgres(tmp_path: Path, chain: ServedChain) -> None:
    need("pg_ctlcluster") if not Path("/usr/lib/postgresql").exists() else None
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    port = free_port()
    with open_dir("postgres") as run:
        data = run / "data"
        # PostgreSQL refuses to run as root: its files belong to the postgres user.
        for name, source in (("server.crt", chain.certfile), ("server.key", chain.keyfile)):
            (run / name).write_bytes(Path(source).read_bytes())
            os.chown(run / name, _uid("postgres"), _gid("postgres"))
        (run / "server.key").chmod(0o600)
        os.chown(run, _uid("postgres"), _gid("postgres"))
        subprocess.run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            user="postgres",
            cwd=run,
        )
        argv = [
            postgres,
            "-D", str(data),
            "-p", str(port),
            "-k", str(run),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "ssl=on",
            "-c", f"ssl_cert_file={run / 'server.crt'}",
            "-c", f"ssl_key_file={run / 'server.key'}",
        ]  # fmt: skip
        with daemon(argv, port, run / "postgres.log", user="postgres", stop_signal=signal.SIGINT):
            entry = scan(tmp_path, f"postgres://127.0.0.1:{port}")
            sslyze_agrees(tmp_path, "postgres", f"127.0.0.1:{port}", chain)
    assert_chain(entry, "postgres", chain)


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _gid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


_SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
pidfile {run}/slapd.pid
argsfile {run}/slapd.args
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
"""


def test_ldap_slapd(tmp_path: Path, chain: ServedChain) -> None:
    (slapd,) = need("slapd")
    port = free_port()
    with open_dir("slapd") as run:
        conf = run / "slapd.conf"
        conf.write_text(_SLAPD_CONF.format(run=run, cert=chain.certfile, key=chain.keyfile))
        argv = [slapd, "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)]
        with daemon(argv, port, run / "slapd.log", stop_signal=signal.SIGINT):
            entry = scan(tmp_path, f"ldap://127.0.0.1:{port}")
            sslyze_agrees(tmp_path, "ldap", f"127.0.0.1:{port}", chain)
    assert_chain(entry, "ldap", chain)


def test_mysql_mariadb(tmp_path: Path, chain: ServedChain) -> None:
    (mariadbd,) = need("mariadbd")
    port = free_port()
    with open_dir("mariadb") as run:
        (run / "data").mkdir()
        argv = [
            mariadbd,
            "--no-defaults",
            f"--datadir={run / 'data'}",
            f"--socket={run / 'sock'}",
            f"--pid-file={run / 'pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-grant-tables",  # no system tables: the test never logs in
            "--skip-log-bin",
            "--innodb-buffer-pool-size=8M",
            f"--ssl-cert={chain.certfile}",
            f"--ssl-key={chain.keyfile}",
        ]
        with daemon(argv, port, run / "mariadb.log"):
            entry = scan(tmp_path, f"mysql://127.0.0.1:{port}")
    assert_chain(entry, "mysql", chain)


_PROSODY_CONF = """\
pidfile = "{run}/prosody.pid"
data_path = "{run}/data"
daemonize = false
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{run}/prosody.log" }} }}
plugin_paths = {{}}
modules_enabled = {{ "tls", "saslauth", "dialback", "disco" }}
c2s_ports = {{ {c2s} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ {s2s} }}
s2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
s2s_direct_tls_ports = {{}}
legacy_ssl_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{domain}"
"""


@pytest.fixture(scope="module")
def prosody(chain: ServedChain) -> Iterator[tuple[int, int]]:
    (binary,) = need("prosody")
    c2s, s2s = free_port(), free_port()
    with open_dir("prosody") as run:
        (run / "data").mkdir()
        os.chown(run, _uid("prosody"), _gid("prosody"))
        os.chown(run / "data", _uid("prosody"), _gid("prosody"))
        conf = run / "prosody.cfg.lua"
        conf.write_text(
            _PROSODY_CONF.format(
                run=run, cert=chain.certfile, key=chain.keyfile, c2s=c2s, s2s=s2s, domain=DOMAIN
            )
        )
        # Prosody refuses to run as root: it runs as its own user.
        with daemon([binary, "--config", str(conf)], c2s, run / "stdout.log", user="prosody"):
            yield c2s, s2s


def test_xmpp_client_prosody(tmp_path: Path, chain: ServedChain, prosody: tuple[int, int]) -> None:
    entry = scan(tmp_path, f"xmpp://{DOMAIN}:{prosody[0]}{{127.0.0.1}}")
    sslyze_agrees(tmp_path, "xmpp", f"{DOMAIN}:{prosody[0]}{{127.0.0.1}}", chain)
    assert_chain(entry, "xmpp", chain)


def test_xmpp_server_prosody(tmp_path: Path, chain: ServedChain, prosody: tuple[int, int]) -> None:
    entry = scan(tmp_path, f"xmpp-server://{DOMAIN}:{prosody[1]}{{127.0.0.1}}")
    sslyze_agrees(tmp_path, "xmpp-server", f"{DOMAIN}:{prosody[1]}{{127.0.0.1}}", chain)
    assert_chain(entry, "xmpp-server", chain)


def test_xmpp_unknown_domain_is_refused_with_the_servers_words(
    tmp_path: Path, prosody: tuple[int, int]
) -> None:
    entry = scan(tmp_path, f"xmpp://other.test:{prosody[0]}{{127.0.0.1}}")
    assert (entry["status"], entry["error_kind"]) == ("failed", "starttls-refused")
    assert "host-unknown" in entry["error"]
    assert entry["attempts"] == 1  # permanent: not retried


def test_rdp_xrdp(tmp_path: Path, chain: ServedChain) -> None:
    (xrdp,) = need("xrdp")
    port = free_port()
    with open_dir("xrdp") as run:
        ini = Path("/etc/xrdp/xrdp.ini").read_text()
        settings = {
            "port": f"tcp://127.0.0.1:{port}",
            "security_layer": "tls",
            "certificate": chain.certfile,
            "key_file": chain.keyfile,
            "fork": "false",
            "LogFile": str(run / "xrdp.log"),
        }
        lines = []
        section = ""
        for text in ini.splitlines():
            if text.startswith("["):
                section = text
            name = text.split("=", 1)[0].strip()
            if section in ("[Globals]", "[Logging]") and "=" in text and name in settings:
                text = f"{name}={settings[name]}"
            lines.append(text)
        (run / "xrdp.ini").write_text("\n".join(lines) + "\n")
        argv = [xrdp, "--nodaemon", "--config", str(run / "xrdp.ini")]
        with daemon(argv, port, run / "stdout.log"):
            entry = scan(tmp_path, f"rdp://127.0.0.1:{port}")
            sslyze_agrees(tmp_path, "rdp", f"127.0.0.1:{port}", chain)
    assert_chain(entry, "rdp", chain)
