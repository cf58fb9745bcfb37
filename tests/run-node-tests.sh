#!/usr/bin/env bash
# run-node-tests.sh: the node:test suites (tests/integration, tests/e2e) against the real gateway binary
# and a real PostgreSQL.
#
#   tests/run-node-tests.sh [FILE...]     all suites, or only the given test files
#
# Environment: GW_BIN (default <repo>/build/genai-gateway), GW_TEST_PG_DSN (a running server to use; when
# unset a throw-away cluster is started with scripts/pg.sh and stopped at exit), GW_NODE_TEST_CONCURRENCY
# (test files run in parallel, default 2), GW_NODE_TEST_TIMEOUT_MS (per test and per test file, default 300000:
# a durability file runs about 100 s of tests on a quiet machine, twice that on a loaded one).
# Packages come from tests/e2e (npm ci when node_modules is missing); tests/node_modules links to them so
# tests/lib and tests/integration resolve the same pinned versions.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export GW_BIN=${GW_BIN:-$repo/build/genai-gateway}

if [ ! -x "$GW_BIN" ]; then
  echo "run-node-tests.sh: gateway binary $GW_BIN not found or not executable: build it first (or set GW_BIN)" >&2
  exit 1
fi

if [ ! -d "$here/e2e/node_modules" ] || [ "$here/e2e/package-lock.json" -nt "$here/e2e/node_modules/.package-lock.json" ]; then
  (cd "$here/e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
ln -sfn e2e/node_modules "$here/node_modules"

pgdir=
cleanup() {
  if [ -n "$pgdir" ]; then
    bash "$repo/scripts/pg.sh" stop "$pgdir/data" >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  fi
}
trap cleanup EXIT

if [ -z "${GW_TEST_PG_DSN:-}" ]; then
  pgdir=$(mktemp -d /tmp/gw-node-pg.XXXXXX)
  chmod 755 "$pgdir"
  GW_TEST_PG_DSN=$(GW_PG_FAST=1 bash "$repo/scripts/pg.sh" start "$pgdir/data")
  export GW_TEST_PG_DSN
fi

if [ $# -gt 0 ]; then
  files=()
  for f in "$@"; do files+=("$(realpath -- "$f")"); done # the run below starts in tests/
else
  mapfile -t files < <(find "$here/integration" "$here/e2e" -maxdepth 1 -name '*.test.mjs' | sort)
fi

cd "$here"
node --test \
  --test-concurrency="${GW_NODE_TEST_CONCURRENCY:-2}" \
  --test-timeout="${GW_NODE_TEST_TIMEOUT_MS:-300000}" \
  --test-reporter=spec \
  "${files[@]}"
