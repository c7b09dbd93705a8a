#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for the store's tests and
# prints the DSN to use. Idempotent: a cluster already running is reused.
#   scripts/test-postgres.sh start   -> prints postgres://... DSN
#   scripts/test-postgres.sh stop
set -euo pipefail
PGPORT=${NIMBUS_TEST_PGPORT:-15432}
PGDIR=${NIMBUS_TEST_PGDIR:-/tmp/nimbus-test-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bin" ] || { echo "PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
start)
  if [ ! -s "$PGDIR/data/PG_VERSION" ]; then
    mkdir -p "$PGDIR"; [ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
    run "$bin/initdb" -D "$PGDIR/data" -U nimbus --auth=trust -E UTF8 >/dev/null
  fi
  if ! run "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    run "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
      -o "-h 127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off -c max_connections=200" start >/dev/null
  fi
  echo "postgres://nimbus@127.0.0.1:$PGPORT/postgres?sslmode=disable"
  ;;
stop)
  run "$bin/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
