"""Generate a large Nginx configuration tree for benchmarks.

`servers` server blocks spread over include files (50 servers a file), with mixed postures
(on, optional with and without checks, optional_no_ca, off), a handful of shared CA/CRL files,
plain listeners, error_page handlers and proxies to TLS upstreams, so that every rule family has
work to do. Deterministic for a given size.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

POSTURES = ("on", "optional_guarded", "optional_open", "optional_no_ca", "off")


def server_block(i: int) -> str:
    posture = POSTURES[i % len(POSTURES)]
    port = 10000 + (i % 400)
    ca = f"certs/ca-{i % 7}.pem"
    lines = [
        "server {",
        f"    listen {port} ssl;",
    ]
    if i % 13 == 0:
        lines.append(f"    listen {port + 20000};")
    lines += [
        f"    server_name s{i}.bench.internal alias{i}.bench.internal;",
        "    ssl_certificate certs/server.pem;",
        "    ssl_certificate_key certs/server.key;",
    ]
    if posture != "off":
        verify = {"optional_guarded": "optional", "optional_open": "optional"}.get(posture, posture)
        lines += [f"    ssl_verify_client {verify};", f"    ssl_client_certificate {ca};"]
        if i % 3 == 0:
            lines.append(f"    ssl_crl certs/crl-{i % 7}.pem;")
    if posture == "optional_guarded":
        lines.append("    if ($ssl_client_verify != SUCCESS) { return 403; }")
    if i % 11 == 0:
        lines.append("    error_page 495 496 = @fallback;")
    lines += [
        "    proxy_set_header X-SSL-Client-Verify $ssl_client_verify;",
        "    proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;",
        "    location / {",
        f"        proxy_pass https://backend{i % 20};",
        "        proxy_ssl_verify on;",
        "        proxy_ssl_trusted_certificate certs/upstream-ca.pem;",
        "    }",
        "    location /ws {",
        "        proxy_set_header Upgrade $http_upgrade;",
        '        proxy_set_header Connection "upgrade";',
        f"        proxy_pass https://backend{i % 20};",
        "    }",
        "    location ~ \\.php$ {",
        "        fastcgi_pass 127.0.0.1:9000;",
        "    }",
        "    location @fallback { proxy_pass http://127.0.0.1:8080; }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def generate(root: Path, servers: int, per_file: int = 50) -> Path:
    """Write the tree under `root` and return the main nginx.conf."""
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    upstreams = "\n".join(f"    upstream backend{u} {{ server 127.0.0.1:{9100 + u}; keepalive 8; }}" for u in range(20))
    (root / "nginx.conf").write_text(
        "worker_processes auto;\nevents { worker_connections 4096; }\n"
        "http {\n"
        "    ssl_protocols TLSv1.2 TLSv1.3;\n"
        "    ssl_session_cache shared:SSL:50m;\n"
        f"{upstreams}\n"
        "    include conf.d/*.conf;\n"
        "}\n",
        encoding="utf-8",
    )
    for f in range(0, servers, per_file):
        body = "".join(server_block(i) for i in range(f, min(f + per_file, servers)))
        (root / "conf.d" / f"site-{f // per_file:05d}.conf").write_text(body, encoding="utf-8")
    return root / "nginx.conf"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", help="folder to write the tree into")
    ap.add_argument("--servers", type=int, default=2000)
    args = ap.parse_args()
    path = generate(Path(args.out), args.servers)
    print(os.fspath(path))


if __name__ == "__main__":
    main()
