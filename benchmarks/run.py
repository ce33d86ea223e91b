"""Run every benchmark of mtls-audit against its baselines and print one table.

    python benchmarks/run.py [--quick] [--servers 2000 20000] [--endpoints 200]

Static: generated trees of `--servers` server blocks; `crossplane.parse` alone, a full
`scan --no-probe`, and gixy-ng, best of 3 fresh processes (best of 1 for 20,000 with --quick).
Live: one Nginx on 127.0.0.1 with `--endpoints` listeners; `openssl s_time`, the full probe set,
and sslyze's client-auth detection. Start-up: `--help` and `rules list`, best of 5.

gixy-ng and sslyze live in their own venvs under benchmarks/out/venvs/ (made on the first run,
reused later; never installed into this environment). Results: benchmarks/out/results.json and
results.md; `--update-readme` also writes the table into benchmarks/README.md. Traffic goes to
127.0.0.1 only. Absolute times drift on a shared two-core machine: read the ratios, which compare
figures taken minutes apart in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live_bench
import live_nginx
import measure
import phases
import scaling
import startup_bench
import static_bench
import venvs

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START_MARK, END_MARK = "<!-- results:start -->", "<!-- results:end -->"
PROJECT_README = HERE.parent / "README.md"
SUMMARY_START, SUMMARY_END = "<!-- benchmark-summary:start -->", "<!-- benchmark-summary:end -->"

TARGET_SCAN_VS_CROSSPLANE = 1.3
TARGET_GIXY_VS_SCAN = 8.0
LINEAR_SLACK = 1.1
"""Linear growth: time at N1 at most (N1/N0) x this, i.e. a per-server cost at most 10% higher."""
TARGET_LIVE_VS_STIME = 2.0
TARGET_LIVE_VS_SSLYZE = 2.0
TARGET_LIVE_RSS_MB = 150.0
TARGET_STARTUP_S = 0.3
TARGET_MIN_CONNECTIONS = 4

Row = tuple[str, str, str, str]
"""measure, value, target, met."""


def _s(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f} s" if x >= 0.995 else f"{x:.3f} s")


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} MB"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# --- static -------------------------------------------------------------------------------------


def static_rows(results: list[static_bench.ToolResult]) -> list[Row]:
    rows: list[Row] = []
    by: dict[tuple[str, int], static_bench.ToolResult] = {(r.tool, r.servers): r for r in results}
    sizes = sorted({r.servers for r in results})
    for n in sizes:
        for r in (x for x in results if x.servers == n and x.tool not in (static_bench.PHASES, static_bench.CALLS)):
            if r.unavailable:
                rows.append((f"static {_k(n)}: {r.tool}", r.unavailable, "", "n/a"))
                continue
            extra = [f"peak {_mb(r.rss_mb)}", f"cpu {_s(r.cpu)}"]
            if r.tool.startswith("gixy"):
                extra.append(f"exit {r.detail.get('exit_code')}, {r.detail.get('issues')} issues")
            if r.tool.startswith("mtls-audit"):
                extra.append(f"{r.detail.get('results')} results, report {r.detail.get('report_mb')} MB")
            rows.append(
                (f"static {_k(n)}: {r.tool} (best of {len(r.runs)})", f"{_s(r.wall)} ({'; '.join(extra)})", "", "")
            )
        cp, sc, gx = (by.get((t, n)) for t in ("crossplane.parse", "mtls-audit scan --no-probe", "gixy-ng"))
        if cp and sc and cp.wall and sc.wall:
            ratio = sc.wall / cp.wall
            rows.append(
                (
                    f"static {_k(n)}: scan / crossplane.parse",
                    f"{ratio:.2f}x ({_s(sc.wall)} / {_s(cp.wall)}{_cpu_ratio(sc.cpu, cp.cpu)})",
                    f"<= {TARGET_SCAN_VS_CROSSPLANE}x",
                    _met(ratio <= TARGET_SCAN_VS_CROSSPLANE),
                )
            )
        if gx and sc and sc.wall:
            if gx.wall:
                ratio = gx.wall / sc.wall
                rows.append(
                    (
                        f"static {_k(n)}: gixy-ng / scan",
                        f"{ratio:.2f}x ({_s(gx.wall)} / {_s(sc.wall)}{_cpu_ratio(gx.cpu, sc.cpu)})",
                        f">= {TARGET_GIXY_VS_SCAN:.0f}x",
                        _met(ratio >= TARGET_GIXY_VS_SCAN),
                    )
                )
            elif gx.unavailable and gx.unavailable.startswith("> timeout"):
                # gixy did not finish: the ratio is at least timeout / scan.
                timeout = float(gx.unavailable.split("(")[1].split()[0])
                ratio = timeout / sc.wall
                rows.append(
                    (
                        f"static {_k(n)}: gixy-ng / scan",
                        f"> {ratio:.1f}x (gixy > {timeout:.0f} s)",
                        f">= {TARGET_GIXY_VS_SCAN:.0f}x",
                        _met(ratio >= TARGET_GIXY_VS_SCAN),
                    )
                )
        ph = by.get((static_bench.PHASES, n))
        if ph:
            rows.append(phase_row(n, ph))
    if len(sizes) >= 2:
        n0, n1 = sizes[0], sizes[-1]
        scale = n1 / n0
        for tool in ("crossplane.parse", "mtls-audit scan --no-probe", "gixy-ng"):
            a, b = by.get((tool, n0)), by.get((tool, n1))
            if not (a and b and a.wall and b.wall):
                continue
            growth = b.wall / a.wall
            mem = f", memory x{b.rss_mb / a.rss_mb:.1f}" if a.rss_mb and b.rss_mb else ""
            cpu = f" (cpu x{b.cpu / a.cpu:.1f})" if a.cpu and b.cpu else ""
            is_ours = tool.startswith("mtls-audit")
            rows.append(
                (
                    f"static growth {_k(n0)} -> {_k(n1)}: {tool}",
                    f"time x{growth:.1f}{cpu} for x{scale:.0f} servers{mem}",
                    f"<= x{scale * LINEAR_SLACK:.0f} (linear)" if is_ours else "",
                    _met(growth <= scale * LINEAR_SLACK) if is_ours else "",
                )
            )
        rows += calls_rows(by.get((static_bench.CALLS, n0)), by.get((static_bench.CALLS, n1)), n0, n1)
    return rows


def calls_rows(a: static_bench.ToolResult | None, b: static_bench.ToolResult | None, n0: int, n1: int) -> list[Row]:
    """Growth of the work itself: function calls do not move with the heap or the neighbours."""
    if not (a and b):
        return []
    label = f"static growth {_k(n0)} -> {_k(n1)}: Python function calls (cProfile)"
    if a.unavailable or b.unavailable:
        return [(label, a.unavailable or b.unavailable or "", "", "n/a")]
    scale = n1 / n0
    ours = b.detail["scan_calls"] / a.detail["scan_calls"]
    theirs = b.detail["crossplane_calls"] / a.detail["crossplane_calls"]
    return [
        (
            label,
            f"mtls-audit x{ours:.2f} ({a.detail['scan_calls']:,} -> {b.detail['scan_calls']:,});"
            f" crossplane.parse x{theirs:.2f} ({a.detail['crossplane_calls']:,} ->"
            f" {b.detail['crossplane_calls']:,}) for x{scale:.0f} servers",
            f"<= x{scale * LINEAR_SLACK:.0f} (linear)",
            _met(ours <= scale * LINEAR_SLACK),
        )
    ]


def phase_row(n: int, ph: static_bench.ToolResult) -> Row:
    """The scan's phases against crossplane.parse in the same process, and what 1.3x would leave.

    The loader runs crossplane's own lexer and argument checks, so "load" is the parse; the
    budget the target leaves for everything else is 1.3 x parse - load, per result.
    """
    label = f"static {_k(n)}: where the scan's time goes (in-process, best of {ph.detail.get('runs', '?')})"
    if ph.unavailable:
        return (label, ph.unavailable, "", "n/a")
    d = ph.detail
    parts = " + ".join(f"{k.replace('_', ' ')} {_s(d[k])}" for k in phases.PHASES)
    after = sum(d[k] for k in phases.PHASES if k != "load")
    budget = TARGET_SCAN_VS_CROSSPLANE * d["crossplane_parse"] - d["load"]
    per = f"{after / d['results'] * 1e6:.1f} µs" if d.get("results") else "-"
    left = f"{budget / d['results'] * 1e6:.1f} µs" if d.get("results") and budget > 0 else "nothing"
    return (
        label,
        f"{parts} = {_s(ph.wall)}; crossplane.parse in the same process {_s(d['crossplane_parse'])};"
        f" after the load: {_s(after)} for {d['results']} results ({per} each; {TARGET_SCAN_VS_CROSSPLANE}x"
        f" leaves {left} each)",
        "",
        "",
    )


def scaling_rows(res: dict[str, Any]) -> list[Row]:
    """One row: the worst growth of any phase or rule on the layouts built to expose quadratic work."""
    factor = res["factor"]
    name, growth = scaling.worst(res)
    bad = scaling.findings(res)
    return [
        (
            f"static scaling {_k(res['small'])} -> {_k(res['small'] * factor)} servers, adversarial layouts"
            f" ({', '.join(res['layouts'])}; best of {res.get('repeat', 1)})",
            f"worst phase or rule: x{growth:.1f} ({name})" + (f"; over x{2 * factor}: {'; '.join(bad)}" if bad else ""),
            f"<= x{2 * factor} (no quadratic work)",
            _met(not bad),
        )
    ]


def _cpu_ratio(a: float | None, b: float | None) -> str:
    """CPU seconds move less than wall time when the machine is shared: shown beside it."""
    return f"; cpu {a / b:.2f}x" if a and b else ""


# --- live ---------------------------------------------------------------------------------------


def live_rows(live: dict[str, Any]) -> list[Row]:
    if "unavailable" in live:
        return [("live", live["unavailable"], "", "n/a")]
    rows: list[Row] = []
    n = live["endpoints"]
    plain, cert = live.get("s_time_plain", {}), live.get("s_time_cert", {})
    for label, st in (("plain handshake, `off` endpoint", plain), ("client cert, `on` endpoint", cert)):
        if "unavailable" in st:
            rows.append((f"live: openssl s_time -new, {label}", st["unavailable"], "", "n/a"))
        else:
            rows.append(
                (
                    f"live: openssl s_time -new, {label}",
                    f"{st['rate']:.0f} handshakes/s ({st['connections']} in {st['wall']:.2f} s{_ms(st)})",
                    "",
                    "",
                )
            )
    ma = live.get("mtls_audit", {})
    if "unavailable" in ma:
        rows.append((f"live: mtls-audit full probe set, {n} endpoints", ma["unavailable"], "", "n/a"))
        return rows + sslyze_rows(live, None)
    conns = min(ma["server_accepted"])  # every run should make the same number
    per = conns / n
    rows.append(
        (
            "live: connections per endpoint (counted by nginx)",
            f"mtls-audit {per:.2f} ({conns} for {n}; report {_per(ma)}, code {ma.get('connections_per_endpoint_code')})",
            f">= {TARGET_MIN_CONNECTIONS}",
            _met(per >= TARGET_MIN_CONNECTIONS),
        )
    )
    rows.append(
        (
            f"live: mtls-audit full probe set, {n} endpoints (best of {len(ma['runs'])})",
            f"{_s(ma['wall'])} (cpu {_s(ma['cpu'])}{_ms(ma)}; errors {ma['summary'].get('error')})",
            "",
            "",
        )
    )
    if "rate" in plain:
        same = conns / plain["rate"]
        ratio = ma["wall"] / same
        rows.append(
            (
                f"live: s_time time for the same {conns} handshakes (plain rate)",
                f"{_s(same)} (for {n} handshakes: {_s(n / plain['rate'])})",
                "",
                "",
            )
        )
        rows.append(
            (
                "live: mtls-audit / s_time, same handshakes",
                f"{ratio:.2f}x ({_s(ma['wall'])} / {_s(same)})",
                f"<= {TARGET_LIVE_VS_STIME:.0f}x",
                _met(ratio <= TARGET_LIVE_VS_STIME),
            )
        )
        if "rate" in cert:
            same_cert = conns / cert["rate"]
            rows.append(
                (
                    "live: mtls-audit / s_time, same handshakes at the client-cert rate",
                    f"{ma['wall'] / same_cert:.2f}x ({_s(ma['wall'])} / {_s(same_cert)})",
                    "",
                    "",
                )
            )
    rows.append(
        (
            "live: mtls-audit peak memory",
            _mb(ma["rss_mb"]),
            f"< {TARGET_LIVE_RSS_MB:.0f} MB",
            _met(ma["rss_mb"] is not None and ma["rss_mb"] < TARGET_LIVE_RSS_MB),
        )
    )
    return rows + sslyze_rows(live, ma)


def _ms(d: dict[str, Any]) -> str:
    """Client CPU per connection: what the client itself spends, whatever the server does."""
    ms = d.get("client_cpu_ms_per_handshake") or d.get("client_cpu_ms_per_connection")
    return f"; client cpu {ms:.1f} ms/connection" if ms else ""


def _per(ma: dict[str, Any]) -> str:
    counts = ma.get("connections_per_endpoint_report") or {}
    return "/".join(f"{k}" for k in counts) or "-"


def sslyze_rows(live: dict[str, Any], ma: dict[str, Any] | None) -> list[Row]:
    rows: list[Row] = []
    n = live["endpoints"]
    for key, label in (("sslyze", "default network_timeout"), ("sslyze_short", "network_timeout=1 s")):
        sz = live.get(key)
        if sz is None:
            continue
        if "unavailable" in sz:
            rows.append((f"live: sslyze client-auth detection, {label}", sz["unavailable"], "", "n/a"))
            continue
        per = sz["server_accepted"] / n
        rows.append(
            (
                f"live: sslyze {sz['version']} client-auth detection, {label} ({sz['network_timeout']} s)",
                f"{_s(sz['wall'])} (peak {_mb(sz['rss_mb'])}; cpu {_s(sz['cpu'])}; "
                f"{per:.2f} connections/endpoint; {sz['errors']} errors)",
                "",
                "",
            )
        )
        if ma is not None and key == "sslyze":
            ratio = ma["wall"] / sz["wall"]
            rows.append(
                (
                    "live: mtls-audit / sslyze wall time",
                    f"{ratio:.2f}x ({_s(ma['wall'])} / {_s(sz['wall'])})",
                    f"<= {TARGET_LIVE_VS_SSLYZE:.0f}x",
                    _met(ratio <= TARGET_LIVE_VS_SSLYZE),
                )
            )
        elif ma is not None:
            rows.append(
                (
                    f"live: mtls-audit / sslyze ({label})",
                    f"{ma['wall'] / sz['wall']:.2f}x",
                    "",
                    "",
                )
            )
    return rows


# --- start-up -----------------------------------------------------------------------------------


def startup_rows(rows_in: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for r in rows_in:
        if "unavailable" in r:
            rows.append((f"start-up: {r['command']}", r["unavailable"], "", "n/a"))
        elif r.get("floor"):
            rows.append((f"start-up: {r['command']}", _s(r["wall"]), "", ""))
        else:
            rows.append(
                (
                    f"start-up: {r['command']} (best of {len(r['runs'])})",
                    f"{_s(r['wall'])} (peak {_mb(r['rss_mb'])})",
                    f"< {TARGET_STARTUP_S} s",
                    _met(r["wall"] < TARGET_STARTUP_S),
                )
            )
    return rows


# --- output -------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = ("measure", "value", "target", "met")
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict_table(live: dict[str, Any]) -> str:
    verdicts = live.get("verdicts") or []
    if not verdicts:
        return ""
    lines = [
        "| posture | endpoints | ssl_verify_client | sslyze client_auth_requirement | mtls-audit: no certificate |"
        " mtls-audit failing rules |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v in verdicts:
        lines.append(
            f"| {v['posture']} | {v['endpoints']} | {v['ssl_verify_client']} | {v['sslyze']} |"
            f" {v['mtls_audit_no_cert']} | {v['mtls_audit_fails']} |"
        )
    return "\n".join(lines)


def _version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not found"
    return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"


def environment() -> dict[str, Any]:
    import crossplane

    nginx = live_nginx.find_nginx()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "crossplane": getattr(crossplane, "__version__", "?"),
        "mtls_audit": _version([sys.executable, "-m", "mtls_audit", "--version"]),
        "nginx": _version([nginx, "-v"]) if nginx else "not found",
        "openssl": _version(["openssl", "version"]),
        "peak_rss_from": "/usr/bin/time -v" if measure.gnu_time_available() else "getrusage wrapper",
    }


def _replace_block(path: Path, start: str, end: str, md: str) -> None:
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        print(f"{path}: no {start} ... {end} markers; not updated", file=sys.stderr)
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{md}\n{end}{tail}", encoding="utf-8")


def update_readme(md: str, summary: str | None = None) -> None:
    """The full table into benchmarks/README.md; the rows with a target into the project README."""
    _replace_block(README, START_MARK, END_MARK, md)
    if summary is not None:
        _replace_block(PROJECT_README, SUMMARY_START, SUMMARY_END, summary)


def render_summary(results: dict[str, Any]) -> str:
    """The project README's excerpt: the command, the machine, and every row that has a target."""
    env = results["environment"]
    rows = [r for r in table_rows(results) if r[2]]
    return "\n\n".join(
        (
            f"Measured with `{results['command']}` on {env['cpus']} CPUs, {env['date']}"
            " (every figure and the machine: `benchmarks/README.md`).",
            table(rows),
        )
    )


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM/SIGHUP: unwind like Ctrl-C, so Nginx and any measured process are killed and temp
    folders removed by the ``finally`` blocks."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k static best of 1; live: 1 scan run, 5 s s_time")
    ap.add_argument("--servers", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3, help="static and live runs per measure (best of)")
    ap.add_argument(
        "--sections",
        nargs="+",
        choices=("static", "scaling", "live", "startup"),
        default=["static", "scaling", "live", "startup"],
    )
    ap.add_argument("--no-gixy", action="store_true", help="skip gixy-ng")
    ap.add_argument("--no-sslyze", action="store_true", help="skip sslyze")
    ap.add_argument("--no-calls", action="store_true", help="skip the function-call count (cProfile, slow)")
    ap.add_argument("--gixy-timeout", type=float, default=600.0, help="seconds per gixy-ng run")
    ap.add_argument("--update-readme", action="store_true", help="write the table into benchmarks/README.md")
    ap.add_argument("--from-results", metavar="JSON", help="measure nothing: print the table of a saved results.json")
    args = ap.parse_args()
    if args.from_results:
        saved = json.loads(Path(args.from_results).read_text(encoding="utf-8"))
        md = render(saved)
        if args.update_readme:
            update_readme(md, render_summary(saved))
        print(md)
        return 0
    if any(n < 1 for n in args.servers) or args.endpoints < 12:
        ap.error("--servers must be positive and --endpoints at least 12 (one of each posture)")

    command = "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results: dict[str, Any] = {"command": command.strip(), "environment": environment(), "quick": args.quick}
    (measure.OUT / "pycache").mkdir(parents=True, exist_ok=True)

    if "static" in args.sections:
        gixy = None if args.no_gixy else venvs.ensure("gixy-ng", "gixy-ng")
        sizes = sorted(set(args.servers))
        repeat_for = {n: (1 if args.quick and n >= 20000 else args.repeat) for n in sizes}
        static = static_bench.run_static(sizes, repeat_for, gixy, args.gixy_timeout, not args.no_calls)
        results["static"] = [r.as_dict() for r in static]
    if "live" in args.sections:
        sslyze = None if args.no_sslyze else venvs.ensure("sslyze", "sslyze")
        live = live_bench.run_live(
            args.endpoints,
            stime_seconds=5 if args.quick else 10,
            repeat=1 if args.quick else args.repeat,
            sslyze=sslyze,
            sslyze_short_timeout=None if args.quick else 1,
        )
        results["live"] = live
    if "scaling" in args.sections:
        results["scaling"] = scaling.run_scaling(1000, 4, 1 if args.quick else args.repeat)
    if "startup" in args.sections:
        print("start-up ...", file=sys.stderr, flush=True)
        startup = startup_bench.run_startup(5)
        results["startup"] = startup

    results["environment"]["loadavg_end"] = os.getloadavg()
    results["table"] = [dict(zip(("measure", "value", "target", "met"), r, strict=True)) for r in table_rows(results)]
    md = render(results)
    measure.OUT.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=str) + "\n"
    (measure.OUT / "results.json").write_text(text, encoding="utf-8")
    # A copy per kind of run, so a --quick run does not overwrite the last full one.
    (measure.OUT / f"results-{'quick' if args.quick else 'full'}.json").write_text(text, encoding="utf-8")
    (measure.OUT / "results.md").write_text(md + "\n", encoding="utf-8")
    if args.update_readme:
        update_readme(md, render_summary(results))
    print(md)
    print(f"\n(written: {measure.OUT / 'results.json'}, {measure.OUT / 'results.md'})")
    return 0


def table_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "static" in results:
        rows += static_rows([static_bench.ToolResult(**r) for r in results["static"]])
    if "live" in results:
        rows += live_rows(results["live"])
    if "scaling" in results:
        rows += scaling_rows(results["scaling"])
    if "startup" in results:
        rows += startup_rows(results["startup"])
    return rows


def render(results: dict[str, Any]) -> str:
    """The Markdown block: command, machine, the table, the verdict comparison."""
    env = results["environment"]
    rows = table_rows(results)
    return "\n\n".join(
        part
        for part in (
            f"Command: `{results['command']}`",
            f"Machine: {env['cpus']} CPUs, {env['platform']}, Python {env['python']}, crossplane {env['crossplane']},"
            f" {env['nginx']}, {env['openssl']}; {env['date']}; load average {env['loadavg_start'][0]:.2f} at start,"
            f" {env['loadavg_end'][0]:.2f} at end; peak RSS from {env['peak_rss_from']}.",
            table(rows),
            verdict_table(results.get("live", {})),
        )
        if part
    )


if __name__ == "__main__":
    sys.exit(main())
