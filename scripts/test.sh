#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, builds, then runs the
# unit and integration tests (which start real PostgreSQL servers themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
attache_need_packages "${ATTACHE_TEST_PACKAGES[@]}"
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads="${ATTACHE_TEST_THREADS:-2}"
