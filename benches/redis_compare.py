#!/usr/bin/env python3
"""redis-benchmark against direct Redis, Attaché and twemproxy, interleaved.

Started by benches/redis_compare.sh, which installs the packages and builds
target/release/attache first. This file starts a private redis-server, Attaché
(`[redis] mode = "single"`) and twemproxy (nutcracker) in front of it on free
loopback ports, runs GET and SET at several client/pipeline settings against
the three targets back to back, prints the table and the bar, and rewrites the
Redis section of BENCHMARKS.md. Everything it starts is stopped on exit.

Redis 7's redis-benchmark ignores `-e` and exits with status 1 on the first
error reply ("Error from server: …"); it also spins forever when it cannot
connect. So a run is FAILED when it exits nonzero, times out, prints any error
line, prints no CSV row, or the target process died, never shown as a rate.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ATTACHE_BIN = Path(os.environ.get("ATTACHE_BIN", REPO / "target" / "release" / "attache"))
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
MARK_START = "<!-- redis-results:start -->"
MARK_END = "<!-- redis-results:end -->"

QUICK = os.environ.get("QUICK") == "1"
DURATION = float(os.environ.get("DURATION", "3" if QUICK else "8"))
REQUESTS = int(os.environ.get("REQUESTS", "0"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
WRITE = os.environ.get("WRITE", "0" if QUICK else "1") == "1"
KEEP_TMP = os.environ.get("KEEP_TMP") == "1"
PERF = os.environ.get("PERF") == "1"
CONNS = int(os.environ.get("CONNS", "8"))
# redis-benchmark --threads for the 500-client workloads only.
THREADS_C500 = int(os.environ.get("THREADS", "1"))
KEYSPACE = 100_000
VALUE_SIZE = 64

TARGETS = ["direct", "attache", "twemproxy"]


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# Other work on the machine skews every number; recorded beside the results.
LOAD_BEFORE = _loadavg()


@dataclass(frozen=True)
class Workload:
    test: str  # redis-benchmark -t name, also the CSV row's "test"
    clients: int
    pipeline: int

    @property
    def name(self) -> str:
        return f"{self.test} -c {self.clients} -P {self.pipeline}"

    @property
    def threads(self) -> int:
        return THREADS_C500 if self.clients >= 500 else 1


# SET before GET so the GETs find the values the prefill and SETs wrote.
WORKLOADS = [Workload(t, c, p) for t in ("SET", "GET")
             for c, p in ((1, 1), (50, 1), (50, 16), (500, 1))]


@dataclass
class RunResult:
    """One redis-benchmark run. `failure` set means: do not trust the numbers."""

    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    failure: str | None = None
    error_lines: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- processes


class Stack:
    """The servers under test; `close` stops them in reverse order."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="attache-redis-bench-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def path(self, name: str) -> Path:
        return self.tmp / name

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.path(f"{name}.out"), "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def close(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop on SIGTERM; killing", file=sys.stderr)
                    proc.kill()
                    proc.wait()
        if KEEP_TMP:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(stack: Stack, name: str, port: int) -> None:
    """PING until PONG. Never start redis-benchmark before this: it spins
    forever on a refused connection."""
    proc = stack.procs[name]
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with status {proc.returncode}; "
                     f"output: {stack.path(name + '.out').read_text()[-2000:]}")
        try:
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
                               capture_output=True, text=True, timeout=5)
            if r.stdout.strip() == "PONG":
                return
            last = (r.stdout + r.stderr).strip()
        except subprocess.TimeoutExpired:
            last = "redis-cli ping timed out"
        time.sleep(0.2)
    sys.exit(f"{name} on port {port} not ready after 30 s: {last}")


REDIS_CONF = """# Generated by benches/redis_compare.py
bind 127.0.0.1
port {port}
dir {tmp}
save ""
appendonly no
protected-mode yes
maxclients 10000
"""


def start_redis(stack: Stack) -> None:
    port = free_port()
    conf = stack.path("redis.conf")
    conf.write_text(REDIS_CONF.format(port=port, tmp=stack.tmp))
    stack.spawn("direct", ["redis-server", str(conf)])
    stack.ports["direct"] = port
    wait_ready(stack, "direct", port)


ATTACHE_TOML = """# Generated by benches/redis_compare.py
[redis]
listen = "127.0.0.1:{port}"
mode = "single"
nodes = ["127.0.0.1:{redis_port}"]
connections_per_node = {conns}
"""


def start_attache(stack: Stack) -> None:
    port = free_port()
    cfg = stack.path("attache.toml")
    cfg.write_text(ATTACHE_TOML.format(port=port, redis_port=stack.ports["direct"],
                                       conns=CONNS))
    stack.spawn("attache", [str(ATTACHE_BIN), "-c", str(cfg)])
    stack.ports["attache"] = port
    wait_ready(stack, "attache", port)


NUTCRACKER_YML = """# Generated by benches/redis_compare.py
bench:
  listen: 127.0.0.1:{port}
  hash: fnv1a_64
  distribution: ketama
  redis: true
  preconnect: true
  servers:
    - 127.0.0.1:{redis_port}:1
"""


def start_twemproxy(stack: Stack) -> None:
    port = free_port()
    yml = stack.path("nutcracker.yml")
    yml.write_text(NUTCRACKER_YML.format(port=port, redis_port=stack.ports["direct"]))
    stack.spawn("twemproxy", ["nutcracker", "-c", str(yml), "-o", str(stack.path("nutcracker.log")),
                              "-s", str(free_port()), "-a", "127.0.0.1"])
    stack.ports["twemproxy"] = port
    wait_ready(stack, "twemproxy", port)


# ---------------------------------------------------------------- redis-benchmark

CSV_ROW_RE = re.compile(r'^"([A-Z_]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)",'
                        r'"([\d.]+)","([\d.]+)","([\d.]+)"$')
# Printed when a target does not answer CONFIG GET (twemproxy never does);
# redis-benchmark only uses it to warn about persistence settings.
BENIGN = ("WARNING: Could not fetch server CONFIG",)
ERROR_RE = re.compile(r"error|could not|closed|unexpected|refused|reset|timeout", re.I)


def parse_benchmark(status: int, out: str, err: str, test: str) -> RunResult:
    """Reads the CSV row; an error line anywhere or a nonzero exit fails the run."""
    res = RunResult()
    reasons = []
    errors = []
    for line in (out + "\n" + err).splitlines():
        line = line.strip()
        if not line or line.startswith('"test"') or CSV_ROW_RE.match(line) or line in BENIGN:
            continue
        if ERROR_RE.search(line) and line not in errors:
            errors.append(line)
    if errors:
        reasons.append(f"{len(errors)} error line(s)")
    if status != 0:
        reasons.append(f"redis-benchmark exit status {status}")
    row = next((m for m in map(CSV_ROW_RE.match, out.splitlines()) if m and m.group(1) == test),
               None)
    if row is None and not reasons:
        reasons.append("redis-benchmark printed no CSV row")
    if row is not None:
        res.rps, res.p50_ms, res.p99_ms = float(row.group(2)), float(row.group(5)), \
            float(row.group(7))
    if reasons:
        res.failure = "; ".join(reasons)
        res.error_lines = errors[:6]
    return res


def benchmark_cmd(port: int, wl: Workload, requests: int) -> list[str]:
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", wl.test.lower(),
           "-n", str(requests), "-c", str(wl.clients), "-P", str(wl.pipeline),
           "-r", str(KEYSPACE), "-d", str(VALUE_SIZE), "--csv"]
    if wl.threads > 1:
        cmd += ["--threads", str(wl.threads)]
    return cmd


def run_benchmark(stack: Stack, target: str, wl: Workload, requests: int,
                  limit: float) -> RunResult:
    cmd = benchmark_cmd(stack.ports[target], wl, requests)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return RunResult(failure=f"redis-benchmark still running after {limit:.0f} s; killed")
    res = parse_benchmark(r.returncode, r.stdout, r.stderr, wl.test)
    proc = stack.procs[target]
    if proc.poll() is not None:
        res.failure = f"{target} exited with status {proc.returncode} during the run"
    return res


def run_limit(seconds: float) -> float:
    """Generous: a target several times slower than the median still finishes."""
    return 20 * seconds + 60


def prefill(stack: Stack) -> None:
    """Writes (nearly) every key of the keyspace so GETs return values, not nil."""
    wl = Workload("SET", 50, 16)
    res = run_benchmark(stack, "direct", wl, 5 * KEYSPACE, 300)
    if res.failure:
        sys.exit(f"prefill on direct Redis failed: {res.failure} {res.error_lines}")


def calibrate(stack: Stack) -> dict[str, int]:
    """Short untimed run of each workload on each target (also the warm-up);
    sizes -n so a run at the median of the three rates lasts DURATION s."""
    sizes: dict[str, int] = {}
    for wl in WORKLOADS:
        probe_n = max(20_000 * wl.pipeline, 50 * wl.clients)
        rates = []
        for target in TARGETS:
            res = run_benchmark(stack, target, wl, probe_n, run_limit(DURATION))
            if res.failure:
                print(f"  warm-up {wl.name} via {target} FAILED: {res.failure} "
                      f"{res.error_lines}", file=sys.stderr)
            elif res.rps:
                rates.append(res.rps)
        rate = statistics.median(rates) if rates else 10_000
        n = REQUESTS or max(100 * wl.clients, int(rate * DURATION) // 1000 * 1000)
        sizes[wl.name] = n
        print(f"  warm-up {wl.name:<18} median {rate:>10,.0f} req/s -> -n {n:,}", flush=True)
    return sizes


def run_matrix(stack: Stack, sizes: dict[str, int]) -> dict[tuple[str, str], list[RunResult]]:
    """Every workload against every target back to back, so drift (other load,
    memory) hits all three alike; later rounds rotate the target order."""
    results: dict[tuple[str, str], list[RunResult]] = {}
    for rnd in range(ROUNDS):
        order = TARGETS[rnd % 3:] + TARGETS[:rnd % 3]
        for wl in WORKLOADS:
            for target in order:
                res = run_benchmark(stack, target, wl, sizes[wl.name], run_limit(DURATION))
                results.setdefault((wl.name, target), []).append(res)
                shown = (f"FAILED ({res.failure})" if res.failure
                         else f"{res.rps:>10,.0f} req/s  p50 {res.p50_ms:.3f}  p99 {res.p99_ms:.3f}")
                print(f"  round {rnd + 1}/{ROUNDS}  {wl.name:<18} {target:<10} {shown}",
                      flush=True)
    return results


def summarize(runs: list[RunResult]) -> RunResult:
    """Median over rounds; one failed round fails the point."""
    for i, r in enumerate(runs):
        if r.failure:
            prefix = f"round {i + 1}: " if len(runs) > 1 else ""
            return RunResult(failure=prefix + r.failure, error_lines=r.error_lines)
    return RunResult(rps=statistics.median(r.rps for r in runs),
                     p50_ms=statistics.median(r.p50_ms for r in runs),
                     p99_ms=statistics.median(r.p99_ms for r in runs))


def perf_profile(stack: Stack, sizes: dict[str, int]) -> list[str]:
    """One extra, untimed GET -c 50 -P 16 run through Attaché under
    `perf record -g`; returns perf's top symbols by self time."""
    wl = Workload("GET", 50, 16)
    data = stack.path("perf.data")
    rec = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", str(data),
                            "-p", str(stack.procs["attache"].pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    res = run_benchmark(stack, "attache", wl, sizes[wl.name], run_limit(DURATION))
    rec.send_signal(signal.SIGINT)
    rec.wait(timeout=60)

    def report(fields: str) -> list[str]:
        r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                            "-g", "none", "--percent-limit", "0.7", "-F", fields],
                           capture_output=True, text=True, timeout=300)
        return [ln.rstrip() for ln in r.stdout.splitlines()
                if ln.strip() and not ln.startswith("#")]

    head = f"perf, {wl.name} via attache: " + (f"FAILED ({res.failure})" if res.failure
                                              else f"{res.rps:,.0f} req/s under perf")
    by_dso = ", ".join(" ".join(ln.split()) for ln in report("overhead,dso"))
    return [head, f"self time by object: {by_dso}", *report("overhead,dso,sym")[:30]]


# ---------------------------------------------------------------- report

Summary = dict[tuple[str, str], RunResult]
HEADER = ["workload", "target", "req/s", "p50 ms", "p99 ms", "vs direct", "vs twemproxy"]


def _ratio(r: RunResult, base: RunResult) -> str:
    return "—" if base.failure or not base.rps else f"{r.rps / base.rps:.2f}×"


def table_rows(summary: Summary) -> list[list[str]]:
    rows = []
    for wl in WORKLOADS:
        direct, twem = summary[(wl.name, "direct")], summary[(wl.name, "twemproxy")]
        for target in TARGETS:
            r = summary[(wl.name, target)]
            if r.failure:
                rows.append([wl.name, target, "FAILED", "—", "—", "—", r.failure])
                continue
            rows.append([wl.name, target, f"{r.rps:,.0f}", f"{r.p50_ms:.3f}",
                         f"{r.p99_ms:.3f}", _ratio(r, direct), _ratio(r, twem)])
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*HEADER), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        cells = [f"**{c}**" if c == "FAILED" else c for c in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_checks(summary: Summary) -> list[tuple[bool | None, str]]:
    """(met?, text) per point of the bar; None where the point does not apply."""
    checks: list[tuple[bool | None, str]] = []
    for wl in WORKLOADS:
        a = summary[(wl.name, "attache")]
        d, t = summary[(wl.name, "direct")], summary[(wl.name, "twemproxy")]
        if a.failure:
            checks.append((False, f"{wl.name}: Attaché run FAILED ({a.failure})"))
            continue
        if t.failure:
            checks.append((None, f"{wl.name}: twemproxy FAILED ({t.failure})"))
        else:
            checks.append((a.rps >= t.rps, f"{wl.name}: Attaché {a.rps:,.0f} req/s vs "
                                           f"twemproxy {t.rps:,.0f} ({a.rps / t.rps:.2f}×)"))
        if d.failure:
            checks.append((None, f"{wl.name}: direct run FAILED ({d.failure})"))
            continue
        if wl.pipeline >= 16:
            checks.append((a.rps >= 0.8 * d.rps, f"{wl.name}: Attaché {a.rps:,.0f} req/s vs "
                                                 f"direct {d.rps:,.0f} ({a.rps / d.rps:.2f}×, "
                                                 "bar 0.80×)"))
        if wl.clients == 1:
            checks.append((a.p99_ms <= d.p99_ms + 0.1 + 1e-9,
                           f"{wl.name}: p99 Attaché {a.p99_ms:.3f} ms vs direct "
                           f"{d.p99_ms:.3f} ms (+{a.p99_ms - d.p99_ms:.3f}, bar +0.100)"))
    return checks


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[ok]


def failure_details(summary: Summary) -> list[str]:
    out = []
    for wl in WORKLOADS:
        for target in TARGETS:
            r = summary[(wl.name, target)]
            if r.failure:
                out.append(f"{wl.name} via {target}: {r.failure}")
                out += [f"    {line}" for line in r.error_lines]
    return out


def attache_log_warnings(stack: Stack, limit: int = 6) -> list[str]:
    """Attaché's WARN/ERROR lines (ANSI colours stripped), deduplicated."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", stack.path("attache.out").read_text(errors="replace"))
    seen: list[str] = []
    for line in text.splitlines():
        if re.search(r"\b(WARN|ERROR)\b", line):
            body = re.sub(r"^\S+\s+", "", line.strip())  # drop the timestamp
            if body not in seen:
                seen.append(body)
    return seen[:limit]


# ---------------------------------------------------------------- machine


def sh(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout.strip() or r.stderr.strip())
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_lines(sizes: dict[str, int]) -> list[str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next((line.split()[1] for line in sh(["free", "-h"]).splitlines()
                if line.startswith("Mem:")), "?")
    rev = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]):
        rev += " + uncommitted changes"
    redis_ver = re.search(r"v=(\S+)", sh(["redis-server", "--version"]))
    sized = "fixed by `REQUESTS`" if REQUESTS else f"sized for about {DURATION:g} s at the " \
        "median of the three targets' warm-up rates"
    per_wl = ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    threads = f"`--threads {THREADS_C500}` at `-c 500`" if THREADS_C500 > 1 else "single-threaded"
    return [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- CPU: {cpu}, `nproc` = {sh(['nproc'])}; memory (`free -h`): {mem} total; "
        f"kernel {sh(['uname', '-r'])}; load average before the run: {LOAD_BEFORE}, "
        f"after: {_loadavg()}",
        f"- redis-server {redis_ver.group(1) if redis_ver else '?'}; "
        f"{sh(['redis-benchmark', '--version'])}; "
        f"{sh(['nutcracker', '--version']).splitlines()[0].removeprefix('This is ')}; "
        f"{sh([str(ATTACHE_BIN), '--version'])} (git {rev}, `cargo build --release`)",
        f"- redis-benchmark: `-r {KEYSPACE} -d {VALUE_SIZE} --csv`, {threads}; "
        f"{ROUNDS} round(s) (median shown); targets run back to back per workload; "
        f"`-n` {sized}: {per_wl}",
        f"- Attaché: `mode = \"single\"`, `connections_per_node = {CONNS}`, other settings "
        "default; twemproxy: one pool, `redis: true`, `hash: fnv1a_64`, "
        "`distribution: ketama`, `preconnect: true`, default `server_connections` (1); "
        "redis-server: no persistence, otherwise defaults",
    ]


def markdown_section(machine, rows, checks, failures, warnings) -> str:
    parts = ["### Machine and settings", "", *machine, "",
             "### Results", "", markdown_table(rows), "", "### The bar", ""]
    parts += [f"- {verdict(ok)}: {text}" for ok, text in checks]
    overall = all(ok is not False for ok, _ in checks)
    parts += ["", f"Overall: **{'met' if overall else 'NOT met'}**."]
    if failures:
        parts += ["", "### Failed runs (redis-benchmark's error lines)", "", "```",
                  *failures, "```"]
    if warnings:
        parts += ["", "### Attaché's warnings during the run", "", "```", *warnings, "```"]
    return "\n".join(parts)


def write_markdown(section: str) -> None:
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if MARK_START not in text or MARK_END not in text:
        text = text.rstrip("\n") + "\n\n" + MARK_START + "\n" + MARK_END + "\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    BENCHMARKS_MD.write_text(f"{head}{MARK_START}\n{section}\n{MARK_END}{tail}")
    print(f"results written to {BENCHMARKS_MD}")


# ---------------------------------------------------------------- main


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main() -> int:
    if not ATTACHE_BIN.exists():
        sys.exit(f"{ATTACHE_BIN} missing: run benches/redis_compare.sh (it builds it)")
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    stack = Stack()
    profile: list[str] = []
    try:
        start_redis(stack)
        start_attache(stack)
        start_twemproxy(stack)
        print(f"ports: {stack.ports}; {len(WORKLOADS)} workloads × {len(TARGETS)} targets × "
              f"{ROUNDS} round(s) × ~{DURATION:g} s; connections_per_node {CONNS}", flush=True)
        prefill(stack)
        sizes = calibrate(stack)
        results = run_matrix(stack, sizes)
        if PERF:
            profile = perf_profile(stack, sizes)
        machine = machine_lines(sizes)
        summary = {k: summarize(v) for k, v in results.items()}
        rows = table_rows(summary)
        checks = bar_checks(summary)
        failures = failure_details(summary)
        warnings = attache_log_warnings(stack)
        section = markdown_section(machine, rows, checks, failures, warnings)
    finally:
        stack.close()
    print("\n" + "\n".join(machine) + "\n\n" + text_table(rows) + "\n")
    print("The bar (Attaché req/s ≥ twemproxy's everywhere, ≥ 0.8× direct at -P 16; "
          "p99 at -c 1 ≤ direct + 0.1 ms):")
    for ok, text in checks:
        print(f"  {verdict(ok):>7}  {text}")
    met = all(ok is not False for ok, _ in checks)
    print(f"Overall: {'met' if met else 'NOT met'}")
    if failures:
        print("\nFailed runs:\n" + "\n".join(failures))
    if warnings:
        print("\nAttaché's warnings:\n" + "\n".join(warnings))
    if profile:
        print("\n" + "\n".join(profile))
    if WRITE:
        write_markdown(section)
    else:
        print("BENCHMARKS.md not touched (QUICK=1 without WRITE=1, or WRITE=0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
