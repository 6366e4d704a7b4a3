"""``python -m benchmarks.show_bench``: the one-host view against ``openssl s_client``.

Theory of operation
-------------------
The question a person asks most ("what chain does this host serve?") is answered by
``chainscan show HOST``, and the tool people reach for instead is ``openssl s_client -connect
HOST:443 -servername HOST -showcerts </dev/null``. Both are one process, one handshake, one
print; what differs is start-up (Python's imports, the trust store) and the analysis chainscan
adds (trust and hostname verdicts, problems, pins). This benchmark measures the wall time of each,
from process start to exit, on the same loopback server, ``--runs`` times each, interleaved
(A, B, A, B, ...) so a busy machine slows both alike, and reports the medians, their ratio, and
``python3 -c pass`` as the floor of any Python command. The goal (issue 15) is a median under
0.25 s for chainscan.

The server is a Python TLS server in a thread of this process, on 127.0.0.1, serving a leaf and
its intermediate (ECDSA P-256) made with ``cryptography``; it only handshakes and closes. Every
child process has a time limit; only loopback is contacted. Results go to
``benchmarks/results/show-<time>.json`` and ``latest-show.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._requirements import ENTRY_POINTS, require_or_exit
from .scenarios._common import REPO, machine_info, write_results

NAME = "show.bench.test"
_TIMEOUT = 30.0


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
    )
    if subject != NAME:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), False)
    return builder.sign(issuer[1], hashes.SHA256())


def write_chain(folder: Path) -> tuple[Path, Path]:
    """A leaf for NAME and its issuing CA: ``(certfile with both, keyfile)``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("show bench CA", ca_key, ("show bench CA", ca_key))
    leaf = _cert(NAME, leaf_key, ("show bench CA", ca_key))
    certfile, keyfile = folder / "chain.pem", folder / "key.pem"
    certfile.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    keyfile.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@contextlib.contextmanager
def tls_server(certfile: Path, keyfile: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that handshakes and closes; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(1)
                with contextlib.suppress(OSError):
                    tls.recv(1)  # until the client closes

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of ``argv`` (stdin empty, output discarded)."""
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: chainscan's verdict (an untrusted test CA)
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.show_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default: 21)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results")
    args = parser.parse_args(argv)
    require_or_exit("benchmarks.show_bench", ENTRY_POINTS["benchmarks.show_bench"].needs)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp, tls_server(*write_chain(Path(tmp))) as port:
        commands = {
            "chainscan show": [
                sys.executable,
                "-m",
                "chainscan",
                "show",
                f"{NAME}:{port}{{127.0.0.1}}",
            ],
            "openssl s_client": [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                NAME,
                "-showcerts",
            ],
            "python3 -c pass": [sys.executable, "-c", "pass"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm-up: caches, page cache
            wall(command, env)
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(wall(command, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["chainscan show"] / medians["openssl s_client"]
    for name, value in medians.items():
        print(
            f"{name:<18} median {value * 1000:7.1f} ms over {args.runs} runs "
            f"(min {min(times[name]) * 1000:.1f}, max {max(times[name]) * 1000:.1f})"
        )
    print(
        f"chainscan show / openssl s_client: {ratio:.2f}x; goal: chainscan show under 250 ms "
        f"({'met' if medians['chainscan show'] < 0.25 else 'NOT met'} on this machine)"
    )
    if not args.no_save:
        path = write_results(
            "show",
            {
                "machine": machine_info(),
                "load_average": os.getloadavg(),
                "runs": args.runs,
                "seconds": times,
                "median_seconds": medians,
                "ratio_to_openssl": ratio,
            },
        )
        print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
