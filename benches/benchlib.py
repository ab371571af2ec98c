"""Helpers shared by the benchmark scripts in benches/.

pgbench_compare.py, pgbench_replica.py, redis_compare.py and http_compare.py
all compare Attaché with direct access and with other proxies the same way:
servers on free loopback ports in a temporary directory, stopped on exit
(Ctrl-C and SIGTERM included); nothing timed before a server answers; targets
run back to back with the order rotated per round; the machine described
beside the results; the table and the bar printed, and a section of
BENCHMARKS.md rewritten between markers. Those pieces live here once, so a
fix to one of them (a leaked process, a section written over the wrong
markers) reaches every bench. What a script measures, how it reads its load
tool's output and what its bar is stay in the script.

The scripts run as `python3 benches/<script>.py` (the .sh wrappers too),
which puts benches/ first on sys.path: that is how `import benchlib` finds
this file.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
# The build under test; ATTACHE_BIN benchmarks another one.
ATTACHE_BIN = Path(os.environ.get("ATTACHE_BIN", REPO / "target" / "release" / "attache"))

# (met?, text) per point of a bar; None where the point cannot be judged.
Check = tuple[bool | None, str]


class Outcome(Protocol):
    """What the helpers need of a script's RunResult."""

    failure: str | None
    error_lines: list[str]


class Named(Protocol):
    """What `run_matrix` needs of a script's Workload."""

    @property
    def name(self) -> str: ...


W = TypeVar("W", bound=Named)
R = TypeVar("R", bound=Outcome)


# ---------------------------------------------------------------- processes


class Stack:
    """The servers under test, in one temporary directory; `close` stops them
    in reverse start order, then removes the directory unless `keep`.

    Subclasses change how a server is signalled (`send`), clean up after one
    (`stopped`) or stop more than the processes (override `close`)."""

    # Start each spawned server in its own session, i.e. process group.
    new_session = False

    def __init__(self, prefix: str, keep: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def path(self, name: str) -> Path:
        return self.tmp / name

    def spawn(self, name: str, cmd: list[str],
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts `cmd` with stdout and stderr in `<name>.out` and no stdin."""
        # Appended: a server restarted between rounds keeps one log.
        log = open(self.path(f"{name}.out"), "a")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=self.new_session)
        self.procs[name] = proc
        return proc

    def close(self) -> None:
        self.stop_procs()
        self.remove_tmp()

    def stop_procs(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def stop(self, name: str) -> None:
        """Stops one process (SIGTERM, SIGKILL after 15 s) and forgets it."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            self.send(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop on SIGTERM; killing", file=sys.stderr)
                self.send(proc, signal.SIGKILL)
                proc.wait()
        self.stopped(proc)

    def send(self, proc: subprocess.Popen, sig: int) -> None:
        proc.send_signal(sig)

    def stopped(self, proc: subprocess.Popen) -> None:
        """Called for every process once it is stopped (or found dead)."""

    def remove_tmp(self) -> None:
        if self.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(name: str, port: int, proc: subprocess.Popen | None,
               probe: Callable[[], str | None], exited: Callable[[], str],
               interval: float = 0.2, show_reason: bool = True) -> None:
    """Calls `probe` until it answers None (ready) or 30 s pass, so nothing is
    timed against a server still starting (and no load tool spins on a refused
    connection). Exits the script if `proc` dies first, with `exited()` saying
    where its output is, or on the timeout, with the probe's last answer (why
    not ready) if `show_reason`."""
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{name} exited with status {proc.returncode}; {exited()}")
        answer = probe()
        if answer is None:
            return
        last = answer
        time.sleep(interval)
    sys.exit(f"{name} on port {port} not ready after 30 s" + (f": {last}" if show_reason else ""))


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP raise SystemExit, as Ctrl-C raises KeyboardInterrupt,
    so `finally: stack.close()` still stops the servers."""
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def target_order(targets: Sequence[str], rnd: int) -> list[str]:
    """The targets in round `rnd`'s order: rotated every round, so that no
    target always runs first after a warm-up or another workload."""
    n = len(targets)
    return [*targets[rnd % n:], *targets[:rnd % n]]


def run_matrix(workloads: Sequence[W], targets: Sequence[str], rounds: int,
               run: Callable[[W, str], R], shown: Callable[[R], str],
               widths: tuple[int, int],
               between_rounds: Callable[[], None] | None = None) -> dict[tuple[str, str], list[R]]:
    """Every workload against every target back to back, so drift (caches,
    table bloat, other load) hits all targets alike; later rounds rotate the
    target order. `between_rounds` runs before every round but the first.
    Prints a line per run: `shown(result)` after the workload and target,
    padded to `widths`."""
    results: dict[tuple[str, str], list[R]] = {}
    for rnd in range(rounds):
        if rnd > 0 and between_rounds is not None:
            between_rounds()
        order = target_order(targets, rnd)
        for wl in workloads:
            for target in order:
                res = run(wl, target)
                results.setdefault((wl.name, target), []).append(res)
                print(f"  round {rnd + 1}/{rounds}  {wl.name:<{widths[0]}} "
                      f"{target:<{widths[1]}} {shown(res)}", flush=True)
    return results


def first_failure(runs: Sequence[R]) -> tuple[str, R] | None:
    """The first failed round's reason (naming the round when there are
    several) and its run: one failed round fails the point, its median is
    not shown."""
    for i, r in enumerate(runs):
        if r.failure:
            prefix = f"round {i + 1}: " if len(runs) > 1 else ""
            return prefix + r.failure, r
    return None


# ---------------------------------------------------------------- report


def text_table(header: list[str], rows: list[list[str]], left: int = 2) -> str:
    """`left` leading columns are labels (left-aligned); the rest numbers."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < left else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*r) for r in rows])


def markdown_table(header: list[str], rows: list[list[str]], left: int = 2,
                   align: str | None = None) -> str:
    """Like `text_table`; `align` replaces the alignment row where a text
    column (e.g. a failure's reason in a ratio column) follows the numbers."""
    if align is None:
        align = "|" + "|".join("---" if i < left else "--:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", align]
    for r in rows:
        lines.append("| " + " | ".join(f"**{c}**" if c == "FAILED" else c for c in r) + " |")
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[ok]


def bar_met(checks: Iterable[Check]) -> bool:
    """The bar is met when no point is missed; points that do not apply pass."""
    return all(ok is not False for ok, _ in checks)


def failure_details(summary: Mapping[tuple[str, str], Outcome],
                    names: Mapping[str, str] | None = None) -> list[str]:
    """`workload via target: why` and the load tool's error lines, per failed
    point, in the summary's order (first round's: workloads, then targets).
    `names` gives a target a longer name for the report."""
    out = []
    for (wl, target), r in summary.items():
        if r.failure:
            out.append(f"{wl} via {names.get(target, target) if names else target}: {r.failure}")
            out += [f"    {line}" for line in r.error_lines]
    return out


def log_warnings(files: Iterable[Path], pattern: str, limit: int,
                 label: bool = False) -> list[str]:
    """Lines matching `pattern` in server logs, ANSI colours and the leading
    timestamp stripped, deduplicated: a server that complained during the run
    is part of the result. With `label`, each line starts with the log's name."""
    seen: list[str] = []
    for f in files:
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read_text(errors="replace"))
        for line in text.splitlines():
            if re.search(pattern, line):
                body = re.sub(r"^\S+\s+", "", line.strip())
                if label:
                    body = f"{f.stem}: {body}"
                if body not in seen:
                    seen.append(body)
    return seen[:limit]


Blocks = Sequence[tuple[str, list[str]]]


def markdown_section(machine: list[str], results: list[str],
                     checks: Sequence[Check] | None = None,
                     verdict: Callable[[bool | None], str] = verdict,
                     blocks: Blocks = ()) -> str:
    """A results section: machine and settings, `results` (tables and notes),
    the bar when there is one, then each non-empty (title, lines) block as
    a code block (failed runs, log warnings)."""
    parts = ["### Machine and settings", "", *machine, "", "### Results", "", *results]
    if checks is not None:
        parts += ["", "### The bar", ""]
        parts += [f"- {verdict(ok)}: {text}" for ok, text in checks]
        parts += ["", f"Overall: **{'met' if bar_met(checks) else 'NOT met'}**."]
    for title, lines in blocks:
        if lines:
            parts += ["", f"### {title}", "", "```", *lines, "```"]
    return "\n".join(parts)


def print_report(machine: list[str], tables: Sequence[str], bar: str | None = None,
                 checks: Sequence[Check] = (),
                 verdict: Callable[[bool | None], str] = verdict,
                 blocks: Blocks = ()) -> None:
    """The terminal's version of `markdown_section`: machine, tables, the bar
    (`bar` is its one-line statement) and each non-empty (title, lines) block."""
    print("\n" + "\n".join(machine) + "\n\n" + tables[0] + "\n")
    for table in tables[1:]:
        print(table + "\n")
    if bar is not None:
        print(bar)
        # As wide as the longest verdict ("NOT met", or "FAIL"), so the texts line up.
        width = max(len(verdict(ok)) for ok in (True, False, None))
        for ok, text in checks:
            print(f"  {verdict(ok):>{width}}  {text}")
        print(f"Overall: {'met' if bar_met(checks) else 'NOT met'}")
    for title, lines in blocks:
        if lines:
            print(f"\n{title}:\n" + "\n".join(lines))


def write_results(write: bool, section: str, start: str, end: str,
                  skeleton: str = "# Benchmarks\n",
                  not_written: str = "QUICK=1 without WRITE=1, or WRITE=0") -> None:
    """Replaces what lies between the markers `start` and `end` in BENCHMARKS.md
    with `section`, appending the markers if missing (to `skeleton` if the file
    is). Only this bench's section changes: the other benches own the rest.
    Without `write`, says why the file was not touched."""
    if not write:
        print(f"BENCHMARKS.md not touched ({not_written})")
        return
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else skeleton
    if start not in text or end not in text:
        text = text.rstrip("\n") + "\n\n" + start + "\n" + end + "\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS_MD.write_text(f"{head}{start}\n{section}\n{end}{tail}")
    print(f"results written to {BENCHMARKS_MD}")


# ---------------------------------------------------------------- machine


def loadavg() -> str:
    """1, 5 and 15 minute load averages: other work on the machine skews every
    number, so they are recorded beside the results."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sh(cmd: list[str], stdout_only: bool = False) -> str:
    """A command's output for the machine description, "?" if it cannot run.
    Its stderr when stdout is empty (`nginx -v` writes there), unless
    `stdout_only`: the pgbench description has always read stdout alone."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return r.stdout.strip() if stdout_only else (r.stdout.strip() or r.stderr.strip())


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def date_line() -> str:
    return f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"


def cpu_line(load_before: str, memory: bool = True, before: str = "the run",
             stdout_only: bool = False) -> str:
    """CPU, cores, memory (unless not `memory`), kernel, and the load average
    `load_before` (taken before `before`) and now."""
    mem = ""
    if memory:
        total = next((line.split()[1] for line in sh(["free", "-h"], stdout_only).splitlines()
                      if line.startswith("Mem:")), "?")
        mem = f"memory (`free -h`): {total} total; "
    return (f"- CPU: {cpu_model()}, `nproc` = {sh(['nproc'], stdout_only)}; {mem}"
            f"kernel {sh(['uname', '-r'], stdout_only)}; load average before {before}: "
            f"{load_before}, after: {loadavg()}")


def git_rev(stdout_only: bool = False) -> str:
    """The checkout's commit, marked when tracked files differ from it."""
    rev = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], stdout_only)
    if sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], stdout_only):
        rev += " + uncommitted changes"
    return rev


def attache_build(binary: Path, stdout_only: bool = False) -> str:
    """`attache --version` and the commit it was built from."""
    return (f"{sh([str(binary), '--version'], stdout_only)} "
            f"(git {git_rev(stdout_only)}, `cargo build --release`)")


# ---------------------------------------------------------------- /proc: CPU per process tree

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants (nginx: master and workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = _stat_fields(stat.read_text())[0:2]
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _stat_fields(text: str) -> list[int]:
    """pid, ppid, utime, stime, cutime, cstime from /proc/PID/stat (comm
    may hold spaces)."""
    pid = int(text.split(" ", 1)[0])
    rest = text.rsplit(")", 1)[1].split()
    return [pid, int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])]


def cpu_seconds(root: int) -> float:
    """CPU time of `root`'s process tree, counting processes that exited
    too (through the waited-for children's time of the parent that reaped
    them): PostgreSQL's backends come and go with their connections."""
    total = 0
    for pid in tree_pids(root):
        try:
            total += sum(_stat_fields(Path(f"/proc/{pid}/stat").read_text())[2:6])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """All cores' non-idle time so far, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK
