#!/usr/bin/env bash
# Installs the Debian packages Attaché's tests, demo and benchmarks use, but
# only those that are missing. Sourced by test.sh, demo.sh and benches.
set -euo pipefail

attache_need_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "Installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) and re-run." >&2
    exit 1
  fi
}

# PostgreSQL server and client (pgbench ships with the server package),
# openssl for certificate checks, util-linux for runuser, redis-server (with
# redis-cli and sentinel) and nutcracker (twemproxy) for the Redis tests.
# Building needs libclang-dev and a C compiler: the pg_query crate compiles
# PostgreSQL's parser and generates its bindings with bindgen. chromium
# renders the admin status page headless in tests/admin_page.rs. nginx-light
# and haproxy stand in as HTTP upstreams and incumbent proxies in the HTTP
# tests; wrk drives benches/http_compare.py.
ATTACHE_TEST_PACKAGES=(postgresql postgresql-client openssl util-linux ca-certificates redis-server nutcracker libclang-dev gcc libc6-dev chromium nginx-light haproxy wrk)

# What benches/http_compare.py needs besides a Rust toolchain: wrk, and
# HAProxy and nginx as the upstream and the reverse proxies compared.
ATTACHE_HTTP_BENCH_PACKAGES=(wrk haproxy nginx-light)
