"""Generate a large Nginx configuration tree for benchmarks.

`servers` server blocks spread over include files (50 servers a file), with mixed postures
(on, optional with and without checks, optional_no_ca, off), seven shared client CAs with their
CRLs, a server certificate and key and an upstream CA (real files under certs/, minted here, so
the trust rules read and check them), plain listeners, error_page handlers and proxies to TLS
upstreams, so that every rule family has work to do. The config text is deterministic for a
given size; the certificates are minted afresh (valid from an hour ago for a year).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

CA_COUNT = 7

POSTURES = ("on", "optional_guarded", "optional_open", "optional_no_ca", "off")


def server_block(i: int) -> str:
    posture = POSTURES[i % len(POSTURES)]
    port = 10000 + (i % 400)
    ca = f"certs/ca-{i % CA_COUNT}.pem"
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
            lines.append(f"    ssl_crl certs/crl-{i % CA_COUNT}.pem;")
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


def write_pki(certs: Path) -> None:
    """The files the config names: CAs with CRLs, a server pair (key 0600), an upstream CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    certs.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=365)
    pem = serialization.Encoding.PEM

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    for n in range(CA_COUNT):
        cert, key = ca(f"Bench Client CA {n}")
        (certs / f"ca-{n}.pem").write_bytes(cert.public_bytes(pem))
        crl = (
            x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
            .last_update(start).next_update(now + dt.timedelta(days=7))
            .sign(key, hashes.SHA256())
        )
        (certs / f"crl-{n}.pem").write_bytes(crl.public_bytes(pem))
    upstream, _ = ca("Bench Upstream CA")
    (certs / "upstream-ca.pem").write_bytes(upstream.public_bytes(pem))
    issuer, issuer_key = ca("Bench Server CA")
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder().subject_name(name("bench.internal")).issuer_name(issuer.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.bench.internal")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    (certs / "server.pem").write_bytes(server.public_bytes(pem) + issuer.public_bytes(pem))
    key_path = certs / "server.key"
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)


def generate(root: Path, servers: int, per_file: int = 50) -> Path:
    """Write the tree under `root` and return the main nginx.conf."""
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    write_pki(root / "certs")
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
