#!/usr/bin/env bash
# docker-compose.test.yml, pg-primary: run once by the postgres image's
# entrypoint (from /docker-entrypoint-initdb.d) when the data directory is
# new. Creates the application role and database owner, the replication
# role the replica streams with, and lets that role connect for replication.
# Passwords arrive as psql variables, so no quoting of their text is needed.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$APP_PASSWORD" \
  -v replication_password="$REPLICATION_PASSWORD" <<'EOSQL'
CREATE ROLE app LOGIN PASSWORD :'app_password';
ALTER DATABASE app OWNER TO app;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
EOSQL

# The image's pg_hba.conf allows every database to every host with a
# password, but "all" does not cover replication connections.
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
