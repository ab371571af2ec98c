#!/usr/bin/env python3
"""Regenerates protocols/redis/commands.json from a real Redis server.

The table is data, not code, so that upgrading to a newer Redis is a matter
of re-running this script against it and reviewing the diff. It asks the
server itself (`COMMAND` and `COMMAND DOCS`), so arity, flags and key specs
are exactly what that Redis enforces.

Usage:
    python3 tools/gen_commands.py                # starts a throwaway redis-server
    python3 tools/gen_commands.py --port 6379    # asks a running server instead
    python3 tools/gen_commands.py --out path.json

Only the standard library is used. One JSON object per line keeps diffs
readable; subcommands are flattened to entries named "container|sub",
the same spelling Redis uses in ACL rules and COMMAND INFO.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


class Resp:
    """A minimal blocking RESP2 client: enough for COMMAND and COMMAND DOCS."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError("unexpected reply type %r" % kind)


def pairs(flat):
    """RESP2 renders maps as flat [k1, v1, k2, v2, ...] arrays."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def spec_part(flat):
    d = pairs(flat)
    out = {"type": d["type"]}
    out.update(pairs(d["spec"]) if d.get("spec") else {})
    return out


def key_spec(flat):
    d = pairs(flat)
    spec = {
        "flags": sorted(d.get("flags") or []),
        "begin_search": spec_part(d["begin_search"]),
        "find_keys": spec_part(d["find_keys"]),
    }
    if "notes" in d:
        spec["notes"] = d["notes"]
    return spec


def flatten(info, out):
    """One COMMAND reply entry (and its subcommands) as table rows."""
    name, arity, flags, first, last, step = info[:6]
    row = {
        "name": name.lower(),
        "arity": arity,
        "flags": sorted(flags),
        "first_key": first,
        "last_key": last,
        "step": step,
        "key_specs": [key_spec(s) for s in info[8]] if len(info) > 8 else [],
        "tips": sorted(info[7]) if len(info) > 7 else [],
        "acl_categories": sorted(info[6]) if len(info) > 6 else [],
    }
    out.append(row)
    for sub in (info[9] if len(info) > 9 else []) or []:
        flatten(sub, out)


def groups(docs_flat):
    """name -> group, recursing into subcommand docs."""
    result = {}
    for name, doc in pairs(docs_flat).items():
        d = pairs(doc)
        result[name.lower()] = d.get("group", "")
        if d.get("subcommands"):
            result.update(groups(d["subcommands"]))
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server():
    exe = shutil.which("redis-server")
    if not exe:
        sys.exit("redis-server not found: apt-get install -y redis-server")
    tmp = tempfile.mkdtemp(prefix="attache-gen-commands-")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", tmp, "--daemonize", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, tmp
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start on port %d" % port)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, help="use a running server on 127.0.0.1")
    ap.add_argument("--out", default=os.path.join(here, "..", "commands.json"))
    args = ap.parse_args()

    proc = tmp = None
    port = args.port
    if port is None:
        proc, port, tmp = start_server()
    try:
        conn = Resp(port)
        version = pairs(conn.call("HELLO", "2"))["version"]
        rows = []
        for info in conn.call("COMMAND"):
            flatten(info, rows)
        group_of = groups(conn.call("COMMAND", "DOCS"))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
            shutil.rmtree(tmp, ignore_errors=True)

    for row in rows:
        row["group"] = group_of.get(row["name"], "")
    rows.sort(key=lambda r: r["name"])
    with open(args.out, "w") as f:
        f.write('{"redis_version": %s, "commands": [\n' % json.dumps(version))
        f.write(",\n".join(json.dumps(r) for r in rows))
        f.write("\n]}\n")
    print("wrote %d commands from Redis %s to %s" % (len(rows), version, args.out))


if __name__ == "__main__":
    main()
