#!/usr/bin/env python3
"""wrk against an nginx upstream directly, through Attaché, HAProxy and nginx.

Builds target/release/attache (unless --no-build), installs what is missing
(`ATTACHE_HTTP_BENCH_PACKAGES` from scripts/deps.sh: wrk, haproxy,
nginx-light), then starts a private nginx upstream that answers every request
with `200 ok`, and three HTTP reverse proxies in front of it on free loopback
ports: Attaché (`[http]`, one route `/`), HAProxy (`mode http`,
`http-reuse always`) and a second nginx (`proxy_pass` to an upstream block
with `keepalive`). Each proxy gets the same number of worker threads. It waits
until the machine is quiet (no cargo/rustc, load average ≤ 1.0), runs wrk at
1 and 64 connections against the four targets back to back, prints the table
and the bar, and rewrites the HTTP section of BENCHMARKS.md. Everything it
starts is stopped on exit, Ctrl-C included.

wrk counts a non-2xx/3xx answer, a socket error or a timeout separately from
its request count but still prints requests/s over all of them; a run with any
of those, a nonzero exit status, no requests, or a target that died is FAILED,
never shown as a rate.

The helpers shared with the other benches (process stack, ports, readiness,
machine description, BENCHMARKS.md section) are in benchlib.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
from benchlib import (ATTACHE_BIN, REPO, cpu_seconds, loadavg, machine_busy_seconds, sh,
                      tree_pids)

MARK_START = "<!-- http-results:start -->"
MARK_END = "<!-- http-results:end -->"
TARGETS = ["direct", "attache", "haproxy", "nginx"]
PROXIES = TARGETS[1:]
RSS_BAR_MB = 20.0
ADDED_P50_BAR_MS = 0.1


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", default=_env("QUICK", "") == "1",
                   help="3 s runs; BENCHMARKS.md untouched unless --write (env QUICK=1)")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds per wrk run (env DURATION; default 10, 3 with --quick)")
    p.add_argument("--rounds", type=int, default=int(_env("ROUNDS", "1")),
                   help="repetitions of the matrix, target order rotated; medians (env ROUNDS)")
    p.add_argument("--workers", type=int, default=int(_env("WORKERS", "1")),
                   help="worker threads/processes of every proxy and the upstream (env WORKERS)")
    p.add_argument("--write", dest="write", action="store_true", default=None,
                   help="rewrite the HTTP section of BENCHMARKS.md (default unless --quick)")
    p.add_argument("--no-write", dest="write", action="store_false")
    p.add_argument("--no-build", action="store_true",
                   help="skip `cargo build --release` (implied by env ATTACHE_BIN)")
    p.add_argument("--no-wait", action="store_true",
                   help="do not wait for a quiet machine before the measured runs")
    p.add_argument("--max-wait", type=int, default=1800,
                   help="longest wait for a quiet machine, seconds (default 1800)")
    p.add_argument("--keep-tmp", action="store_true", default=_env("KEEP_TMP", "") == "1",
                   help="keep the temp directory with configs and logs (env KEEP_TMP=1)")
    a = p.parse_args()
    a.duration = a.duration or int(_env("DURATION", "3" if a.quick else "10"))
    a.write = (_env("WRITE", "0" if a.quick else "1") == "1") if a.write is None else a.write
    a.bin = ATTACHE_BIN
    a.no_build = a.no_build or "ATTACHE_BIN" in os.environ
    return a


@dataclass(frozen=True)
class Workload:
    connections: int
    threads: int

    @property
    def name(self) -> str:
        return f"c={self.connections}"


WORKLOADS = [Workload(1, 1), Workload(64, 2)]


@dataclass
class RunResult:
    """One wrk run. `failure` set means: do not trust the numbers."""

    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    # CPU use during the run, in % of one core.
    cpu: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    error_lines: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- setup


def ensure_packages() -> None:
    """Installs the bench's Debian packages through scripts/deps.sh, which
    runs apt-get only when one is missing."""
    if all(shutil.which(t) for t in ("wrk", "haproxy", "nginx")):
        return
    r = subprocess.run(["bash", "-c", 'source scripts/deps.sh && '
                        'attache_need_packages "${ATTACHE_HTTP_BENCH_PACKAGES[@]}"'], cwd=REPO)
    if r.returncode != 0:
        sys.exit("installing wrk, haproxy and nginx-light failed")


def build(args: argparse.Namespace) -> None:
    if not args.no_build:
        print("cargo build --release", flush=True)
        r = subprocess.run(["cargo", "build", "--release"], cwd=REPO)
        if r.returncode != 0:
            sys.exit("cargo build --release failed")
    if not args.bin.exists():
        sys.exit(f"{args.bin} missing")


def compilers_running() -> list[str]:
    """Names of running cargo/rustc processes. By `comm`, not the command
    line: other processes carry ~/.cargo/bin in theirs."""
    names = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name.startswith(("cargo", "rustc", "rustdoc", "clippy-driver")):
            names.append(name)
    return names


def wait_quiet(max_wait: int) -> str:
    """Other engineers compile on this machine: waits while cargo/rustc runs
    or the 1-minute load average is above 1.0. Returns a note for the report."""
    start = time.monotonic()
    last_print = -1e9
    while True:
        busy = compilers_running()
        load1 = float(loadavg().split()[0])
        if not busy and load1 <= 1.0:
            waited = time.monotonic() - start
            return f"waited {waited:.0f} s for a quiet machine" if waited > 1 else \
                "machine quiet at the start"
        if time.monotonic() - start > max_wait:
            note = (f"machine NOT quiet after {max_wait} s (load {load1:.2f}, "
                    f"{len(busy)} compiler process(es)); ran anyway")
            print(note, flush=True)
            return note
        if time.monotonic() - last_print >= 60:
            print(f"waiting for a quiet machine: load1 {load1:.2f}, "
                  f"compilers {sorted(set(busy)) or 'none'}", flush=True)
            last_print = time.monotonic()
        time.sleep(5)


# ---------------------------------------------------------------- processes


class Stack(benchlib.Stack):
    """The servers under test; `close` stops them in reverse order. Each is
    its own process group, so a master and its workers stop together."""

    new_session = True

    def __init__(self, keep: bool) -> None:
        super().__init__("attache-http-bench-", keep)
        os.chmod(self.tmp, 0o755)  # nginx workers may run as nobody

    def send(self, proc: subprocess.Popen, sig: int) -> None:
        _signal_group(proc, sig)

    def stopped(self, proc: subprocess.Popen) -> None:
        # Workers left behind by a master that died on its own.
        for pid in group_members(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (field 5 of /proc/PID/stat)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if int(text.rsplit(")", 1)[1].split()[2]) == pgid:
                out.append(int(text.split(" ", 1)[0]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def wait_ready(stack: Stack, name: str) -> None:
    """Until the port accepts a TCP connection (no request is sent, so the
    idle RSS read next is of a proxy that has served nothing)."""
    port = stack.ports[name]

    def connect() -> str | None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return None
        except OSError:
            return ""

    benchlib.wait_ready(
        name, port, stack.procs[name], connect,
        lambda: f"output: {stack.path(name + '.out').read_text(errors='replace')[-2000:]}",
        interval=0.1, show_reason=False)


def check_answer(stack: Stack, name: str) -> None:
    """One GET through the target must be the upstream's `200 ok`: a proxy
    answering its own error page fast is not a result."""
    url = f"http://127.0.0.1:{stack.ports[name]}/bench"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
            status = resp.status
    except OSError as e:
        sys.exit(f"GET {url} via {name} failed: {e}")
    if status != 200 or body != b"ok\n":
        sys.exit(f"GET {url} via {name}: status {status}, body {body[:80]!r}, expected 200 ok")


NGINX_COMMON = """# Generated by benches/http_compare.py
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/{name}-body;
    proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fastcgi;
    uwsgi_temp_path {tmp}/{name}-uwsgi;
    scgi_temp_path {tmp}/{name}-scgi;
    # Default 1000: a client connection would be closed and reopened
    # mid-run, which is not what is measured.
    keepalive_requests 1000000;
    keepalive_timeout 120s;
{body}
}}
"""

UPSTREAM_BODY = """    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}"""

NGINX_PROXY_BODY = """    upstream backend {{
        server 127.0.0.1:{up};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""

HAPROXY_CFG = """# Generated by benches/http_compare.py
global
    nbthread {workers}
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    server up 127.0.0.1:{up}
"""

ATTACHE_TOML = """# Generated by benches/http_compare.py
[general]
worker_threads = {workers}

[http]
listen = "127.0.0.1:{port}"

[[http.routes]]
prefix = "/"
cluster = "upstream"

[http.clusters.upstream]
endpoints = ["127.0.0.1:{up}"]
"""


def start_nginx(stack: Stack, name: str, body: str, workers: int) -> None:
    conf = stack.path(f"{name}.conf")
    conf.write_text(NGINX_COMMON.format(workers=workers, tmp=stack.tmp, name=name, body=body))
    stack.spawn(name, ["nginx", "-p", str(stack.tmp), "-e", str(stack.path(f"{name}.error.log")),
                       "-c", str(conf)])
    wait_ready(stack, name)


def start_stack(stack: Stack, args: argparse.Namespace) -> dict[str, float]:
    """Starts the upstream and the proxies; returns each proxy's idle RSS
    (MB) read one second after it started listening, before any request."""
    idle: dict[str, float] = {}
    up = stack.ports["direct"] = benchlib.free_port()
    start_nginx(stack, "direct", UPSTREAM_BODY.format(port=up), args.workers)
    for name in PROXIES:
        port = stack.ports[name] = benchlib.free_port()
        if name == "attache":
            cfg = stack.path("attache.toml")
            cfg.write_text(ATTACHE_TOML.format(workers=args.workers, port=port, up=up))
            stack.spawn(name, [str(args.bin), "--config", str(cfg)])
            wait_ready(stack, name)
        elif name == "haproxy":
            cfg = stack.path("haproxy.cfg")
            cfg.write_text(HAPROXY_CFG.format(workers=args.workers, port=port, up=up))
            stack.spawn(name, ["haproxy", "-db", "-f", str(cfg)])
            wait_ready(stack, name)
        else:
            start_nginx(stack, name, NGINX_PROXY_BODY.format(port=port, up=up), args.workers)
    time.sleep(1)
    for name in PROXIES:
        idle[name] = rss_mb(stack.procs[name].pid)
    for name in TARGETS:
        check_answer(stack, name)
    return idle


# ---------------------------------------------------------------- memory


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mb(root: int, key: str = "VmRSS") -> float:
    """Summed over the process tree (nginx: master + workers, which shares
    pages between them and so overstates nginx a little)."""
    total = 0
    for pid in tree_pids(root):
        try:
            total += _status_kb(pid, key)
        except OSError:
            pass
    return total / 1024


# ---------------------------------------------------------------- wrk

# done() runs once after the run with wrk's own totals; one JSON line.
WRK_LUA = """-- Generated by benches/http_compare.py
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'ATTACHE_WRK {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""

SOCKET_ERRORS_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)")
NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(status: int, out: str, err: str) -> RunResult:
    """wrk's JSON line from done() plus its text; any error fails the run."""
    res = RunResult()
    reasons: list[str] = []
    m = re.search(r"^ATTACHE_WRK (\{.*\})$", out, re.M)
    data = json.loads(m.group(1)) if m else None
    sock = SOCKET_ERRORS_RE.search(out)
    non2xx = NON_2XX_RE.search(out)
    if sock and any(int(x) for x in sock.groups()):
        reasons.append(sock.group(0))
    if non2xx and int(non2xx.group(1)):
        reasons.append(non2xx.group(0))
    if data:
        errs = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
        if errs and not reasons:
            reasons.append("errors " + ", ".join(f"{k} {v}" for k, v in errs.items()))
        if data["requests"] == 0:
            reasons.append("no request completed")
        else:
            res.rps = data["requests"] / (data["duration_us"] / 1e6)
            res.p50_ms, res.p90_ms, res.p99_ms = (data[k] / 1000 for k in ("p50", "p90", "p99"))
    elif not reasons:
        reasons.append("wrk printed no summary")
    if status != 0:
        reasons.append(f"wrk exit status {status}")
    if reasons:
        res.failure = "; ".join(reasons)
        res.error_lines = [ln.strip() for ln in (out + "\n" + err).splitlines()
                           if re.search(r"error|unable|Non-2xx|refused|reset", ln, re.I)][:6]
    return res


def run_wrk(stack: Stack, target: str, wl: Workload, seconds: int) -> RunResult:
    """One wrk run, with the CPU each side used during it."""
    url = f"http://127.0.0.1:{stack.ports[target]}/bench"
    cmd = ["wrk", "-t", str(wl.threads), "-c", str(wl.connections), "-d", f"{seconds}s",
           "--latency", "-s", str(stack.path("done.lua")), url]
    sides = {"proxy": stack.procs[target].pid, "upstream": stack.procs["direct"].pid}
    if target == "direct":
        sides.pop("proxy")
    before = {k: cpu_seconds(pid) for k, pid in sides.items()}
    kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, t0 = machine_busy_seconds(), time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 30)
    except subprocess.TimeoutExpired:
        return RunResult(failure=f"wrk still running after {seconds * 3 + 30} s; killed")
    wall = time.monotonic() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = parse_wrk(r.returncode, r.stdout, r.stderr)
    used = {k: cpu_seconds(pid) - before[k] for k, pid in sides.items()}
    used["wrk"] = (kids.ru_utime + kids.ru_stime) - (kids_before.ru_utime + kids_before.ru_stime)
    used["other"] = max(0.0, machine_busy_seconds() - busy_before - sum(used.values()))
    res.cpu = {k: 100 * v / wall for k, v in used.items()}
    for name in (target, "direct"):
        if stack.procs[name].poll() is not None:
            res.failure = f"{name} exited with status {stack.procs[name].returncode} during the run"
    return res


def run_matrix(stack: Stack, args: argparse.Namespace) -> dict[tuple[str, str], list[RunResult]]:
    """Every workload against every target back to back, so drift hits all
    four alike; later rounds rotate the target order."""
    def run(wl: Workload, target: str) -> RunResult:
        return run_wrk(stack, target, wl, args.duration)

    def shown(res: RunResult) -> str:
        cpu = "  ".join(f"{k} {v:.0f}%" for k, v in res.cpu.items())
        rate = (f"FAILED ({res.failure})" if res.failure else
                f"{res.rps:>9,.0f} req/s  p50 {res.p50_ms:.3f}  p99 {res.p99_ms:.3f} ms")
        return f"{rate}  CPU {cpu}"

    return benchlib.run_matrix(WORKLOADS, TARGETS, args.rounds, run, shown, (5, 8))


def warm_up(stack: Stack) -> None:
    """One short, unrecorded run per target and workload: opens the pools."""
    for wl in WORKLOADS:
        for target in TARGETS:
            res = run_wrk(stack, target, wl, 1)
            if res.failure:
                print(f"  warm-up {wl.name} via {target} FAILED: {res.failure}", file=sys.stderr)


def summarize(runs: list[RunResult]) -> RunResult:
    """Median over rounds; one failed round fails the point."""
    if failed := benchlib.first_failure(runs):
        why, r = failed
        return RunResult(failure=why, error_lines=r.error_lines)
    med = lambda attr: statistics.median(getattr(r, attr) for r in runs)  # noqa: E731
    cpu = {k: statistics.median(r.cpu[k] for r in runs) for k in runs[0].cpu}
    return RunResult(rps=med("rps"), p50_ms=med("p50_ms"), p90_ms=med("p90_ms"),
                     p99_ms=med("p99_ms"), cpu=cpu)


# ---------------------------------------------------------------- report

Summary = dict[tuple[str, str], RunResult]
HEADER = ["wrk", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "vs direct", "vs haproxy",
          "vs nginx", "+p50 ms", "CPU proxy / upstream / wrk / other"]


def _ratio(r: RunResult, base: RunResult) -> str:
    return "—" if base.failure or not base.rps else f"{r.rps / base.rps:.2f}×"


def table_rows(summary: Summary) -> list[list[str]]:
    rows = []
    for wl in WORKLOADS:
        d = summary[(wl.name, "direct")]
        for target in TARGETS:
            r = summary[(wl.name, target)]
            if r.failure:
                rows.append([wl.name, target, "FAILED", *["—"] * 7, r.failure])
                continue
            added = "—" if d.failure or target == "direct" else f"{r.p50_ms - d.p50_ms:+.3f}"
            cpu = " / ".join(f"{r.cpu[k]:.0f}%" if k in r.cpu else "—"
                             for k in ("proxy", "upstream", "wrk", "other"))
            rows.append([wl.name, target, f"{r.rps:,.0f}", f"{r.p50_ms:.3f}", f"{r.p90_ms:.3f}",
                         f"{r.p99_ms:.3f}", _ratio(r, d),
                         _ratio(r, summary[(wl.name, "haproxy")]),
                         _ratio(r, summary[(wl.name, "nginx")]), added, cpu])
    return rows


RSS_HEADER = ["proxy", "RSS idle after start MB", "RSS idle after the runs MB", "peak (VmHWM) MB"]


def rss_rows(rss: dict[str, tuple[float, float, float]]) -> list[list[str]]:
    return [[name, *(f"{v:.1f}" for v in rss[name])] for name in PROXIES]


def bar_checks(summary: Summary, rss: dict[str, tuple[float, float, float]]
               ) -> list[tuple[bool | None, str]]:
    """(met?, text) per point of the bar; None where it cannot be judged."""
    checks: list[tuple[bool | None, str]] = []
    for wl in WORKLOADS:
        a = summary[(wl.name, "attache")]
        if a.failure:
            checks.append((False, f"{wl.name}: Attaché run FAILED ({a.failure})"))
            continue
        for other in ("haproxy", "nginx"):
            o = summary[(wl.name, other)]
            if o.failure:
                checks.append((None, f"{wl.name}: {other} FAILED ({o.failure})"))
            else:
                checks.append((a.rps >= o.rps, f"{wl.name}: Attaché {a.rps:,.0f} req/s vs "
                                               f"{other} {o.rps:,.0f} ({a.rps / o.rps:.2f}×)"))
        d = summary[(wl.name, "direct")]
        if wl.connections == 1 and d.failure:
            checks.append((None, f"{wl.name}: direct FAILED ({d.failure})"))
        elif wl.connections == 1:
            added = a.p50_ms - d.p50_ms
            checks.append((added < ADDED_P50_BAR_MS,
                           f"{wl.name}: p50 Attaché {a.p50_ms:.3f} ms vs direct {d.p50_ms:.3f} "
                           f"ms (added {added:+.3f}, bar < {ADDED_P50_BAR_MS})"))
    idle = rss["attache"][0]
    checks.append((idle < RSS_BAR_MB, f"Attaché RSS at idle {idle:.1f} MB (bar < {RSS_BAR_MB:g}; "
                                      f"after the runs {rss['attache'][1]:.1f} MB)"))
    return checks


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[ok]


def log_warnings(stack: Stack) -> list[str]:
    """WARN/ERROR lines of Attaché (ANSI colours stripped) and alerts from
    the other servers' logs, deduplicated."""
    files = sorted(stack.tmp.glob("*.out")) + sorted(stack.tmp.glob("*.error.log"))
    return benchlib.log_warnings(files, r"\b(WARN|ERROR|ALERT|\[alert\]|\[error\]|\[crit\])",
                                 limit=8, label=True)


def versions(args: argparse.Namespace) -> str:
    nginx = sh(["nginx", "-v"]).replace("nginx version: ", "")
    haproxy = sh(["haproxy", "-v"]).splitlines()[0]
    haproxy = re.sub(r"^HAProxy version (\S+).*", r"HAProxy \1", haproxy)
    wrk = sh(["wrk", "-v"]).splitlines()[0]
    wrk = re.sub(r"^(wrk \S+).*", r"\1", wrk)
    return f"{nginx}; {haproxy}; {wrk}; {benchlib.attache_build(args.bin)}"


def machine_lines(args: argparse.Namespace, load_before: str, quiet: str) -> list[str]:
    cmd = "python3 benches/http_compare.py" + (f" --duration {args.duration}"
                                               if args.duration != 10 else "")
    cmd += f" --rounds {args.rounds}" if args.rounds != 1 else ""
    cmd += f" --workers {args.workers}" if args.workers != 1 else ""
    return [
        f"{benchlib.date_line()}; command: `{cmd}`",
        benchlib.cpu_line(f"{load_before} ({quiet})", memory=False, before="the measured runs"),
        f"- {versions(args)}",
        f"- wrk `-t1 -c1` and `-t2 -c64`, `-d {args.duration}s --latency`, GET of a 3-byte "
        f"body; {args.rounds} round(s) (median shown); targets back to back per workload",
        f"- {args.workers} worker (thread or process) for each proxy and for the upstream "
        "nginx: Attaché `worker_threads`, HAProxy `nbthread`, nginx `worker_processes`",
    ]


def markdown_section(machine, rows, rss, checks, failures, warnings) -> str:
    return benchlib.markdown_section(
        machine, [benchlib.markdown_table(HEADER, rows), "",
                  "CPU: % of one core used during the run by the proxy, the upstream nginx, "
                  "wrk, and everything else on the machine (other engineers' work: noise).", "",
                  benchlib.markdown_table(RSS_HEADER, rss_rows(rss), left=1)],
        checks, verdict, blocks=[("Failed runs", failures),
                                 ("Warnings in the servers' logs", warnings)])


# ---------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    benchlib.exit_on_signals()
    ensure_packages()
    build(args)
    stack = Stack(args.keep_tmp)
    try:
        stack.path("done.lua").write_text(WRK_LUA)
        idle = start_stack(stack, args)
        print(f"ports: {stack.ports}; idle RSS MB: "
              + ", ".join(f"{k} {v:.1f}" for k, v in idle.items()), flush=True)
        warm_up(stack)
        quiet = "not waited (--no-wait)" if args.no_wait else wait_quiet(args.max_wait)
        load_before = loadavg()
        results = run_matrix(stack, args)
        time.sleep(1)
        rss = {n: (idle[n], rss_mb(stack.procs[n].pid), rss_mb(stack.procs[n].pid, "VmHWM"))
               for n in PROXIES}
        summary = {k: summarize(v) for k, v in results.items()}
        machine = machine_lines(args, load_before, quiet)
        rows = table_rows(summary)
        checks = bar_checks(summary, rss)
        failures = benchlib.failure_details(summary)
        warnings = log_warnings(stack)
        section = markdown_section(machine, rows, rss, checks, failures, warnings)
    finally:
        stack.close()
    benchlib.print_report(
        machine, [benchlib.text_table(HEADER, rows),
                  benchlib.text_table(RSS_HEADER, rss_rows(rss), left=1)],
        "The bar (Attaché req/s ≥ HAProxy's and nginx's; added p50 at c=1 < 0.1 ms; "
        "idle RSS < 20 MB):", checks, verdict,
        blocks=[("Failed runs", failures), ("Warnings in the servers' logs", warnings)])
    benchlib.write_results(args.write, section, MARK_START, MARK_END,
                           not_written="--quick without --write, or --no-write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
