#!/usr/bin/env bash
# docker-compose.test.yml, pg-replica: on first start, copy the primary with
# pg_basebackup -R (which writes primary_conninfo and standby.signal), then
# hand over to the postgres image's own entrypoint, which finds an existing
# data directory and just starts the server, as a hot standby.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=pg-primary}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -p 5432 -U replicator; do
    echo "pg-replica: waiting for $PRIMARY_HOST" >&2
    sleep 1
  done
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  # -R writes primary_conninfo from this connection, password (quoted) and
  # application_name included, so the standby streams with the same login.
  gosu postgres env PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    -h "$PRIMARY_HOST" -p 5432 -U replicator -d "application_name=pg-replica" \
    -D "$PGDATA" -R -X stream -c fast
fi

exec docker-entrypoint.sh postgres -c hot_standby=on
