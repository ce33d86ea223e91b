"""sslyze's client-auth detection over a list of loopback endpoints (runs in the sslyze venv).

    benchmarks/out/venvs/sslyze/bin/python benchmarks/sslyze_clientauth.py ENDPOINTS.json OUT.json [TIMEOUT]

ENDPOINTS.json: ``[[posture, port], ...]`` on 127.0.0.1. sslyze's connectivity test is what
detects client authentication (``tls_probing_result.client_auth_requirement``: DISABLED, OPTIONAL
or REQUIRED): one handshake per endpoint, a second when the server asked for a certificate (more
when TLS 1.3 is refused and it walks down the versions). No scan command is queued, so only that
detection runs. The Scanner tests 10 servers at a time (``concurrent_server_scans_limit=10``).
Every address is 127.0.0.1; the SNI is ``localhost``. TIMEOUT overrides sslyze's
``network_timeout`` (default 5 s). Wall time excludes the interpreter start
and imports (the caller times the whole process as well).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main() -> int:
    started = time.perf_counter()
    from sslyze import (
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    from sslyze.__version__ import __version__ as sslyze_version

    imported = time.perf_counter()
    with open(sys.argv[1], encoding="utf-8") as f:
        endpoints: list[list[Any]] = json.load(f)
    requests = []
    by_port: dict[int, str] = {}
    extra: dict[str, Any] = {"network_timeout": int(sys.argv[3])} if len(sys.argv) > 3 else {}
    for posture, port in endpoints:
        location = ServerNetworkLocation(hostname="localhost", port=int(port), ip_address="127.0.0.1")
        network = ServerNetworkConfiguration(tls_server_name_indication="localhost", **extra)
        requests.append(ServerScanRequest(server_location=location, network_configuration=network, scan_commands=set()))
        by_port[int(port)] = str(posture)
    scanner = Scanner(concurrent_server_scans_limit=10)
    scanner.queue_scans(requests)
    verdicts: list[dict[str, Any]] = []
    for result in scanner.get_results():
        port = result.server_location.port
        entry: dict[str, Any] = {"posture": by_port.get(port), "port": port}
        if result.scan_status == ServerScanStatusEnum.ERROR_NO_CONNECTIVITY:
            err = result.connectivity_error_trace
            entry["error"] = str(err.exc_value if err is not None else "no connectivity")[:200]
        else:
            probing = result.connectivity_result
            assert probing is not None
            entry["client_auth"] = probing.client_auth_requirement.name
            entry["tls_version"] = probing.highest_tls_version_supported.name
        verdicts.append(entry)
    finished = time.perf_counter()
    out = {
        "sslyze_version": sslyze_version,
        "endpoints": len(endpoints),
        "scan_seconds": finished - imported,
        "import_seconds": imported - started,
        "network_timeout": requests[0].network_configuration.network_timeout if requests else None,
        "verdicts": verdicts,
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
