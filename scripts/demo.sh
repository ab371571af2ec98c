#!/usr/bin/env bash
# Runs the demo: installs missing Debian packages, builds, and starts
# `attache demo` (a real PostgreSQL, Attaché in front, a live workload).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
attache_need_packages "${ATTACHE_TEST_PACKAGES[@]}"
cargo build --release
exec ./target/release/attache demo "$@"
