"""sslyze through its Python API, certificate-info scan only; run by the sslyze virtualenv's
Python as a standalone script (it imports nothing from the benchmark package; the runner for it
is in ``sslyze_runner.py``, a name that cannot shadow the ``sslyze`` package, since a script's
directory comes first on ``sys.path``)::

    .venv-sslyze/bin/python benchmarks/runners/sslyze_api.py TARGETS-openssl \\
        --server-scans 100 --per-server 5

``TARGETS-openssl`` has ``name ip port`` lines. Every target becomes a ``ServerScanRequest``
(connect to ``ip``, SNI ``name``) with ``ScanCommand.CERTIFICATE_INFO`` alone, queued on one
``Scanner(concurrent_server_scans_limit=..., per_server_concurrent_connections_limit=...)``.
A target counts as OK when its scan completed and the leaf of the first certificate deployment
names it (``CN=name``). Prints one JSON object: ``{"targets", "ok", "failed", "errors",
"completion_times"}``, the last being the time each result came out of ``get_results()``, in
seconds since the scans were queued (for the harness's steady-state rate).

``--network-timeout S`` and ``--retries N`` set sslyze's ``ServerNetworkConfiguration``
(``network_timeout``, ``network_max_retries``; sslyze's defaults 5 s and 3 when not given): the
latency scenarios give it the same timeouts as chainscan, without retries, for dead targets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence

from sslyze import (  # type: ignore[import-not-found,unused-ignore]
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sslyze certificate-info scan via its API")
    parser.add_argument("targets")
    parser.add_argument("--server-scans", type=int, default=100)
    parser.add_argument("--per-server", type=int, default=5)
    parser.add_argument("--network-timeout", type=float, default=None)
    parser.add_argument("--retries", type=int, default=None)
    args = parser.parse_args(argv)
    network: dict[str, object] = {}
    if args.network_timeout is not None:
        network["network_timeout"] = args.network_timeout
    if args.retries is not None:
        network["network_max_retries"] = args.retries
    requests = []
    with open(args.targets) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                location = ServerNetworkLocation(
                    hostname=parts[0], port=int(parts[2]), ip_address=parts[1]
                )
                requests.append(
                    ServerScanRequest(
                        server_location=location,
                        network_configuration=ServerNetworkConfiguration(
                            tls_server_name_indication=parts[0], **network
                        ),
                        scan_commands={ScanCommand.CERTIFICATE_INFO},
                    )
                )
    scanner = Scanner(
        per_server_concurrent_connections_limit=args.per_server,
        concurrent_server_scans_limit=args.server_scans,
    )
    start = time.perf_counter()
    scanner.queue_scans(requests)
    ok = 0
    errors: Counter[str] = Counter()
    completions: list[float] = []
    for result in scanner.get_results():
        completions.append(round(time.perf_counter() - start, 4))
        if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
            errors[f"scan-{result.scan_status.name.lower()}"] += 1
            continue
        attempt = result.scan_result.certificate_info
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED or attempt.result is None:
            errors[f"certinfo-{attempt.status.name.lower()}"] += 1
            continue
        chain = attempt.result.certificate_deployments[0].received_certificate_chain
        subject = chain[0].subject.rfc4514_string() if chain else ""
        if f"CN={result.server_location.hostname}" in subject.split(","):
            ok += 1
        else:
            errors["wrong-leaf"] += 1
    report = {
        "targets": len(requests),
        "ok": ok,
        "failed": len(requests) - ok,
        "errors": dict(errors),
        "completion_times": completions,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
