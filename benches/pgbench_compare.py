#!/usr/bin/env python3
"""pgbench against direct PostgreSQL, Attaché and PgBouncer, interleaved.

Started by benches/pgbench_compare.sh, which installs the packages and builds
target/release/attache first. This file starts a private PostgreSQL, Attaché
and PgBouncer on free loopback ports, runs every workload against the three
targets back to back, prints the table and the bar, and rewrites the results
section of BENCHMARKS.md. Everything it starts is stopped on exit.

pgbench aborts a client on any non-retryable error and still prints the TPS of
the clients that survived, so a run with an aborted client or a nonzero exit
status is reported as FAILED with the reason, never as a TPS.

REPLICA=1 runs only the replica comparison instead (pgbench_replica.py, which
reuses this file's servers, pgbench runner and report helpers). The helpers
shared with the other benches (process stack, ports, readiness, machine
description, BENCHMARKS.md section) are in benchlib.py.
"""

from __future__ import annotations

import glob
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
from benchlib import ATTACHE_BIN

MARK_START = "<!-- pgbench-results:start -->"
MARK_END = "<!-- pgbench-results:end -->"

QUICK = os.environ.get("QUICK") == "1"
DURATION = int(os.environ.get("DURATION", "3" if QUICK else "10"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
SCALE = int(os.environ.get("SCALE", "10"))
WARMUP = int(os.environ.get("WARMUP", "2"))
WRITE = os.environ.get("WRITE", "0" if QUICK else "1") == "1"
KEEP_TMP = os.environ.get("KEEP_TMP") == "1"
REPLICA = os.environ.get("REPLICA") == "1"
POOL_SIZE = 20
DB = "bench"
USER = "postgres"

TARGETS = ["direct", "attache", "pgbouncer"]
LOAD_BEFORE = benchlib.loadavg()


@dataclass(frozen=True)
class Workload:
    name: str
    args: tuple[str, ...]
    clients: int
    tpcb: bool = False


def _workloads() -> list[Workload]:
    out = []
    for mode in ("simple", "extended", "prepared"):
        for clients, threads in ((1, 1), (64, 2)):
            out.append(
                Workload(
                    f"select-only {mode} c={clients}",
                    ("-S", "-M", mode, "-c", str(clients), "-j", str(threads)),
                    clients,
                )
            )
    out.append(Workload("tpc-b simple c=32", ("-c", "32", "-j", "2"), 32, tpcb=True))
    return out


WORKLOADS = _workloads()


@dataclass
class RunResult:
    """One pgbench run. `failure` set means: do not trust `tps`."""

    tps: float | None = None
    latency_ms: float | None = None
    failed_txns: int = 0
    # pgbench's "transactions actually processed"; the replica check divides by it.
    processed: int | None = None
    failure: str | None = None
    error_lines: list[str] = field(default_factory=list)
    # % of one core during the run: pooler, postgres, pgbench, other.
    cpu: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- processes


class Stack(benchlib.Stack):
    """The servers under test; `close` stops the poolers in reverse order,
    then the PostgreSQL clusters (pg_ctl: they are not our children)."""

    def __init__(self) -> None:
        super().__init__("attache-bench-", KEEP_TMP)
        shutil.chown(self.tmp, USER, USER)
        os.chmod(self.tmp, 0o755)
        self.pg_bin = _pg_bin_dir()
        # Data directories of running clusters, stopped last-started first.
        self.pg_data: list[Path] = []

    def close(self) -> None:
        self.stop_procs()
        for data in reversed(self.pg_data):
            as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(data),
                         "-m", "fast", "-w", "stop"], check=False, quiet=True)
        self.remove_tmp()


def _pg_bin_dir() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("no PostgreSQL server under /usr/lib/postgresql: run pgbench_compare.sh")
    return Path(dirs[-1])


def as_postgres(cmd: list[str], check: bool = True, quiet: bool = False):
    """Runs a command as the unprivileged postgres user (initdb refuses root)."""
    full = ["runuser", "-u", USER, "--", *cmd] if os.geteuid() == 0 else cmd
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(full, check=check, stdout=out, stderr=out)


def client_env() -> dict[str, str]:
    """libpq settings shared by every client: plain TCP, no password."""
    env = dict(os.environ)
    env.update(PGSSLMODE="disable", PGGSSENCMODE="disable", PGUSER=USER)
    env.pop("PGPASSWORD", None)
    return env


def psql(stack: Stack, port: int, sql: str, db: str = DB) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(stack.pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-d", db,
         "-X", "-q", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        env=client_env(), capture_output=True, text=True, timeout=120,
    )


def wait_ready(stack: Stack, name: str, port: int, proc: subprocess.Popen | None) -> None:
    """Until `select 1` succeeds there, through the pooler if it is one."""
    def probe() -> str | None:
        r = psql(stack, port, "select 1")
        return None if r.returncode == 0 else r.stderr.strip()

    benchlib.wait_ready(name, port, proc, probe, lambda: f"log in {stack.tmp}")


PG_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sock}'
max_connections = 200
shared_buffers = 256MB
# Benchmark only: no durability, so the disk is not what is measured.
fsync = off
synchronous_commit = off
full_page_writes = off
checkpoint_timeout = 30min
max_wal_size = 4GB
log_min_messages = warning
"""


def start_postgres(stack: Stack, extra_conf: str = "", extra_hba: str = "") -> None:
    """initdb, start, pgbench -i. The extras let the replica run add replication."""
    port = benchlib.free_port()
    data = stack.path("data")
    as_postgres([str(stack.pg_bin / "initdb"), "-D", str(data), "-U", USER,
                 "--auth=trust", "-E", "UTF8", "--no-sync"], quiet=True)
    with open(data / "postgresql.conf", "a") as f:
        f.write(PG_CONF.format(port=port, sock=stack.tmp) + extra_conf)
    if extra_hba:
        with open(data / "pg_hba.conf", "a") as f:
            f.write(extra_hba)
    as_postgres([str(stack.pg_bin / "pg_ctl"), "-D", str(data), "-l",
                 str(stack.path("postgres.log")), "-w", "start"], quiet=True)
    stack.pg_data.append(data)
    stack.ports["direct"] = port
    r = psql(stack, port, f"create database {DB}", db="postgres")
    if r.returncode != 0:
        sys.exit(f"create database failed: {r.stderr}")
    print(f"postgres on 127.0.0.1:{port}; pgbench -i -s {SCALE} …", flush=True)
    subprocess.run([str(stack.pg_bin / "pgbench"), "-h", "127.0.0.1", "-p", str(port),
                    "-i", "-q", "-s", str(SCALE), DB],
                   env=client_env(), check=True, stdout=subprocess.DEVNULL)


ATTACHE_TOML = """# Generated by benches/pgbench_compare.py
[postgres]
listen = "127.0.0.1:{port}"
auth = "passthrough"
max_client_connections = 1000
pool_mode = "transaction"
pool_size = {pool}

[postgres.databases.{db}]
nodes = [{{ addr = "127.0.0.1:{pg_port}" }}]
"""


def start_attache(stack: Stack) -> None:
    port = benchlib.free_port()
    cfg = stack.path("attache.toml")
    cfg.write_text(ATTACHE_TOML.format(port=port, pool=POOL_SIZE, db=DB,
                                       pg_port=stack.ports["direct"]))
    log = open(stack.path("attache.log"), "w")
    proc = subprocess.Popen([str(ATTACHE_BIN), "-c", str(cfg)], stdout=log, stderr=log)
    stack.procs["attache"] = proc
    stack.ports["attache"] = port
    wait_ready(stack, "attache", port, proc)


PGBOUNCER_INI = """;; Generated by benches/pgbench_compare.py
[databases]
{db} = host=127.0.0.1 port={pg_port} dbname={db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp}/userlist.txt
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 1000
logfile = {tmp}/pgbouncer.log
pidfile = {tmp}/pgbouncer.pid
"""


def start_pgbouncer(stack: Stack) -> None:
    port = benchlib.free_port()
    ini = stack.path("pgbouncer.ini")
    ini.write_text(PGBOUNCER_INI.format(db=DB, pg_port=stack.ports["direct"], port=port,
                                        tmp=stack.tmp, pool=POOL_SIZE))
    # auth_type=trust still wants the user listed in auth_file.
    stack.path("userlist.txt").write_text(f'"{USER}" ""\n')
    for p in (ini, stack.path("userlist.txt")):
        shutil.chown(p, USER, USER)
    # PgBouncer refuses to run as root.
    cmd = ["pgbouncer", str(ini)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", USER, "--", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.procs["pgbouncer"] = proc
    stack.ports["pgbouncer"] = port
    wait_ready(stack, "pgbouncer", port, proc)


# ---------------------------------------------------------------- pgbench

TPS_RE = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
LATENCY_RE = re.compile(r"^latency average = ([\d.]+) ms", re.M)
FAILED_RE = re.compile(r"^number of failed transactions: (\d+)", re.M)
PROCESSED_RE = re.compile(r"^number of transactions actually processed: (\d+)(?:/(\d+))?", re.M)
# pgbench 15: "pgbench: error: client 3 aborted in command 1 (SQL) of script 0; …";
# other versions put "script N" before "aborted".
ABORTED_RE = re.compile(r"client (\d+) (?:script \d+ )?aborted")


def parse_pgbench(status: int, stdout: str, stderr: str, clients: int) -> RunResult:
    """Reads pgbench's summary; any sign of an aborted client makes it a failure."""
    res = RunResult()
    reasons = []
    aborted = set(ABORTED_RE.findall(stdout + stderr))
    if aborted:
        reasons.append(f"{len(aborted)}/{clients} clients aborted")
    m = PROCESSED_RE.search(stdout)
    if m and m.group(2) and int(m.group(1)) < int(m.group(2)):
        reasons.append(f"only {m.group(1)}/{m.group(2)} transactions processed")
    if status != 0:
        reasons.append(f"pgbench exit status {status}")
    tps, lat, failed = TPS_RE.search(stdout), LATENCY_RE.search(stdout), FAILED_RE.search(stdout)
    if tps is None and not reasons:
        reasons.append("pgbench printed no tps line")
    res.tps = float(tps.group(1)) if tps else None
    res.latency_ms = float(lat.group(1)) if lat else None
    res.failed_txns = int(failed.group(1)) if failed else 0
    res.processed = int(m.group(1)) if m else None
    if reasons:
        res.failure = "; ".join(reasons)
        res.error_lines = error_lines(stderr)
    return res


def error_lines(stderr: str, limit: int = 6) -> list[str]:
    """pgbench's distinct error lines. Its threads write stderr concurrently, so
    lines are also split where a new "pgbench: " starts; client numbers are
    blanked so 64 copies of one error become one line."""
    seen: list[str] = []
    for chunk in re.split(r"\n|(?=pgbench: )", stderr):
        body = re.sub(r"^pgbench: (?:error|fatal|warning):\s*", "", chunk.strip())
        if not body or not re.search(r"error|abort|fatal", body, re.I):
            continue
        norm = re.sub(r"client \d+", "client N", body)
        if norm not in seen:
            seen.append(norm)
    return seen[:limit]


def postmaster_pid(stack: Stack) -> int | None:
    """The first cluster's postmaster (pg_ctl started it: not our child)."""
    try:
        return int((stack.pg_data[0] / "postmaster.pid").read_text().split("\n", 1)[0])
    except (IndexError, OSError, ValueError):
        return None


def run_pgbench(stack: Stack, target: str, wl: Workload, duration: int) -> RunResult:
    """One pgbench run, with the CPU the pooler, PostgreSQL (postmaster and
    backends), pgbench and everything else used during it: a rate alone
    cannot say whether a slow run waited on the pooler or on the box."""
    cmd = [str(stack.pg_bin / "pgbench"), "-h", "127.0.0.1", "-p", str(stack.ports[target]),
           "-n", "-T", str(duration), *wl.args, DB]
    limit = duration + 120
    sides = {"pooler": stack.procs[target].pid} if target in stack.procs else {}
    if (pm := postmaster_pid(stack)) is not None:
        sides["postgres"] = pm
    before = {k: benchlib.cpu_seconds(pid) for k, pid in sides.items()}
    kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, t0 = benchlib.machine_busy_seconds(), time.monotonic()
    try:
        r = subprocess.run(cmd, env=client_env(), capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return RunResult(failure=f"pgbench still running after {limit} s; killed")
    wall = time.monotonic() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = parse_pgbench(r.returncode, r.stdout, r.stderr, wl.clients)
    used = {k: benchlib.cpu_seconds(pid) - before[k] for k, pid in sides.items()}
    used["pgbench"] = (kids.ru_utime + kids.ru_stime) - (kids_before.ru_utime + kids_before.ru_stime)
    used["other"] = max(0.0, benchlib.machine_busy_seconds() - busy_before - sum(used.values()))
    res.cpu = {k: 100 * v / wall for k, v in used.items()}
    for name, proc in stack.procs.items():
        if name == target and proc.poll() is not None:
            res.failure = f"{name} exited with status {proc.returncode} during the run"
    return res


def reset_tpcb_tables(stack: Stack) -> None:
    """What pgbench does before a TPC-B run without -n, done directly so every
    target starts from the same table state (the vacuum cannot go through a pooler
    fairly: it would be timed on one and not the other)."""
    for sql in ("vacuum pgbench_branches", "vacuum pgbench_tellers", "truncate pgbench_history"):
        r = psql(stack, stack.ports["direct"], sql)
        if r.returncode != 0:
            sys.exit(f"{sql} failed: {r.stderr}")


def warm_up(stack: Stack) -> None:
    """Fills the buffer cache and the poolers' pools before anything is timed."""
    wl = Workload("warm-up", ("-S", "-c", str(POOL_SIZE), "-j", "2"), POOL_SIZE)
    for target in TARGETS:
        res = run_pgbench(stack, target, wl, WARMUP)
        if res.failure:
            print(f"warm-up via {target} FAILED: {res.failure}", file=sys.stderr)


def run_matrix(stack: Stack) -> dict[tuple[str, str], list[RunResult]]:
    """Every workload against every target back to back, so drift (cache, WAL,
    table bloat) hits all three alike; later rounds rotate the target order."""
    def run(wl: Workload, target: str) -> RunResult:
        if wl.tpcb:
            reset_tpcb_tables(stack)
        return run_pgbench(stack, target, wl, DURATION)

    def shown(res: RunResult) -> str:
        cpu = "  ".join(f"{k} {v:.0f}%" for k, v in res.cpu.items())
        return f"FAILED ({res.failure})" if res.failure else f"{res.tps:>6.0f} tps  CPU {cpu}"

    return benchlib.run_matrix(WORKLOADS, TARGETS, ROUNDS, run, shown, (28, 10))


def summarize(runs: list[RunResult]) -> RunResult:
    """Median over rounds; one failed round fails the point."""
    if failed := benchlib.first_failure(runs):
        why, r = failed
        return RunResult(failure=why, error_lines=r.error_lines, failed_txns=r.failed_txns)
    return RunResult(
        tps=statistics.median(r.tps for r in runs),
        latency_ms=statistics.median(r.latency_ms for r in runs if r.latency_ms is not None),
        failed_txns=sum(r.failed_txns for r in runs),
        cpu={k: statistics.median(r.cpu.get(k, 0.0) for r in runs) for k in runs[0].cpu},
    )


# ---------------------------------------------------------------- report

Summary = dict[tuple[str, str], RunResult]


def table_rows(summary: Summary) -> list[list[str]]:
    rows = []
    for wl in WORKLOADS:
        direct = summary[(wl.name, "direct")]
        for target in TARGETS:
            r = summary[(wl.name, target)]
            if r.failure:
                rows.append([wl.name, target, "FAILED", "—", str(r.failed_txns), "—", r.failure])
                continue
            ratio = "—" if direct.failure or not direct.tps else f"{r.tps / direct.tps:.2f}×"
            lat = "—" if r.latency_ms is None else f"{r.latency_ms:.3f}"
            cpu = " / ".join(f"{r.cpu[k]:.0f}%" if k in r.cpu else "—"
                             for k in ("pooler", "postgres", "pgbench", "other"))
            rows.append([wl.name, target, f"{r.tps:,.0f}", lat, str(r.failed_txns), cpu, ratio])
    return rows


HEADER = ["workload", "target", "TPS", "mean latency ms", "failed txns",
          "CPU pooler / postgres / pgbench / other", "vs direct"]
# "vs direct" holds a failure's reason too: left-aligned.
ALIGN = "|---|---|--:|--:|--:|--:|---|"


def bar_checks(summary: Summary) -> list[tuple[bool | None, str]]:
    """(met?, text) per point of the bar; None where the point does not apply."""
    checks: list[tuple[bool | None, str]] = []
    for wl in WORKLOADS:
        a, b = summary[(wl.name, "attache")], summary[(wl.name, "pgbouncer")]
        if a.failure:
            checks.append((False, f"{wl.name}: Attaché run FAILED ({a.failure})"))
            continue
        if b.failure:
            checks.append((None, f"{wl.name}: PgBouncer FAILED ({b.failure}); "
                                 f"Attaché completed at {a.tps:,.0f} TPS"))
            continue
        checks.append((a.tps >= b.tps, f"{wl.name}: TPS Attaché {a.tps:,.0f} vs "
                                       f"PgBouncer {b.tps:,.0f} ({a.tps / b.tps:.2f}×)"))
        if wl.clients == 1 and a.latency_ms is not None and b.latency_ms is not None:
            checks.append((a.latency_ms <= b.latency_ms,
                           f"{wl.name}: latency Attaché {a.latency_ms:.3f} ms vs "
                           f"PgBouncer {b.latency_ms:.3f} ms"))
    return checks


# ---------------------------------------------------------------- machine


def sh(cmd: list[str]) -> str:
    """benchlib.sh as this bench has always used it: stdout alone."""
    return benchlib.sh(cmd, stdout_only=True)


def machine_lines(stack: Stack) -> list[str]:
    return host_lines(stack, with_pgbouncer=True) + [
        f"- pgbench: `-T {DURATION}` s per run, {ROUNDS} round(s) (median shown), "
        f"scale {SCALE}, `-n`; targets run back to back per workload",
        f"- Poolers: transaction mode, pool size {POOL_SIZE}, default logging; "
        "PostgreSQL: max_connections 200, shared_buffers 256MB, "
        "**fsync off, synchronous_commit off, full_page_writes off**",
    ]


def host_lines(stack: Stack, with_pgbouncer: bool) -> list[str]:
    """Date, CPU, memory, load and versions: what every results section records."""
    bouncer = ""
    if with_pgbouncer:
        bouncer = f"{(sh(['pgbouncer', '--version']).splitlines() or ['PgBouncer ?'])[0]}; "
    return [
        benchlib.date_line(),
        benchlib.cpu_line(LOAD_BEFORE, stdout_only=True),
        f"- {sh([str(stack.pg_bin / 'postgres'), '--version'])}; {bouncer}"
        f"{benchlib.attache_build(ATTACHE_BIN, stdout_only=True)}",
    ]


def markdown_section(machine: list[str], rows: list[list[str]],
                     checks: list[benchlib.Check], failures: list[str]) -> str:
    return benchlib.markdown_section(
        machine, [benchlib.markdown_table(HEADER, rows, align=ALIGN)], checks,
        blocks=[("Failed runs (pgbench's error lines)", failures)])


SKELETON = f"""# Benchmarks

Produced by `benches/pgbench_compare.sh` (see `benches/README.md`).

{MARK_START}
{MARK_END}
"""


# ---------------------------------------------------------------- main


def main() -> int:
    if not ATTACHE_BIN.exists():
        sys.exit(f"{ATTACHE_BIN} missing: run benches/pgbench_compare.sh (it builds it)")
    benchlib.exit_on_signals()
    if REPLICA:
        import pgbench_replica  # only this mode needs it
        return pgbench_replica.main()
    stack = Stack()
    try:
        start_postgres(stack)
        start_attache(stack)
        start_pgbouncer(stack)
        print(f"ports: {stack.ports}; {len(WORKLOADS)} workloads × {len(TARGETS)} targets × "
              f"{ROUNDS} round(s) × {DURATION} s", flush=True)
        warm_up(stack)
        results = run_matrix(stack)
        machine = machine_lines(stack)
        summary = {k: summarize(v) for k, v in results.items()}
        rows = table_rows(summary)
        checks = bar_checks(summary)
        failures = benchlib.failure_details(summary)
        section = markdown_section(machine, rows, checks, failures)
    finally:
        stack.close()
    benchlib.print_report(
        machine, [benchlib.text_table(HEADER, rows)],
        "The bar (Attaché TPS ≥ PgBouncer's where PgBouncer completed; no Attaché "
        "failure; 1-client latency ≤ PgBouncer's):", checks,
        blocks=[("Failed runs", failures)])
    benchlib.write_results(WRITE, section, MARK_START, MARK_END, skeleton=SKELETON)
    return 0


if __name__ == "__main__":
    # pgbench_replica imports this module by name: give it this copy, not a second one.
    sys.modules.setdefault("pgbench_compare", sys.modules[__name__])
    sys.exit(main())
