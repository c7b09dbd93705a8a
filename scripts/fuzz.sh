#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME (default 30s) each. `go test` alone
# runs only their seed corpora; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
t=${FUZZTIME:-30s}
grep -rl --include='*_test.go' '^func Fuzz' internal test 2>/dev/null | xargs -n1 dirname | sort -u | while read -r dir; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/func //'); do
    echo "== $dir $f ($t)"
    go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "./$dir"
  done
done
