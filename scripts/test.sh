#!/usr/bin/env bash
# Runs every test: Go unit and integration tests (the store's against both
# SQLite and a throwaway PostgreSQL on loopback), then the OpenStack CLI
# end-to-end checks against a real `nimbus up`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

dsn=$(scripts/test-postgres.sh start)
trap 'scripts/test-postgres.sh stop' EXIT
export NIMBUS_TEST_POSTGRES_DSN="$dsn"

echo "== go vet"
go vet ./...
# Pinned, and fetched through the module proxy like any dependency, so a
# fresh machine needs nothing installed by hand.
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== go test"
go test -race -count=1 -timeout 20m ./...
echo "== openstack CLI end-to-end"
test/cli/identity.sh
test/cli/image.sh
test/cli/network.sh
test/cli/compute.sh
test/cli/volume.sh
test/cli/object.sh
