# syntax=docker/dockerfile:1
#
# Attaché container image: build with the Rust toolchain, run on a slim
# Debian with nothing but the binary and the CA roots.
#
#   docker build -t attache:latest .
#   docker run --rm -v "$PWD/config/docker-compose.toml:/etc/attache/attache.toml:ro" attache:latest
#
# The image ships no config: mount one at /etc/attache/attache.toml (a
# ConfigMap in Kubernetes, a bind mount in compose). Inside a container the
# listeners and [admin] must bind 0.0.0.0, not 127.0.0.1, to be reachable
# from outside it (probes, published ports, other containers).

FROM rust:1-bookworm AS builder
# pg_query compiles PostgreSQL's parser (C, gcc is in the image) and
# generates its bindings with bindgen, which needs libclang.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep the registry and incremental artifacts between builds;
# the binary is copied out because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p attache \
 && install -m 0755 target/release/attache /usr/local/bin/attache

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system roots for server_tls without a ca_file.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 attache \
 && useradd --system --uid 10001 --gid attache --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin attache \
 && mkdir -p /etc/attache
COPY --from=builder /usr/local/bin/attache /usr/local/bin/attache
# Postgres, Redis and the admin endpoint (health, readiness, metrics), as in
# config/docker-compose.toml. EXPOSE only documents; the config decides.
EXPOSE 6432 6380 15001
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# SIGTERM: stop accepting, drain for up to shutdown_timeout, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["attache"]
CMD ["--config", "/etc/attache/attache.toml"]
