#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the test suite (Debian's postgresql package, run as its
# `postgres` user on loopback), creates a database with a role whose password is made anew each run,
# (the databases of a previous run go first) and prints the connection URL for SCOPEGATE_TEST_POSTGRES_URL (the role may create databases: each
# store test makes its own). Usage:
#   export SCOPEGATE_TEST_POSTGRES_URL=$(bash scripts/start-test-postgres.sh)
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
bin=/usr/lib/postgresql/$version/bin
data=${SCOPEGATE_TEST_POSTGRES_DIR:-/tmp/scopegate-test-postgres}
port=${SCOPEGATE_TEST_POSTGRES_PORT:-55432}
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# A server left from an earlier run is used if it answers; anything else there (a server that was
# killed, a half-made folder) is cleared and made anew.
if ! "$bin/pg_isready" -q -h "$data" -p "$port" >/dev/null 2>&1; then
  run "$bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  # The superuser has no password: it is reached only through the server's own socket (peer).
  run "$bin/initdb" -D "$data" -A peer -U postgres >/dev/null
  # Local (socket) connections for the setup below; TCP on loopback with passwords for the tests.
  echo "local all postgres peer" > "$data/pg_hba.conf.new"
  echo "host all all 127.0.0.1/32 scram-sha-256" >> "$data/pg_hba.conf.new"
  mv "$data/pg_hba.conf.new" "$data/pg_hba.conf"
  [ "$(id -u)" = 0 ] && chown postgres: "$data/pg_hba.conf"
  run "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >/dev/null
fi
password=$(openssl rand -hex 16)
run env PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -h "$data" -p "$port" -U postgres -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database
  WHERE datname = 'scopegate_test' OR datname LIKE 'sg\_%' \gexec
DROP ROLE IF EXISTS scopegate_test;
CREATE ROLE scopegate_test LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE scopegate_test OWNER scopegate_test;
SQL
echo "postgres://scopegate_test:$password@127.0.0.1:$port/scopegate_test"
