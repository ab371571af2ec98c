#!/usr/bin/env bash
# Benchmark: pgbench against direct PostgreSQL, Attaché and PgBouncer, run
# interleaved on loopback; writes the results into BENCHMARKS.md.
#
# This wrapper installs what is missing (postgresql, pgbouncer, python3; apt-get
# update only when something must be installed), builds the release binary and
# hands over to pgbench_compare.py, which starts the servers and runs pgbench.
#
# Environment (see benches/README.md):
#   DURATION=10   seconds per pgbench run (QUICK=1 makes the default 3)
#   ROUNDS=1      how many times the whole interleaved matrix is repeated
#   QUICK=1       short runs; does not touch BENCHMARKS.md unless WRITE=1
#   WRITE=0|1     whether to rewrite the results section of BENCHMARKS.md
#   SCALE=10      pgbench -i scale factor
#   KEEP_TMP=1    keep the temporary directory (configs, server logs)
#   ATTACHE_BIN=… benchmark another attache binary (default target/release/attache)
#   REPLICA=1     run only the replica comparison (pgbench_replica.py): a streaming
#                 replica, Attaché with reads split vs primary only; select-heavy
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

need=()
dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
# Building Attaché needs libclang (pg_query's bindgen) and a C compiler.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# attache_need_packages runs apt-get update/install only for missing ones.
attache_need_packages "${need[@]}"

cargo build --release
exec python3 benches/pgbench_compare.py "$@"
