"""A local fleet of TLS endpoints for benchmarks: one nginx, many addresses, ports and names.

Theory of operation
-------------------

A real scan meets thousands of endpoints: different addresses, different ports, and many names
behind one address (SNI). This module rebuilds that shape on loopback so that every tool in the
benchmark can be pointed at the same endpoints in the same run:

* **Addresses.** Linux routes all of 127.0.0.0/8 to ``lo`` and lets a process bind any of it
  without configuration, so the fleet listens on ``127.0.1.1`` .. ``127.0.1.A``, each on ``P``
  consecutive ports starting at ``base_port``. No traffic ever leaves the machine.
* **Names.** Target ``i`` gets its own name ``nNNNNN.fleet.test`` (``.test`` is reserved, RFC 2606)
  and its own nginx ``server`` block on one address:port. Targets are dealt round-robin over the
  addresses, then over the ports, so consecutive lines of the targets file hit different
  addresses, and every address:port serves ``targets / (A * P)`` names. A catch-all
  ``default_server`` on every socket answers unknown names with ``default.fleet.test``.
* **Certificates.** A test PKI is built in memory with ``cryptography`` (as trustme does): for each
  key type, ECDSA P-256 and RSA-2048, a root and an intermediate CA. Every target gets its own
  leaf (subject CN and subjectAltName = its name), so a tool that sends the wrong SNI is caught:
  the leaf it gets names another host. Each target has a *profile*: key type x chain length, where
  a chain of 2 is ``leaf, intermediate`` and a chain of 3 is ``leaf, intermediate, root``. Profiles
  cycle so that every address:port serves all of them. Generating keys is the slow part (RSA-2048
  takes tens of milliseconds), so all leaves of one key type share one key: issuing a certificate
  is then only a signature, and 2,000 leaves take about a second.
* **Every handshake is full.** ``ssl_session_cache off`` and ``ssl_session_tickets off`` mean no
  tool can resume a session, so every target costs the server one private-key operation, which is
  what a scan of distinct real servers costs too. Each server answers ``return 200`` (no tool here
  sends a request; the handshake is the work).
* **nginx is our child.** It runs in the foreground (``daemon off``) with its own prefix, config,
  pid file, lock file and error log in a temporary directory, in its own session (so a Ctrl-C in
  the terminal reaches only the harness, which then stops nginx in order), and with
  ``PR_SET_PDEATHSIG`` so that it gets SIGTERM even if the harness is killed outright. The server
  is stopped with SIGTERM to its PID and waited for, on normal exit, exceptions and Ctrl-C alike.
  ``worker_processes`` defaults to 1 so that on a 2-core machine the tool under test keeps a core;
  :meth:`Fleet.cpu_seconds` reads nginx's own CPU time from ``/proc`` so a report can tell when the
  server, not the client, was the bottleneck.

The targets are written twice: ``targets.txt`` in chainscan's format ``name:port{ip}`` (connect to
``ip``, send SNI ``name``) and ``targets-openssl.txt`` as ``name ip port`` for shell tools.

Run ``python -m benchmarks.fleet --hold 60`` to start a fleet by hand and try tools against it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._requirements import ENTRY_POINTS, require_or_exit
from ._system import die_with_parent, find_program

DOMAIN = "fleet.test"
DEFAULT_NAME = f"default.{DOMAIN}"
"""Subject of the certificate served to names the fleet does not know."""
UNKNOWN_NAME = f"unknown.{DOMAIN}"
"""A name no target has: asking for it must yield this fleet's default certificate."""


class FleetError(Exception):
    """The fleet could not be built, started, or does not serve what it should."""


# --------------------------------------------------------------------------------------------
# What the fleet looks like (pure)


@dataclass(frozen=True, slots=True)
class Profile:
    """What a target's server presents: key type and the number of certificates it sends."""

    key_type: str
    """``ec`` (ECDSA P-256) or ``rsa`` (RSA-2048), for the whole chain."""
    chain_length: int
    """2: leaf + intermediate; 3: leaf + intermediate + root."""

    @property
    def name(self) -> str:
        return f"{self.key_type}-{self.chain_length}"


PROFILES: tuple[Profile, ...] = (
    Profile("ec", 2),
    Profile("ec", 3),
    Profile("rsa", 2),
    Profile("rsa", 3),
)
"""Every profile; a fleet cycles through the ones it is given."""


def parse_profiles(text: str) -> tuple[Profile, ...]:
    """``"ec-2,rsa-3"`` -> the matching profiles, in that order."""
    known = {p.name: p for p in PROFILES}
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown profile(s) {unknown!r}; choose from {sorted(known)}")
    return tuple(known[n] for n in names)


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSpec:
    """The shape of a fleet. Every field has the default used by ``python -m benchmarks.run``."""

    targets: int = 2000
    """Number of targets (distinct names), each with its own leaf certificate."""
    addresses: int = 10
    """Listen on 127.0.1.1 .. 127.0.1.N (at most 254)."""
    ports: int = 4
    """Listen on ``base_port`` .. ``base_port + ports - 1`` on every address."""
    base_port: int = 24430
    network: str = "127.0.1"
    """First three octets of the listen addresses; must be inside 127.0.0.0/8."""
    profiles: tuple[Profile, ...] = PROFILES
    workers: int = 1
    """nginx ``worker_processes``."""
    worker_connections: int = 16384
    """nginx ``worker_connections`` (per worker)."""
    nofile: int = 20000
    """nginx ``worker_rlimit_nofile``; must not exceed the hard limit of the harness."""

    def __post_init__(self) -> None:
        if self.targets < 1:
            raise ValueError(f"targets must be at least 1, not {self.targets}")
        if not 1 <= self.addresses <= 254:
            raise ValueError(f"addresses must be 1-254, not {self.addresses}")
        if self.ports < 1 or not 1024 <= self.base_port <= 65535 - self.ports + 1:
            raise ValueError(f"ports {self.base_port}+{self.ports} do not fit in 1024-65535")
        octets = self.network.split(".")
        if len(octets) != 3 or octets[0] != "127" or not all(o.isdigit() for o in octets):
            raise ValueError(f"network {self.network!r} is not of the form 127.X.Y")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if not self.profiles:
            raise ValueError("at least one profile is needed")

    @property
    def listeners(self) -> tuple[tuple[str, int], ...]:
        """Every (address, port) nginx listens on."""
        return tuple(
            (f"{self.network}.{a}", self.base_port + p)
            for a in range(1, self.addresses + 1)
            for p in range(self.ports)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetTarget:
    """One endpoint of the fleet: connect to ``address:port`` and ask for ``name``."""

    name: str
    address: str
    port: int
    profile: Profile

    @property
    def chainscan_line(self) -> str:
        return f"{self.name}:{self.port}{{{self.address}}}"

    @property
    def openssl_line(self) -> str:
        return f"{self.name} {self.address} {self.port}"


def layout(spec: FleetSpec) -> tuple[FleetTarget, ...]:
    """Deal the targets over addresses, then ports, then profiles (see the module header)."""
    width = max(5, len(str(spec.targets - 1)))
    n_addr, n_port = spec.addresses, spec.ports
    targets = []
    for i in range(spec.targets):
        targets.append(
            FleetTarget(
                name=f"n{i:0{width}d}.{DOMAIN}",
                address=f"{spec.network}.{1 + i % n_addr}",
                port=spec.base_port + (i // n_addr) % n_port,
                profile=spec.profiles[(i // (n_addr * n_port)) % len(spec.profiles)],
            )
        )
    return tuple(targets)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFiles:
    """The same targets in each tool's input format."""

    chainscan: Path
    """``name:port{ip}`` per line."""
    openssl: Path
    """``name ip port`` per line."""
    count: int


def write_target_files(targets: Sequence[FleetTarget], directory: Path, stem: str) -> TargetFiles:
    directory.mkdir(parents=True, exist_ok=True)
    chainscan = directory / f"{stem}.txt"
    openssl = directory / f"{stem}-openssl.txt"
    chainscan.write_text("".join(t.chainscan_line + "\n" for t in targets))
    openssl.write_text("".join(t.openssl_line + "\n" for t in targets))
    return TargetFiles(chainscan=chainscan, openssl=openssl, count=len(targets))


# --------------------------------------------------------------------------------------------
# The test PKI (pure, in memory)

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _new_key(key_type: str) -> _PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _subject(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chainscan benchmark fleet"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass(frozen=True, slots=True)
class _Issuer:
    key: _PrivateKey
    cert: x509.Certificate


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    """Root, intermediate and the one leaf key of one key type."""

    root: _Issuer
    intermediate: _Issuer
    leaf_key: _PrivateKey
    leaf_key_pem: bytes
    chain_pem: tuple[bytes, ...]
    """PEM of the intermediate, then the root: appended after the leaf, as many as needed."""


def _ca(cn: str, key: _PrivateKey, issuer: _Issuer | None, path_length: int) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    signer_key = key if issuer is None else issuer.key
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(cn))
        .issuer_name(_subject(cn) if issuer is None else issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256())


def _hierarchy(key_type: str) -> _Hierarchy:
    label = {"ec": "ECDSA P-256", "rsa": "RSA-2048"}[key_type]
    root_key = _new_key(key_type)
    root = _Issuer(root_key, _ca(f"Fleet Root CA ({label})", root_key, None, 1))
    inter_key = _new_key(key_type)
    inter = _Issuer(inter_key, _ca(f"Fleet Intermediate CA ({label})", inter_key, root, 0))
    leaf_key = _new_key(key_type)
    return _Hierarchy(
        root=root,
        intermediate=inter,
        leaf_key=leaf_key,
        leaf_key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        chain_pem=tuple(c.cert.public_bytes(serialization.Encoding.PEM) for c in (inter, root)),
    )


class _Issuing:
    """Issues leaves fast: the issuer's key identifier and the leaf key are computed once."""

    def __init__(self, h: _Hierarchy) -> None:
        self._h = h
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            h.intermediate.key.public_key()
        )
        self._leaf_public = h.leaf_key.public_key()
        self._eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        self._now = dt.datetime.now(dt.UTC)

    def chain_pem(self, name: str, chain_length: int) -> bytes:
        """PEM of a new leaf for ``name``, followed by ``chain_length - 1`` CA certificates."""
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_subject(name))
            .issuer_name(self._h.intermediate.cert.subject)
            .public_key(self._leaf_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - dt.timedelta(hours=1))
            .not_valid_after(self._now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(self._eku, critical=False)
            .add_extension(self._aki, critical=False)
            .sign(self._h.intermediate.key, hashes.SHA256())
        )
        parts = [leaf.public_bytes(serialization.Encoding.PEM)]
        parts.extend(self._h.chain_pem[: chain_length - 1])
        return b"".join(parts)


# --------------------------------------------------------------------------------------------
# nginx configuration (pure)


def render_nginx_conf(spec: FleetSpec, targets: Sequence[FleetTarget], prefix: Path) -> str:
    """The whole nginx.conf; certificates are expected under ``prefix/certs`` and ``keys``."""
    lines = [
        f"worker_processes {spec.workers};",
        f"worker_rlimit_nofile {spec.nofile};",
        "daemon off;",
        "master_process on;",
        f"pid {prefix}/nginx.pid;",
        f"lock_file {prefix}/nginx.lock;",
        f"error_log {prefix}/error.log warn;",
        "events {",
        f"    worker_connections {spec.worker_connections};",
        "    multi_accept on;",
        "}",
        "http {",
        "    access_log off;",
        "    default_type text/plain;",
        "    keepalive_timeout 0;",
        f"    client_body_temp_path {prefix}/tmp/body;",
        f"    proxy_temp_path {prefix}/tmp/proxy;",
        f"    fastcgi_temp_path {prefix}/tmp/fastcgi;",
        f"    uwsgi_temp_path {prefix}/tmp/uwsgi;",
        f"    scgi_temp_path {prefix}/tmp/scgi;",
        "    server_names_hash_max_size 65536;",
        "    server_names_hash_bucket_size 128;",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache off;",
        "    ssl_session_tickets off;",
        "    server {",
    ]
    # The catch-all server owns the socket options of every listener (they may be set once).
    for address, port in spec.listeners:
        lines.append(f"        listen {address}:{port} ssl default_server backlog=4096;")
    lines += [
        "        server_name _;",
        f"        ssl_certificate {prefix}/certs/{DEFAULT_NAME}.pem;",
        f"        ssl_certificate_key {prefix}/keys/ec.key;",
        "        return 200;",
        "    }",
    ]
    for t in targets:
        lines += [
            "    server {",
            f"        listen {t.address}:{t.port} ssl;",
            f"        server_name {t.name};",
            f"        ssl_certificate {prefix}/certs/{t.name}.pem;",
            f"        ssl_certificate_key {prefix}/keys/{t.profile.key_type}.key;",
            "        return 200;",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Files on disk


def write_pki(targets: Sequence[FleetTarget], prefix: Path) -> bytes:
    """Write one chain file per target, the default server's chain and one key per key type.

    Returns the DER of the default server's leaf: it is new each time, so it identifies this
    fleet among any other server that might answer on the same sockets.
    """
    certs, keys = prefix / "certs", prefix / "keys"
    certs.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    key_types = sorted({t.profile.key_type for t in targets} | {"ec"})
    issuing = {}
    for key_type in key_types:
        h = _hierarchy(key_type)
        key_path = keys / f"{key_type}.key"
        key_path.write_bytes(h.leaf_key_pem)
        key_path.chmod(0o600)
        issuing[key_type] = _Issuing(h)
    default_pem = issuing["ec"].chain_pem(DEFAULT_NAME, 2)
    (certs / f"{DEFAULT_NAME}.pem").write_bytes(default_pem)
    for t in targets:
        pem = issuing[t.profile.key_type].chain_pem(t.name, t.profile.chain_length)
        (certs / f"{t.name}.pem").write_bytes(pem)
    return x509.load_pem_x509_certificate(default_pem).public_bytes(serialization.Encoding.DER)


def find_or_install_nginx() -> str:
    """Path of ``nginx``; installs Debian's package with apt-get when there is none."""
    # In Debian 12 `nginx` is the basic build and `nginx-light` only adds a module to it;
    # older releases had a separate light build. Either serves this config.
    try:
        return find_program(
            "nginx", ("nginx", "nginx-light"), ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
        )
    except RuntimeError as exc:
        raise FleetError(str(exc)) from None


def nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


# --------------------------------------------------------------------------------------------
# Processes


def _cpu_seconds_of(pid: int) -> float:
    """utime + stime of one process from /proc, in seconds; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_of(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    """A running fleet. Made by :func:`running_fleet`; valid only inside its ``with`` block."""

    spec: FleetSpec
    prefix: Path
    targets: tuple[FleetTarget, ...]
    files: TargetFiles
    nginx: str
    nginx_version: str
    process: subprocess.Popen[bytes]
    default_der: bytes
    """This fleet's answer to names it does not know (see :func:`write_pki`)."""
    setup_seconds: float = 0.0

    def subset(self, count: int, stem: str) -> TargetFiles:
        """The first ``count`` targets (spread over every address and port) as extra files."""
        return write_target_files(self.targets[:count], self.prefix, stem)

    def cpu_seconds(self) -> float:
        """CPU time used so far by nginx (master and workers); compare before and after a run."""
        pid = self.process.pid
        return _cpu_seconds_of(pid) + sum(_cpu_seconds_of(k) for k in _children_of(pid))

    def worker_pids(self) -> list[int]:
        return _children_of(self.process.pid)

    def describe(self) -> dict[str, object]:
        """A JSON-ready description for result files."""
        per_listener = self.spec.targets / len(self.spec.listeners)
        return {
            "targets": self.spec.targets,
            "addresses": f"{self.spec.network}.1-{self.spec.network}.{self.spec.addresses}",
            "ports": f"{self.spec.base_port}-{self.spec.base_port + self.spec.ports - 1}",
            "listeners": len(self.spec.listeners),
            "names_per_listener": round(per_listener, 1),
            "profiles": [p.name for p in self.spec.profiles],
            "nginx_workers": self.spec.workers,
            "nginx_version": self.nginx_version,
            "session_resumption": False,
            "setup_seconds": round(self.setup_seconds, 2),
        }

    def check(self, sample: int = 8, timeout: float = 5.0) -> None:
        """Handshake with a few targets and check each leaf names the SNI that was sent.

        Also checks that an unknown name gets the default certificate. Raises FleetError.
        """
        step = max(1, len(self.targets) // sample)
        problems = []
        for t in self.targets[::step][:sample]:
            try:
                der = leaf_der(t.address, t.port, t.name, timeout)
            except OSError as exc:
                problems.append(f"{t.name} at {t.address}:{t.port}: {exc}")
                continue
            cns = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
                NameOID.COMMON_NAME
            )
            got = str(cns[0].value) if cns else None
            if got != t.name:
                problems.append(f"{t.name} at {t.address}:{t.port}: leaf is for {got!r}")
        first = self.targets[0]
        try:
            if leaf_der(first.address, first.port, UNKNOWN_NAME, timeout) != self.default_der:
                problems.append(f"{UNKNOWN_NAME}: not this fleet's default certificate")
        except OSError as exc:
            problems.append(f"{UNKNOWN_NAME} at {first.address}:{first.port}: {exc}")
        if problems:
            raise FleetError("the fleet serves the wrong certificates:\n  " + "\n  ".join(problems))


def leaf_der(address: str, port: int, sni: str, timeout: float) -> bytes:
    """One TLS handshake (no verification); the DER of the leaf the server sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"{address}:{port} sent no certificate")
    return der


def _ensure_free(spec: FleetSpec) -> None:
    """FleetError if something already listens where the fleet will (an earlier fleet?)."""
    for address, port in spec.listeners:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does
            try:
                probe.bind((address, port))
            except OSError as exc:
                raise FleetError(
                    f"cannot listen on {address}:{port}: {exc.strerror}; is another fleet "
                    "running? choose other ports with --base-port"
                ) from None


def start_limit(targets: int) -> float:
    """Seconds nginx may take to start serving: 60, plus 10 per 1,000 names (it loads one
    certificate and key per name; 20,000 took it 40-60 s on a busy two-core machine)."""
    return 60.0 + 0.01 * targets


def _wait_ready(
    process: subprocess.Popen[bytes], spec: FleetSpec, prefix: Path, default_der: bytes
) -> None:
    """Until every listener answers with this fleet's default certificate.

    FleetError if nginx exits, another server answers, or :func:`start_limit` seconds pass.
    """
    pending = list(spec.listeners)
    limit = start_limit(spec.targets)
    deadline = time.monotonic() + limit
    while pending:
        if process.poll() is not None:
            raise FleetError(
                f"nginx exited with status {process.returncode} while starting; "
                f"{prefix / 'error.log'}:\n{_tail(prefix / 'error.log')}"
            )
        if time.monotonic() > deadline:
            raise FleetError(f"nginx did not serve on {pending[0]} within {limit:g} s")
        address, port = pending[0]
        try:
            der = leaf_der(address, port, UNKNOWN_NAME, 1.0)
        except OSError:
            time.sleep(0.05)
            continue
        if der != default_der:
            raise FleetError(f"another TLS server answers on {address}:{port}")
        pending.pop(0)


def stop_nginx(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to nginx's PID and wait; SIGKILL its process group only if it hangs."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # nginx runs in a session of its own (start_new_session), so its group is its PID.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@contextlib.contextmanager
def running_fleet(
    spec: FleetSpec, workdir: Path | None = None, *, check: bool = True
) -> Iterator[Fleet]:
    """Build the PKI and config, start nginx, wait until it serves; stop it when the block ends.

    ``workdir`` (default: a new temporary directory, removed afterwards) holds everything.
    """
    started = time.monotonic()
    nginx = find_or_install_nginx()
    owned = workdir is None
    prefix = Path(tempfile.mkdtemp(prefix="chainscan-fleet-")) if workdir is None else workdir
    process: subprocess.Popen[bytes] | None = None
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "tmp").mkdir(exist_ok=True)
        targets = layout(spec)
        _ensure_free(spec)
        default_der = write_pki(targets, prefix)
        conf = prefix / "nginx.conf"
        conf.write_text(render_nginx_conf(spec, targets, prefix))
        files = write_target_files(targets, prefix, "targets")
        with (prefix / "nginx.out").open("wb") as out:
            process = subprocess.Popen(
                [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # safe: the harness has no threads yet
            )
        _wait_ready(process, spec, prefix, default_der)
        fleet = Fleet(
            spec=spec,
            prefix=prefix,
            targets=targets,
            files=files,
            nginx=nginx,
            nginx_version=nginx_version(nginx),
            process=process,
            default_der=default_der,
            setup_seconds=time.monotonic() - started,
        )
        if check:
            fleet.check()
        yield fleet
    finally:
        if process is not None:
            stop_nginx(process)
        if owned:
            shutil.rmtree(prefix, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# By hand: python -m benchmarks.fleet


def spec_from_args(args: argparse.Namespace) -> FleetSpec:
    return FleetSpec(
        targets=args.targets,
        addresses=args.addresses,
        ports=args.ports,
        base_port=args.base_port,
        profiles=parse_profiles(args.profiles),
        workers=args.nginx_workers,
    )


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    d = FleetSpec()
    g = parser.add_argument_group("fleet")
    g.add_argument("--targets", type=int, default=d.targets, help="names (default %(default)s)")
    g.add_argument("--addresses", type=int, default=d.addresses, help="127.0.1.1..N (%(default)s)")
    g.add_argument("--ports", type=int, default=d.ports, help="ports per address (%(default)s)")
    g.add_argument("--base-port", type=int, default=d.base_port, help="first port (%(default)s)")
    g.add_argument(
        "--profiles",
        default=",".join(p.name for p in d.profiles),
        help="key type and chain length cycle (%(default)s)",
    )
    g.add_argument(
        "--nginx-workers", type=int, default=d.workers, help="worker_processes (%(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet",
        description="Start the benchmark fleet, print its targets files, hold it, stop it.",
    )
    add_fleet_arguments(parser)
    parser.add_argument("--dir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--hold", type=float, default=60.0, help="seconds to serve before stopping (%(default)s)"
    )
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.fleet", ENTRY_POINTS["benchmarks.fleet"].needs)
    spec = spec_from_args(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with running_fleet(spec, args.dir) as fleet:
            print(f"nginx {fleet.nginx_version} pid {fleet.process.pid}, prefix {fleet.prefix}")
            print(f"chainscan targets: {fleet.files.chainscan}")
            print(f"openssl targets:   {fleet.files.openssl}")
            print(
                f"ready in {fleet.setup_seconds:.1f} s; serving for {args.hold:.0f} s", flush=True
            )
            time.sleep(args.hold)
    except KeyboardInterrupt:
        print("interrupted; nginx stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "DEFAULT_NAME",
    "PROFILES",
    "Fleet",
    "FleetError",
    "FleetSpec",
    "FleetTarget",
    "Profile",
    "TargetFiles",
    "layout",
    "parse_profiles",
    "running_fleet",
    "write_target_files",
]
