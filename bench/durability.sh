#!/usr/bin/env bash
# bench/durability.sh: issue 11's four scenarios (kill -9 at ~400 and ~1,600 spans/s, Postgres outage with
# a kill -9 in it, Postgres down + SIGTERM) at the issue's rates and durations, against a given gateway
# binary and spool setting. Prints: scenario | acknowledged | stored | lost | duplicated | notes.
# See bench/README.md, "Durability". Prints figures; never fails on a target.
#
#   bench/durability.sh [--bin PATH] [--spool memory|disk] [--fsync always|interval|never]
#                       [--only kill400,kill1600,pgdown-kill,pgdown-term] [--seconds 38]
#
# --bin defaults to $GW_BIN, else build/genai-gateway (build it first: this script does not build, so an
# older binary can be measured as it is). --spool defaults to disk; --fsync to the gateway's default.
# --seconds scales the load phases (38 s as in the issue). About 4 minutes for all four.
# The load is the real OpenTelemetry JS SDK (tests/lib/load-client.mjs) from tests/e2e's locked packages;
# PostgreSQL is a private cluster with fsync on (scripts/pg.sh).
set -euo pipefail

# shellcheck source=../scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

bin=${GW_BIN:-$GW_ROOT/build/genai-gateway}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --bin) bin=$2; shift 2 ;;
  --spool | --fsync | --only | --seconds) args+=("$1" "$2"); shift 2 ;;
  -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
  *) gw_die "unknown argument $1 (see --help)" ;;
  esac
done

[ -x "$bin" ] || gw_die "gateway binary $bin not found: build it (cmake --build build) or pass --bin"
[ -x /usr/lib/postgresql/15/bin/initdb ] || gw_die "PostgreSQL 15 server binaries not found (apt-get install postgresql-15)"
gw_ensure_node
e2e=$GW_ROOT/tests/e2e
if [ ! -d "$e2e/node_modules" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; then
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error) >&2 || gw_die "npm ci in tests/e2e failed"
fi
ln -sfn e2e/node_modules "$GW_ROOT/tests/node_modules"

bin=$(realpath "$bin")
gw_say "durability scenarios against $bin ${args[*]}"
GW_BIN=$bin GENAI_GW_MIGRATIONS_DIR=${GENAI_GW_MIGRATIONS_DIR:-$GW_ROOT/migrations} \
  node "$GW_ROOT/bench/durability.mjs" "${args[@]}"
