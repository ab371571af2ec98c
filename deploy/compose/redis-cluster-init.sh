#!/usr/bin/env bash
# docker-compose.test.yml, redis-cluster-init: joins redis-cluster-1..6 into
# one cluster (three primaries, one replica each) and waits until it serves.
# Run once; on a later `up` the cluster already exists and this only waits.
# redis-cli wants IP addresses for CLUSTER MEET, so the names are resolved
# first. REDISCLI_AUTH carries the password (never on the command line).
set -euo pipefail

NODES=(redis-cluster-1 redis-cluster-2 redis-cluster-3 redis-cluster-4 redis-cluster-5 redis-cluster-6)
PORT=6379

cluster_ok() {
  redis-cli -h "${NODES[0]}" -p "$PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

if ! cluster_ok; then
  addrs=()
  for node in "${NODES[@]}"; do
    ip=$(getent hosts "$node" | awk '{print $1; exit}')
    if [ -z "$ip" ]; then
      echo "redis-cluster-init: cannot resolve $node" >&2
      exit 1
    fi
    addrs+=("$ip:$PORT")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes
fi

for _ in $(seq 1 60); do
  if cluster_ok; then
    echo "redis-cluster-init: cluster_state:ok"
    exit 0
  fi
  sleep 1
done
echo "redis-cluster-init: the cluster did not reach cluster_state:ok in 60s" >&2
exit 1
