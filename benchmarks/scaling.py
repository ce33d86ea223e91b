"""Growth of every phase and every rule on layouts built to expose quadratic work.

    python benchmarks/scaling.py [--small 1000] [--factor 4]     # prints a table, exit 1 on a finding

The main benchmark tree spreads servers over many sockets and 50 servers a file, so work that is
quadratic in the servers of one socket, the files of a tree or the groups of an upstream barely
shows there (MTLS107 and the loader's file list were). Each layout here is written at `--small`
servers and at `--factor` times that, and each phase and rule is timed in fresh processes at both
sizes (best of `--repeat`); anything that grows by more than twice the factor is reported (small
timings below 20 ms are not judged: they are noise on a shared machine).

Layouts:
- one_socket: every server on `listen 443 ssl` and `listen 80`, three postures, three upstreams;
- file_per_vhost: the benchmark generator's servers, one include file each (sites-enabled);
- many_upstreams: one upstream group, one map and an own port per server, all also on :443.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_config import generate

HERE = Path(__file__).resolve().parent

NOISE_S = 0.02


def one_socket(root: Path, n: int) -> Path:
    servers = []
    for i in range(n):
        verify = ("on", "optional", "off")[i % 3]
        servers.append(
            f"    server {{\n        listen 443 ssl;\n        listen 80;\n        server_name s{i}.test;\n"
            "        ssl_certificate certs/s.pem;\n        ssl_certificate_key certs/s.key;\n"
            f"        ssl_client_certificate certs/ca{i % 5}.pem;\n        ssl_verify_client {verify};\n"
            "        location / {\n            if ($ssl_client_verify != SUCCESS) { return 403; }\n"
            f"            proxy_pass https://backend{i % 3};\n            proxy_ssl_verify {'on' if i % 2 else 'off'};\n"
            f"            proxy_ssl_certificate certs/c{i % 4}.pem;\n            proxy_ssl_certificate_key certs/c.key;\n"
            "            proxy_set_header X-Client-DN $ssl_client_s_dn;\n        }\n"
            f"        location /ws {{ proxy_pass https://backend{i % 3}; proxy_set_header Upgrade $http_upgrade; }}\n"
            "    }\n"
        )
    ups = "".join(f"    upstream backend{j} {{ server 10.0.0.{j}:443; }}\n" for j in range(3))
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text("events {}\nhttp {\n    proxy_ssl_session_reuse on;\n" + ups + "".join(servers) + "}\n")
    return conf


def file_per_vhost(root: Path, n: int) -> Path:
    return generate(root, n, per_file=1)


def many_upstreams(root: Path, n: int) -> Path:
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    maps = "".join(f'    map $ssl_client_s_dn $allowed{i} {{ default 0; "~^CN=a{i}," 1; }}\n' for i in range(n))
    ups = "".join(f"    upstream backend{j} {{ server 10.0.{j // 250}.{j % 250}:443; }}\n" for j in range(n))
    for f in range(0, n, 50):
        body = "".join(
            f"server {{\n    listen {10000 + i} ssl;\n    listen 443 ssl;\n    server_name s{i}.test;\n"
            "    ssl_verify_client optional;\n    ssl_client_certificate certs/ca.pem;\n"
            "    error_page 495 496 = @deny;\n    location @deny { return 403; }\n"
            f"    location / {{\n        if ($allowed{i} = 0) {{ return 403; }}\n"
            "        if ($ssl_client_verify != SUCCESS) { return 403; }\n"
            f"        proxy_pass https://backend{i};\n        proxy_ssl_name s{i}.backend;\n"
            "        proxy_ssl_verify on;\n        proxy_set_header X-Client-DN $ssl_client_s_dn;\n    }\n"
            f"    location ~ ^/api/ {{ proxy_pass https://backend{(i + 1) % n}; }}\n}}\n"
            for i in range(f, min(f + 50, n))
        )
        (root / "conf.d" / f"s{f // 50:05d}.conf").write_text(body)
    conf = root / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + maps + ups + "    include conf.d/*.conf;\n}\n")
    return conf


LAYOUTS = {"one_socket": one_socket, "file_per_vhost": file_per_vhost, "many_upstreams": many_upstreams}

CHILD = """
import gc, json, sys, time
gc.disable()
from mtls_audit.context import CheckContext, Options
from mtls_audit.engine import load_catalog, to_result
from mtls_audit.nginx.effective import build_effective
from mtls_audit.nginx.load import load_config
catalog = load_catalog(())
t = time.perf_counter(); loaded = load_config(sys.argv[1]); t1 = time.perf_counter()
eff = build_effective(loaded); t2 = time.perf_counter()
out = {"phase load": t1 - t, "phase effective": t2 - t1}
ctx = CheckContext(config=eff, options=Options(nginx_version=(1, 24, 0)))
for rule in catalog.rules:
    if rule.kind == "config":
        t = time.perf_counter()
        for f in catalog.checks[rule.id](ctx, rule):
            to_result(rule, f, ctx)
        out[rule.id] = time.perf_counter() - t
print(json.dumps(out))
"""


def timings(conf: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(conf)], capture_output=True, text=True, check=True, timeout=1800,
        cwd=HERE.parent,
    )
    result: dict[str, float] = json.loads(proc.stdout)
    return result


def best_timings(conf: Path, repeat: int) -> dict[str, float]:
    """Each phase and rule at its best of `repeat` fresh processes: a single 20 ms timing on a
    shared machine can double, which read as x8 growth where there was x3 (MTLS106, MTLS303)."""
    runs = [timings(conf) for _ in range(repeat)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def run_scaling(small: int, factor: int, repeat: int = 3) -> dict[str, Any]:
    """Per layout, per phase and rule: seconds at both sizes and the growth."""
    out: dict[str, Any] = {"small": small, "factor": factor, "repeat": repeat, "layouts": {}}
    with tempfile.TemporaryDirectory(prefix="mtls-bench-scaling-") as tmp:
        for name, make in LAYOUTS.items():
            print(f"scaling: {name} ...", file=sys.stderr, flush=True)
            a = best_timings(make(Path(tmp) / f"{name}-{small}", small), repeat)
            b = best_timings(make(Path(tmp) / f"{name}-{small * factor}", small * factor), repeat)
            out["layouts"][name] = {k: {"small": round(a[k], 4), "large": round(b[k], 4)} for k in a}
    return out


def findings(res: dict[str, Any]) -> list[str]:
    """Phases and rules whose time grew by more than twice the size factor."""
    bad = []
    limit = 2 * res["factor"]
    for layout, items in res["layouts"].items():
        for key, t in items.items():
            if t["large"] >= NOISE_S and t["large"] > limit * max(t["small"], NOISE_S / limit):
                bad.append(f"{layout}: {key} {t['small']:.3f} s -> {t['large']:.3f} s")
    return bad


def worst(res: dict[str, Any]) -> tuple[str, float]:
    """The largest growth among timings big enough to judge."""
    best = ("-", 0.0)
    for layout, items in res["layouts"].items():
        for key, t in items.items():
            if t["large"] >= NOISE_S and t["small"] > 0:
                g = t["large"] / t["small"]
                if g > best[1]:
                    best = (f"{layout}: {key}", g)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per size (best of)")
    args = ap.parse_args()
    res = run_scaling(args.small, args.factor, args.repeat)
    big = args.small * args.factor
    print(f"{'layout':<16} {'phase or rule':<18} {args.small:>8} {big:>8}  growth")
    for layout, items in res["layouts"].items():
        for key, t in items.items():
            g = t["large"] / t["small"] if t["small"] > 0 else float("inf")
            print(f"{layout:<16} {key:<18} {t['small']:>8.3f} {t['large']:>8.3f}  x{g:.1f}")
    bad = findings(res)
    name, g = worst(res)
    print(f"\nworst growth for x{args.factor} servers: x{g:.1f} ({name}); over x{2 * args.factor}: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
