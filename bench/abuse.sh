#!/usr/bin/env bash
# bench/abuse.sh: every attack of issue 12's table against the gateway on 127.0.0.1, each bounded in time,
# with a well-behaved OTLP client alongside: its success rate and p99 latency under each attack next to
# the unloaded p99, and the gateway's peak RSS next to the documented bound (bench/README.md, "Abuse").
# Prints figures; never fails on a target.
#
#   bench/abuse.sh [BIN]      BIN defaults to a Release build in build-bench/ (built when missing)
#
# Environment: ABUSE_SECONDS (60 s per phase: an unloaded phase before each of the 7 attacks and one at
# the end; about 16 minutes in all. Shorter phases make each p99 the third-worst of a few hundred exports), ABUSE_RATE (20 good exports/s per protocol), ABUSE_SPANS (5 spans per
# export), ABUSE_ONLY (attack names), ABUSE_SCALE (multiplies the attackers' connection counts), ABUSE_YAML
# (extra gateway config). No PostgreSQL: the gateway runs with a disk spool in its own temporary data dir
# (bench/abuse.mjs says how it is set up).
set -euo pipefail

# shellcheck source=../scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
gw_ensure_node
command -v prlimit >/dev/null || gw_die "prlimit (util-linux) is required"

BIN=${1:-}
if [ -z "$BIN" ]; then
  BUILD=$GW_ROOT/build-bench
  BIN=$BUILD/genai-gateway
  if [ ! -x "$BIN" ]; then
    gw_ensure_packages
    gw_say "building Release into $BUILD"
    cmake -S "$GW_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null || gw_die "cmake configure failed"
    cmake --build "$BUILD" -j "$(nproc)" --target genai-gateway >/dev/null || gw_die "build failed"
  fi
fi
[ -x "$BIN" ] || gw_die "gateway binary $BIN not found or not executable"

# The good client is the OTel JS SDK of tests/e2e; tests/lib resolves packages through tests/node_modules.
E2E=$GW_ROOT/tests/e2e
if [ ! -d "$E2E/node_modules" ] || [ "$E2E/package-lock.json" -nt "$E2E/node_modules/.package-lock.json" ]; then
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error >&2) || gw_die "npm ci in tests/e2e failed"
fi
ln -sfn e2e/node_modules "$GW_ROOT/tests/node_modules"

exec node "$GW_ROOT/bench/abuse.mjs" "$BIN"
