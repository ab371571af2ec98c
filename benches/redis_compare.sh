#!/usr/bin/env bash
# Benchmark: redis-benchmark GET/SET against direct Redis, Attaché and
# twemproxy, run interleaved on loopback; writes the results into BENCHMARKS.md.
#
# This wrapper installs what is missing (redis-server with redis-benchmark and
# redis-cli, nutcracker, python3, and linux-perf with PERF=1; apt-get update
# only when something must be installed), builds the release binary and hands
# over to redis_compare.py, which starts the servers and runs redis-benchmark.
#
# Environment (see benches/README.md):
#   DURATION=8    seconds per redis-benchmark run (QUICK=1 makes the default 3)
#   REQUESTS=…    fixed -n for every run instead of sizing it for DURATION
#   ROUNDS=1      how many times the whole interleaved matrix is repeated
#   QUICK=1       short runs; does not touch BENCHMARKS.md unless WRITE=1
#   WRITE=0|1     whether to rewrite the Redis section of BENCHMARKS.md
#   CONNS=16      Attaché's connections_per_node
#   THREADS=1     redis-benchmark --threads for the 500-client workloads
#   PERF=1        afterwards, profile Attaché with perf during GET -c 50 -P 16
#   KEEP_TMP=1    keep the temporary directory (configs, server logs)
#   ATTACHE_BIN=… benchmark another attache binary (default target/release/attache)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v nutcracker >/dev/null 2>&1 || need+=(nutcracker)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${PERF:-}" = 1 ] && ! command -v perf >/dev/null 2>&1; then need+=(linux-perf); fi
# Building Attaché needs libclang (pg_query's bindgen) and a C compiler.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# attache_need_packages runs apt-get update/install only for missing ones.
attache_need_packages "${need[@]}"

cargo build --release
exec python3 benches/redis_compare.py "$@"
