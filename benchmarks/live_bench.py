"""Live benchmark: mtls-audit's full probe set, `openssl s_time`, and sslyze, on one real Nginx.

One Nginx on 127.0.0.1 (one worker) serves N endpoints of mixed postures (`live_nginx.py`). Against
that same server, one after the other:

1. `openssl s_time -connect 127.0.0.1:PORT -new -time T` on an `ssl_verify_client off` endpoint
   (plain handshakes) and on an `on` endpoint presenting the valid client certificate: the
   sequential full-handshake rate this machine and this server reach;
2. `python -m mtls_audit scan --targets-file F` with every identity (valid, CA for the minted
   expired one, revoked) and `--trust`: the full probe set, best of N fresh processes;
3. sslyze's client-auth detection (its connectivity test) through its Python API in its own venv,
   10 servers at a time, with its default network timeout (5 s), and again with 1 s.

Nginx's `stub_status` counter is read before and after each client, so the connections each one
made are counted by the server, not estimated. Only 127.0.0.1 is ever contacted; every loop is
bounded by a count and a timeout, and Nginx is always torn down (its process group is killed).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live_nginx
import measure
from venvs import Venv

HERE = Path(__file__).resolve().parent
SSLYZE_SCRIPT = HERE / "sslyze_clientauth.py"
SCAN_TIMEOUT = 600.0
SSLYZE_TIMEOUT = 900.0
_STIME_RE = re.compile(r"(\d+) connections in (\d+) real seconds")
_STIME_USER_RE = re.compile(r"(\d+) connections in ([\d.]+)s; ([\d.]+) connections/user sec")


def s_time(
    env: live_nginx.LiveNginx, port: int, seconds: int, cert: Path | None = None, key: Path | None = None
) -> dict[str, Any]:
    """Sequential new-session handshakes for ``seconds``; the rate uses our own wall clock
    (s_time's "real seconds" is a whole number, up to a second off)."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)]
    if cert is not None and key is not None:
        cmd += ["-cert", str(cert), "-key", str(key)]
    before = env.accepted()
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"cmd": " ".join(cmd), "unavailable": f"openssl s_time failed: {e}"}
    wall = time.perf_counter() - started
    accepted = env.accepted() - before - 1
    m = _STIME_RE.search(proc.stdout)
    if m is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"cmd": " ".join(cmd), "unavailable": f"unexpected s_time output: {tail[0][:200]}"}
    n = int(m.group(1))
    user = _STIME_USER_RE.search(proc.stdout)
    return {
        "client_cpu_ms_per_handshake": 1000 * float(user.group(2)) / n if user and n else None,
        "cmd": " ".join(cmd),
        "connections": n,
        "server_accepted": accepted,
        "wall": wall,
        "reported_real_seconds": int(m.group(2)),
        "rate": n / wall,
    }


def _scan_cmd(env: live_nginx.LiveNginx, targets: Path, report: Path) -> list[str]:
    p = env.pki
    return [
        sys.executable, "-m", "mtls_audit", "scan", "--targets-file", str(targets),
        "--client-cert", str(p.client.cert), "--client-key", str(p.client.key),
        "--ca-cert", str(p.root.cert), "--ca-key", str(p.root.key),
        "--revoked-cert", str(p.revoked.cert), "--revoked-key", str(p.revoked.key),
        "--trust", str(p.root.cert), "--format", "json", "--output", str(report),
    ]  # fmt: skip


def _connections_from_report(doc: dict[str, Any]) -> dict[int, int]:
    """Per port: the attempts the evidence names, plus the legacy versions actually tried."""
    kinds: dict[int, set[str]] = defaultdict(set)
    legacy: dict[int, int] = {}
    for r in doc.get("results", []):
        target = r.get("target") or {}
        port = target.get("port")
        if port is None:
            continue
        ev = r.get("evidence") or {}
        if isinstance(ev.get("attempt"), str):
            kinds[port].add(ev["attempt"])
        if r.get("rule_id") == "MTLS507" and isinstance(ev.get("not_tested"), list):
            legacy[port] = 3 - len(ev["not_tested"])  # SSLv3, TLSv1, TLSv1.1 minus those not offered
    return {port: len(k) + legacy.get(port, 0) for port, k in kinds.items()}


def _connections_from_code(pki: Any) -> int | None:
    """What the prober's own configuration says it makes per endpoint, for these identities."""
    try:
        from mtls_audit.probe.runner import ProbeConfig
        from mtls_audit.probe.tls import local_can_offer
        from mtls_audit.probe.types import LEGACY_VERSIONS

        cfg = ProbeConfig.from_paths(
            client_cert=pki.client.cert, client_key=pki.client.key,
            ca_cert=pki.root.cert, ca_key=pki.root.key,
            revoked_cert=pki.revoked.cert, revoked_key=pki.revoked.key,
        )  # fmt: skip
        legacy = sum(1 for v in LEGACY_VERSIONS if local_can_offer(v)) if cfg.legacy else 0
        return len(cfg.attempt_kinds) + legacy
    except Exception:  # an informational figure only; the server's count is the real one
        return None


def _mtls_verdicts(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(lambda: {"fails": set()})
    for r in doc.get("results", []):
        port = (r.get("target") or {}).get("port")
        if port is None:
            continue
        if r.get("status") == "fail":
            out[port]["fails"].add(r["rule_id"])
        if r.get("rule_id") == "MTLS501":
            ev = r.get("evidence") or {}
            out[port]["no_cert"] = f"{ev.get('outcome')} ({ev.get('how')})"
    return out


def run_mtls_audit(env: live_nginx.LiveNginx, work: Path, repeat: int) -> dict[str, Any]:
    targets = work / "targets.txt"
    targets.write_text("".join(f"127.0.0.1:{port}/localhost\n" for _, port in env.endpoints), encoding="utf-8")
    runs: list[measure.Run] = []
    accepted: list[int] = []
    doc: dict[str, Any] = {}
    for i in range(repeat):
        report = work / f"live-report-{i}.json"
        before = env.accepted()
        r = measure.run(_scan_cmd(env, targets, report), timeout=SCAN_TIMEOUT, cwd=work)
        accepted.append(env.accepted() - before - 1)
        runs.append(r)
        if not r.ok or r.rc not in (0, 1):
            tail = (r.stderr.strip().splitlines() or ["?"])[-1][:200]
            reason = "> timeout" if r.timed_out else f"failed (exit {r.rc}): {tail}"
            return {"unavailable": reason, "runs": [round(x.wall, 3) for x in runs]}
        doc = json.loads(report.read_text(encoding="utf-8"))
    b = measure.best(runs)
    per_endpoint = _connections_from_report(doc)
    counts = Counter(per_endpoint.values())
    summary = doc.get("summary", {})
    started, finished = doc.get("started_at"), doc.get("finished_at")
    return {
        "cmd": " ".join(_scan_cmd(env, Path("TARGETS"), Path("REPORT"))),
        "wall": b.wall,
        "cpu": b.cpu,
        "rss_mb": b.rss_mb,
        "runs": [round(x.wall, 3) for x in runs],
        "server_accepted": accepted,
        "connections_per_endpoint_report": dict(sorted(counts.items())),
        "connections_per_endpoint_code": _connections_from_code(env.pki),
        "client_cpu_ms_per_connection": 1000 * b.cpu / accepted[0] if b.cpu and accepted and accepted[0] else None,
        "summary": summary,
        "report_started_at": started,
        "report_finished_at": finished,
        "verdicts": {
            str(k): {"no_cert": v.get("no_cert"), "fails": sorted(v["fails"])} for k, v in _mtls_verdicts(doc).items()
        },
    }


def run_sslyze(env: live_nginx.LiveNginx, venv: Venv, work: Path, timeout: int | None) -> dict[str, Any]:
    if not venv.available:
        return {"unavailable": f"unavailable: {venv.reason}"}
    endpoints = work / "endpoints.json"
    endpoints.write_text(json.dumps([[p.name, port] for p, port in env.endpoints]), encoding="utf-8")
    out = work / f"sslyze-{timeout or 'default'}.json"
    cmd = [str(venv.python), str(SSLYZE_SCRIPT), str(endpoints), str(out)]
    if timeout is not None:
        cmd.append(str(timeout))
    before = env.accepted()
    r = measure.run(cmd, timeout=SSLYZE_TIMEOUT, cwd=work)
    accepted = env.accepted() - before - 1
    if not r.ok or r.rc != 0 or not out.exists():
        tail = (r.stderr.strip().splitlines() or ["?"])[-1][:200]
        return {"unavailable": "> timeout" if r.timed_out else f"failed (exit {r.rc}): {tail}"}
    doc = json.loads(out.read_text(encoding="utf-8"))
    return {
        "cmd": " ".join(cmd[:2] + ["ENDPOINTS", "OUT", *cmd[4:]]),
        "version": doc["sslyze_version"],
        "wall": r.wall,
        "cpu": r.cpu,
        "rss_mb": r.rss_mb,
        "scan_seconds": doc["scan_seconds"],
        "network_timeout": doc["network_timeout"],
        "server_accepted": accepted,
        "errors": sum(1 for v in doc["verdicts"] if "error" in v),
        "verdicts": {str(v["port"]): v.get("client_auth") or f"error: {v.get('error')}" for v in doc["verdicts"]},
    }


def compare_verdicts(env: live_nginx.LiveNginx, mtls: dict[str, Any], sslyze: dict[str, Any]) -> list[dict[str, Any]]:
    """Per posture: what sslyze concluded and what mtls-audit found (all endpoints of the posture)."""
    rows: list[dict[str, Any]] = []
    by_posture: dict[str, list[int]] = defaultdict(list)
    config: dict[str, str] = {}
    for posture, port in env.endpoints:
        by_posture[posture.name].append(port)
        config[posture.name] = posture.config_verify
    mv = mtls.get("verdicts", {})
    sv = sslyze.get("verdicts", {})
    for name, ports in by_posture.items():
        s = Counter(sv.get(str(p), "-") for p in ports)
        no_cert = Counter((mv.get(str(p)) or {}).get("no_cert", "-") for p in ports)
        fails = Counter(",".join((mv.get(str(p)) or {}).get("fails", [])) or "none" for p in ports)
        rows.append({
            "posture": name,
            "endpoints": len(ports),
            "ssl_verify_client": config[name],
            "sslyze": _fmt_counter(s),
            "mtls_audit_no_cert": _fmt_counter(no_cert),
            "mtls_audit_fails": _fmt_counter(fails),
        })  # fmt: skip
    return rows


def _fmt_counter(c: Counter[str]) -> str:
    if len(c) == 1:
        return next(iter(c))
    return "; ".join(f"{k} x{n}" for k, n in c.most_common())


def run_live(
    endpoints: int,
    *,
    stime_seconds: int,
    repeat: int,
    sslyze: Venv | None,
    sslyze_short_timeout: int | None = 1,
) -> dict[str, Any]:
    """Start Nginx, measure every client against it, and always tear it down."""
    results: dict[str, Any] = {"endpoints": endpoints}
    with tempfile.TemporaryDirectory(prefix="mtls-bench-live-") as tmp:
        work = Path(tmp)
        try:
            env = live_nginx.start(work / "nginx", endpoints)
        except RuntimeError as e:
            return {"endpoints": endpoints, "unavailable": f"nginx did not start: {str(e)[:300]}"}
        try:
            results["postures"] = dict(Counter(p.name for p, _ in env.endpoints))
            if not env.ports_of("off") or not env.ports_of("on"):
                return {"endpoints": endpoints, "unavailable": "too few endpoints for one of each posture"}
            off = env.ports_of("off")[0]
            on = env.ports_of("on")[0]
            print(f"live: nginx up with {endpoints} endpoints; openssl s_time ...", file=sys.stderr, flush=True)
            results["s_time_plain"] = s_time(env, off, stime_seconds)
            results["s_time_cert"] = s_time(env, on, stime_seconds, env.pki.client.cert, env.pki.client.key)
            print("live: mtls-audit full probe set ...", file=sys.stderr, flush=True)
            results["mtls_audit"] = run_mtls_audit(env, work, repeat)
            if sslyze is None:
                results["sslyze"] = {"unavailable": "skipped (--no-sslyze)"}
            else:
                print("live: sslyze client-auth detection ...", file=sys.stderr, flush=True)
                results["sslyze"] = run_sslyze(env, sslyze, work, None)
                if sslyze_short_timeout is not None:
                    results["sslyze_short"] = run_sslyze(env, sslyze, work, sslyze_short_timeout)
            results["verdicts"] = compare_verdicts(env, results["mtls_audit"], results["sslyze"])
            results["nginx_errors"] = env.error_log().count("[emerg]") + env.error_log().count("[alert]")
        finally:
            env.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--stime", type=int, default=10, help="seconds per openssl s_time run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-sslyze", action="store_true")
    args = ap.parse_args()
    venv = None
    if not args.no_sslyze:
        import venvs

        venv = venvs.ensure("sslyze", "sslyze")
    res = run_live(args.endpoints, stime_seconds=args.stime, repeat=args.repeat, sslyze=venv)
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
